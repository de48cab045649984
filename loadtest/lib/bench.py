"""The measurement phases. Each takes the run's Context and records into
its Results:

- throughput: requests/s and CPU per request, plain and with the sticky
  cookie, unconstrained and under a CPU quota, contenders alternating;
- latency: p50/p99 at a fixed rate, half of HAProxy's maximum;
- syscalls: per request, under strace;
- instructions: user-space, per request, under callgrind;
- idle_memory: user memory per idle keep-alive connection;
- https: limpet and HAProxy terminating TLS on the same certificate,
  keep-alive and a new handshake per request;
- two_workers: limpet with 2 workers beside 1, each worker held to the
  quota share of a CPU, the client paced.

The new-connection phase is lib/connections.py, HTTP/2 lib/http2.py."""
import os
import re
import time
from dataclasses import dataclass

import client
import machine
import probes
import processes
import servers

DIRECT, LIMPET, LIMPET_2W, HAPROXY, NGINX = "direct", "limpet", "limpet 2 workers", "HAProxy", "nginx"
PROXIES = (LIMPET, HAPROXY, NGINX)
PLAIN, STICKY = "no cookie", "sticky cookie"
TLS_KEEPALIVE, TLS_HANDSHAKE = "HTTPS keep-alive", "HTTPS, new handshake per request"
HANDSHAKE_SECONDS = {"quick": 5, "full": 10}
PACED = "paced, each worker capped"  # two_workers: the client throttled, every worker at the quota share
PACED_RATE = 10_000  # requests/s in total in two_workers' runs
LOAD_LIMIT = 1.5
LOAD_WAIT_SECONDS = 60
HERE = os.path.dirname(os.path.abspath(__file__))
LOADTEST = os.path.dirname(HERE)


@dataclass
class Profile:
    name: str
    bodies: list
    alternations: int
    requests: int            # per unconstrained throughput run
    quota_requests: int      # per run under the CPU quota
    probe_requests: int      # under strace and callgrind
    latency_seconds: int
    skip_when_loaded: bool
    idle_connections: int = 5000
    quota_share: float = 0.5
    h2_requests: int = 200_000       # per HTTP/2 run (lib/http2.py)
    h2_quota_requests: int = 100_000
    new_connections: int = 50_000    # per plain run of lib/connections.py
    new_tls_connections: int = 20_000  # per HTTPS resumed-session run
    paced_requests: int = 100_000    # per run of two_workers


@dataclass
class Context:
    profile: Profile
    tmp: str
    limpet_binary: str
    results: object
    quota: object            # quota.CpuQuota
    origin: object = None    # the origin behind the proxies, on CPU 1
    cookies: dict = None     # contender -> "SERVERID=value" for sticky runs


def build(context, name, prefix=(), driver="auto"):
    """A started contender. The direct baseline is its own origin on CPU 0."""
    tmp, backends = context.tmp, context.origin.ports
    label = f"{name.replace(' ', '-')}{'-probed' if prefix else ''}"
    if name == DIRECT:
        server = servers.origin(tmp, label, "0", context.profile.bodies, ports=1)
    elif name == LIMPET:
        server = servers.limpet(tmp, context.limpet_binary, backends, 1, driver, label)
    elif name == LIMPET_2W:
        server = servers.limpet(tmp, context.limpet_binary, backends, 2, driver, label)
    elif name == HAPROXY:
        server = servers.haproxy(tmp, backends, label)
    else:
        server = servers.nginx_proxy(tmp, backends, label)
    return server.start(prefix, timeout=120 if prefix else 30)


def learn_cookies(context, running):
    """The sticky cookie each proxy issues. A proxy that issues none (nginx
    only hashes the cookie; limpet before persistence lands) is sent the
    cookie HAProxy issued, and the report says so."""
    path = servers.body_path(context.profile.bodies[0])
    issued = {name: client.issued_cookie(running[name].port, path) for name in PROXIES}
    fallback = issued[HAPROXY] or "SERVERID=web1"
    context.cookies = {}
    for name in PROXIES:
        context.cookies[name] = issued[name] or fallback
        if not issued[name]:
            context.results.note(
                f"{name} set no SERVERID cookie; its sticky runs send `{fallback}` "
                f"(for limpet this is a sticky miss, not a hit)." if name == LIMPET else
                f"{name} sets no cookie (`hash $cookie_SERVERID consistent`); its sticky runs send `{fallback}`."
            )


def _wait_for_quiet(context):
    """The load average now; in a profile that skips loaded runs, waits up
    to a minute for it to fall to the limit. Returns (load, run_it)."""
    load = machine.load_average()
    if not context.profile.skip_when_loaded:
        return load, True
    deadline = time.monotonic() + LOAD_WAIT_SECONDS
    while load > LOAD_LIMIT and time.monotonic() < deadline:
        time.sleep(5)
        load = machine.load_average()
    return load, load <= LOAD_LIMIT


