#!/usr/bin/env python3
"""What the saga costs the broker and the database, counted at the source, for
`make bench-system` (tools/scripts/bench.sh) and the chart's sizing guide.

  saga-volume.py snapshot KAFKA_LOG_DIRS PG_URL > before.json
  ... load ...
  saga-volume.py snapshot KAFKA_LOG_DIRS PG_URL > after.json
  saga-volume.py per-order before.json after.json ORDERS

A snapshot holds, per topic, the records and bytes in its log segments (read
from the record-batch headers of the broker's `.log` files: records are counted
as written, compressed bytes as stored), and PostgreSQL's transaction commits
and WAL syncs (pg_stat_database, pg_stat_wal) across the five service
databases. `per-order` prints the differences divided by ORDERS, with the bytes
read by consumers (each topic's bytes times the consumer groups that read it).
"""
import json
import os
import struct
import subprocess
import sys

# Which services' consumer groups read each domain topic (services/*/src/lib.rs,
# SPEC.consumes): bytes out = bytes in x readers.
READERS = {
    "orders": ["order", "inventory", "notification"],
    "inventory": ["order", "payment"],
    "payments": ["order", "inventory", "shipping", "notification"],
    "shipments": ["order", "inventory", "payment"],
}
DATABASES = ["order", "inventory", "payment", "shipping", "notification"]


def log_stats(log_dirs):
    """{topic: [records, bytes]} over every partition's .log segments."""
    stats = {}
    for entry in os.listdir(log_dirs):
        topic, _, partition = entry.rpartition("-")
        path = os.path.join(log_dirs, entry)
        if not partition.isdigit() or not os.path.isdir(path) or topic.startswith("__"):
            continue
        records = size = 0
        for name in os.listdir(path):
            if not name.endswith(".log"):
                continue
            with open(os.path.join(path, name), "rb") as f:
                data = f.read()
            at = 0
            # Record batch v2: baseOffset int64, batchLength int32, ..., records count
            # int32 at byte 57 of the batch; the batch spans 12 + batchLength bytes.
            while at + 61 <= len(data):
                (length,) = struct.unpack_from(">i", data, at + 8)
                if length <= 0 or at + 12 + length > len(data):
                    break
                (count,) = struct.unpack_from(">i", data, at + 57)
                records += count
                size += 12 + length
                at += 12 + length
        s = stats.setdefault(topic, [0, 0])
        s[0] += records
        s[1] += size
    return stats


def pg_stats(url):
    """Commits per service database, and the server's WAL syncs."""
    names = ",".join(f"'{d}'" for d in DATABASES)
    query = (
        f"SELECT datname, xact_commit FROM pg_stat_database WHERE datname IN ({names})"
        " UNION ALL SELECT 'wal_syncs', wal_sync FROM pg_stat_wal"
    )
    out = subprocess.run(
        ["psql", "-X", "-At", "-F", " ", f"{url.rstrip('/')}/order", "-c", query],
        check=True, capture_output=True, text=True,
    ).stdout.split("\n")
    stats = dict(line.split() for line in out if line.strip())
    return {name: int(value) for name, value in stats.items()}


def snapshot(log_dirs, url):
    return {"topics": log_stats(log_dirs), "postgres": pg_stats(url)}


def per_order(before, after, orders):
    rows = []
    total_in = total_out = records_total = 0.0
    for topic, (records, size) in sorted(after["topics"].items()):
        r0, s0 = before["topics"].get(topic, [0, 0])
        records, size = (records - r0) / orders, (size - s0) / orders
        if records == 0:
            continue
        readers = len(READERS.get(topic, []))
        rows.append(f"  {topic:<24} {records:6.2f} records  {size:8.0f} B in  {size * readers:8.0f} B out ({readers} groups)")
        total_in += size
        total_out += size * readers
        records_total += records
    pg0, pg1 = before["postgres"], after["postgres"]
    delta = {k: (pg1[k] - pg0.get(k, 0)) / orders for k in pg1}
    commits = sum(delta[d] for d in DATABASES if d in delta)
    print(f"per order, over {orders} orders:")
    print("\n".join(rows))
    print(f"  {'all topics':<24} {records_total:6.2f} records  {total_in:8.0f} B in  {total_out:8.0f} B out")
    per_db = ", ".join(f"{d} {delta.get(d, 0):.1f}" for d in DATABASES)
    print(f"  PostgreSQL commits: {commits:.1f} ({per_db}); WAL syncs {delta['wal_syncs']:.2f}")
    print(f"RESULT records_per_order={records_total:.2f} bytes_in_per_order={total_in:.0f} "
          f"bytes_out_per_order={total_out:.0f} commits_per_order={commits:.1f} "
          f"wal_syncs_per_order={delta['wal_syncs']:.2f}")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "snapshot":
        json.dump(snapshot(sys.argv[2], sys.argv[3]), sys.stdout)
    elif len(sys.argv) == 5 and sys.argv[1] == "per-order":
        per_order(json.load(open(sys.argv[2])), json.load(open(sys.argv[3])), int(sys.argv[4]))
    else:
        sys.exit(__doc__)
