#!/usr/bin/env bash
# demo.sh: build the ckpt tools into ./bin, then checkpoint a live python3
# counter with --kill and restore it; the counter goes on from where it was.
# Run as root.
set -euo pipefail
cd "$(dirname "$0")"
go build -o bin/ ./cmd/...
export PATH="$PWD/bin:$PATH"

log=$(mktemp /tmp/ckpt-demo-XXXXXX.log)
img=$(mktemp /tmp/ckpt-demo-XXXXXX.img)
python3 -c 'import time,itertools
for i in itertools.count(): print(i, flush=True); time.sleep(0.05)' >> "$log" 2>&1 </dev/null &
P=$!
sleep 1
echo "counter pid $P has written $(wc -l < "$log") lines; checkpointing it"
ckpt-scan -v --kill $P | ckpt-files | ckpt-mem -v | ckpt-pack -v > "$img"
wait $P 2>/dev/null || true
echo "archive: $(du -h "$img" | cut -f1); log stopped at line $(tail -n1 "$log")"
ckpt-restore -v "$img"
sleep 1
echo "restored pid $P; the log goes on: $(tail -n3 "$log" | tr '\n' ' ')"
kill "$P"
rm -f "$img"
echo "log kept in $log"
