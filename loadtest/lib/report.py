"""Writes RESULTS.md: the machine and the run, one table per body size
(every metric, every contender, limpet's ratio to each peer), idle memory,
notes, and the log of every timed run with its load average."""

import os

from bench import (DIRECT, HANDSHAKE_SECONDS, HAPROXY, LIMPET, LIMPET_2W, NGINX, PACED, PACED_RATE, PLAIN,
                   STICKY, TLS_HANDSHAKE, TLS_KEEPALIVE)
from client import STREAMS as H2_STREAMS
from connections import NOTE as CONN_NOTE, VARIANTS as CONN_VARIANTS
from http2 import VARIANTS as H2_VARIANTS

HTTPS_BEGIN, HTTPS_END = "<!-- https: begin -->", "<!-- https: end -->"
H2_BEGIN, H2_END = "<!-- http2: begin -->", "<!-- http2: end -->"
CONN_BEGIN, CONN_END = "<!-- connections: begin -->", "<!-- connections: end -->"
WORKERS_BEGIN, WORKERS_END = "<!-- workers: begin -->", "<!-- workers: end -->"
WORKERS_SHARE = "With 2 workers the second one shares CPU 1 with the origin and h2load."
# Written by hand (measured outside loadtest/run); carried over as it is.
KERNEL_BEGIN, KERNEL_END = "<!-- kernel: begin -->", "<!-- kernel: end -->"

COLUMNS = (DIRECT, LIMPET, HAPROXY, NGINX)

# (metric, variant, label, decimals): rows of each body size's table.
ROWS = (
    ("rps", PLAIN, "requests/s, no cookie (higher is better)", 0),
    ("rps", STICKY, "requests/s, sticky cookie", 0),
    ("rps@quota", PLAIN, "requests/s at {quota} of one CPU, no cookie", 0),
    ("rps@quota", STICKY, "requests/s at {quota} of one CPU, sticky cookie", 0),
    ("proxy_us", PLAIN, "proxy CPU µs / request, no cookie (lower is better)", 2),
    ("proxy_us", STICKY, "proxy CPU µs / request, sticky cookie", 2),
    ("machine_us", PLAIN, "whole-machine CPU µs / request, no cookie", 2),
    ("machine_us", STICKY, "whole-machine CPU µs / request, sticky cookie", 2),
    ("instructions", PLAIN, "user-space instructions / request, no cookie", 0),
    ("instructions", STICKY, "user-space instructions / request, sticky cookie", 0),
    ("syscalls", PLAIN, "syscalls / request, no cookie", 2),
    ("syscalls", STICKY, "syscalls / request, sticky cookie", 2),
    ("io_uring_enter", PLAIN, "of which io_uring_enter / request, no cookie", 3),
    ("p50_us", PLAIN, "p50 latency µs at {rate} req/s", 0),
    ("p99_us", PLAIN, "p99 latency µs at {rate} req/s", 0),
)


def write(results, profile, facts, path):
    lines = [
        "# limpet load test results",
        "",
        f"Written by `loadtest/run{' --quick' if profile.name == 'quick' else ''}`; see "
        "[README.md](README.md) for the method. Each cell is the median, with min–max "
        "when there is more than one sample; ratios are of medians.",
        "",
        "| machine | |",
        "|---|---|",
        f"| nproc | {facts['nproc']} |",
        f"| CPU | {facts['cpu']} |",
        f"| kernel | {facts['kernel']} |",
        f"| date | {facts['date']} |",
        f"| profile | {profile.name}: bodies {', '.join(_size(b) for b in profile.bodies)}, "
        f"{profile.alternations} alternations, {profile.requests:,} requests per run "
        f"({profile.quota_requests:,} under the quota) |",
        f"| load average (1 min) | {facts['load_before']:.2f} at start, {facts['load_after']:.2f} at end; "
        "each run's below |",
        f"| duration | {facts['minutes']:.1f} min |",
        "",
        "![requests/s under a CPU quota and CPU per request](results.svg)",
        "",
    ]
    for body in profile.bodies:
        lines += _body_table(results, profile, body)
    lines += _idle_table(results, profile)
    lines += _workers_table(results, profile, facts, path)
    lines += _https_kept(results, profile, facts, path)
    lines += _h2_kept(results, profile, facts, path)
    lines += _conn_kept(results, profile, facts, path)
    lines += _kept(path, KERNEL_BEGIN, KERNEL_END)
    if results.notes:
        lines += ["## Notes", ""] + [f"- {note}" for note in results.notes] + [""]
    lines += _kept_file(path, "profile.md")
    lines += _kept_file(path, "criterion.md")
    lines += _run_log(results)
    with open(path, "w") as f:
        f.write("\n".join(lines))


