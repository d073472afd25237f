"""Figures that do not mislead, on a world whose last week is still open.

The simulated world ends mid-week: many of its last orders are still in transit and many
exception episodes are still open. The KPI marts must count those orders in no outcome rate
(the maturity rule of ``int_kpi_facts``) and mark their periods provisional, while periods whose
orders have all matured keep exactly the rates the old definitions gave; the exceptions worklist
must tell the truly overdue (the carrier's feed reported beyond the SLA's end) from those the
data cannot close yet. Then the lake's clock is run four days past its data (what a future-dated
or estimated event used to do to it): no on-time rate moves, no episode becomes overdue, and the
pages show the same.

Every expectation is recomputed here from ``fct_orders`` and ``fct_tracking_events`` with the
rules written out in pandas, not read back from the models that implement them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from dashboards import data
from ordertower import lake
from ordertower.settings import DBT_PROJECT_DIR
from pipelines.cli import main
from tests.auth_support import app_as, open_page
from tests.dashboard_world import module_world

#: the maturity rule's defaults (dbt vars kpi_maturity_hours, kpi_provisional_open_share)
HORIZON = pd.Timedelta(hours=72)
PROVISIONAL_SHARE = 0.01
#: the models the lake's clock feeds into, rebuilt with the clock run ahead and back again
CLOCKED = "int_lake_clock fct_orders fct_order_exceptions int_kpi_facts kpi_daily kpi_weekly"
TIMEOUT = 120


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The dashboards' world (tests/dashboard_world.py), lake only: simulated, ingested and
    built by dbt (a copy of the run's; the clock test rebuilds a few marts in it)."""
    yield from module_world(tmp_path_factory, "provisional_world")


def _q(sql: str, params: list | None = None) -> pd.DataFrame:
    con = lake.connect(read_only=True)
    try:
        return con.execute(sql, params or []).df()
    finally:
        con.close()


def _data_clock() -> pd.Timestamp:
    """Through when every source has reported: the earlier of the last order and the last
    actual carrier scan (estimates, and scans dated after the last landing, left out)."""
    row = _q(
        """
        select (select max(ordered_at) from marts.fct_orders where source_system = 'oms') as o,
               (select max(event_at) from marts.fct_tracking_events
                where is_actual
                  and event_at <= (select max(ingested_at) from marts.fct_tracking_events)) as e
        """
    ).iloc[0]
    return min(pd.Timestamp(row.o), pd.Timestamp(row.e))


def _orders() -> pd.DataFrame:
    """Every order with the facts of the KPI definitions and its maturity, recomputed."""
    orders = _q(
        """
        select order_id, order_date, date_trunc('week', order_date) as week,
               is_cancelled, is_delivered, is_lost, is_on_time, is_next_day_promise,
               ordered_units, shipped_units, cancellation_reason, promised_by_at, ordered_at
        from marts.fct_orders
        """
    )
    clock = _data_clock()
    deadline = orders["promised_by_at"].fillna(orders["ordered_at"]) + HORIZON
    orders["matured"] = (
        orders["is_cancelled"] | orders["is_delivered"] | orders["is_lost"] | (deadline <= clock)
    )
    never_to_fill = orders["cancellation_reason"].isin(
        ["customer_request", "payment_failed", "fraud_suspected"]
    )
    orders["to_fill"] = orders["ordered_units"].where(~never_to_fill, 0)
    orders["filled"] = (
        orders[["shipped_units", "ordered_units"]].min(axis=1).where(~never_to_fill, 0)
    )
    orders["known"] = orders["is_on_time"].notna()
    orders["on_time"] = orders["is_on_time"].fillna(False).astype(bool)
    orders["week"] = pd.to_datetime(orders["week"])
    orders["order_date"] = pd.to_datetime(orders["order_date"])
    return orders


