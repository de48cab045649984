"""The new-connection phase (issue 21, item 6): limpet, HAProxy and nginx
(one worker / thread on CPU 0, the configs of the other phases) in front of
the same origin, every client connection carrying one request and closed
after it (accept, request, response, close; the proxies keep their origin
connections alive). Per variant, contenders alternating (A B C A B C):
proxy CPU per connection (schedstat around the run, divided by the
connections made: gated, limpet no worse than HAProxy) and connections per
second (reported).

- plain HTTP and HTTPS with a resumed session: h2load, a fixed count of
  connections (`-H 'Connection: close'`: h2load reconnects after each
  response). Over TLS each h2load client resumes the session (TLS 1.3
  ticket) of its previous connection, so all but 50 handshakes are
  resumptions; a Python ssl client checks first that each proxy resumes.
- HTTPS with a full handshake: wrk (it keeps no session), `Connection:
  close`, for a fixed time (wrk cannot stop at a count), CPU divided by the
  connections it completed."""
import bench
import client
import machine
import servers

PLAIN = "new connection per request, plain HTTP"
RESUMED = "new connection per request, HTTPS, resumed session"
FULL = "new connection per request, HTTPS, full handshake"
VARIANTS = (PLAIN, RESUMED, FULL)
CONTENDERS = (bench.LIMPET, bench.HAPROXY, bench.NGINX)
NOTE = "New connections"


def run(context):
    cert, key, combined = servers.tls_certificate(context.tmp)
    for variant in VARIANTS:
        tls = variant != PLAIN
        running = {}
        try:
            for name in CONTENDERS:
                running[name] = _server(context, name, tls, cert, key, combined).start()
            if variant == RESUMED:
                _check_resumption(context, running)
            for round_number in range(1, context.profile.alternations + 1):
                print(f"  {variant}: round {round_number}/{context.profile.alternations}", flush=True)
                for name, server in running.items():
                    _timed_run(context, server, name, variant)
        finally:
            for server in running.values():
                server.stop()


def _server(context, name, tls, cert, key, combined):
    backends, label = context.origin.ports, f"{name.replace(' ', '-')}-conn{'-tls' if tls else ''}"
    if name == bench.LIMPET:
        return servers.limpet(context.tmp, context.limpet_binary, backends, 1, label=label,
                              tls=(cert, key) if tls else None)
    if name == bench.HAPROXY:
        return servers.haproxy(context.tmp, backends, label, tls=combined if tls else None)
    return servers.nginx_proxy(context.tmp, backends, label, tls=(cert, key) if tls else None)


def _check_resumption(context, running):
    path = servers.body_path(context.profile.bodies[0])
    for name, server in running.items():
        if not client.resumes_tls_session(server.port, path):
            context.results.note(
                f"{NOTE}: {name} did not resume a TLS session for Python's ssl client; "
                "its resumed-session runs may be full handshakes."
            )


def _timed_run(context, server, name, variant):
    profile, results = context.profile, context.results
    body = profile.bodies[0]
    path = servers.body_path(body)
    load, run_it = bench._wait_for_quiet(context)
    if not run_it:
        results.log_run(name, body, variant, None, load, skipped=True)
        return
    proxy0, machine0 = machine.process_cpu_ns(server.pid), machine.machine_busy_ns()
    if variant == FULL:
        rate, count, errors = client.one_per_connection(
            server.port, path, bench.HANDSHAKE_SECONDS.get(profile.name, 5))
        if errors:
            results.note(f"{NOTE}, full handshakes, {name}: wrk reported socket errors ({errors}).")
    else:
        count = profile.new_connections if variant == PLAIN else profile.new_tls_connections
        rate = client.new_connections(server.port, path, count, scheme="https" if variant == RESUMED else "http")
    proxy_us = (machine.process_cpu_ns(server.pid) - proxy0) / count / 1000
    machine_us = (machine.machine_busy_ns() - machine0) / count / 1000
    results.log_run(name, body, variant, None, load, rps=rate, proxy_us=proxy_us, machine_us=machine_us)
    results.add("rps", name, body, variant, rate)
    results.add("proxy_us", name, body, variant, proxy_us)
    results.add("machine_us", name, body, variant, machine_us)
