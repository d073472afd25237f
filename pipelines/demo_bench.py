"""``make bench-demo``: what a newcomer meets, measured. ``make demo`` from a fresh clone.

The committed HEAD is cloned into a scratch folder and ``make demo`` runs there exactly as the
README says (install included: a new virtual environment from the lock file and uv's cache;
nothing is downloaded when the cache holds the locked wheels), with its own home, so neither the
developer's ``.ordertower`` nor the checkout is touched. Every output line is kept with the
second it appeared at, so the result shows how long each stage took and what the newcomer read.
Result: ``bench/results/demo-<date>T<hhmm>.json``, shown in BENCHMARKS.md (target: at most 10 minutes,
install included, on 2 cores).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ordertower.settings import PROJECT_ROOT

RESULTS_DIR = PROJECT_ROOT / "bench" / "results"
TARGET_SECONDS = 600
#: lines a newcomer should not have to read (library warnings, tracebacks)
_NOISE = re.compile(r"warning|traceback|deprecat", re.I)
#: the demo's own milestones: its "== ..." headers and materialize's "[n/N] stage" lines
_MILESTONE = re.compile(r"^(== |\[\d+/\d+\] )")


def _machine() -> dict[str, Any]:
    from pipelines.bench import machine

    return machine()


def run_demo_bench(orders: int | None = None, days: int | None = None) -> Path:
    """Clone HEAD, run ``make demo`` there and write the timed transcript's summary."""
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    work = Path(tempfile.mkdtemp(prefix="ordertower-demo-bench-"))
    clone = work / "clone"
    try:
        subprocess.run(["git", "clone", "-q", str(PROJECT_ROOT), str(clone)], check=True)
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("ORDERTOWER_", "DAGSTER_", "MLFLOW_", "VIRTUAL_ENV", "CI"))
        }
        # the clone's own home and venv; Olist from where this checkout finds it
        args = ["make", "demo", f"OLIST_DIR={_olist_dir()}"]
        if orders:
            args.append(f"ORDERS={orders}")
        if days:
            args.append(f"DAYS={days}")
        started = time.perf_counter()
        transcript: list[tuple[float, str]] = []
        with subprocess.Popen(
            args,
            cwd=clone,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        ) as proc:
            assert proc.stdout is not None
            for line in proc.stdout:
                transcript.append((round(time.perf_counter() - started, 1), line.rstrip("\n")))
                print(line, end="", flush=True)
            rc = proc.wait()
        seconds = round(time.perf_counter() - started, 1)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    # no path of this machine in a committed result: the clone is <clone>, Olist relative
    places = {str(clone): "<clone>", str(_olist_dir()): OLIST_DEFAULT, str(work): "<scratch>"}
    transcript = [(at, _scrub(line, places)) for at, line in transcript]
    args = [_scrub(a, places) for a in args]
    result = summarise(transcript, rc, seconds)
    result |= {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": _machine(),
        "commit": commit,
        "command": " ".join(args),
        "target_seconds": TARGET_SECONDS,
    }
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"demo-{datetime.now(UTC).strftime('%Y-%m-%dT%H%M')}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    from pipelines.bench import write_benchmarks_md

    write_benchmarks_md()
    return path


#: where the Makefile's OLIST_DIR points by default, relative to the checkout
OLIST_DEFAULT = "../shared/datasets/olist/subset_10k_2017"


def _scrub(text: str, places: dict[str, str]) -> str:
    for path, name in places.items():
        text = text.replace(path, name)
    return text


def _olist_dir() -> Path:
    return (PROJECT_ROOT / OLIST_DEFAULT).resolve()


def summarise(transcript: list[tuple[float, str]], rc: int, seconds: float) -> dict[str, Any]:
    """The numbers of a timed ``make demo`` transcript: total, install, each milestone (with
    the second it appeared), how many lines were printed and how many of them were noise."""
    milestones = [{"at_s": at, "line": line} for at, line in transcript if _MILESTONE.match(line)]
    first_stage = next(
        (
            m["at_s"]
            for m in milestones
            if m["line"].startswith("== ") and not m["line"].startswith("== installing")
        ),
        None,
    )
    noise = [line for _, line in transcript if _NOISE.search(line)]
    return {
        "rc": rc,
        "seconds": seconds,
        "install_seconds": first_stage,
        "lines": len(transcript),
        "noise_lines": len(noise),
        "noise_examples": noise[:5],
        "milestones": milestones,
        "last_lines": [line for _, line in transcript[-8:]],
    }


def _speed(machine: dict[str, Any]) -> str:
    from pipelines.bench import _speed as speed

    return speed(machine)


def demo_lines() -> list[str]:
    """BENCHMARKS.md's section: every ``demo-<date>T<hhmm>.json``, newest first."""
    files = sorted(RESULTS_DIR.glob("demo-*.json"), reverse=True)
    if not files:
        return []
    lines = [
        "## `make demo` from a fresh clone (`make bench-demo`)",
        "",
        "The committed HEAD cloned into a scratch folder, then `make demo` as the README says:",
        "install (a new virtual environment from the lock file), simulate, Olist, every asset,",
        "the live path over RabbitMQ, the summary. Target: at most "
        f"{TARGET_SECONDS // 60} minutes on 2 cores, with progress. *Machine speed*: seconds "
        "of a fixed Python loop and a fixed DuckDB query on the machine of the run (lower is "
        "faster; blank before it was recorded): the same commit takes longer on a slower "
        "machine.",
        "",
        "| date | commit | cores | machine speed s | command | rc | total s | install s | "
        "lines printed | noise lines |",
        "|---|---|---:|---|---|---:|---:|---:|---:|---:|",
    ]
    for f in files:
        d = json.loads(f.read_text())
        lines.append(
            f"| {d['date'][:16]} | {d['commit']} | {d['machine']['cpus']} | "
            f"{_speed(d['machine'])} | `{d['command']}` | "
            f"{d['rc']} | {d['seconds']:,.0f} | {d['install_seconds'] or '-'} | {d['lines']} | "
            f"{d['noise_lines']} |"
        )
    newest = json.loads(files[0].read_text())
    lines += [
        "",
        f"Milestones of the newest run (second they appeared, {newest['date'][:10]}):",
        "",
    ]
    lines += ["```"] + [f"{m['at_s']:>7.1f}s  {m['line']}" for m in newest["milestones"]] + ["```"]
    lines.append("")
    return lines