def _rates(orders: pd.DataFrame, by: str, matured_only: bool) -> pd.DataFrame:
    """On-time, next-day hit, fill and cancellation per period: over the matured orders (the
    maturity rule), or over every order as before the rule (``matured_only=False``)."""
    o = orders.copy()
    keep = o["matured"] if matured_only else pd.Series(True, index=o.index)
    o["due"] = o["known"] & keep
    o["ot"] = o["on_time"] & o["due"]
    o["nd_due"] = o["due"] & o["is_next_day_promise"]
    o["nd_ot"] = o["ot"] & o["is_next_day_promise"]
    o["tf"] = o["to_fill"].where(keep, 0)
    o["fd"] = o["filled"].where(keep, 0)
    o["base"] = keep.astype(int)
    g = o.groupby(by).agg(
        orders=("order_id", "size"),
        open_orders=("matured", lambda m: int((~m).sum())),
        due=("due", "sum"),
        ot=("ot", "sum"),
        nd_due=("nd_due", "sum"),
        nd_ot=("nd_ot", "sum"),
        tf=("tf", "sum"),
        fd=("fd", "sum"),
        cancelled=("is_cancelled", "sum"),
        base=("base", "sum"),
    )
    return pd.DataFrame(
        {
            "orders": g["orders"],
            "open_orders": g["open_orders"],
            "on_time_delivery_rate": g["ot"] / g["due"].replace(0, float("nan")),
            "next_day_promise_hit_rate": g["nd_ot"] / g["nd_due"].replace(0, float("nan")),
            "fill_rate": g["fd"] / g["tf"].replace(0, float("nan")),
            "cancellation_rate": g["cancelled"] / g["base"].replace(0, float("nan")),
        }
    )


RATES = ["on_time_delivery_rate", "next_day_promise_hit_rate", "fill_rate", "cancellation_rate"]


def _weekly_mart() -> pd.DataFrame:
    weekly = _q(
        """
        select week_start as week, sum(orders)::bigint as orders,
               sum(matured_orders)::bigint as matured_orders,
               sum(open_orders)::bigint as open_orders,
               sum(on_time_orders) / nullif(sum(due_orders), 0) as on_time_delivery_rate,
               sum(next_day_on_time_orders) / nullif(sum(next_day_due_orders), 0)
                   as next_day_promise_hit_rate,
               sum(units_filled) / nullif(sum(units_to_fill), 0) as fill_rate,
               sum(cancelled_orders) / nullif(sum(matured_orders), 0) as cancellation_rate
        from marts.kpi_weekly where source_system = 'oms' group by 1 order by 1
        """
    ).set_index("week")
    weekly.index = pd.to_datetime(weekly.index)
    return weekly


def _open_exceptions() -> pd.DataFrame:
    return _q(
        """
        select exception_id, carrier_id, order_date, is_sla_breached, worklist_status,
               sla_due_at, data_through_at
        from marts.fct_order_exceptions where is_open
        """
    )


def _page(name: str, role: str = "admin"):
    at = open_page(app_as(role, TIMEOUT), name)
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    return at


def _metrics(at) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


@pytest.mark.slow
def test_the_last_week_is_provisional_and_counts_no_order_in_transit_as_late(world: Path):
    orders = _orders()
    orders = orders[orders["order_date"].notna()]
    oms = _q("select order_id from marts.fct_orders where source_system = 'oms'")
    orders = orders[orders["order_id"].isin(oms["order_id"])]
    weekly = _weekly_mart()
    last = weekly.index.max()
    expected = _rates(orders, "week", matured_only=True)

    # the world's last week still holds orders in transit: provisional, not failed
    share = weekly.loc[last, "open_orders"] / weekly.loc[last, "orders"]
    assert share > 0.2, share
    in_last = orders[orders["week"] == last]
    in_transit_past_promise = in_last[~in_last["matured"] & in_last["known"] & ~in_last["on_time"]]
    assert len(in_transit_past_promise) > 0, "the world must hold orders the old rule called late"
    # the marts agree with the rule recomputed here, week by week and rate by rate
    assert (weekly["open_orders"] == expected["open_orders"]).all()
    for rate in RATES:
        pd.testing.assert_series_equal(
            weekly[rate], expected[rate], check_names=False, rtol=1e-9, check_index_type=False
        )
    # counting the orders in transit past their promise as late (the old rule) gives a rate
    # well below the one over matured orders: the "drop" the KPI page used to show
    naive = _rates(orders, "week", matured_only=False)
    assert naive.loc[last, "on_time_delivery_rate"] < weekly.loc[last, "on_time_delivery_rate"]
    # the provisional flag: more than 1 % of the period's orders still open
    flags = _q(
        "select week_start as week, sum(open_orders) > 0.01 * sum(orders) as p "
        "from marts.kpi_weekly group by 1"
    ).set_index("week")["p"]
    flags.index = pd.to_datetime(flags.index)
    assert bool(flags.loc[last])


