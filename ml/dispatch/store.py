"""Dispatch tables in the lake: what a wave reads (dbt relations) and what plans write (``ml``).

Functions take an open DuckDB connection with the lake attached (``ordertower.lake.connect``).
Writes replace one wave (delete its date, insert, one transaction), so re-planning a wave never
duplicates it.
"""

from __future__ import annotations

from datetime import date

import duckdb
import pandas as pd

from ml.dispatch.config import DispatchPolicy
from ml.dispatch.network import Network
from ml.dispatch.wave import LINE_COLUMNS, Wave
from ordertower.lake import table_exists

LINES = "intermediate.int_dispatch_lines"
INVENTORY = "marts.fct_inventory_daily"
WAREHOUSES = "marts.dim_warehouse"
SEED_SCHEMA = "staging"  # dbt seeds land beside the staging views

SHIPMENTS = "ml.dispatch_shipments"
WAVES = "ml.dispatch_waves"
ROUTES = "ml.route_plans"
STOPS = "ml.route_stops"

#: column types of the tables dispatch writes (created on first use; staging reads them)
COLUMNS: dict[str, dict[str, str]] = {
    SHIPMENTS: {
        "wave_date": "date",
        "plan": "varchar",
        "order_id": "varchar",
        "warehouse_id": "varchar",
        "lane_variant": "varchar",
        "modes": "varchar",
        "is_deferred": "boolean",
        "lines": "integer",
        "units": "integer",
        "weight_kg": "double",
        "distance_km": "double",
        "transport_cost_eur": "double",
        "kg_co2e": "double",
        "ship_date": "date",
        "planned_delivery_date": "date",
        "promised_delivery_date": "date",
        "promise_type": "varchar",
        "ship_lat": "double",
        "ship_lon": "double",
        "is_on_time": "boolean",
        "is_split_order": "boolean",
    },
    WAVES: {
        "wave_date": "date",
        "plan": "varchar",
        "orders": "integer",
        "lines": "integer",
        "units": "integer",
        "shipments": "integer",
        "cost_eur": "double",
        "cost_per_order_eur": "double",
        "cost_per_item_eur": "double",
        "kg_co2e_per_order": "double",
        "promise_hit_rate": "double",
        "next_day_orders": "integer",
        "next_day_hit_rate": "double",
        "next_day_hit_rate_feasible": "double",
        "split_rate": "double",
        "deferred_orders": "integer",
        "unfilled_lines": "integer",
        "green_share": "double",
        "max_utilisation": "double",
        "solver_status": "varchar",
        "solve_seconds": "double",
        "proven_gap": "double",
        "subproblems": "integer",
        "utilisation_json": "varchar",
        "planned_at": "timestamptz",
    },
    ROUTES: {
        "wave_date": "date",
        "route_id": "varchar",
        "warehouse_id": "varchar",
        "vehicle_no": "integer",
        "engine": "varchar",
        "stops": "integer",
        "load_kg": "double",
        "distance_km": "double",
        "duration_min": "double",
        "start_min": "double",
        "end_min": "double",
        "kg_co2e": "double",
        "is_feasible": "boolean",
        "solve_seconds": "double",
        "planned_at": "timestamptz",
    },
    STOPS: {
        "wave_date": "date",
        "route_id": "varchar",
        "stop_no": "integer",
        "order_id": "varchar",
        "warehouse_id": "varchar",
        "lat": "double",
        "lon": "double",
        "load_kg": "double",
        "window_start_min": "double",
        "window_end_min": "double",
        "arrival_min": "double",
    },
}


class DispatchDataError(RuntimeError):
    """The lake lacks what dispatch planning reads (the message says which relation)."""