def https_section(results, profile, facts):
    """The HTTPS table: limpet and HAProxy terminating TLS, with ratios."""
    body = profile.bodies[0]
    lines = [
        HTTPS_BEGIN,
        f"## HTTPS: limpet vs HAProxy terminating TLS ({_size(body)} body)",
        "",
        f"Same ECDSA P-256 certificate (openssl, made for the run), TLS 1.3, one worker / one "
        f"thread on CPU 0, client on CPU 1; {profile.alternations} alternations "
        f"({facts['date']}, load average {facts['load_before']:.2f} at start). Keep-alive: h2load, "
        "50 connections. New handshake per request: wrk, 50 connections, `Connection: close` "
        "(full handshakes: wrk keeps no session).",
        "",
        "| metric | limpet | HAProxy | limpet / HAProxy |",
        "|---|---:|---:|---:|",
    ]
    for variant in (TLS_KEEPALIVE, TLS_HANDSHAKE):
        for metric, label, decimals in (
            ("rps", "requests/s (higher is better)", 0),
            ("proxy_us", "proxy CPU µs / request (lower is better)", 2),
        ):
            cells = [_cell(results.summary(metric, name, body, variant), decimals) for name in (LIMPET, HAPROXY)]
            if not any(cells):
                continue
            ratio = _ratio(results.median(metric, LIMPET, body, variant), results.median(metric, HAPROXY, body, variant))
            lines.append(f"| {variant}: {label} | " + " | ".join(cells) + f" | {ratio} |")
    for metric, label in (("idle_anon_bytes", "RssAnon"), ("idle_rss_bytes", "VmRSS")):
        cells = [_cell(results.summary(metric, name, None, TLS_KEEPALIVE), 0) for name in (LIMPET, HAPROXY)]
        if not any(cells):
            continue
        ratio = _ratio(results.median(metric, LIMPET, None, TLS_KEEPALIVE), results.median(metric, HAPROXY, None, TLS_KEEPALIVE))
        lines.append(
            f"| idle HTTPS keep-alive connection: {label} growth, bytes / connection "
            f"({profile.idle_connections:,} connections, THP off) | " + " | ".join(cells) + f" | {ratio} |"
        )
    plain = results.summary("idle_anon_bytes", LIMPET, None, PLAIN)
    if plain:
        lines.append(f"| idle plain-HTTP keep-alive connection (above): RssAnon growth | {_cell(plain, 0)} | | |")
    notes = [f"- {note}" for note in results.notes if note.startswith("HTTPS")]
    return lines + [""] + (notes + [""] if notes else []) + [HTTPS_END, ""]


def _https_kept(results, profile, facts, results_path):
    """This run's HTTPS table, or the one a separate `--only https` run
    left in the previous RESULTS.md."""
    if results.summary("rps", LIMPET, profile.bodies[0], TLS_KEEPALIVE):
        return https_section(results, profile, facts)
    return _kept(results_path, HTTPS_BEGIN, HTTPS_END)