@pytest.mark.slow
def test_matured_periods_keep_the_rates_they_had(world: Path):
    """A day whose orders have all matured has exactly the rates of the definitions before
    the maturity rule (every order counted): the rule only changes periods still open."""
    orders = _orders()
    oms = _q("select order_id from marts.fct_orders where source_system = 'oms'")
    orders = orders[orders["order_id"].isin(oms["order_id"])]
    before = _rates(orders, "order_date", matured_only=False)
    daily = _q(
        """
        select kpi_date as order_date, sum(orders)::bigint as orders,
               sum(open_orders)::bigint as open_orders,
               bool_or(is_provisional) as any_provisional,
               sum(on_time_orders) / nullif(sum(due_orders), 0) as on_time_delivery_rate,
               sum(next_day_on_time_orders) / nullif(sum(next_day_due_orders), 0)
                   as next_day_promise_hit_rate,
               sum(units_filled) / nullif(sum(units_to_fill), 0) as fill_rate,
               sum(cancelled_orders) / nullif(sum(matured_orders), 0) as cancellation_rate
        from marts.kpi_daily where source_system = 'oms' and orders > 0 group by 1
        """
    ).set_index("order_date")
    daily.index = pd.to_datetime(daily.index)
    matured = daily[daily["open_orders"] == 0]
    assert len(matured) >= 5, "days whose orders have all matured (green sea orders keep some open)"
    assert not matured["any_provisional"].any()
    for rate in RATES:
        pd.testing.assert_series_equal(
            matured[rate],
            before.loc[matured.index, rate],
            check_names=False,
            rtol=1e-9,
            check_index_type=False,
        )
    # the world's last days are the ones still open
    still_open = daily[daily["open_orders"] > 0.01 * daily["orders"]].index
    assert set(daily.sort_index().index[-3:]) <= set(still_open)


@pytest.mark.slow
def test_exceptions_are_overdue_only_when_the_feed_could_have_closed_them(world: Path):
    feeds = _q(
        """
        select carrier_id, max(event_at) as feed_through_at from marts.fct_tracking_events
        where is_actual and shipment_id is not null and event_at <= ingested_at + interval 1 hour
        group by 1
        """
    ).set_index("carrier_id")["feed_through_at"]
    open_ = _open_exceptions()
    assert len(open_) > 0
    statuses = set(open_["worklist_status"])
    assert statuses <= {"overdue", "awaiting_data", "within_sla"}, statuses
    breached = open_[open_["is_sla_breached"]]
    assert (open_.loc[~open_["is_sla_breached"], "worklist_status"] == "within_sla").all()
    reported = breached["carrier_id"].map(feeds).fillna(_data_clock())
    could_close = reported >= breached["sla_due_at"]
    assert (breached.loc[could_close, "worklist_status"] == "overdue").all()
    assert (breached.loc[~could_close, "worklist_status"] == "awaiting_data").all()
    assert (breached["worklist_status"] == "overdue").any()


@pytest.mark.slow
def test_the_pages_show_provisional_periods_and_the_overdue_apart(
    world: Path, fresh_streamlit_caches
):
    kpis = _page("kpis")
    captions = " ".join(c.value for c in kpis.caption)
    weekly = _weekly_mart()
    provisional = [c.value for c in kpis.caption if c.value.startswith("Provisional weeks")]
    assert provisional, captions
    last = weekly.index.max()
    share = weekly.loc[last, "open_orders"] / weekly.loc[last, "orders"]
    assert f"{last:%Y-%m-%d} ({share:.0%} open)" in provisional[0]
    final = weekly[weekly["open_orders"] <= PROVISIONAL_SHARE * weekly["orders"]].index
    assert len(final) > 0 and not any(f"{w:%Y-%m-%d}" in provisional[0] for w in final)
    assert f"more than {data.KPI_MATURITY_HOURS} h before the lake's data clock" in captions
    # the headline on-time rate is over matured orders: the mart's, not the old definition's
    total = _q(
        "select sum(on_time_orders) / nullif(sum(due_orders), 0) as r from marts.kpi_daily "
        "where kpi_date >= (select max(order_date) - 55 from marts.fct_orders)"
    ).iloc[0, 0]
    assert _metrics(kpis)["On-time delivery"] == f"{total:.1%}"
    _assert_exceptions_page_matches_the_mart()