def _timed_run(context, server, name, body, variant, requests, quota_label):
    """One fixed-count run: requests/s, and the CPU it cost per request."""
    cookie = context.cookies.get(name) if variant == STICKY else None
    path = servers.body_path(body)
    load, run_it = _wait_for_quiet(context)
    if not run_it:
        context.results.log_run(name, body, variant, quota_label, load, skipped=True)
        return None
    proxy0, machine0 = machine.process_cpu_ns(server.pid), machine.machine_busy_ns()
    rps = client.fixed_count(server.port, path, requests, cookie=cookie)
    proxy_us = (machine.process_cpu_ns(server.pid) - proxy0) / requests / 1000
    machine_us = (machine.machine_busy_ns() - machine0) / requests / 1000
    context.results.log_run(name, body, variant, quota_label, load, rps=rps, proxy_us=proxy_us, machine_us=machine_us)
    return rps, proxy_us, machine_us


def throughput(context, running):
    """Alternating fixed-count runs (A B C A B C ...) of every contender,
    plain and sticky, unconstrained and (proxies only) under the quota."""
    profile, results = context.profile, context.results
    quota_label = f"{int(profile.quota_share * 100)} % CPU"
    kinds = [(PLAIN, None), (STICKY, None)]
    if context.quota.unavailable:
        results.note(f"Quota rows skipped: {context.quota.unavailable}.")
    else:
        kinds += [(PLAIN, quota_label), (STICKY, quota_label)]
    for body in profile.bodies:
        for round_number in range(1, profile.alternations + 1):
            print(f"  throughput: {body} B body, round {round_number}/{profile.alternations}", flush=True)
            for variant, quota in kinds:
                for name, server in running.items():
                    if name in (DIRECT, LIMPET_2W) and (variant == STICKY or quota):
                        continue  # baselines: plain and unconstrained only
                    if quota:
                        with context.quota.holding(server.pid):
                            figures = _timed_run(context, server, name, body, variant, profile.quota_requests, quota)
                        if figures:
                            results.add("rps@quota", name, body, variant, figures[0])
                    else:
                        figures = _timed_run(context, server, name, body, variant, profile.requests, None)
                        if figures:
                            for metric, value in zip(("rps", "proxy_us", "machine_us"), figures):
                                results.add(metric, name, body, variant, value)


def worker_threads(pid):
    """The thread ids of limpet's workers (threads named `limpet-wN`)."""
    tids = []
    for task in sorted(os.listdir(f"/proc/{pid}/task"), key=int):
        with open(f"/proc/{pid}/task/{task}/comm") as f:
            if f.read().startswith("limpet-w"):
                tids.append(int(task))
    return tids


def two_workers(context, running):
    """limpet with 2 workers beside 1, each worker thread held to the quota
    share of one CPU in a cgroup of its own and h2load paced to PACED_RATE
    requests/s, well under what one capped worker serves: proxy CPU per
    request (every thread), alternating. A report, not a gate: on 2 cores
    the second worker shares CPU 1 with the origin and h2load."""
    profile, results = context.profile, context.results
    if context.quota.unavailable:
        results.note(f"2 workers at {int(profile.quota_share * 100)} % each skipped: {context.quota.unavailable}.")
        return
    body = profile.bodies[0]
    path = servers.body_path(body)
    for round_number in range(1, profile.alternations + 1):
        print(f"  2 workers vs 1, each at {int(profile.quota_share * 100)} % of a CPU, "
              f"{PACED_RATE} req/s: round {round_number}/{profile.alternations}", flush=True)
        for name in (LIMPET, LIMPET_2W):
            server = running[name]
            tids = worker_threads(server.pid)
            if len(tids) != (2 if name == LIMPET_2W else 1):
                raise RuntimeError(f"{name}: expected its worker threads (limpet-wN), found {tids}")
            load, run_it = _wait_for_quiet(context)
            if not run_it:
                results.log_run(name, body, PACED, None, load, skipped=True)
                continue
            with context.quota.holding_threads(server.pid, tids):
                proxy0, machine0 = machine.process_cpu_ns(server.pid), machine.machine_busy_ns()
                rps = client.fixed_count(server.port, path, profile.paced_requests, rate=PACED_RATE)
                proxy_us = (machine.process_cpu_ns(server.pid) - proxy0) / profile.paced_requests / 1000
                machine_us = (machine.machine_busy_ns() - machine0) / profile.paced_requests / 1000
            quota = f"{int(profile.quota_share * 100)} % per worker"
            results.log_run(name, body, PACED, quota, load, rps=rps, proxy_us=proxy_us, machine_us=machine_us)
            results.add("proxy_us", name, body, PACED, proxy_us)
            results.add("rps", name, body, PACED, rps)


