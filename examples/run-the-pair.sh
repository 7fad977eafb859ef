#!/usr/bin/env bash
# Runs the example pair as its READMEs say, as two processes through the real
# RabbitMQ, Redis and PostgreSQL, and checks what the subscriber did.
# Run from the repository's root (`.ci/run` does).
set -euo pipefail

log() { printf '[pair] %s\n' "$*"; }
fail() { log "FAILED: $*"; [ -f "$out" ] && sed 's/^/[mailer] /' "$out"; exit 1; }

out=$(mktemp)
mailer=""
cleanup() {
  if [ -n "$mailer" ] && kill -0 "$mailer" 2>/dev/null; then kill -TERM "$mailer" 2>/dev/null || true; fi
  rm -f "$out" mailer.db mailer.db-shm mailer.db-wal
}
trap cleanup EXIT

# A clean slate: the publisher's database and the mailer's queue and file
# from an earlier run.
dropdb --if-exists -h 127.0.0.1 -U postgres crowdtap
rabbitmqctl -q delete_queue mailer >/dev/null 2>&1 || true
rm -f mailer.db mailer.db-shm mailer.db-wal

cargo build -q -p subscriber-app -p publisher-app

# examples/publisher-app/README.md, first command.
createdb -h 127.0.0.1 -U postgres crowdtap

# examples/subscriber-app/README.md: the worker, in the background.
cargo run -p subscriber-app -- subscribe >"$out" 2>&1 &
mailer=$!
for _ in $(seq 60); do
  grep -q "mailer is subscribed" "$out" && break
  kill -0 "$mailer" 2>/dev/null || fail "the mailer exited before running"
  sleep 1
done
grep -q "mailer is subscribed" "$out" || fail "the mailer did not start within 60 s"
log "mailer is subscribed"

# examples/publisher-app/README.md, second and third commands.
cargo run -p publisher-app -- register Ada ada@example.com
cargo run -p publisher-app -- ban 1
cargo run -p publisher-app -- --help >/dev/null
cargo run -p subscriber-app -- --help >/dev/null

wait_for_line() { # pattern
  for _ in $(seq 60); do
    grep -q "$1" "$out" && return 0
    sleep 1
  done
  fail "the mailer did not print '$1' within 60 s"
}
wait_for_line "mail Welcome about user 1"
wait_for_line "mail Banned about user 1 to ada@example.com"
log "the mailer sent both mails"

# The replica holds what crowdtap published, and not the password.
replica=$(python3 -c 'import sqlite3; print(sqlite3.connect("mailer.db").execute("select id, name, email, state, level from users").fetchall())')
[ "$replica" = "[(1, 'Ada', 'ada@example.com', 'banned', 'basic')]" ] || fail "mailer.db holds $replica"
log "mailer.db holds $replica"

# The operator's commands of the main README ("Running in production"):
# the mailer's status, its dead letters, and a sync of crowdtap's users.
status=$(cargo run -p subscriber-app -- status 2>/dev/null)
echo "$status" | grep -q "queue mailer: 0 ready, 1 consumers" || fail "status says: $status"
echo "$status" | grep -q "subscribed to crowdtap/user: .* applied, 0 behind" \
  || fail "status says: $status"
log "mailer status: $(echo "$status" | grep 'subscribed to crowdtap/user')"
cargo run -p subscriber-app -- dead-letters list | grep -q "0 dead letters in mailer.error" \
  || fail "the mailer has dead letters"
cargo run -p publisher-app -- publish User
for _ in $(seq 60); do
  grep -q "mailer stopped" "$out" && fail "the mailer stopped"
  cargo run -q -p subscriber-app -- status 2>/dev/null | grep -q "crowdtap/user: .* 0 behind" && break
  sleep 1
done
cargo run -q -p subscriber-app -- status 2>/dev/null | grep -q "crowdtap/user: .* 0 behind" \
  || fail "the sync was not applied"
log "the sync of crowdtap's users was applied"

# Ctrl-C: the worker finishes and exits 0. It received the register (the user
# and its event), the ban, and the sync (its baseline and the state).
kill -INT "$mailer"
status=0
wait "$mailer" || status=$?
mailer=""
[ "$status" = 0 ] || fail "the mailer exited with status $status after Ctrl-C"
grep -q "mailer stopped: 5 messages received, 4 operations applied" "$out" || fail "the mailer's last line is not its report"
log "the mailer stopped on Ctrl-C: $(grep 'mailer stopped' "$out")"
