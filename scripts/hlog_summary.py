#!/usr/bin/env python3
"""Reads HdrHistogram interval logs with HdrHistogram's own Python reader and prints, per file,
the number of intervals, the total count and a few percentiles (in the logs' unit, nanoseconds)
as one JSON object. The end-to-end tests compare these figures with wsbench's summary.json,
which proves third-party tools read wsbench's logs.

Needs the PyPI package `hdrhistogram` (import name `hdrh`).
Usage: hlog_summary.py FILE.hlog [FILE.hlog ...]
"""
import json
import sys

from hdrh.histogram import HdrHistogram
from hdrh.log import HistogramLogReader


def summarize(path):
    reference = HdrHistogram(1, 60_000_000_000, 3)
    reader = HistogramLogReader(path, reference)
    total = HdrHistogram(1, 60_000_000_000, 3)
    intervals = 0
    while True:
        h = reader.get_next_interval_histogram()
        if h is None:
            break
        intervals += 1
        total.add(h)
    reader.close()
    return {
        "intervals": intervals,
        "count": total.get_total_count(),
        "p50": total.get_value_at_percentile(50.0),
        "p99": total.get_value_at_percentile(99.0),
        "max": total.get_max_value(),
    }


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    print(json.dumps({p: summarize(p) for p in sys.argv[1:]}))
