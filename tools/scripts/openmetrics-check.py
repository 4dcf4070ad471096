#!/usr/bin/python3
"""Parses an OpenMetrics exposition (stdin) with prometheus_client's strict
OpenMetrics parser (Debian's python3-prometheus-client; the parser Prometheus'
own Python client ships for the format) and prints, as JSON, every family:
{"name": {"type": ..., "help": ..., "samples": N}}. Exits 1 with the parser's
message when the text is not valid OpenMetrics."""
import json
import sys

from prometheus_client.openmetrics.parser import text_string_to_metric_families

text = sys.stdin.read()
try:
    families = {
        f.name: {"type": f.type, "help": f.documentation, "samples": len(f.samples)}
        for f in text_string_to_metric_families(text)
    }
except Exception as e:  # the parser raises ValueError and friends
    print(f"not valid OpenMetrics: {e}", file=sys.stderr)
    sys.exit(1)
json.dump(families, sys.stdout)
