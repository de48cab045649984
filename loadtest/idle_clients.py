#!/usr/bin/env python3
"""Opens N keep-alive connections to ADDR, sends one request on each, reads
the response, and keeps them all idle; reports limpet's memory per idle
connection from /proc/PID/status before and after.

usage: idle_clients.py PID HOST:PORT [N] [--tls SERVER_NAME] [--h2]

With --tls, each connection makes a full TLS handshake (certificate not
verified: limpet's test certificate) before its request. With --h2, each
connection speaks HTTP/2 (h2c with prior knowledge, or ALPN h2 over TLS)
and sends no request: the preface and SETTINGS are exchanged (the server's
SETTINGS read and acknowledged), then nothing, which is what an idle
HTTP/2 connection is; at the end a PING checks that it is still alive.
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


PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
SETTINGS, PING, ACK = 0x4, 0x6, 0x1


def h2_frame(kind, flags, payload=b""):
    return len(payload).to_bytes(3, "big") + bytes([kind, flags]) + (0).to_bytes(4, "big") + payload


def h2_read_until(sock, pending, wanted):
    """Reads frames until one with (type, flags) == wanted; returns the
    bytes left over."""
    while True:
        while len(pending) >= 9:
            length = int.from_bytes(pending[:3], "big")
            if len(pending) < 9 + length:
                break
            kind, flags = pending[3], pending[4]
            pending = pending[9 + length:]
            if (kind, flags & ACK) == wanted:
                return pending
        chunk = sock.recv(4096)
        if not chunk:
            raise RuntimeError("closed before the expected HTTP/2 frame")
        pending += chunk


def h2_open(sock):
    """Preface and empty SETTINGS out, the server's SETTINGS in and
    acknowledged; frames after those stay unread in the kernel."""
    sock.sendall(PREFACE + h2_frame(SETTINGS, 0))
    h2_read_until(sock, b"", (SETTINGS, 0))
    sock.sendall(h2_frame(SETTINGS, ACK))


def h2_ping(sock):
    sock.sendall(h2_frame(PING, 0, b"idle-chk"))
    h2_read_until(sock, b"", (PING, ACK))


def main():
    args = sys.argv[1:]
    server_name = None
    if "--tls" in args:
        i = args.index("--tls")
        server_name = args[i + 1]
        del args[i : i + 2]
    h2 = "--h2" in args
    if h2:
        args.remove("--h2")
    pid, addr = int(args[0]), args[1]
    count = int(args[2]) if len(args) > 2 else 5000
    host, port = addr.rsplit(":", 1)
    context = None
    if server_name:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        context.set_alpn_protocols(["h2"] if h2 else ["http/1.1"])

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
            if h2 and s.selected_alpn_protocol() != "h2":
                raise RuntimeError(f"ALPN gave {s.selected_alpn_protocol()!r}, not h2")
        return s

    opening, check = (h2_open, h2_ping) if h2 else (one_request, one_request)

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, count + 100), hard))

    # Warm up: buffers in the pool, backend connections pooled.
    for _ in range(50):
        with connect() as s:
            opening(s)
    time.sleep(0.5)
    rss0, anon0 = status_kib(pid, "VmRSS:"), status_kib(pid, "RssAnon:")

    socks = []
    for _ in range(count):
        s = connect()
        opening(s)
        socks.append(s)
    time.sleep(1.0)
    rss1, anon1 = status_kib(pid, "VmRSS:"), status_kib(pid, "RssAnon:")

    # Every connection is still alive and answers.
    for s in socks[:: max(1, count // 50)]:
        check(s)
    for s in socks:
        s.close()

    per_rss = (rss1 - rss0) * 1024 / count
    per_anon = (anon1 - anon0) * 1024 / count
    kind = f"HTTPS (TLS, SNI {server_name})" if server_name else "plain HTTP"
    kind += ", HTTP/2 (preface and SETTINGS only)" if h2 else ""
    print(f"idle keep-alive connections: {count}, {kind}")
    print(f"limpet VmRSS:   {rss0} KiB -> {rss1} KiB ({per_rss:.0f} bytes per connection)")
    print(f"limpet RssAnon: {anon0} KiB -> {anon1} KiB ({per_anon:.0f} bytes per connection)")


if __name__ == "__main__":
    main()
