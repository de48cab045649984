#!/usr/bin/env bash
# User-space memory per idle keep-alive connection, plain HTTP and HTTPS
# side by side on one limpet process (two workers, THP off): a plain and an
# HTTPS listener in front of the two backends of a `limpet demo` running in
# another process. N idle connections are opened on each listener in turn
# (HTTPS: full TLS 1.3 handshake, one request each) from a client process.
# usage: loadtest/idle_tls.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
count=${1:-5000}
cargo build --release --quiet
dir=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done; rm -rf "$dir"' EXIT

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
  -subj /CN=idle.test -addext subjectAltName=DNS:idle.test \
  -keyout "$dir/idle.key" -out "$dir/idle.pem" 2>/dev/null

./target/release/limpet demo --listen 127.0.0.1:0 --admin 127.0.0.1:0 >"$dir/demo.out" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
  backends=$(sed -n 's/.*backend \([A-Za-z0-9]*\) on \([0-9.:]*\).*/\2/p' "$dir/demo.out")
  [ "$(echo "$backends" | grep -c .)" = 2 ] && break
  sleep 0.1
done
read -r a b <<<"$(echo $backends)"
[ -n "${b:-}" ] || { cat "$dir/demo.out"; echo "demo backends did not start" >&2; exit 1; }

plain=127.0.0.1:$((20000 + RANDOM % 20000))
https=127.0.0.1:$((40000 + RANDOM % 20000))
cat >"$dir/limpet.toml" <<TOML
[workers]
count = 2

[[listeners]]
name = "plain"
listen = "$plain"
default_group = "web"

[[listeners]]
name = "https"
listen = "$https"
default_group = "web"
tls = { certs = [{ cert = "idle.pem", key = "idle.key" }] }

[groups.web]
[groups.web.persistence]
mode = "insert"

[[groups.web.servers]]
name = "ECS01"
address = "$a"

[[groups.web.servers]]
name = "ECS02"
address = "$b"
TOML
python3 loadtest/no_thp.py ./target/release/limpet run --config "$dir/limpet.toml" >"$dir/limpet.out" 2>&1 &
pid=$!
pids+=($pid)
sleep 1
python3 loadtest/idle_clients.py "$pid" "$plain" "$count"
python3 loadtest/idle_clients.py "$pid" "$https" "$count" --tls idle.test
