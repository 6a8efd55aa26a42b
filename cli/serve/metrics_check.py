"""Reads a scrape of `stowage serve`'s /metrics with the Prometheus client's
own text parser (prometheus_client.parser), checks what the format asks of
every family, and prints each sample as `name{label="value",...} value`
(labels sorted, integral values without a fraction) for the test to compare.

Exit status: 0 when the scrape parsed and every check held; 1 with the
reason on stderr otherwise; 3 when prometheus_client cannot be imported.

Usage: metrics_check.py SCRAPE_FILE
"""
import math
import sys

try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError as e:
    sys.stderr.write(f"prometheus_client is not installed for {sys.executable}: {e}\n")
    sys.exit(3)

ALLOWED_LABELS = {"route", "status", "outcome", "scheme", "operation", "reason", "le"}


def fail(message):
    sys.stderr.write(message + "\n")
    sys.exit(1)


def value_text(v):
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return str(int(v)) if v == int(v) else repr(v)


def check_histogram(family):
    series = {}
    for s in family.samples:
        key = tuple(sorted((k, v) for k, v in s.labels.items() if k != "le"))
        entry = series.setdefault(key, {"buckets": [], "count": None, "sum": None})
        if s.name.endswith("_bucket"):
            entry["buckets"].append((float(s.labels["le"]), s.value))
        elif s.name.endswith("_count"):
            entry["count"] = s.value
        elif s.name.endswith("_sum"):
            entry["sum"] = s.value
    for key, entry in series.items():
        buckets = entry["buckets"]
        where = f"{family.name}{dict(key)}"
        if not buckets or buckets[-1][0] != math.inf:
            fail(f"{where}: no +Inf bucket last")
        bounds = [b for b, _ in buckets]
        if bounds != sorted(bounds) or len(set(bounds)) != len(bounds):
            fail(f"{where}: bucket bounds not increasing: {bounds}")
        counts = [c for _, c in buckets]
        if any(later < earlier for earlier, later in zip(counts, counts[1:])):
            fail(f"{where}: buckets not cumulative: {counts}")
        if entry["count"] is None or entry["count"] != counts[-1]:
            fail(f"{where}: _count {entry['count']} is not the +Inf bucket {counts[-1]}")
        if entry["sum"] is None or entry["sum"] < 0:
            fail(f"{where}: _sum missing or negative")


def main():
    text = open(sys.argv[1], encoding="utf-8").read()
    lines = []
    try:
        families = list(text_string_to_metric_families(text))
    except Exception as e:  # the parser's own complaint, whatever its type
        fail(f"the parser refused the scrape: {e!r}")
    for family in families:
        if not family.name.startswith("stowage_serve_"):
            fail(f"{family.name}: not under the stowage_serve_ prefix")
        if family.type not in ("counter", "gauge", "histogram"):
            fail(f"{family.name}: type {family.type!r} (a HELP or TYPE line is missing?)")
        if not family.documentation:
            fail(f"{family.name}: no HELP text")
        if family.type == "histogram":
            if not family.name.endswith("_seconds"):
                fail(f"{family.name}: a duration histogram must end in _seconds")
            check_histogram(family)
        for s in family.samples:
            if family.type == "counter" and not s.name.endswith("_total"):
                fail(f"{s.name}: a counter sample without _total")
            if not set(s.labels) <= ALLOWED_LABELS:
                fail(f"{s.name}: unexpected labels {sorted(s.labels)}")
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
            lines.append(f"{s.name}{{{labels}}} {value_text(s.value)}")
    print("\n".join(lines))


main()
