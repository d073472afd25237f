"""The machine a measurement ran on (every results file of ``make bench`` records it)."""

from __future__ import annotations

import os
import platform
import time
from typing import Any

#: the fixed work :func:`speed` times (one core each): Python integer additions, and DuckDB
#: hashing a range of integers
SPEED_PYTHON_ADDS = 5_000_000
SPEED_DUCKDB_ROWS = 50_000_000


def speed() -> dict[str, float]:
    """Seconds this machine takes for a fixed piece of Python and of DuckDB work, one core each.

    Machines of the same kind differ: the same bench ran 2.4 times slower on one than on
    another. Each results file records these two figures, so runs on different machines can be
    compared by how fast the machine was, not only by their totals."""
    import duckdb

    started = time.perf_counter()
    total = 0
    for i in range(SPEED_PYTHON_ADDS):
        total += i
    python_s = time.perf_counter() - started
    con = duckdb.connect(config={"threads": 1})
    try:
        started = time.perf_counter()
        con.execute(f"select sum(hash(i)) from range({SPEED_DUCKDB_ROWS}) t(i)").fetchall()
        duckdb_s = time.perf_counter() - started
    finally:
        con.close()
    return {"python_s": round(python_s, 3), "duckdb_s": round(duckdb_s, 3)}


def machine() -> dict[str, Any]:
    mem_gb = None
    try:
        with open("/proc/meminfo") as fh:
            mem_gb = round(int(fh.readline().split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next(
                (line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), cpu
            )
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "memory_gb": mem_gb,
        "python": platform.python_version(),
        "system": platform.system(),
        "speed": speed(),
    }
