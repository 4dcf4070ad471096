#!/usr/bin/env python3
"""Where one process's CPU went, from its folded stacks (inferno-collapse-perf:
`frame;frame;...;leaf count` per line), as two Markdown tables: self time by
component (the kernel's scheduler, SQLite, sqlx, librdkafka, the allocator,
Tokio, tracing, ...) beside the share of each thread, and the ten functions
with the most self time.

    top-self.py NAME FILE.folded
"""
import re
import sys
from collections import Counter

# A leaf frame's component, by the first pattern that matches it.
LEAF = [
    ("kernel: scheduling, futex, epoll", r"^(finish_task_switch|_raw_spin_unlock|__?schedule|futex|__futex|do_futex|ep_poll|do_epoll|try_to_wake_up)"),
    ("SQLite", r"^sqlite3"),
    ("librdkafka", r"^rd_"),
    ("allocator", r"^(_?mi_|_int_malloc|_int_free|malloc|free|cfree|realloc)"),
    ("memcpy", r"memmove|memcpy|memset"),
]
# Otherwise: the nearest Rust crate on the stack, named for a reader.
CRATES = {
    "sqlx_sqlite": "sqlx (SQLite driver)", "sqlx_core": "sqlx", "flume": "sqlx (flume channel)",
    "tokio": "Tokio", "mio": "Tokio", "tracing_subscriber": "tracing", "tracing": "tracing",
    "tracing_core": "tracing", "tracing_opentelemetry": "tracing", "opentelemetry": "OpenTelemetry",
    "opentelemetry_sdk": "OpenTelemetry", "apache_avro": "Avro", "serde_json": "JSON",
    "rdkafka": "librdkafka", "hyper": "HTTP", "hyper_util": "HTTP", "h2": "HTTP", "axum": "HTTP",
    "tower": "HTTP", "tower_http": "HTTP", "reqwest": "HTTP", "p256": "ES256", "jsonwebtoken": "ES256",
    "prometheus_client": "metrics", "chrono": "time",
}


def short(frame: str) -> str:
    """A frame without generic arguments and hash suffix."""
    frame = re.sub(r"::h[0-9a-f]{16}$", "", frame)
    depth, kept = 0, []
    for ch in frame:
        if ch == "<":
            depth += 1
        elif ch == ">":
            depth -= 1
        elif depth == 0:
            kept.append(ch)
    return ("".join(kept) or frame).replace("|", "\\|")[:110]


def component(frames: list[str]) -> str:
    leaf = frames[-1]
    for name, pattern in LEAF:
        if re.search(pattern, leaf):
            return name
    for frame in reversed(frames):
        m = re.match(r"<?([a-z_0-9]+)::", frame)
        if m and m.group(1) in CRATES:
            return CRATES[m.group(1)]
        if m and m.group(1).startswith("orderflow"):
            return "orderflow"
    return "other (kernel, libc)"


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 64
    name, path = sys.argv[1], sys.argv[2]
    selfs: Counter[str] = Counter()
    parts: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    total = 0
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            if not count.isdigit():
                continue
            n = int(count)
            frames = stack.split(";")
            total += n
            selfs[short(frames[-1])] += n
            parts[component(frames)] += n
            # perf names a sample's first frame after its thread (comm, 15 bytes).
            threads[re.sub(r"[-_]?[0-9]+$", "", frames[0])] += n
    share = lambda n: f"{100 * n / max(total, 1):.1f} %"
    print(f"### {name}\n")
    print("| self | component | | thread | share |")
    print("|---:|---|---|---|---:|")
    top_threads = threads.most_common(8)
    for i, (part, n) in enumerate(parts.most_common(8)):
        thread = f"`{top_threads[i][0]}` | {share(top_threads[i][1])}" if i < len(top_threads) else " | "
        print(f"| {share(n)} | {part} | | {thread} |")
    print("\n| self | function |")
    print("|---:|---|")
    for frame, n in selfs.most_common(10):
        print(f"| {share(n)} | `{frame}` |")
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
