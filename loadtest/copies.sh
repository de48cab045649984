#!/usr/bin/env bash
# Bytes limpet copies in user space (memcpy, memmove and the like, counted
# by `valgrind --tool=dhat --mode=copy`) per relayed body byte, for a 1 MiB
# body sent up (POST) and down (GET response), each way on its own run so
# the two can be told apart. limpet (release build, one worker) runs in
# front of a one-process nginx origin on 127.0.0.1; one keep-alive client
# connection sends M requests. Each direction is run twice, with 1 MiB
# bodies and with 1-byte bodies (same M, same heads): the difference is
# what the body costs, divided by the body bytes relayed. The target
# (issue 21, item 4) is at most 1 byte copied per body byte each way.
# usage: loadtest/copies.sh [M]      (M = 20; needs nginx, valgrind, python3)
# limpet runs its epoll driver (`driver = "epoll"`): under valgrind 3.19 a
# worker blocked in io_uring_enter keeps valgrind's lock, so the main
# thread never starts the signal and control threads and SIGTERM never
# stops limpet (no dhat output). The relay code is the same for both (only
# the runtime differs, and monoio's epoll driver reads into and writes from
# the same owned buffers); COPIES_DRIVER=auto tries the io_uring driver.
# COPIES_KEEP=DIR keeps the dhat-out JSON files there (dh_view.html reads them).
set -euo pipefail
cd "$(dirname "$0")/.."
count=${1:-20}
driver=${COPIES_DRIVER:-epoll}
CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-2} cargo build --release --quiet
binary=target/release/limpet
tmp=$(mktemp -d /tmp/limpet-copies-XXXXXX)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
origin_port=$(free_port)
mkdir -p "$tmp/www/down"
head -c 1048576 /dev/zero | tr '\0' x >"$tmp/www/down/big"
printf x >"$tmp/www/down/tiny"
cat >"$tmp/origin.conf" <<CONF
daemon off; master_process off; worker_processes 1;
error_log $tmp/origin.error.log; pid $tmp/origin.pid;
events { worker_connections 1024; }
http {
  access_log off; keepalive_requests 1000000; keepalive_timeout 300s;
  client_body_temp_path $tmp/body; proxy_temp_path $tmp/proxy; fastcgi_temp_path $tmp/fcgi;
  uwsgi_temp_path $tmp/uwsgi; scgi_temp_path $tmp/scgi;
  server {
    listen 127.0.0.1:$origin_port;
    root $tmp/www;
    location = /up { client_max_body_size 2m; return 200 "ok\n"; }
  }
}
CONF
cat >"$tmp/client.py" <<'PY'
"""M requests on one keep-alive connection: POST SIZE bytes to /up (up),
or GET /down/big or /down/tiny (down); fails unless each is answered 200
with the body expected."""
import http.client
import sys

port, direction, size, count = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
body = b"x" * size
for _ in range(count):
    if direction == "up":
        connection.request("POST", "/up", body=body, headers={"Content-Type": "application/octet-stream"})
        expected = 3
    else:
        connection.request("GET", "/down/big" if size > 1 else "/down/tiny")
        expected = size
    response = connection.getresponse()
    got = len(response.read())
    if response.status != 200 or got != expected:
        sys.exit(f"{direction}: status {response.status}, {got} body bytes, expected {expected}")
PY
cat >"$tmp/total.py" <<'PY'
"""Total bytes and copy calls in a dhat --mode=copy JSON file; with
`top`, the three call sites that copied the most (first frames)."""
import json
import sys

data = json.load(open(sys.argv[1]))
points = data["pps"]
print(sum(p["tb"] for p in points), sum(p["tbk"] for p in points))
if len(sys.argv) > 2:
    for point in sorted(points, key=lambda p: -p["tb"])[:3]:
        frames = [data["ftbl"][i] for i in point["fs"][:5]]
        print(f"    {point['tb']:>12,} bytes in {point['tbk']:,} calls:", file=sys.stderr)
        for frame in frames:
            print(f"        {frame[:160]}", file=sys.stderr)
