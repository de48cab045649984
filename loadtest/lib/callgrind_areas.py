"""Where the instructions of a callgrind dump go, by area, per request, and
the ten most expensive functions; with two dumps, before and after side by
side. usage: callgrind_areas.py DUMP REQUESTS [DUMP_AFTER REQUESTS_AFTER]

The areas are those of issue 21's profile: parsing, head writing, the
balancer, persistence, I/O plumbing (limpet's owned-buffer steps and
monoio's io_uring driver), monoio's task and timer runtime, limpet's
deadline wheel, the allocator, memcpy, TLS (rustls and ring), HTTP/2 (the
h2 crate and its codec), and the rest of limpet's request flow."""
import re
import sys

from callgrind_self import self_costs

# First match wins: the order puts the narrow patterns before the wide ones.
AREAS = (
    ("TLS (rustls, ring)", r"rustls|^ring::|ring_core|aes_|gcm_|ecp_nistz|x25519|sha256|chacha"),
    ("HTTP/2 (h2, hpack, codec)", r"^h2::|<h2::|hpack|tokio_util|limpet::proxy::h2|limpet::http::h2"),
    ("parsing", r"httparse|parse_request|parse_response|HeadFacts|has_bare_lf|authority::|http::field|http::request|http::response|chunked"),
    ("head writing", r"http::head|write_request_head|write_response_head|LineRuns|write_ip|write_field|names_others|ConnectionNames|disposition|is_hop_by_hop|itoa"),
    ("balancer", r"limpet::balance|Picker|Ring"),
    ("persistence", r"limpet::sticky|memchr|memmem|Cookie|TokenTable|xxh|hmac"),
    ("deadlines (limpet's wheel)", r"worker::deadline|Deadline|Timeout<"),
    ("allocator", r"^mi_|^_mi_|mimalloc|__rust_alloc|__rust_dealloc|__rust_realloc|\bfree\b|malloc"),
    ("memcpy / memmove", r"memcpy|memmove|memset"),
    ("I/O plumbing (limpet's steps, monoio's io_uring driver)", r"limpet::proxy::io|limpet::net::|read_more|write_all|write_range|monoio::driver|uring|slab|Lifecycle|io_uring|Op<|monoio::buf|monoio::net"),
    ("monoio runtime (tasks, wakers, timers)", r"monoio::|scoped_tls"),
    ("limpet request flow (decide, upstream, exchange, counters, log)", r"limpet::|Isolated|Pin<P>|AssertUnwindSafe|LocalKey|futures_util|poll_fn|select"),
)


def areas(costs):
    sums = {name: 0 for name, _ in AREAS}
    sums["other (std, libc)"] = 0
    for function, cost in costs.items():
        for name, pattern in AREAS:
            if re.search(pattern, function):
                sums[name] += cost
                break
        else:
            sums["other (std, libc)"] += cost
    return sums


def main():
    runs = [(sys.argv[i], int(sys.argv[i + 1])) for i in range(1, len(sys.argv) - 1, 2)]
    costs = [self_costs(path) for path, _ in runs]
    per = [{k: v / n for k, v in c.items()} for c, (_, n) in zip(costs, runs)]
    head = " | ".join(["before", "after"][: len(per)]) if len(per) > 1 else "instructions"
    print(f"| area | {head} |")
    print("|---|" + "---:|" * len(per))
    sums = [areas(p) for p in per]
    for name in sums[0]:
        print(f"| {name} | " + " | ".join(f"{s[name]:,.0f}" for s in sums) + " |")
    print("| **total** | " + " | ".join(f"**{sum(p.values()):,.0f}**" for p in per) + " |")
    for label, p in zip(["before", "after"] if len(per) > 1 else [""], per):
        print()
        print(f"Ten most expensive functions {label}:".replace("  ", " "))
        print()
        print("| instructions / request | function |")
        print("|---:|---|")
        for function, cost in sorted(p.items(), key=lambda kv: -kv[1])[:10]:
            print(f"| {cost:,.0f} | `{function[:110]}` |")


if __name__ == "__main__":
    main()
