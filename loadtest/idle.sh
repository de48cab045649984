#!/usr/bin/env bash
# User-space memory per idle keep-alive client connection (plain HTTP):
# limpet in its own process (`limpet demo`, both workers), 5,000 idle
# connections from another process (the open-files limit is per process).
# usage: loadtest/idle.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
count=${1:-5000}
cargo build --release --quiet
out=$(mktemp)
python3 loadtest/no_thp.py ./target/release/limpet demo --listen 127.0.0.1:0 --admin 127.0.0.1:0 >"$out" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; rm -f "$out"' EXIT
for _ in $(seq 100); do
  addr=$(sed -n 's/.*listener on \([0-9.:]*\).*/\1/p' "$out")
  [ -n "$addr" ] && break
  sleep 0.1
done
[ -n "${addr:-}" ] || { cat "$out"; echo "limpet did not start" >&2; exit 1; }
python3 loadtest/idle_clients.py "$pid" "$addr" "$count"