def _h2_kept(results, profile, facts, results_path):
    """This run's HTTP/2 table, or the one a separate `--only h2` run left."""
    if any(results.summary("rps", name, profile.bodies[0], variant) for name in COLUMNS[1:] for variant in H2_VARIANTS):
        return h2_section(results, profile, facts)
    return _kept(results_path, H2_BEGIN, H2_END)


def _kept(results_path, begin_marker, end_marker):
    """The section between the markers in the previous RESULTS.md."""
    if not os.path.exists(results_path):
        return []
    with open(results_path) as f:
        text = f.read()
    begin, end = text.find(begin_marker), text.find(end_marker)
    if begin < 0 or end < 0:
        return []
    return text[begin:end + len(end_marker)].splitlines() + [""]


def write_https_only(results, profile, facts, path):
    """After `--only https`: replaces the HTTPS section of RESULTS.md (or
    adds it before the notes), leaving the rest as it was."""
    _replace_section(path, https_section(results, profile, facts), HTTPS_BEGIN, HTTPS_END)


def write_h2_only(results, profile, facts, path):
    """After `--only h2`: replaces the HTTP/2 section of RESULTS.md (or adds
    it before the notes), leaving the rest as it was."""
    _replace_section(path, h2_section(results, profile, facts), H2_BEGIN, H2_END)


def _replace_section(path, lines, begin_marker, end_marker, after=None):
    """Replaces the text between the markers; without them, inserts the
    section after the text `after` (when given and found) or before the
    notes."""
    section = "\n".join(lines)
    text = open(path).read() if os.path.exists(path) else "# limpet load test results\n\n"
    begin, end = text.find(begin_marker), text.find(end_marker)
    if begin >= 0 and end >= 0:
        text = text[:begin] + section.rstrip() + text[end + len(end_marker):]
    else:
        anchor = text.find(after) + len(after) if after and after in text else text.find("## Notes")
        anchor = anchor if anchor >= 0 else len(text)
        text = text[:anchor] + section + "\n" + text[anchor:]
    with open(path, "w") as f:
        f.write(text)


# (metric, label, decimals) of the HTTP/2 table, per variant; "gated" rows
# are the stable ones BENCH.md sets targets on.
H2_ROWS = (
    ("instructions", "user-space instructions / request (gated)", 0),
    ("proxy_us", "proxy CPU µs / request (gated)", 2),
    ("rps", "requests/s, unconstrained (reported)", 0),
    ("rps@quota", "requests/s at {quota} of one CPU (reported)", 0),
    ("p50_us", "p50 latency µs at {rate} req/s (reported)", 0),
    ("p99_us", "p99 latency µs at {rate} req/s (reported)", 0),
)


def h2_section(results, profile, facts):
    """The HTTP/2 table: limpet, HAProxy and nginx, h2c and TLS, with
    limpet's ratios; idle memory per HTTP/2 connection."""
    body = profile.bodies[0]
    quota = f"{int(profile.quota_share * 100)} %"
    names = COLUMNS[1:]
    lines = [
        H2_BEGIN,
        f"## HTTP/2: h2load `-m {H2_STREAMS}`, h2c and TLS ({_size(body)} body)",
        "",
        f"h2load, 50 connections × {H2_STREAMS} streams, one thread on CPU 1; each proxy one worker / "
        "thread on CPU 0, speaking HTTP/1.1 to the same origin (limpet: `http2 = true`, the default; "
        "HAProxy 2.6: `bind ... proto h2`, TLS `alpn h2,http/1.1`; nginx 1.22: `listen ... http2`). "
        f"TLS: the run's ECDSA P-256 certificate, TLS 1.3. {profile.alternations} alternations, "
        f"{profile.h2_requests:,} requests per run ({profile.h2_quota_requests:,} under the quota), "
        f"instructions over {profile.probe_requests:,} requests at 10 connections × {H2_STREAMS} streams "
        f"({facts['date']}, load average {facts['load_before']:.2f} at start, "
        f"{facts['load_after']:.2f} at end). Idle: preface and SETTINGS exchanged, then nothing; "
        f"{profile.idle_connections:,} connections, THP off.",
        "",
        *_compared_head(names),
    ]
    for variant in H2_VARIANTS:
        rate = results.latency_rate.get((body, variant), "?")
        rows = [(m, body, label.format(quota=quota, rate=rate), d) for m, label, d in H2_ROWS]
        rows += [
            ("idle_anon_bytes", None, "idle connection: RssAnon growth, bytes (gated)", 0),
            ("idle_rss_bytes", None, "idle connection: VmRSS growth, bytes", 0),
        ]
        for metric, size, label, decimals in rows:
            lines += _compared_row(results, f"{variant}: {label}", names, (metric, size, variant), decimals)
    notes = [f"- {note}" for note in results.notes if note.startswith("HTTP/2")]
    lines += [""] + (notes + [""] if notes else [])
    runs = [r for r in results.runs if r["variant"] in H2_VARIANTS]
    if runs:
        lines += ["Every timed HTTP/2 run:", ""] + _run_log_rows(runs) + [""]
    return lines + [H2_END, ""]


