"""The HTTP/2 phase (issue 16, item 9): limpet, HAProxy and nginx serving
HTTP/2 to h2load (`-m 10` streams per connection, 50 connections) in front
of the same origin over HTTP/1.1, cleartext (h2c with prior knowledge) and
TLS (ALPN h2, the run's ECDSA P-256 certificate). Per variant:

- requests/s and proxy CPU per request, unconstrained, and requests/s with
  the proxy held to the CPU quota, contenders alternating (A B C A B C);
- p50/p99 at a fixed rate, half of HAProxy's median HTTP/2 requests/s;
- user-space instructions per request under callgrind;
- user memory per idle HTTP/2 connection (preface and SETTINGS exchanged,
  then nothing), THP off.

A contender that does not speak HTTP/2 (limpet before its front end) is
left out of the phase, and the report says why."""
import os
import re

import bench
import client
import machine
import probes
import processes
import servers

H2C, H2_TLS = "h2c (prior knowledge)", "h2 over TLS (ALPN)"
VARIANTS = (H2C, H2_TLS)
CONTENDERS = (bench.LIMPET, bench.HAPROXY, bench.NGINX)
NOTE = "HTTP/2"


def run(context):
    """Every HTTP/2 measurement, each contender restarted per probe as the
    HTTP/1.1 phases do."""
    context.h2_certificate = servers.tls_certificate(context.tmp)
    speaking = {}
    for variant in VARIANTS:
        speaking[variant] = _timed(context, variant)
    for variant in VARIANTS:
        _instructions(context, variant, speaking[variant])
    for variant in VARIANTS:
        _idle_memory(context, variant, speaking[variant])


def _server(context, name, variant, label, driver="auto"):
    """A contender serving HTTP/2 on `variant`, not started."""
    cert, key, combined = context.h2_certificate
    backends, tls = context.origin.ports, variant == H2_TLS
    label = f"{label}-{'h2-tls' if tls else 'h2c'}"
    if name == bench.LIMPET:
        # http2 = true is the listener's default: h2c on the plain port,
        # ALPN h2 on TLS.
        return servers.limpet(context.tmp, context.limpet_binary, backends, 1, driver, label,
                              tls=(cert, key) if tls else None)
    if name == bench.HAPROXY:
        return servers.haproxy(context.tmp, backends, label, tls=combined if tls else None, http2=True)
    return servers.nginx_proxy(context.tmp, backends, label, http2=True, tls=(cert, key) if tls else None)


def _scheme(variant):
    return "https" if variant == H2_TLS else "http"


def _path(context):
    return servers.body_path(context.profile.bodies[0])


def _speaks_http2(context, server, variant):
    """None if 100 requests over HTTP/2 all succeed, else why not."""
    try:
        client.fixed_count(server.port, _path(context), 100, connections=1,
                           scheme=_scheme(variant), h2=True)
        return None
    except RuntimeError as error:
        return str(error).splitlines()[0]


def _timed(context, variant):
    """Throughput, CPU per request, quota and latency runs; returns the
    contenders that speak HTTP/2 on this variant."""
    profile, results = context.profile, context.results
    body, path, scheme = profile.bodies[0], _path(context), _scheme(variant)
    quota_label = f"{int(profile.quota_share * 100)} % CPU"
    running = {}
    try:
        for name in CONTENDERS:
            server = _server(context, name, variant, name.replace(" ", "-")).start()
            why = _speaks_http2(context, server, variant)
            if why:
                server.stop()
                results.note(f"{NOTE}: {name} does not serve {variant} here ({why}); no {name} rows for it.")
                continue
            running[name] = server
        for round_number in range(1, profile.alternations + 1):
            print(f"  http2 {variant}: round {round_number}/{profile.alternations}", flush=True)
            for name, server in running.items():
                figures = _fixed_count(context, server, name, variant, profile.h2_requests, None)
                if figures:
                    results.add("rps", name, body, variant, figures[0])
                    results.add("proxy_us", name, body, variant, figures[1])
                if context.quota.unavailable:
                    continue
                with context.quota.holding(server.pid):
                    figures = _fixed_count(context, server, name, variant, profile.h2_quota_requests, quota_label)
                if figures:
                    results.add("rps@quota", name, body, variant, figures[0])
        top = results.median("rps", bench.HAPROXY, body, variant)
        if not top:
            results.note(f"{NOTE}: {variant} latency skipped: no HAProxy throughput measured.")
            return list(running)
        rate = int(top / 2)
        results.latency_rate[(body, variant)] = rate
        for round_number in range(1, profile.alternations + 1):
            print(f"  http2 {variant}: latency at {rate} req/s, round {round_number}/{profile.alternations}", flush=True)
            for name, server in running.items():
                load, run_it = bench._wait_for_quiet(context)
                if not run_it:
                    results.log_run(name, body, f"{variant}, latency at {rate} req/s", None, load, skipped=True)
                    continue
                latencies = sorted(client.fixed_rate(
                    server.port, path, rate, profile.latency_seconds,
                    os.path.join(context.tmp, "latency-h2.log"), scheme=scheme, h2=True,
                ))
                results.add("p50_us", name, body, variant, bench._percentile(latencies, 50))
                results.add("p99_us", name, body, variant, bench._percentile(latencies, 99))
        return list(running)
    finally:
        for server in running.values():
            server.stop()


