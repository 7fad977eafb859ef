#!/usr/bin/env bash
# CPU instructions per replicated operation, in process (in-process broker,
# memory clock and storage), counted by valgrind's callgrind: unlike time,
# the same from run to run. Two runs that differ only in their number of
# operations are counted; their difference cancels the setup.
# Run from the repository's root.
set -euo pipefail

command -v valgrind >/dev/null || { echo "valgrind is needed (apt-get install valgrind)" >&2; exit 1; }
cargo bench -q -p promiscuous-benches --bench throughput --no-run
bin=$(ls -t target/release/deps/throughput-* | grep -v '\.d$' | head -n1)

count() { # operations
  valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" \
    --end-to-end-only --messages "$1" --records 100 --publishers 4 --runners 4 2>&1 \
    | sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}

small=$(count 2000)
large=$(count 4000)
per_op=$(( (large - small) / 2000 ))
echo "instructions: ${small} for 2,000 operations, ${large} for 4,000"
echo "instructions per replicated operation: ${per_op}"
printf '{"bench":"callgrind","operations":[2000,4000],"instructions":[%s,%s],"instructions_per_op":%s}\n' \
  "$small" "$large" "$per_op"