def conn_section(results, profile, facts):
    """The new-connection table: proxy CPU per connection (gated: limpet no
    worse than HAProxy) and connections/s, plain and HTTPS."""
    body = profile.bodies[0]
    names = COLUMNS[1:]
    lines = [
        CONN_BEGIN,
        f"## New connection per request: accept, one request, close ({_size(body)} body)",
        "",
        "Each client connection carries one request with `Connection: close` and is closed after "
        "the response; the proxies keep their origin connections alive. One worker / thread on CPU 0, "
        "client on CPU 1, 50 concurrent connections, the configs of the other phases (HTTPS: the run's "
        "ECDSA P-256 certificate, TLS 1.3). Plain and resumed: h2load, a fixed count of "
        f"{profile.new_connections:,} (plain) and {profile.new_tls_connections:,} (HTTPS) connections "
        "per run; h2load resumes each client's previous TLS session (ticket), so all but 50 "
        "handshakes are resumptions. Full handshake: wrk (no session kept) for "
        f"{HANDSHAKE_SECONDS.get(profile.name, 5)} s, CPU divided by the connections completed. "
        f"Proxy CPU: schedstat, every thread. {profile.alternations} alternations ({facts['date']}, "
        f"load average {facts['load_before']:.2f} at start, {facts['load_after']:.2f} at end).",
        "",
        *_compared_head(names),
    ]
    gates = []
    for variant in CONN_VARIANTS:
        short = variant.removeprefix("new connection per request, ")
        for metric, label, decimals in (
            ("proxy_us", "proxy CPU µs / connection (gated: ≤ HAProxy)", 2),
            ("rps", "connections/s (reported)", 0),
            ("machine_us", "whole-machine CPU µs / connection (reported)", 2),
        ):
            lines += _compared_row(results, f"{short}: {label}", names, (metric, body, variant), decimals)
        limpet, haproxy = (results.median("proxy_us", n, body, variant) for n in (LIMPET, HAPROXY))
        if limpet and haproxy:
            gates.append(f"{short} {'met' if limpet <= haproxy else 'missed'} ({limpet / haproxy:.2f}×)")
    if gates:
        lines += ["", "Gate (proxy CPU per connection, limpet ≤ HAProxy): " + "; ".join(gates) + "."]
    notes = [f"- {note}" for note in results.notes if note.startswith(CONN_NOTE)]
    lines += [""] + (notes + [""] if notes else [])
    runs = [r for r in results.runs if r["variant"] in CONN_VARIANTS]
    if runs:
        lines += ["Every timed run of this phase (requests/s = connections/s; µs per connection):", ""]
        lines += _run_log_rows(runs) + [""]
    return lines + [CONN_END, ""]


