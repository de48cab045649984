#!/usr/bin/env bash
# Where limpet's user-space instructions go, by function: limpet (one
# worker, insert mode) under callgrind in front of a one-process nginx
# origin, N sticky-hit requests after a warm-up, then the self cost per
# function per request. Built without LTO into target/profile (fat LTO
# inlines nearly everything into one function), so the total is a few
# percent above loadtest/run's instructions figure.
# usage: loadtest/profile.sh [N] [ROWS]      needs nginx, valgrind, h2load, curl
# PROFILE_MODE picks the requests: sticky (default: every request carries
# the cookie of a session, a sticky hit), nocookie (no cookie: each request
# starts a session and gets Set-Cookie), log (sticky, with the listener's
# access log on, written to a file), body16k (sticky, a 16 KiB response
# body instead of 28 B), https (sticky, over HTTPS: TLS 1.3 keep-alive, a
# self-signed ECDSA P-256 certificate made with openssl), h2c (HTTP/2 with
# prior knowledge, h2load -m 10: 10 connections of 10 streams each, no
# cookie), h2tls (the same over TLS, h2 by ALPN).
# PROFILE_LTO=fat builds as the release profile does (the total matches
# loadtest/run; functions are then mostly inlined into one).
# PROFILE_KEEP=FILE keeps the callgrind dump (for callgrind_annotate or
# loadtest/lib/callgrind_self.py DUMP N ROWS callers-of FUNCTION).
set -euo pipefail
cd "$(dirname "$0")/.."
count=${1:-20000}
rows=${2:-40}
mode=${PROFILE_MODE:-sticky}
case "$mode" in sticky|nocookie|log|body16k|https|h2c|h2tls) ;; *) echo "PROFILE_MODE: sticky, nocookie, log, body16k, https, h2c or h2tls, not $mode" >&2; exit 2;; esac
CARGO_TARGET_DIR=target/profile CARGO_PROFILE_RELEASE_LTO=${PROFILE_LTO:-false} \
  CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 CARGO_PROFILE_RELEASE_DEBUG=2 \
  cargo build --release --quiet
binary=target/profile/release/limpet
tmp=$(mktemp -d /tmp/limpet-profile-XXXXXX)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
o1=$(free_port); o2=$(free_port); front=$(free_port)
scheme=http
if [ "$mode" = https ] || [ "$mode" = h2tls ]; then
  scheme=https
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
    -subj /CN=profile.test -keyout "$tmp/key.pem" -out "$tmp/cert.pem" 2>/dev/null
fi
cat >"$tmp/origin.conf" <<CONF
daemon off; master_process off; worker_processes 1;
error_log $tmp/origin.error.log; pid $tmp/origin.pid;
events { worker_connections 1024; }
http {
  access_log off; keepalive_requests 1000000; keepalive_timeout 300s;
  client_body_temp_path $tmp/body; proxy_temp_path $tmp/proxy; fastcgi_temp_path $tmp/fcgi;
  uwsgi_temp_path $tmp/uwsgi; scgi_temp_path $tmp/scgi;
$(if [ "$mode" = body16k ]; then
  # nginx refuses config strings over 4 KiB: 8 pieces of 2 KiB.
  piece=$(printf 'x%.0s' $(seq 2048)); body=$(printf '$piece%.0s' $(seq 8))
  for o in $o1 $o2; do
    printf '  server { listen 127.0.0.1:%s; location / { set $piece "%s"; return 200 "%s"; } }\n' "$o" "$piece" "$body"
  done
else
  printf '  server { listen 127.0.0.1:%s; location / { return 200 "Hello World ! This is ECS01\\n"; } }\n' "$o1"
  printf '  server { listen 127.0.0.1:%s; location / { return 200 "Hello World ! This is ECS02\\n"; } }\n' "$o2"
fi)
}
CONF
cat >"$tmp/limpet.toml" <<CONF
[workers]
count = 1

[[listeners]]
name = "web"
listen = "127.0.0.1:$front"
default_group = "web"
$( [ "$mode" = log ] && printf 'access_log = "%s"\n' "$tmp/access.log" )
$( [ "$scheme" = https ] && printf 'tls = { certs = [{ cert = "%s", key = "%s" }] }\n' "$tmp/cert.pem" "$tmp/key.pem" )

[groups.web]
balance = "round_robin"

[groups.web.persistence]
mode = "insert"
cors = false

[[groups.web.servers]]
name = "ECS01"
address = "127.0.0.1:$o1"

[[groups.web.servers]]
name = "ECS02"
address = "127.0.0.1:$o2"
CONF
nginx -p "$tmp/" -c "$tmp/origin.conf" & origin=$!
valgrind --tool=callgrind --callgrind-out-file="$tmp/cg.out" "$binary" run --config "$tmp/limpet.toml" >"$tmp/limpet.log" 2>&1 & proxy=$!
# Under valgrind a SIGTERM can stay pending while the worker sleeps in
# io_uring_enter: give it 10 s, then SIGKILL (the dump is written by then).
stop() {
  kill "$proxy" "$origin" 2>/dev/null
  for _ in $(seq 50); do kill -0 "$proxy" 2>/dev/null || break; sleep 0.2; done
  kill -9 "$proxy" 2>/dev/null
  wait "$proxy" "$origin" 2>/dev/null
  rm -rf "$tmp"
}
trap stop EXIT
url="$scheme://127.0.0.1:$front/"
for _ in $(seq 120); do curl -sk -o /dev/null "$url" && break; sleep 0.5; done
h2load --h1 -n 2000 -c 10 -t 1 "$url" >/dev/null
cookie=$(curl -sk -i "$url" | sed -n 's/^[Ss]et-[Cc]ookie: \(SERVERID=[^;]*\).*/\1/p' | head -1)
callgrind_control -z "$proxy" >/dev/null
if [ "$mode" = h2c ] || [ "$mode" = h2tls ]; then
  h2load -n 2000 -c 10 -m 10 -t 1 "$url" >/dev/null && callgrind_control -z "$proxy" >/dev/null
  h2load -n "$count" -c 10 -m 10 -t 1 "$url" | grep -E "status codes|Application protocol"
elif [ "$mode" = nocookie ]; then
  h2load --h1 -n "$count" -c 10 -t 1 "$url" | grep "status codes"
else
  h2load --h1 -n "$count" -c 10 -t 1 -H "Cookie: $cookie" "$url" | grep "status codes"
fi
callgrind_control -d "$proxy" >/dev/null
sleep 2
dump=$(ls "$tmp"/cg.out.* | head -1)
[ -n "${PROFILE_KEEP:-}" ] && cp "$dump" "$PROFILE_KEEP"
echo "mode: $mode"
python3 loadtest/lib/callgrind_self.py "$dump" "$count" "$rows"
