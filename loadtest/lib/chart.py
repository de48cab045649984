"""Draws results.svg without any plotting library: for the first body size,
side-by-side bar panels (requests/s under the CPU quota, or unconstrained
when quotas are unavailable; proxy CPU µs per request; user-space
instructions per request), each bar the median with a min–max whisker."""
from xml.sax.saxutils import escape

from bench import DIRECT, HAPROXY, LIMPET, NGINX, PLAIN, STICKY

SERIES = ((PLAIN, "#4c78a8"), (STICKY, "#f58518"))
PANEL_WIDTH, PANEL_HEIGHT, TOP, BOTTOM, LEFT = 330, 300, 50, 40, 60


def write(results, profile, path):
    body = profile.bodies[0]
    rps_metric = "rps@quota" if results.summary("rps@quota", LIMPET, body, PLAIN) else "rps"
    rps_title = (f"requests/s at {int(profile.quota_share * 100)} % of one CPU"
                 if rps_metric == "rps@quota" else "requests/s, unconstrained")
    panels = [
        (rps_title + " (higher is better)", rps_metric, (LIMPET, HAPROXY, NGINX)),
        ("proxy CPU µs / request (lower is better)", "proxy_us", (DIRECT, LIMPET, HAPROXY, NGINX)),
        ("instructions / request (lower is better)", "instructions", (DIRECT, LIMPET, HAPROXY, NGINX)),
    ]
    width = PANEL_WIDTH * len(panels)
    height = PANEL_HEIGHT + 30
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'font-family="sans-serif" font-size="11">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
    ]
    for index, (title, metric, names) in enumerate(panels):
        parts += _panel(results, body, index * PANEL_WIDTH, title, metric, names)
    parts += _legend(width, height, body)
    parts.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(parts) + "\n")


def _panel(results, body, x0, title, metric, names):
    """One panel: a group of bars (one per series) for each contender."""
    bars = [(name, series, colour, results.summary(metric, name, body, series))
            for name in names for series, colour in SERIES]
    top = max((summary[2] for *_, summary in bars if summary), default=0) or 1
    plot_height = PANEL_HEIGHT - TOP - BOTTOM
    plot_width = PANEL_WIDTH - LEFT - 20
    group_width = plot_width / len(names)
    bar_width = group_width / (len(SERIES) + 1)
    scale = plot_height / (top * 1.1)
    baseline = TOP + plot_height
    parts = [
        f'<text x="{x0 + PANEL_WIDTH / 2}" y="25" text-anchor="middle" font-weight="bold">{escape(title)}</text>',
        f'<line x1="{x0 + LEFT}" y1="{baseline}" x2="{x0 + LEFT + plot_width}" y2="{baseline}" stroke="black"/>',
        f'<text x="{x0 + LEFT - 5}" y="{TOP + 4}" text-anchor="end">{_short(top * 1.1)}</text>',
        f'<text x="{x0 + LEFT - 5}" y="{baseline + 4}" text-anchor="end">0</text>',
    ]
    for position, (name, series, colour, summary) in enumerate(bars):
        group, slot = divmod(position, len(SERIES))
        x = x0 + LEFT + group * group_width + (slot + 0.5) * bar_width
        if slot == 0:
            parts.append(f'<text x="{x0 + LEFT + (group + 0.5) * group_width}" y="{baseline + 15}" '
                         f'text-anchor="middle">{escape(name)}</text>')
        if summary is None:
            continue
        median, low, high, _count = summary
        y = baseline - median * scale
        parts += [
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_width:.1f}" height="{median * scale:.1f}" fill="{colour}"/>',
            f'<line x1="{x + bar_width / 2:.1f}" y1="{baseline - low * scale:.1f}" '
            f'x2="{x + bar_width / 2:.1f}" y2="{baseline - high * scale:.1f}" stroke="black"/>',
            f'<text x="{x + bar_width / 2:.1f}" y="{baseline - high * scale - 4:.1f}" text-anchor="middle" '
            f'font-size="9">{_short(median)}</text>',
        ]
    return parts


def _legend(width, height, body):
    parts = []
    x = 20
    for series, colour in SERIES:
        parts += [
            f'<rect x="{x}" y="{height - 22}" width="12" height="12" fill="{colour}"/>',
            f'<text x="{x + 16}" y="{height - 12}">{escape(series)}</text>',
        ]
        x += 120
    parts.append(f'<text x="{width - 20}" y="{height - 12}" text-anchor="end">{body}-byte body; '
                 'bars: median, whiskers: min–max</text>')
    return parts


def _short(value):
    if value >= 10_000:
        return f"{value / 1000:.0f}k"
    if value >= 1000:
        return f"{value / 1000:.1f}k"
    return f"{value:.1f}" if value < 100 else f"{value:.0f}"