def _conn_kept(results, profile, facts, results_path):
    """This run's new-connection table, or the one `--only conn` left."""
    if any(results.summary("proxy_us", name, profile.bodies[0], v) for name in COLUMNS[1:] for v in CONN_VARIANTS):
        return conn_section(results, profile, facts)
    return _kept(results_path, CONN_BEGIN, CONN_END)


def write_conn_only(results, profile, facts, path):
    """After `--only conn`: replaces the new-connection section of
    RESULTS.md (or adds it before the notes), leaving the rest as it was."""
    _replace_section(path, conn_section(results, profile, facts), CONN_BEGIN, CONN_END)


def _kept_file(results_path, name):
    """A summary kept beside RESULTS.md (loadtest/profile.md from
    `loadtest/profile.sh`, loadtest/criterion.md from `cargo bench`), so
    that a load test run does not drop it."""
    summary = os.path.join(os.path.dirname(results_path), name)
    if not os.path.exists(summary):
        return []
    with open(summary) as f:
        return [f.read().rstrip(), ""]


def _body_table(results, profile, body):
    quota = f"{int(profile.quota_share * 100)} %"
    rate = results.latency_rate.get(body, "?")
    lines = [
        f"## {_size(body)} body",
        "",
        *_compared_head(COLUMNS),
    ]
    for metric, variant, label, decimals in ROWS:
        lines += _compared_row(results, label.format(quota=quota, rate=rate), COLUMNS, (metric, body, variant), decimals)
    direct = results.median("rps", DIRECT, body, PLAIN)
    fractions = [_ratio(results.median("rps", name, body, PLAIN), direct) for name in COLUMNS]
    lines.append("| requests/s as a fraction of direct, no cookie | " + " | ".join(fractions) + " | | |")
    return lines + [""]


def _compared_head(names):
    """The header of a table of _compared_row rows."""
    return [
        "| metric | " + " | ".join(names) + " | limpet / HAProxy | limpet / nginx |",
        "|---|" + "---:|" * (len(names) + 2),
    ]


def _compared_row(results, label, names, key, decimals):
    """One table row: a cell per contender in `names`, then limpet's ratio
    to HAProxy and to nginx; no row when nothing was measured."""
    metric, body, variant = key
    cells = [_cell(results.summary(metric, name, body, variant), decimals) for name in names]
    if not any(cells):
        return []
    limpet = results.median(metric, LIMPET, body, variant)
    ratios = [_ratio(limpet, results.median(metric, peer, body, variant)) for peer in (HAPROXY, NGINX)]
    return [f"| {label} | " + " | ".join(cells + ratios) + " |"]


def _idle_table(results, profile):
    lines = [
        f"## User memory per idle keep-alive connection ({profile.idle_connections:,} connections, THP off)",
        "",
        "| bytes / connection | " + " | ".join(COLUMNS[1:]) + " | limpet / HAProxy | limpet / nginx |",
        "|---|" + "---:|" * (len(COLUMNS) + 1),
    ]
    for metric, label in (("idle_anon_bytes", "RssAnon growth"), ("idle_rss_bytes", "VmRSS growth")):
        cells = [_cell(results.summary(metric, name, None, PLAIN), 0) for name in COLUMNS[1:]]
        limpet = results.median(metric, LIMPET, None, PLAIN)
        ratios = [_ratio(limpet, results.median(metric, peer, None, PLAIN)) for peer in (HAPROXY, NGINX)]
        lines.append(f"| {label} | " + " | ".join(cells + ratios) + " |")
    return lines + [""]


