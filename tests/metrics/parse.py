"""Parses a Prometheus exposition read on stdin with the Prometheus project's Python client
(prometheus_client on PyPI), an implementation independent of ours, and prints what it read as
JSON: {family: {"type": ..., "samples": [{"name", "labels", "value"}]}}. A parse error exits
non-zero with the parser's message.

    python parse.py text          # the classic text format 0.0.4
    python parse.py openmetrics   # OpenMetrics 1.0 (strict: # EOF, names, suffixes, ...)
"""

import json
import sys

from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics
from prometheus_client.parser import text_string_to_metric_families as classic


def main() -> int:
    parse = {"text": classic, "openmetrics": openmetrics}[sys.argv[1]]
    families = {}
    try:
        for family in parse(sys.stdin.read()):
            if family.name in families:
                raise ValueError(f"family {family.name} appears twice")
            families[family.name] = {
                "type": family.type,
                "samples": [
                    {"name": s.name, "labels": s.labels, "value": s.value} for s in family.samples
                ],
            }
    except ValueError as err:
        print(f"parse error: {err}", file=sys.stderr)
        return 1
    json.dump(families, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