def _frame(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> pd.DataFrame:
    try:
        return con.execute(sql, params or []).df()
    except duckdb.CatalogException as exc:
        raise DispatchDataError(
            f"the lake lacks a relation dispatch needs ({exc}); materialise the lake first"
        ) from exc


def load_network(con: duckdb.DuckDBPyConnection, policy: DispatchPolicy) -> Network:
    warehouses = _frame(con, f"select * from {WAREHOUSES} order by warehouse_id")
    factors = _frame(con, f"select * from {SEED_SCHEMA}.freight_emission_factors")
    rates = _frame(con, f"select * from {SEED_SCHEMA}.freight_rates")
    shifts = _frame(con, f"select * from {SEED_SCHEMA}.green_mode_shift")
    return Network(warehouses, factors, rates, shifts, policy.network)


def wave_dates(con: duckdb.DuckDBPyConnection) -> list[date]:
    rows = _frame(con, f"select distinct wave_date from {LINES} order by 1")
    return [d.date() if hasattr(d, "date") else d for d in rows["wave_date"]]


def load_wave(
    con: duckdb.DuckDBPyConnection,
    wave_date: date,
    policy: DispatchPolicy,
    network: Network | None = None,
) -> Wave:
    """The wave's order lines and the stock available at its start (:func:`load_stock`)."""
    return load_waves(con, [wave_date], policy, network)[wave_date]


def load_stock(con: duckdb.DuckDBPyConnection, wave_date: date) -> pd.DataFrame:
    """Units available per warehouse and SKU when the wave starts: the previous day's closing
    snapshot; on the lake's first day, that day's on-hand."""
    return _stocks(con, [wave_date]).drop(columns="__wave")


def _stocks(con: duckdb.DuckDBPyConnection, days: list[date]) -> pd.DataFrame:
    """:func:`load_stock` for several days in one query, each row with its day (``__wave``)."""
    return _frame(
        con,
        f"""
        with wanted as (select unnest(?::date[]) as wave_date),
        days as (
            select w.wave_date,
                   (select max(snapshot_date) from {INVENTORY} i
                    where i.snapshot_date < w.wave_date) as day
            from wanted w
        )
        select d.wave_date as __wave, i.warehouse_id, i.sku_id, i.available_qty
        from days d join {INVENTORY} i on i.snapshot_date = d.day
        union all
        select d.wave_date, i.warehouse_id, i.sku_id, greatest(i.on_hand_qty, 0)
        from days d join {INVENTORY} i on d.day is null and i.snapshot_date = d.wave_date
        """,
        [list(days)],
    )


def load_waves(
    con: duckdb.DuckDBPyConnection,
    days: list[date],
    policy: DispatchPolicy,
    network: Network | None = None,
) -> dict[date, Wave]:
    """The waves of ``days`` from one query for their order lines and one for their stock:
    every query on the lake has a fixed cost before it reads a row, and a backfill plans many
    waves."""
    network = network or load_network(con, policy)
    cols = ", ".join(LINE_COLUMNS)
    # a range, which the lake prunes its files by (an IN list of a parameter it does not)
    lines = _frame(
        con,
        f"select wave_date as __wave, {cols} from {LINES} where wave_date between ? and ?",
        [min(days), max(days)],
    )
    stock = _stocks(con, days)
    line_days = _as_dates(lines["__wave"])
    stock_days = _as_dates(stock["__wave"])
    out = {}
    for day in days:
        mine = lines.loc[line_days == day, LINE_COLUMNS]
        held = stock.loc[stock_days == day, ["warehouse_id", "sku_id", "available_qty"]]
        out[day] = Wave.build(
            day, mine.reset_index(drop=True), held.reset_index(drop=True), network, policy
        )
    return out


def _as_dates(column: pd.Series) -> pd.Series:
    """A DATE column as Python dates, whether DuckDB gave dates or timestamps."""
    return pd.Series([d.date() if hasattr(d, "date") else d for d in column], dtype=object)


def _exists(con: duckdb.DuckDBPyConnection, qualified: str) -> bool:
    schema, table = qualified.split(".")
    return table_exists(con, schema, table)


def replace_days(
    con: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame, days: list[date]
) -> int:
    """Replace the rows of ``table`` whose ``wave_date`` is one of ``days`` by ``frame``, in one
    transaction (the table is created from the frame on first use)."""
    con.register("new_rows", frame)
    try:
        con.execute("begin")
        con.execute(f"create schema if not exists {table.split('.')[0]}")
        # no catalog query first: information_schema costs 0.2 s a call on the lake
        cols = ", ".join(f"{c} {t}" for c, t in COLUMNS[table].items())
        con.execute(f"create table if not exists {table} ({cols})")
        # the range lets the lake skip the files of other days; the list keeps the others
        con.execute(
            f"delete from {table} where wave_date between ? and ? "
            "and wave_date in (select unnest(?::date[]))",
            [min(days), max(days), list(days)],
        )
        if len(frame):
            names = ", ".join(COLUMNS[table])
            con.execute(f"insert into {table} ({names}) select {names} from new_rows")
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise
    finally:
        con.unregister("new_rows")
    return len(frame)


def replace_wave(con: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame, day: date) -> int:
    return replace_days(con, table, frame, [day])
