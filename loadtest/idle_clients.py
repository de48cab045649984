#!/usr/bin/env python3
"""Opens N keep-alive connections to ADDR, sends one request on each, reads
the response, and keeps them all idle; reports limpet's memory per idle
connection from /proc/PID/status before and after.

usage: idle_clients.py PID HOST:PORT [N] [--tls SERVER_NAME]

With --tls, each connection makes a full TLS handshake (certificate not
verified: limpet's test certificate) before its request.
"""
import resource
import socket
import ssl
import sys
import time


def status_kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1])
    raise KeyError(field)


def one_request(sock):
    sock.sendall(b"GET / HTTP/1.1\r\nHost: idle\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            raise RuntimeError("closed before a response")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(rest) < length:
        rest += sock.recv(4096)


def main():
    args = sys.argv[1:]
    server_name = None
    if "--tls" in args:
        i = args.index("--tls")
        server_name = args[i + 1]
        del args[i : i + 2]
    pid, addr = int(args[0]), args[1]
    count = int(args[2]) if len(args) > 2 else 5000
    host, port = addr.rsplit(":", 1)
    context = None
    if server_name:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        context.set_alpn_protocols(["http/1.1"])

    opened = [0]

    def connect():
        # From 127.0.0.2 to 127.0.0.254 in turn (Linux routes 127/8 to lo):
        # thousands of connections are many clients, not one, to limpet's
        # limits.max_connections_per_client (256 per address by default).
        source = f"127.0.0.{2 + opened[0] % 253}" if host.startswith("127.") else ""
        opened[0] += 1
        s = socket.create_connection((host, int(port)), source_address=(source, 0))
        if context:
            s = context.wrap_socket(s, server_hostname=server_name)
        return s

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, count + 100), hard))

    # Warm up: buffers in the pool, backend connections pooled.
    for _ in range(50):
        with connect() as s:
            one_request(s)
    time.sleep(0.5)
    rss0, anon0 = status_kib(pid, "VmRSS:"), status_kib(pid, "RssAnon:")

    socks = []
    for _ in range(count):
        s = connect()
        one_request(s)
        socks.append(s)
    time.sleep(1.0)
    rss1, anon1 = status_kib(pid, "VmRSS:"), status_kib(pid, "RssAnon:")

    # Every connection is still alive and answers.
    for s in socks[:: max(1, count // 50)]:
        one_request(s)
    for s in socks:
        s.close()

    per_rss = (rss1 - rss0) * 1024 / count
    per_anon = (anon1 - anon0) * 1024 / count
    kind = f"HTTPS (TLS, SNI {server_name})" if server_name else "plain HTTP"
    print(f"idle keep-alive connections: {count}, {kind}")
    print(f"limpet VmRSS:   {rss0} KiB -> {rss1} KiB ({per_rss:.0f} bytes per connection)")
    print(f"limpet RssAnon: {anon0} KiB -> {anon1} KiB ({per_anon:.0f} bytes per connection)")


if __name__ == "__main__":
    main()