PY
nginx -p "$tmp/" -c "$tmp/origin.conf" & origin=$!
proxy=""
stop_proxy() {
  # dhat writes its file when limpet exits (SIGTERM: a graceful stop).
  [ -n "$proxy" ] || return 0
  kill "$proxy" 2>/dev/null || true
  for _ in $(seq 150); do
    kill -0 "$proxy" 2>/dev/null || break
    sleep 0.2
  done
  if kill -0 "$proxy" 2>/dev/null; then
    kill -9 "$proxy"; wait "$proxy" 2>/dev/null || true; proxy=""
    echo "limpet did not exit on SIGTERM under valgrind within 30 s: no dhat output" >&2; return 1
  fi
  wait "$proxy" 2>/dev/null || true
  proxy=""
}
cleanup() {
  stop_proxy || true
  kill "$origin" 2>/dev/null || true
  wait "$origin" 2>/dev/null || true
  if [ -n "${COPIES_KEEP:-}" ]; then mkdir -p "$COPIES_KEEP" && cp "$tmp"/dhat.*.json "$COPIES_KEEP"/ 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

# One limpet under dhat: M requests of `size` body bytes in `direction`;
# writes "bytes calls" copied over the whole life of the process to
# $tmp/total.DIRECTION.SIZE (and with `top`, the largest sites to
# $tmp/top.DIRECTION).
measure() {
  local direction=$1 size=$2 out="$tmp/dhat.$1.$2.json"
  front=$(free_port)
  cat >"$tmp/limpet.toml" <<CONF
[workers]
count = 1
driver = "$driver"

[[listeners]]
name = "copies"
listen = "127.0.0.1:$front"
default_group = "web"

[groups.web]
balance = "round_robin"

[[groups.web.servers]]
name = "origin"
address = "127.0.0.1:$origin_port"
CONF
  LIMPET_LOG=warn valgrind --tool=dhat --mode=copy --dhat-out-file="$out" \
    "$binary" run --config "$tmp/limpet.toml" >"$tmp/limpet.$direction.$size.log" 2>&1 &
  proxy=$!
  for _ in $(seq 240); do
    python3 -c "import socket; socket.create_connection(('127.0.0.1', $front), 1).close()" 2>/dev/null && break
    kill -0 "$proxy" 2>/dev/null || { cat "$tmp/limpet.$direction.$size.log" >&2; exit 1; }
    sleep 0.5
  done
  python3 "$tmp/client.py" "$front" "$direction" "$size" "$count"
  stop_proxy
  if [ -n "${3:-}" ]; then
    python3 "$tmp/total.py" "$out" top >"$tmp/total.$direction.$size" 2>"$tmp/top.$direction"
  else
    python3 "$tmp/total.py" "$out" >"$tmp/total.$direction.$size"
  fi
}

mib=1048576
echo "limpet ($driver driver) under valgrind --tool=dhat --mode=copy, $count requests per run, one keep-alive connection"
for direction in up down; do
  measure "$direction" "$mib" top
  measure "$direction" 1
  read -r big big_calls <"$tmp/total.$direction.$mib"
  read -r tiny tiny_calls <"$tmp/total.$direction.1"
  relayed=$((count * (mib - 1)))
  python3 - "$direction" "$big" "$big_calls" "$tiny" "$tiny_calls" "$relayed" "$count" <<'PY'
import sys
direction, big, big_calls, tiny, tiny_calls, relayed, count = sys.argv[1], *map(int, sys.argv[2:])
label = "up (POST 1 MiB request body)" if direction == "up" else "down (1 MiB response body)"
print(f"{label}:")
print(f"  copied with 1 MiB bodies: {big:,} bytes in {big_calls:,} calls; with 1-byte bodies: {tiny:,} bytes in {tiny_calls:,} calls")
print(f"  body bytes relayed: {relayed:,}; copied per body byte: {(big - tiny) / relayed:.3f}; "
      f"copy calls per request for the body: {(big_calls - tiny_calls) / count:.1f}")
PY
  echo "  largest copy sites with 1 MiB bodies:"
  cat "$tmp/top.$direction"
done
