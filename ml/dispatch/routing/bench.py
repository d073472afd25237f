"""Routing benchmark: every engine on the Solomon instances, gap to the DIMACS best-known cost.

``python -m ml.dispatch.routing.bench [--time-limit S] [--engine E ...] [--seed N] [DIR]``
(``make bench-routing``) solves every instance of DIR (default: the shared Solomon set) with
each engine under the same time limit, re-checks every solution with the independent checker
and prints a table per engine with the mean gap; the rows go to
``bench/results/routing-<date>.json``. Gap = (cost - BKS) / BKS with the DIMACS convention
(distance truncated to 0.1, objective = total distance).
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
from datetime import UTC, datetime
from pathlib import Path

from ml.dispatch.routing.engines import ENGINES, solve
from ml.dispatch.routing.instance import InstanceError, read_instance
from ordertower.settings import PROJECT_ROOT, SHARED_DATASETS_DIR

SOLOMON_DIR = SHARED_DATASETS_DIR / "vrptw" / "solomon"
RESULTS_DIR = PROJECT_ROOT / "bench" / "results"


def instance_files(instances_dir: Path) -> list[Path]:
    """The instances of a folder: its ``vrplib/*.vrp``, else ``classic_txt/*.txt``, else its own."""
    d = Path(instances_dir)
    for folder, pattern in ((d / "vrplib", "*.vrp"), (d / "classic_txt", "*.txt"), (d, "*.vrp")):
        files = sorted(folder.glob(pattern))
        if files:
            return files
    return sorted(d.glob("*.txt"))


def best_known(instances_dir: Path) -> dict[str, float]:
    """``dimacs_bks_cost_trunc1dec`` by instance, from ``best_known.csv`` here or one level up."""
    d = Path(instances_dir)
    for path in (d / "best_known.csv", d.parent / "best_known.csv"):
        if path.is_file():
            with path.open(newline="") as fh:
                return {
                    row["instance"]: float(row["dimacs_bks_cost_trunc1dec"])
                    for row in csv.DictReader(fh)
                }
    return {}


def run(
    instances_dir: Path = SOLOMON_DIR,
    engines: tuple[str, ...] | list[str] = ENGINES,
    time_limit: float = 10.0,
    seed: int = 1,
    progress: bool = False,
    only: tuple[str, ...] | list[str] | None = None,
) -> list[dict]:
    """One row per instance and engine: distance, bks, gap %, vehicles, seconds, feasible
    (``only``: instance names to keep, e.g. a sample for ``make bench``)."""
    files = instance_files(instances_dir)
    if only:
        files = [f for f in files if f.stem in set(only)]
    if not files:
        raise InstanceError(f"{instances_dir}: no .vrp or .txt instances")
    bks = best_known(instances_dir)
    rows = []
    for path in files:
        instance = read_instance(path)
        for engine in engines:
            sol = solve(instance, engine=engine, time_limit=time_limit, seed=seed)
            ref = bks.get(instance.name)
            gap = (sol.distance - ref) / ref * 100 if ref and sol.feasible else None
            row = {
                "instance": instance.name,
                "engine": engine,
                "distance": round(sol.distance, 1),
                "bks": ref,
                "gap_pct": None if gap is None else round(gap, 2),
                "vehicles": sol.vehicles,
                "seconds": round(sol.seconds, 2),
                "feasible": sol.feasible,
            }
            rows.append(row)
            if progress:
                print(json.dumps(row), file=sys.stderr, flush=True)
    return rows


def summary(rows: list[dict]) -> dict[str, dict]:
    out = {}
    for engine in dict.fromkeys(r["engine"] for r in rows):
        mine = [r for r in rows if r["engine"] == engine]
        gaps = [r["gap_pct"] for r in mine if r["gap_pct"] is not None]
        out[engine] = {
            "instances": len(mine),
            "feasible": sum(r["feasible"] for r in mine),
            "mean_gap_pct": round(statistics.fmean(gaps), 2) if gaps else None,
            "max_gap_pct": round(max(gaps), 2) if gaps else None,
            "mean_seconds": round(statistics.fmean(r["seconds"] for r in mine), 2),
            "mean_vehicles": round(statistics.fmean(r["vehicles"] for r in mine), 1),
        }
    return out


def table(rows: list[dict], engine: str) -> str:
    lines = [
        f"## {engine}",
        "",
        "| instance | distance | BKS | gap % | vehicles | seconds | feasible |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        if r["engine"] != engine:
            continue
        gap = "-" if r["gap_pct"] is None else f"{r['gap_pct']:.2f}"
        lines.append(
            f"| {r['instance']} | {r['distance']:.1f} | {r['bks'] or '-'} | {gap} | "
            f"{r['vehicles']} | {r['seconds']:.1f} | {'yes' if r['feasible'] else 'NO'} |"
        )
    s = summary(rows)[engine]
    lines += [
        "",
        f"mean gap {s['mean_gap_pct']} %, max gap {s['max_gap_pct']} %, "
        f"{s['feasible']}/{s['instances']} feasible, mean {s['mean_seconds']} s",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ml.dispatch.routing.bench")
    parser.add_argument("instances_dir", nargs="?", default=str(SOLOMON_DIR))
    parser.add_argument("--engine", action="append", choices=ENGINES, help="repeatable")
    parser.add_argument("--time-limit", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", help="JSON file (default bench/results/routing-<date>.json)")
    args = parser.parse_args(argv)
    if not 0 < args.time_limit < float("inf"):
        parser.error("--time-limit must be a positive number of seconds")
    engines = tuple(args.engine or ENGINES)
    try:
        rows = run(Path(args.instances_dir), engines, args.time_limit, args.seed, progress=True)
    except InstanceError as exc:
        print(f"bench-routing: {exc}", file=sys.stderr)
        return 1
    for engine in engines:
        print(table(rows, engine) + "\n")

    from ordertower.machine import machine

    now = datetime.now(UTC)
    out = Path(args.out) if args.out else RESULTS_DIR / f"routing-{now.date().isoformat()}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "date": now.isoformat(timespec="seconds"),
                "machine": machine(),
                "time_limit": args.time_limit,
                "seed": args.seed,
                "convention": "DIMACS: Euclidean truncated to 0.1, travel time = distance, "
                "objective = total distance",
                "summary": summary(rows),
                "rows": rows,
            },
            indent=1,
        )
        + "\n"
    )
    print(f"results written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
