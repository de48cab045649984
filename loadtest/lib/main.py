"""Entry point of the load test (called by loadtest/run once tools are
installed and limpet is built): starts the origin and every contender,
runs the measurement phases in order, stops every process it started, and
writes RESULTS.md and results.svg next to loadtest/run.

usage: main.py [--quick] [--only https|h2|conn|workers] REPO_ROOT"""
import argparse
import os
import shutil
import signal
import sys
import tempfile
import time

import bench
import chart
import connections
import http2
import machine
import processes
import quota
import report
import servers
from results import Results

PROFILES = {
    "quick": bench.Profile(
        name="quick", bodies=[34], alternations=3, requests=200_000, quota_requests=100_000,
        probe_requests=20_000, latency_seconds=5, skip_when_loaded=False,
        h2_requests=50_000, h2_quota_requests=25_000,
        new_connections=20_000, new_tls_connections=10_000, paced_requests=50_000,
    ),
    "full": bench.Profile(
        name="full", bodies=[34, 1024, 16384], alternations=5, requests=300_000, quota_requests=150_000,
        probe_requests=20_000, latency_seconds=10, skip_when_loaded=True,
    ),
}


def _stop_on_signal(signum, _frame):
    raise KeyboardInterrupt(f"signal {signum}")


def run(context):
    """Every phase, in order; the phases that need a fresh process
    (callgrind, THP off) restart their contenders themselves."""
    context.origin = servers.origin(context.tmp, "origin", "1", context.profile.bodies).start()

    print("starting limpet, HAProxy, nginx and the direct origin", flush=True)
    names = (bench.DIRECT, *bench.PROXIES, bench.LIMPET_2W)
    running = {name: bench.build(context, name) for name in names}
    bench.learn_cookies(context, running)
    bench.throughput(context, running)
    bench.two_workers(context, running)
    bench.latency(context, running)
    bench.syscalls(context, running)
    for server in running.values():
        server.stop()
    bench.instructions(context)
    bench.idle_memory(context)
    bench.https(context)
    connections.run(context)
    http2.run(context)


def run_https(context):
    """`--only https`: the origin and the HTTPS phase alone."""
    context.origin = servers.origin(context.tmp, "origin", "1", context.profile.bodies).start()
    bench.https(context)


def run_h2(context):
    """`--only h2`: the origin and the HTTP/2 phase alone."""
    context.origin = servers.origin(context.tmp, "origin", "1", context.profile.bodies).start()
    http2.run(context)


def run_conn(context):
    """`--only conn`: the origin and the new-connection phase alone."""
    context.origin = servers.origin(context.tmp, "origin", "1", context.profile.bodies).start()
    connections.run(context)


def run_workers(context):
    """`--only workers`: the origin, limpet with 1 and 2 workers, and the
    capped, paced comparison alone."""
    context.origin = servers.origin(context.tmp, "origin", "1", context.profile.bodies).start()
    running = {name: bench.build(context, name) for name in (bench.LIMPET, bench.LIMPET_2W)}
    try:
        bench.two_workers(context, running)
    finally:
        for server in running.values():
            server.stop()


ONLY = {
    "https": (run_https, report.write_https_only), "h2": (run_h2, report.write_h2_only),
    "conn": (run_conn, report.write_conn_only), "workers": (run_workers, report.write_workers_only),
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one body size, 3 alternations")
    parser.add_argument("--only", choices=sorted(ONLY), help="run one phase and update its section of RESULTS.md")
    parser.add_argument("repo", help="the limpet repository (built with cargo build --release)")
    args = parser.parse_args()
    profile = PROFILES["quick" if args.quick else "full"]
    signal.signal(signal.SIGTERM, _stop_on_signal)
    signal.signal(signal.SIGHUP, _stop_on_signal)

    outdir = os.path.join(args.repo, "loadtest")
    tmp = tempfile.mkdtemp(prefix="limpet-loadtest-")
    results = Results()
    cpu_quota = quota.CpuQuota(profile.quota_share, f"limpet-loadtest-{os.getpid()}")
    context = bench.Context(
        profile=profile, tmp=tmp, results=results, quota=cpu_quota,
        limpet_binary=os.path.join(args.repo, "target", "release", "limpet"),
    )
    started = time.monotonic()
    ok = False
    print(f"profile {profile.name}; configs and logs in {tmp}", flush=True)
    if cpu_quota.unavailable:
        print(f"no CPU quota rows: {cpu_quota.unavailable}", flush=True)
    try:
        load_before = machine.load_average()
        (ONLY[args.only][0] if args.only else run)(context)
        ok = True
    finally:
        processes.stop_all()
        cpu_quota.remove()
        if ok:
            shutil.rmtree(tmp)
        else:
            print(f"failed: configs and logs kept in {tmp}", file=sys.stderr)
    minutes = (time.monotonic() - started) / 60
    facts = {
        **machine.describe(), "profile": profile.name, "minutes": minutes,
        "load_before": load_before, "load_after": machine.load_average(),
    }
    if args.only:
        ONLY[args.only][1](results, profile, facts, os.path.join(outdir, "RESULTS.md"))
        print(f"done in {minutes:.1f} min: the {args.only} section of {outdir}/RESULTS.md")
        return
    chart.write(results, profile, os.path.join(outdir, "results.svg"))
    report.write(results, profile, facts, os.path.join(outdir, "RESULTS.md"))
    print(f"done in {minutes:.1f} min: {outdir}/RESULTS.md, {outdir}/results.svg")


if __name__ == "__main__":
    main()