def _assert_exceptions_page_matches_the_mart() -> None:
    shown = _metrics(_page("exceptions"))
    counts = _q(
        """
        select count(*) filter (where x.worklist_status = 'overdue') as overdue,
               count(*) filter (where x.worklist_status = 'awaiting_data') as awaiting
        from marts.fct_order_exceptions x
        where x.is_open and x.order_date >= (select max(order_date) - 27 from marts.fct_orders)
        """
    ).iloc[0]
    assert shown["Overdue"] == f"{int(counts.overdue):,}"
    assert shown["Awaiting data"] == f"{int(counts.awaiting):,}"


@pytest.mark.slow
def test_a_clock_running_ahead_turns_nothing_into_failures(
    world: Path, tmp_path: Path, fresh_streamlit_caches
):
    """The lake's clock four days past its data (what an estimated or future-dated event used to
    do): every on-time rate stays as it was, no episode becomes overdue, and the episodes the
    late clock puts past their SLA all await data."""
    weekly = _weekly_mart()
    overdue = set(_open_exceptions().query("worklist_status == 'overdue'")["exception_id"])
    clock = _q("select as_of, data_through_at from intermediate.int_lake_clock").iloc[0]
    ahead = pd.Timestamp(clock.as_of) + pd.Timedelta(days=4)
    target = str(tmp_path / "dbt_target")
    run = ["dbt", "run", "--select", *CLOCKED.split(), "--target-path", target]
    try:
        assert main([*run, "--vars", f"{{as_of: '{ahead.isoformat()}'}}"]) == 0
        moved = _q("select as_of, data_through_at from intermediate.int_lake_clock").iloc[0]
        assert pd.Timestamp(moved.as_of) == ahead
        assert moved.data_through_at == clock.data_through_at
        # the orders' own flag now calls every order in transit past its promise late ...
        late_now = _q(
            "select count(*) from marts.fct_orders where is_on_time = false and not is_delivered"
        ).iloc[0, 0]
        assert late_now > 0
        # ... but the KPIs judge maturity by the data clock: not one rate moves
        pd.testing.assert_frame_equal(_weekly_mart(), weekly, rtol=1e-9)
        open_ = _open_exceptions()
        assert set(open_.query("worklist_status == 'overdue'")["exception_id"]) == overdue
        breached = open_[open_["is_sla_breached"]]
        assert (breached["worklist_status"] == "awaiting_data").sum() > 0
        assert (
            (breached["data_through_at"] < breached["sla_due_at"])
            .eq(breached["worklist_status"] == "awaiting_data")
            .all()
        )
        _assert_exceptions_page_matches_the_mart()
    finally:
        assert main(run) == 0


def test_the_pages_state_the_rule_dbt_applies():
    """The dashboards' constants are the dbt vars' defaults, and so are this module's."""
    facts = (DBT_PROJECT_DIR / "models" / "intermediate" / "int_kpi_facts.sql").read_text()
    macro = (DBT_PROJECT_DIR / "macros" / "kpi.sql").read_text()
    hours = re.search(r"var\('kpi_maturity_hours', (\d+)\)", facts)
    share = re.search(r"var\('kpi_provisional_open_share', ([0-9.]+)\)", macro)
    assert hours and share
    assert int(hours.group(1)) == data.KPI_MATURITY_HOURS == HORIZON.total_seconds() / 3600
    assert float(share.group(1)) == data.KPI_PROVISIONAL_OPEN_SHARE == PROVISIONAL_SHARE
