"""Latency of the dashboards as a user sees it, in headless Chromium (``make bench-ui``).

On the current lake (``ORDERTOWER_HOME``), with ``streamlit run`` serving the app:

* **warm-up**: every page opened once (imports, the lake connection, the default queries);
* **page renders**: every page reached through the sidebar, ``rounds`` times, from the click to
  the end of the page's script run (the queries are in the cache for 60 s, as in production);
* **cold renders** (the baseline): each page's default view with Streamlit's query cache
  emptied first, which is every render of an app without the cached data-access module;
* **filter changes**: a warehouse added on KPIs, Carbon and Exceptions, a plan switched on
  Dispatch, an order searched on Order tracking: each a value not seen before, so the queries
  really run (a cache miss), from the click or key that committed it to the end of the run;
* **during a materialisation**: a round of page renders while ``ordertower materialize``
  rebuilds marts in another process, counting any error a page shows.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from dashboards import probe

#: Sidebar titles of the pages, in the order the bench visits them.
TITLES = [
    "Order tracking",
    "Exceptions",
    "Dispatch",
    "KPIs",
    "Carbon",
    "Risk review",
    "Data quality",
    "Audit log",
]
#: What the concurrent materialisation rebuilds (real dbt writes to tables the pages read).
WRITE_SELECTION = "key:marts/fct_order_exceptions or key:marts/kpi_daily or key:marts/kpi_weekly"


def _summary(samples: list[float]) -> dict[str, Any]:
    ordered = sorted(samples)
    if not ordered:
        return {"n": 0}
    p95 = ordered[min(len(ordered) - 1, max(0, round(0.95 * len(ordered)) - 1))]
    return {
        "n": len(ordered),
        "p50_s": round(statistics.median(ordered), 3),
        "p95_s": round(p95, 3),
        "max_s": round(ordered[-1], 3),
    }


def _sample_orders(n: int) -> list[str]:
    from ordertower.lake import connect

    con = connect(read_only=True)
    try:
        return [
            r[0]
            for r in con.execute(
                f"select order_id from marts.fct_orders "
                f"using sample reservoir({int(n)} rows) repeatable (7)"
            ).fetchall()
        ]
    finally:
        con.close()


def _warehouses() -> list[str]:
    from ordertower.lake import connect

    con = connect(read_only=True)
    try:
        return [
            r[0]
            for r in con.execute(
                "select warehouse_id from marts.dim_warehouse order by 1"
            ).fetchall()
        ]
    finally:
        con.close()


def _waves() -> list[str]:
    """The latest waves (the dispatch page's default date window), newest first."""
    from ordertower.lake import connect

    con = connect(read_only=True)
    try:
        return [
            str(r[0])
            for r in con.execute(
                "select wave_date from marts.fct_dispatch_plan_vs_baseline order by 1 desc limit 20"
            ).fetchall()
        ]
    finally:
        con.close()


def measure(rounds: int = 10, log: Path | None = None) -> dict[str, Any]:
    """Run the bench on the current lake; returns the figures (see the module doc)."""
    from ordertower.settings import get_settings

    home = get_settings().home
    orders = _sample_orders(rounds)
    warehouses = _warehouses()
    waves = _waves()
    renders: dict[str, list[float]] = {t: [] for t in TITLES}
    cold: dict[str, float] = {}
    filters: dict[str, list[float]] = {}
    errors: list[str] = []
    during: list[float] = []
    during_errors: list[str] = []
    started = time.perf_counter()
    # developer toolbar: the cold baseline empties the caches with its "Clear caches" shortcut
    # (the app's own config shows viewers no developer options)
    developer = ("--client.toolbarMode", "developer")
    with (
        probe.serve({"ORDERTOWER_HOME": str(home)}, log=log, options=developer) as url,
        probe.browser() as page,
    ):
        p = probe.Probe(page, url, timeout_ms=120_000)
        probe.sign_in(page, url, "admin")  # every page and query needs a signed-in role
        p.open("")  # Order tracking, the default page
        for title in [*TITLES[1:], TITLES[0]]:  # warm-up (a click on the current page is no run)
            p.navigate(title)
        errors += p.errors()

        paths = dict(zip(TITLES, probe.PAGES.values(), strict=True))
        for title in TITLES:  # baseline: the default view without the query cache
            _clear_cache(p)
            p.open(paths[title])
            cold[title] = p.last_run_seconds()  # the script run (the page load is not counted)

        for _ in range(rounds):
            for title in TITLES:
                renders[title].append(p.navigate(title))
        errors += p.errors()

        def change(name: str, seconds: float) -> None:
            filters.setdefault(name, []).append(seconds)

        for i in range(rounds):
            wh = warehouses[i % len(warehouses)]
            for title in ("KPIs", "Carbon", "Exceptions"):
                p.navigate(title)
                change(f"{title}: add warehouse", p.act(probe.pick("Warehouses", wh)))
                change(f"{title}: back to all warehouses", p.act(probe.clear("Warehouses")))
            p.navigate("Dispatch")
            if len(waves) > 1:  # the page opens on the newest wave: pick another (a change)
                wave = waves[1 + i % (len(waves) - 1)]
                change("Dispatch: pick a wave", p.act(probe.select("Wave", wave)))
            p.navigate("Order tracking")
            change("Order tracking: search an order", p.act(probe.search(orders[i % len(orders)])))
        errors += p.errors()

        writer = subprocess.Popen(
            [sys.executable, "-m", "pipelines.cli", "materialize", "--select", WRITE_SELECTION],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            while writer.poll() is None:
                for title in [
                    *TITLES[1:],
                    TITLES[0],
                ]:  # from Order tracking, where the last step was
                    during.append(p.navigate(title))
                    during_errors += p.errors()
                    p.page_errors.clear()
        finally:
            writer.wait()
        write_rc = writer.returncode
    all_renders = [s for samples in renders.values() for s in samples]
    all_filters = [s for samples in filters.values() for s in samples]
    return {
        "rounds": rounds,
        "seconds": round(time.perf_counter() - started, 1),
        "renders": {t: _summary(s) for t, s in renders.items()},
        "renders_all": _summary(all_renders),
        "cold_renders": {t: round(s, 3) for t, s in cold.items()},
        "filters": {k: _summary(v) for k, v in filters.items()},
        "filters_all": _summary(all_filters),
        "during_materialisation": {
            **_summary(during),
            "selection": WRITE_SELECTION,
            "materialise_rc": write_rc,
            "errors": during_errors[:10],
        },
        "errors": errors[:10],
    }


def _clear_cache(p: probe.Probe) -> None:
    """Empty the app's query cache the way a user can: the "Clear caches" keyboard shortcut."""
    p.page.keyboard.press("c")
    p.page.get_by_role("dialog").get_by_role("button", name="Clear caches").click(timeout=5_000)
    p.page.wait_for_timeout(300)