def _workers_table(results, profile, facts, path):
    lines = [
        "## limpet with 2 workers vs 1 (no cookie, unconstrained)",
        "",
        "| body | CPU µs / request, 1 worker | 2 workers | 2 / 1 | requests/s, 1 worker | 2 workers |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for body in profile.bodies:
        one = results.summary("proxy_us", LIMPET, body, PLAIN)
        two = results.summary("proxy_us", LIMPET_2W, body, PLAIN)
        ratio = _ratio(two[0], one[0]) if one and two else ""
        rps = [_cell(results.summary("rps", name, body, PLAIN), 0) for name in (LIMPET, LIMPET_2W)]
        lines.append(f"| {_size(body)} | {_cell(one, 2)} | {_cell(two, 2)} | {ratio} | {rps[0]} | {rps[1]} |")
    return lines + [
        "",
        WORKERS_SHARE,
        "",
    ] + _paced_workers_kept(results, profile, facts, path)


def paced_workers_section(results, profile, facts):
    """2 workers vs 1 with each worker capped and the client paced: CPU per
    request, a report (BENCH.md), not a gate."""
    body, share = profile.bodies[0], int(profile.quota_share * 100)
    one, two = (results.summary("proxy_us", name, body, PACED) for name in (LIMPET, LIMPET_2W))
    rps = [_cell(results.summary("rps", name, body, PACED), 0) for name in (LIMPET, LIMPET_2W)]
    return [
        WORKERS_BEGIN,
        f"### Each worker held to {share} % of a CPU, client paced to {PACED_RATE:,} requests/s "
        "(reported, not gated)",
        "",
        f"Each worker thread (`limpet-wN`) in a cgroup of its own at {share} % of one CPU "
        f"(`cpu.cfs_quota_us`, `cpu.max` on cgroup v2); h2load `--rps`, 50 connections, "
        f"{profile.paced_requests:,} requests per run, {_size(body)} body, no cookie; "
        f"{profile.alternations} alternations ({facts['date']}, load average "
        f"{facts['load_before']:.2f} at start, {facts['load_after']:.2f} at end).",
        "",
        "| proxy CPU µs / request, 1 worker | 2 workers | 2 / 1 | requests/s, 1 worker | 2 workers |",
        "|---:|---:|---:|---:|---:|",
        f"| {_cell(one, 2)} | {_cell(two, 2)} | {_ratio(two[0], one[0]) if one and two else ''} "
        f"| {rps[0]} | {rps[1]} |",
        "",
    ] + _run_log_rows([r for r in results.runs if r["variant"] == PACED]) + [
        "",
        WORKERS_END,
        "",
    ]


def _paced_workers_kept(results, profile, facts, results_path):
    if results.summary("proxy_us", LIMPET_2W, profile.bodies[0], PACED):
        return paced_workers_section(results, profile, facts)
    return _kept(results_path, WORKERS_BEGIN, WORKERS_END)


def write_workers_only(results, profile, facts, path):
    """After `--only workers`: replaces the capped 2-worker section."""
    _replace_section(path, paced_workers_section(results, profile, facts), WORKERS_BEGIN, WORKERS_END,
                     after=WORKERS_SHARE + "\n\n")


def _run_log(results):
    return ["## Every timed run", ""] + _run_log_rows(results.runs) + [""]


def _run_log_rows(runs):
    lines = [
        "| time | load avg | contender | body | variant | quota | requests/s | proxy µs/req | machine µs/req |",
        "|---|---:|---|---:|---|---|---:|---:|---:|",
    ]
    for run in runs:
        if run.get("skipped"):
            figures = "skipped: load above 1.5 | | "
        else:
            figures = f"{run['rps']:.0f} | {run['proxy_us']:.2f} | {run['machine_us']:.2f}"
        lines.append(
            f"| {run['time']} | {run['load']:.2f} | {run['contender']} | {run['body']} | {run['variant']} "
            f"| {run['quota'] or '—'} | {figures} |"
        )
    return lines


def _cell(summary, decimals):
    if summary is None:
        return ""
    median, low, high, count = summary
    text = f"{median:,.{decimals}f}"
    return text if count == 1 else f"{text} ({low:,.{decimals}f}–{high:,.{decimals}f})"


def _ratio(value, reference):
    if not value or not reference:
        return ""
    return f"{value / reference:.2f}×"


def _size(body):
    return f"{body // 1024} KiB" if body % 1024 == 0 else f"{body} B"