def _fixed_count(context, server, name, variant, requests, quota_label):
    """One fixed-count HTTP/2 run: (requests/s, proxy CPU µs / request), or
    None when skipped for the load average."""
    body = context.profile.bodies[0]
    load, run_it = bench._wait_for_quiet(context)
    if not run_it:
        context.results.log_run(name, body, variant, quota_label, load, skipped=True)
        return None
    proxy0, machine0 = machine.process_cpu_ns(server.pid), machine.machine_busy_ns()
    rps = client.fixed_count(server.port, _path(context), requests, scheme=_scheme(variant), h2=True)
    proxy_us = (machine.process_cpu_ns(server.pid) - proxy0) / requests / 1000
    machine_us = (machine.machine_busy_ns() - machine0) / requests / 1000
    context.results.log_run(name, body, variant, quota_label, load, rps=rps, proxy_us=proxy_us, machine_us=machine_us)
    return rps, proxy_us


def _instructions(context, variant, names):
    """Instructions per request under callgrind, 10 connections × 10
    streams, after a warm-up; limpet falls back to its epoll driver if its
    io_uring driver fails under valgrind (and the report says so)."""
    profile, body = context.profile, context.profile.bodies[0]
    n, scheme = profile.probe_requests, _scheme(variant)
    for name in names:
        print(f"  http2 {variant}: instructions, {name}", flush=True)
        label = f"{name.replace(' ', '-')}-probed"
        out_file = os.path.join(context.tmp, f"callgrind.{label}-{scheme}")
        prefix = probes.callgrind_prefix(out_file)
        server = _server(context, name, variant, label).start(prefix, timeout=120)
        try:
            warm = lambda: client.fixed_count(server.port, _path(context), 2000, connections=10, scheme=scheme, h2=True)
            try:
                warm()
            except RuntimeError:
                if name != bench.LIMPET:
                    raise
                server.stop()
                context.results.note(f"{NOTE}: limpet's io_uring driver failed under valgrind: its {variant} instructions were counted with `driver = \"epoll\"`.")
                server = _server(context, name, variant, label, driver="epoll").start(prefix, timeout=120)
                warm()
            total = probes.instructions(server.pid, out_file, lambda: client.fixed_count(
                server.port, _path(context), n, connections=10, scheme=scheme, h2=True))
            context.results.add("instructions", name, body, variant, total / n)
        finally:
            server.stop()


def _idle_memory(context, variant, names):
    """User memory per idle HTTP/2 connection: each contender restarted
    with THP off (no_thp.py), idle_clients.py --h2 opening the connections
    from another process."""
    no_thp = ["python3", os.path.join(bench.LOADTEST, "no_thp.py")]
    idle_clients = os.path.join(bench.LOADTEST, "idle_clients.py")
    count = context.profile.idle_connections
    for name in names:
        print(f"  http2 {variant}: idle memory, {name}, {count} connections", flush=True)
        server = _server(context, name, variant, f"{name.replace(' ', '-')}-idle").start(no_thp)
        argv = ["python3", idle_clients, str(server.pid), f"127.0.0.1:{server.port}", str(count), "--h2"]
        if variant == H2_TLS:
            argv += ["--tls", "bench.test"]
        try:
            output = processes.run(argv, client.CLIENT_CPU)
        finally:
            server.stop()
        for metric, field in (("idle_anon_bytes", "RssAnon"), ("idle_rss_bytes", "VmRSS")):
            match = re.search(rf"{field}:.*\((-?\d+) bytes per connection\)", output)
            context.results.add(metric, name, None, variant, int(match.group(1)))