def latency(context, running):
    """p50/p99 at a fixed rate, half of HAProxy's median maximum, for every
    contender in turn, plain requests."""
    profile, results = context.profile, context.results
    for body in profile.bodies:
        top = results.median("rps", HAPROXY, body, PLAIN)
        if not top:
            results.note(f"Latency at {body} B skipped: no HAProxy throughput measured.")
            continue
        rate = int(top / 2)
        results.latency_rate[body] = rate
        for round_number in range(1, profile.alternations + 1):
            print(f"  latency: {body} B body at {rate} req/s, round {round_number}/{profile.alternations}", flush=True)
            for name in (DIRECT, *PROXIES):
                load, run_it = _wait_for_quiet(context)
                if not run_it:
                    results.log_run(name, body, f"latency at {rate} req/s", None, load, skipped=True)
                    continue
                latencies = sorted(client.fixed_rate(
                    running[name].port, servers.body_path(body), rate, profile.latency_seconds,
                    os.path.join(context.tmp, "latency.log"),
                ))
                results.add("p50_us", name, body, PLAIN, _percentile(latencies, 50))
                results.add("p99_us", name, body, PLAIN, _percentile(latencies, 99))


def syscalls(context, running):
    """System calls per request under strace, at 50 connections."""
    profile, results = context.profile, context.results
    for body in profile.bodies:
        for name in (DIRECT, *PROXIES):
            for variant in (PLAIN, STICKY) if name != DIRECT else (PLAIN,):
                print(f"  syscalls: {name}, {body} B, {variant}", flush=True)
                server = running[name]
                counts = probes.syscalls(server.pid, lambda: client.fixed_count(
                    server.port, servers.body_path(body), profile.probe_requests,
                    cookie=context.cookies.get(name) if variant == STICKY else None,
                ), os.path.join(context.tmp, "strace.log"))
                results.add("syscalls", name, body, variant, counts.get("total", 0) / profile.probe_requests)
                results.add("io_uring_enter", name, body, variant, counts.get("io_uring_enter", 0) / profile.probe_requests)


def instructions(context):
    """User-space instructions per request under callgrind: each contender
    restarted under valgrind, warmed up, then N requests at 10 connections."""
    profile, results = context.profile, context.results
    n = profile.probe_requests
    for name in (DIRECT, *PROXIES):
        out_file = os.path.join(context.tmp, f"callgrind.{name.replace(' ', '-')}")
        server = _start_under_callgrind(context, name, out_file)
        try:
            for body in profile.bodies:
                path = servers.body_path(body)
                for variant in (PLAIN, STICKY) if name != DIRECT else (PLAIN,):
                    print(f"  instructions: {name}, {body} B, {variant}", flush=True)
                    cookie = context.cookies.get(name) if variant == STICKY else None
                    client.fixed_count(server.port, path, 2000, connections=10, cookie=cookie)
                    total = probes.instructions(server.pid, out_file, lambda: client.fixed_count(
                        server.port, path, n, connections=10, cookie=cookie))
                    results.add("instructions", name, body, variant, total / n)
        finally:
            server.stop()


def _start_under_callgrind(context, name, out_file):
    """limpet runs its io_uring driver under valgrind when that works; if a
    warm-up request fails, it falls back to the epoll driver and says so."""
    prefix = probes.callgrind_prefix(out_file)
    server = build(context, name, prefix)
    if name != LIMPET:
        return server
    try:
        client.fixed_count(server.port, servers.body_path(context.profile.bodies[0]), 200, connections=10)
        context.results.note("limpet ran its io_uring driver under callgrind.")
        return server
    except RuntimeError:
        server.stop()
        context.results.note("limpet's io_uring driver failed under valgrind: its instructions were counted with `driver = \"epoll\"`.")
        return build(context, name, prefix, driver="epoll")


def idle_memory(context):
    """User memory per idle keep-alive connection (RssAnon growth), each
    proxy restarted with transparent huge pages off (no_thp.py) so that its
    memory grows in 4 KiB pages, not 2 MiB steps."""
    no_thp = ["python3", os.path.join(LOADTEST, "no_thp.py")]
    idle_clients = os.path.join(LOADTEST, "idle_clients.py")
    count = context.profile.idle_connections
    for name in PROXIES:
        print(f"  idle memory: {name}, {count} connections", flush=True)
        server = build(context, name, no_thp)
        try:
            output = processes.run(
                ["python3", idle_clients, str(server.pid), f"127.0.0.1:{server.port}", str(count)],
                client.CLIENT_CPU,
            )
        finally:
            server.stop()
        for metric, field in (("idle_anon_bytes", "RssAnon"), ("idle_rss_bytes", "VmRSS")):
            match = re.search(rf"{field}:.*\((-?\d+) bytes per connection\)", output)
            context.results.add(metric, name, None, PLAIN, int(match.group(1)))


