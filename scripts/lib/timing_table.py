"""Prints where a test run's time went: the phases of scripts/test (NAME=SECONDS arguments) and,
from nextest's JUnit report, each test binary's tests, wall span, summed test time and slowest
test, slowest binary first.

    python3 scripts/lib/timing_table.py target/nextest/default/junit.xml [PHASE=SECONDS ...]
"""

import sys
import xml.etree.ElementTree as ElementTree
from datetime import datetime


def binaries(report_path):
    by_binary = {}
    for case in ElementTree.parse(report_path).getroot().iter("testcase"):
        seconds = float(case.get("time", "0"))
        start = datetime.fromisoformat(case.get("timestamp")).timestamp() if case.get("timestamp") else None
        entry = by_binary.setdefault(
            case.get("classname", "?"),
            {"tests": 0, "failed": 0, "sum": 0.0, "first": None, "last": None, "slowest": ("", 0.0)},
        )
        entry["tests"] += 1
        entry["failed"] += 1 if case.find("failure") is not None or case.find("error") is not None else 0
        entry["sum"] += seconds
        if start is not None:
            entry["first"] = start if entry["first"] is None else min(entry["first"], start)
            end = start + seconds
            entry["last"] = end if entry["last"] is None else max(entry["last"], end)
        if seconds > entry["slowest"][1]:
            entry["slowest"] = (case.get("name", "?"), seconds)
    return by_binary


def main():
    report_path, phases = sys.argv[1], sys.argv[2:]
    if phases:
        print(f"{'phase':<40} {'seconds':>8}")
        for phase in phases:
            name, _, seconds = phase.rpartition("=")
            print(f"{name:<40} {seconds:>8}")
        print()
    try:
        by_binary = binaries(report_path)
    except (OSError, ElementTree.ParseError) as error:
        print(f"no per-binary times: {error}")
        return
    print(f"{'test binary':<34} {'tests':>5} {'failed':>6} {'wall s':>7} {'sum s':>7}  slowest test (s)")
    rows = sorted(by_binary.items(), key=lambda item: -item[1]["sum"])
    for name, e in rows:
        wall = e["last"] - e["first"] if e["first"] is not None else 0.0
        slowest, slowest_seconds = e["slowest"]
        print(
            f"{name:<34} {e['tests']:>5} {e['failed']:>6} {wall:>7.1f} {e['sum']:>7.1f}"
            f"  {slowest} ({slowest_seconds:.1f})"
        )
    total = sum(e["sum"] for e in by_binary.values())
    print(f"{'all':<34} {sum(e['tests'] for e in by_binary.values()):>5} "
          f"{sum(e['failed'] for e in by_binary.values()):>6} {'':>7} {total:>7.1f}")


if __name__ == "__main__":
    main()
