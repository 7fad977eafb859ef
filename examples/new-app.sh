#!/usr/bin/env bash
# A newcomer's first build, as the README says it: the quick start from an
# empty target directory (printing how many crates it compiled), then a new
# app of their own depending on this checkout with the README's dependency
# lines, running the quick start's code.
# Run from the repository's root (`.ci/run` does).
set -euo pipefail

log() { printf '[new-app] %s\n' "$*"; }
checkout=$(pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# README, "Quick start", from an empty target directory.
start=$(date +%s)
CARGO_TARGET_DIR="$work/quickstart-target" cargo run --example quickstart 2>"$work/quickstart.log" | tee "$work/quickstart.out"
crates=$(grep -c '^ *Compiling ' "$work/quickstart.log" || true)
log "the quick start compiled $crates crates in $(( $(date +%s) - start )) s from an empty target directory"
grep -q '^Hi Yoda!$' "$work/quickstart.out" || { log "FAILED: the quick start did not greet Yoda"; exit 1; }

# README, "Using it in your app": the quick start's dependency lines, with the
# path of this checkout instead of ../promiscuous-rs.
app="$work/my-app"
mkdir -p "$app/src"
{
  printf '[package]\nname = "my-app"\nversion = "0.1.0"\nedition = "2021"\n\n'
  awk '/<!-- dependencies: quick start -->/ { found = 1; next }
       found && /^```toml/ { inside = 1; next }
       inside && /^```/ { exit }
       inside { print }' README.md | sed "s|\"../promiscuous-rs\"|\"$checkout\"|"
  # Not a member of this checkout's workspace.
  printf '\n[workspace]\n'
} >"$app/Cargo.toml"
grep -q "path = \"$checkout\"" "$app/Cargo.toml" || { log "FAILED: no dependency block in README.md"; cat "$app/Cargo.toml"; exit 1; }
cp examples/quickstart.rs "$app/src/main.rs"
(cd "$app" && CARGO_TARGET_DIR="$work/my-app-target" cargo run -q) | tee "$work/my-app.out"
grep -q '^Hi Yoda!$' "$work/my-app.out" || { log "FAILED: the new app did not greet Yoda"; exit 1; }
log "a new app depending on this checkout runs the quick start"