def _percentile(sorted_values, percent):
    index = min(len(sorted_values) - 1, int(len(sorted_values) * percent / 100))
    return sorted_values[index]


def https(context):
    """limpet (1 worker) and HAProxy (1 thread) terminating TLS with the
    same ECDSA P-256 certificate, alternating: keep-alive (h2load, 50
    connections, TLS 1.3) and a new connection and full handshake per
    request (wrk with `Connection: close`, 50 connections). Requests/s and
    the proxy's CPU per request."""
    profile, results = context.profile, context.results
    cert, key, combined = servers.tls_certificate(context.tmp)
    backends = context.origin.ports
    contenders = {
        LIMPET: servers.limpet(context.tmp, context.limpet_binary, backends, 1, label="limpet-https", tls=(cert, key)),
        HAPROXY: servers.haproxy(context.tmp, backends, label="haproxy-https", tls=combined),
    }
    body = profile.bodies[0]
    path = servers.body_path(body)
    seconds = HANDSHAKE_SECONDS.get(profile.name, 5)
    running = {}
    try:
        for name, server in contenders.items():
            running[name] = server.start()
        for round_number in range(1, profile.alternations + 1):
            print(f"  https: round {round_number}/{profile.alternations}", flush=True)
            for name, server in running.items():
                load, run_it = _wait_for_quiet(context)
                if not run_it:
                    results.log_run(name, body, TLS_KEEPALIVE, None, load, skipped=True)
                    continue
                proxy0, machine0 = machine.process_cpu_ns(server.pid), machine.machine_busy_ns()
                rps = client.fixed_count(server.port, path, profile.requests, scheme="https")
                proxy_us = (machine.process_cpu_ns(server.pid) - proxy0) / profile.requests / 1000
                machine_us = (machine.machine_busy_ns() - machine0) / profile.requests / 1000
                results.log_run(name, body, TLS_KEEPALIVE, None, load, rps=rps, proxy_us=proxy_us, machine_us=machine_us)
                results.add("rps", name, body, TLS_KEEPALIVE, rps)
                results.add("proxy_us", name, body, TLS_KEEPALIVE, proxy_us)

                load, run_it = _wait_for_quiet(context)
                if not run_it:
                    results.log_run(name, body, TLS_HANDSHAKE, None, load, skipped=True)
                    continue
                proxy0, machine0 = machine.process_cpu_ns(server.pid), machine.machine_busy_ns()
                rps, done, errors = client.one_per_connection(server.port, path, seconds)
                proxy_us = (machine.process_cpu_ns(server.pid) - proxy0) / done / 1000
                machine_us = (machine.machine_busy_ns() - machine0) / done / 1000
                results.log_run(name, body, TLS_HANDSHAKE, None, load, rps=rps, proxy_us=proxy_us, machine_us=machine_us)
                results.add("rps", name, body, TLS_HANDSHAKE, rps)
                results.add("proxy_us", name, body, TLS_HANDSHAKE, proxy_us)
                if errors:
                    results.note(f"HTTPS handshake runs, {name}: wrk reported socket errors ({errors}).")
    finally:
        for server in running.values():
            server.stop()
    _https_idle_memory(context, cert, key, combined)


def _https_idle_memory(context, cert, key, combined):
    """User memory per idle HTTPS keep-alive connection (full TLS 1.3
    handshake and one request each), limpet and HAProxy restarted with THP
    off, as in idle_memory."""
    no_thp = ["python3", os.path.join(LOADTEST, "no_thp.py")]
    idle_clients = os.path.join(LOADTEST, "idle_clients.py")
    count = context.profile.idle_connections
    backends = context.origin.ports
    for name in (LIMPET, HAPROXY):
        print(f"  https idle memory: {name}, {count} connections", flush=True)
        if name == LIMPET:
            server = servers.limpet(context.tmp, context.limpet_binary, backends, 1, label="limpet-https-idle", tls=(cert, key))
        else:
            server = servers.haproxy(context.tmp, backends, label="haproxy-https-idle", tls=combined)
        server.start(no_thp)
        try:
            output = processes.run(
                ["python3", idle_clients, str(server.pid), f"127.0.0.1:{server.port}", str(count), "--tls", "bench.test"],
                client.CLIENT_CPU,
            )
        finally:
            server.stop()
        for metric, field in (("idle_anon_bytes", "RssAnon"), ("idle_rss_bytes", "VmRSS")):
            match = re.search(rf"{field}:.*\((-?\d+) bytes per connection\)", output)
            context.results.add(metric, name, None, TLS_KEEPALIVE, int(match.group(1)))
