"""Summarise a pytest JUnit report as JSON: how many tests, their outcome, the wall time of the
run and its slowest tests (setup, call and teardown together), the figures the README quotes.

    python .ci/test_summary.py REPORT.xml [--wall SECONDS] [--top N] > bench/results/tests-DATE.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import xml.etree.ElementTree as ET
from datetime import UTC, datetime


def _speed() -> dict[str, float] | None:
    """The machine's speed (ordertower.machine.speed): runs on different machines compare."""
    try:
        from ordertower.machine import speed
    except ImportError:
        return None
    return speed()


def summarise(path: str, wall: float | None, top: int) -> dict:
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    cases = []
    for suite in suites:
        for case in suite.iter("testcase"):
            outcome = "passed"
            for tag in ("failure", "error", "skipped"):
                if case.find(tag) is not None:
                    outcome = {"failure": "failed", "error": "error"}.get(tag, tag)
                    break
            name = f"{case.get('classname', '')}::{case.get('name', '')}"
            cases.append((name, float(case.get("time") or 0), outcome, case.get("classname", "")))
    counts: dict[str, int] = {}
    for _, _, outcome, _ in cases:
        counts[outcome] = counts.get(outcome, 0) + 1
    modules: dict[str, float] = {}
    for _, seconds, _, module in cases:  # a module's tests (or a class's, for class tests)
        modules[module] = modules.get(module, 0.0) + seconds
    return {
        "written_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "speed": _speed(),
        },
        "tests": len(cases),
        "outcomes": counts,
        # the pytest session, and the whole CI step around it (install included) when given
        "pytest_seconds": round(float(suites[0].get("time") or 0), 1),
        "wall_seconds": round(wall, 1) if wall is not None else None,
        "test_seconds": round(sum(c[1] for c in cases), 1),
        "slowest": [
            {"test": n, "seconds": round(s, 1), "outcome": o}
            for n, s, o, _ in sorted(cases, key=lambda c: -c[1])[:top]
        ],
        "modules": {
            m: round(s, 1) for m, s in sorted(modules.items(), key=lambda kv: -kv[1])[:top]
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report")
    parser.add_argument("--wall", type=float, help="the run's wall time (default: the report's)")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args(argv)
    json.dump(summarise(args.report, args.wall, args.top), sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
