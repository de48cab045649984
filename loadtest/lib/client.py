"""The load generator side: h2load (HTTP/1.1 mode, or HTTP/2 with
`STREAMS` streams per connection; one thread, pinned to CPU 1) for
fixed-count (optionally paced), fixed-rate and one-request-per-connection
runs, a TLS resumption check, and a single request to learn the sticky
cookie a proxy issues."""
import os
import re
import socket
import ssl

import processes

CLIENT_CPU = "1"
STREAMS = 10  # concurrent streams per connection in HTTP/2 runs (-m)


def url(port, path, scheme="http"):
    return f"{scheme}://127.0.0.1:{port}{path}"


def _protocol(h2):
    """h2load's protocol flags: HTTP/1.1, or HTTP/2 (h2c with prior
    knowledge on http://, ALPN h2 on https://) with STREAMS streams."""
    return ["-m", str(STREAMS)] if h2 else ["--h1"]


def fixed_count(port, path, requests, connections=50, cookie=None, scheme="http", h2=False, rate=None):
    """Sends exactly `requests` requests over `connections` keep-alive
    connections, at most `rate` requests/s in total if given (h2load
    --rps paces each connection); returns requests per second. Fails
    unless all succeed (and, with `h2`, unless HTTP/2 was what was spoken)."""
    argv = ["h2load", *_protocol(h2), "-n", str(requests), "-c", str(connections), "-t", "1"]
    if rate:
        argv.append(f"--rps={rate / connections:.3f}")
    if cookie:
        argv += ["-H", f"Cookie: {cookie}"]
    output = processes.run(argv + [url(port, path, scheme)], CLIENT_CPU)
    _check_all_succeeded(output, requests)
    if h2:
        _check_http2(output)
    return float(re.search(r"finished in [\d.]+m?s, ([\d.]+) req/s", output).group(1))


def one_per_connection(port, path, seconds, connections=50, scheme="https"):
    """wrk for `seconds` with `Connection: close`: every request on a new
    connection (over TLS a full handshake: wrk keeps no sessions). Returns
    (requests/s, requests completed); fails on any error or non-2xx."""
    argv = [
        "wrk", "-t", "1", "-c", str(connections), "-d", f"{seconds}s",
        "-H", "Connection: close", url(port, path, scheme),
    ]
    output = processes.run(argv, CLIENT_CPU)
    done = re.search(r"(\d+) requests in", output)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if not done or not rate or "Non-2xx" in output:
        raise RuntimeError(f"wrk: failed or non-2xx answers:\n{output[-1500:]}")
    errors = re.search(r"Socket errors: (.*)", output)
    return float(rate.group(1)), int(done.group(1)), errors.group(1).strip() if errors else None


def new_connections(port, path, connections, concurrency=50, scheme="http"):
    """Exactly `connections` connections, one request each: h2load sends
    `Connection: close`, the proxy closes after the response and h2load
    opens the next connection (one accept per request: checked against
    the kernel's TCP counters when this was written). Over TLS each h2load
    client resumes the session of its previous connection (a TLS 1.3
    ticket), so all but `concurrency` handshakes are resumptions. Returns
    connections per second; fails unless every request succeeded."""
    argv = [
        "h2load", "--h1", "-n", str(connections), "-c", str(concurrency), "-t", "1",
        "-H", "Connection: close", url(port, path, scheme),
    ]
    output = processes.run(argv, CLIENT_CPU)
    _check_all_succeeded(output, connections)
    return float(re.search(r"finished in [\d.]+m?s, ([\d.]+) req/s", output).group(1))


def resumes_tls_session(port, path, server_name="bench.test"):
    """Whether a second TLS connection resumes the session the first was
    given (Python's ssl, certificate not checked): the check that the
    resumed-session runs measure resumptions."""
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    session = None
    for _ in range(2):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            with context.wrap_socket(raw, server_hostname=server_name, session=session) as tls:
                tls.sendall(f"GET {path} HTTP/1.1\r\nHost: {server_name}\r\nConnection: close\r\n\r\n".encode())
                while tls.recv(65536):
                    pass  # TLS 1.3 tickets arrive with the response
                reused, session = tls.session_reused, tls.session
    return reused


def fixed_rate(port, path, rate, seconds, log_path, connections=50, cookie=None, scheme="http", h2=False):
    """Sends `rate` requests per second in total (h2load --rps is per
    connection) for `seconds` after a 1 s warm-up; returns every request's
    latency in microseconds, from h2load's per-request log."""
    argv = [
        "h2load", *_protocol(h2), "-c", str(connections), "-t", "1",
        f"--rps={rate / connections:.3f}", "-D", str(seconds), "--warm-up-time=1",
        f"--log-file={log_path}",
    ]
    if cookie:
        argv += ["-H", f"Cookie: {cookie}"]
    output = processes.run(argv + [url(port, path, scheme)], CLIENT_CPU)
    if h2:
        _check_http2(output)
    with open(log_path) as f:
        latencies = [int(line.split("\t")[2]) for line in f if line.strip()]
    os.remove(log_path)
    return latencies


def issued_cookie(port, path, name="SERVERID"):
    """The `name=value` pair of the cookie the proxy sets on a first
    request (one curl), or None if it sets none."""
    head = processes.run(["curl", "-s", "-D", "-", "-o", "/dev/null", url(port, path)], CLIENT_CPU)
    for line in head.splitlines():
        header, _, value = line.partition(":")
        if header.lower() == "set-cookie" and value.strip().startswith(name + "="):
            return value.strip().split(";", 1)[0]
    return None


def _check_all_succeeded(output, requests):
    match = re.search(r"requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded", output)
    if not match or int(match.group(1)) != requests:
        raise RuntimeError(f"h2load: not every request succeeded:\n{output[-1500:]}")


def _check_http2(output):
    """h2load falls back to HTTP/1.1 when ALPN offers no h2: such a run is
    not an HTTP/2 row."""
    match = re.search(r"Application protocol: (\S+)", output)
    if not match or match.group(1) not in ("h2", "h2c"):
        raise RuntimeError(f"h2load: not HTTP/2 ({match.group(1) if match else 'no protocol'}):\n{output[-1500:]}")
