"""Every page of the control tower on a small world with all its marts: AppTests of each page's
main widgets, the risk analyst's decision written and read back, unsafe searches, PII, and the
app served by ``streamlit run`` and driven through every page in headless Chromium.

One world for the module (tests/dashboard_world.py): simulated, materialised (lake, ETA model,
dispatch plans and van rounds), the live path when a broker is reachable, risk scores, marts.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from ordertower import lake
from tests.dashboard_world import build_world

pytestmark = pytest.mark.slow

APP = Path(__file__).resolve().parent.parent / "dashboards" / "app.py"
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
TIMEOUT = 120


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The module's world; ``ORDERTOWER_TEST_DASHBOARD_WORLD=<home>`` reuses one built by
    ``tests.dashboard_world.build_world`` (a developer's shortcut; tests then write to it)."""
    reuse = os.environ.get("ORDERTOWER_TEST_DASHBOARD_WORLD")
    home = Path(reuse) if reuse else tmp_path_factory.mktemp("dashboard_world")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ORDERTOWER_HOME", str(home))
        for var in (
            "ORDERTOWER_CATALOG",
            "ORDERTOWER_CATALOG_DSN",
            "ORDERTOWER_DATA_PATH",
            "DAGSTER_HOME",
            "MLFLOW_TRACKING_URI",
        ):
            mp.delenv(var, raising=False)
        if not reuse:
            build_world()
        yield home


@pytest.fixture(autouse=True)
def _fresh_caches(world: Path) -> Iterator[None]:
    import streamlit as st

    st.cache_data.clear()
    st.cache_resource.clear()
    yield


def _q(sql: str, params: list | None = None) -> pd.DataFrame:
    con = lake.connect(read_only=True)
    try:
        return con.execute(sql, params or []).df()
    finally:
        con.close()


def page(name: str) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    at.run()  # st.navigation registers the pages' URLs on the first run
    at.switch_page(f"views/{name}.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    return at


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def frames(at: AppTest) -> list[pd.DataFrame]:
    return [d.value.data if hasattr(d.value, "data") else d.value for d in at.dataframe]


def all_text(at: AppTest) -> str:
    """Everything a page shows as text: markdown, captions, metrics, alerts, tables."""
    parts = [e.value for e in (*at.markdown, *at.caption, *at.title, *at.subheader, *at.text)]
    parts += [f"{m.label} {m.value}" for m in at.metric]
    parts += [a.value for a in (*at.info, *at.warning, *at.success, *at.error)]
    parts += [frame.to_csv() for frame in frames(at)]
    return "\n".join(str(p) for p in parts)


def _an_order_with_legs() -> str:
    return _q(
        "select order_id from marts.fct_orders where shipment_count > 0 and not is_cancelled "
        "order by order_id limit 1"
    ).iloc[0, 0]


# -- order tracking ----------------------------------------------------------------------------


def test_tracking_finds_an_order_and_shows_its_timeline(world):
    order_id = _an_order_with_legs()
    at = page("tracking")
    at.text_input(key="track_search").set_value(order_id).run()
    assert not at.exception and not at.error
    assert f"Order {order_id}" in [s.value for s in at.subheader]
    shown = metrics(at)
    assert {"Status", "Promised by", "Order value", "CO2e"} <= shown.keys()
    milestones = [f for f in frames(at) if "milestone" in f.columns]
    assert milestones and {"ordered", "paid"} <= set(milestones[0]["milestone"])
    legs = [f for f in frames(at) if "leg_no" in f.columns and "mode" in f.columns]
    assert (
        legs
        and len(legs[0])
        == _q("select count(*) from marts.fct_shipment_legs where order_id = ?", [order_id]).iloc[
            0, 0
        ]
    )
    assert at.get("deck_gl_json_chart"), "the route map is drawn"


def test_tracking_by_tracking_ref_and_by_customer(world):
    ref, order_id, customer = _q(
        "select l.tracking_ref, l.order_id, o.customer_id from marts.fct_shipment_legs l "
        "join marts.fct_orders o using (order_id) where l.tracking_ref is not null "
        "order by l.order_id limit 1"
    ).iloc[0]
    at = page("tracking")
    at.text_input(key="track_search").set_value(ref).run()
    assert f"Order {order_id}" in [s.value for s in at.subheader]
    at.text_input(key="track_search").set_value(customer).run()
    n = _q("select count(*) from marts.fct_orders where customer_id = ?", [customer]).iloc[0, 0]
    if n > 1:
        options = at.selectbox(key="track_pick").options  # shown with date, status, value
        newest = _q(
            "select order_id from marts.fct_orders where customer_id = ? "
            "order by order_date desc, order_id limit 50",
            [customer],
        )["order_id"]
        assert [o.split(" · ")[0] for o in options] == list(newest)
        assert f"{n:,} orders match (customer)" in all_text(at)
    else:
        assert f"Order {order_id}" in [s.value for s in at.subheader]
    # a customer with more orders than the list holds: the most recent, and how many in all
    from dashboards import data

    hits = data.find_orders(customer, limit=1)
    assert len(hits) == 1 and hits["matches"].tolist() == [n]


@pytest.mark.parametrize(
    "term",
    [
        "' or 1=1 --",
        "ORD-%",
        "%",
        "'; drop table marts.fct_orders; --",
        "ORD-00000001' union select * from marts.dim_customer --",
        "ＯＲＤ－００００００１",  # full-width unicode look-alike
        "🚚📦",
        "x" * 500,
        "ORD-0000\x00001",
        "Robert'); DROP TABLE Students;--",
    ],
)
def test_unsafe_search_is_not_found_never_an_error(world, term):
    at = page("tracking")
    at.text_input(key="track_search").set_value(term).run()
    assert not at.exception and not at.error
    assert any("Not found" in w.value for w in at.warning)
    assert not [s for s in at.subheader if s.value.startswith("Order ")]
    assert _q("select count(*) from marts.fct_orders").iloc[0, 0] > 1000  # still there


def test_deep_link_opens_an_order(world):
    order_id = _an_order_with_legs()
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    at.query_params["order"] = order_id
    at.run()
    assert not at.exception
    assert f"Order {order_id}" in [s.value for s in at.subheader]


# -- exceptions ----------------------------------------------------------------------------------


def test_exceptions_worklist_filters_and_message_preview(world):
    at = page("exceptions")
    shown = metrics(at)
    open_total = int(shown["Open exceptions"].replace(",", ""))
    expected = _q(
        "select count(*) from marts.fct_order_exceptions x join marts.fct_orders o using "
        "(order_id) where x.is_open "
        "and o.order_date >= (select max(order_date) - 27 from marts.fct_orders)"
    ).iloc[0, 0]
    assert open_total == expected > 0
    work = [f for f in frames(at) if "recommended_action" in f.columns][0]
    assert len(work) == min(open_total, 500)
    at.multiselect(key="exc_severity").set_value(["critical"]).run()
    assert not at.exception
    work = [f for f in frames(at) if "recommended_action" in f.columns][0]
    assert set(work["severity"]) <= {"critical"}
    # the customer message that would be sent, with the name as a placeholder
    assert any("[first name]" in t.value for t in at.text), "a message preview is shown"


def test_live_alerts_tab(world):
    alerts = _q("select count(*) from marts.fct_exception_alerts").iloc[0, 0]
    at = page("exceptions")
    # only the open tab runs: the live alerts are not queried until their tab is opened
    assert not any("rule" in f.columns for f in frames(at))
    assert "make live" not in all_text(at)
    at.session_state["exc_tab"] = "Live alerts (stream)"
    at.run()
    assert not at.exception
    text = all_text(at)
    if alerts:
        assert any("alternatives_json" not in f.columns and "rule" in f.columns for f in frames(at))
    else:  # no broker on this machine: the tab explains how alerts arrive
        assert "make live" in text


# -- KPIs, carbon, dispatch ----------------------------------------------------------------------


def test_kpis_page_targets_trend_and_drill_down(world):
    at = page("kpis")
    shown = metrics(at)
    assert shown["Next-day promise hit"].endswith("%")
    assert int(shown["Orders"].replace(",", "")) > 0
    at.segmented_control(key="kpi_grain").set_value("day").run()
    assert not at.exception
    at.radio(key="kpi_dim").set_value("carrier").run()
    by = [f for f in frames(at) if "member" in f.columns][0]
    carriers = set(_q("select distinct carrier_id from marts.kpi_daily")["carrier_id"].dropna())
    assert set(by["member"]) - {"(none)"} <= carriers
    # rates are recomputed from the summed facts, never averaged
    total = _q(
        "select sum(next_day_on_time_orders) / nullif(sum(next_day_due_orders), 0) as r "
        "from marts.kpi_daily where kpi_date >= (select max(order_date) - 55 from marts.fct_orders)"
    ).iloc[0, 0]
    assert metrics(at)["Next-day promise hit"] == f"{total:.1%}"


def test_carbon_what_if_scales_with_the_share(world):
    at = page("carbon")
    assert metrics(at)["CO2e"] != "—"
    at.slider(key="co2_share").set_value(50).run()
    half = metrics(at)["CO2e saved"]
    at.slider(key="co2_share").set_value(100).run()
    full = metrics(at)["CO2e saved"]

    def kg(text: str) -> float:
        value, unit = text.split()
        return float(value.replace(",", "")) * (1000 if unit == "t" else 1)

    assert kg(full) == pytest.approx(2 * kg(half), rel=0.02)


def test_dispatch_plan_vs_baseline(world):
    at = page("dispatch")
    shown = metrics(at)
    assert "vs baseline" in at.metric[0].proto.delta
    assert shown["Cost per order"].endswith("EUR")
    at.segmented_control(key="dsp_plan").set_value("baseline").run()
    assert not at.exception
    # the van rounds' map and table only on request
    assert not [f for f in frames(at) if "vehicle_no" in f.columns]
    at.toggle(key="dsp_rounds").set_value(True).run()
    assert not at.exception
    rounds = [f for f in frames(at) if "vehicle_no" in f.columns]
    wave = at.selectbox(key="dsp_wave").value
    planned = _q("select count(*) as n from marts.fct_route_plans where wave_date = ?", [wave])
    if planned.n[0]:
        assert rounds and len(rounds[0]) == planned.n[0]
    else:
        assert "No van rounds for this wave." in all_text(at)


# -- risk review ---------------------------------------------------------------------------------


def test_review_decision_is_written_and_read_back(world):
    at = page("risk_review")
    queue = [f for f in frames(at) if "expected_loss" in f.columns][0]
    assert not queue.empty
    order_id = queue.iloc[0]["order_id"]
    at.radio(key="risk_decision_choice").set_value("reject")
    at.text_input(key="risk_reviewer").set_value("Ana Analyst")
    at.text_area(key="risk_note").set_value("ring device, card tested twice")
    at.button[0].click().run()
    assert not at.exception and not at.error
    assert any(order_id in s.value and "Ana Analyst" in s.value for s in at.success)
    stored = _q(
        "select decision, reviewer, note, decided_at, model_version "
        "from ops.risk_review_decisions where order_id = ?",
        [order_id],
    )
    assert stored[["decision", "reviewer", "note"]].values.tolist() == [
        ["reject", "Ana Analyst", "ring device, card tested twice"]
    ]
    assert pd.notna(stored.iloc[0]["decided_at"]) and stored.iloc[0]["model_version"]
    # read back: the decision log shows it and the order left the queue
    log = [f for f in frames(at) if "reviewer" in f.columns][0]
    assert log.iloc[0]["order_id"] == order_id
    queue = [f for f in frames(at) if "expected_loss" in f.columns]
    assert not queue or order_id not in set(queue[0]["order_id"])


def test_review_without_a_name_is_refused_and_nothing_is_written(world):
    before = (
        _q("select count(*) from ops.risk_review_decisions").iloc[0, 0]
        if lake_has_decisions()
        else 0
    )
    at = page("risk_review")
    at.text_input(key="risk_reviewer").set_value("   ")
    at.button[0].click().run()
    assert any("name" in e.value for e in at.error)
    after = (
        _q("select count(*) from ops.risk_review_decisions").iloc[0, 0]
        if lake_has_decisions()
        else 0
    )
    assert after == before


def lake_has_decisions() -> bool:
    con = lake.connect(read_only=True)
    try:
        return lake.table_exists(con, "ops", "risk_review_decisions")
    finally:
        con.close()


# -- data quality and PII -------------------------------------------------------------------------


def test_data_quality_lists_every_mart_contract(world):
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    at.run()  # st.navigation registers the pages' URLs on the first run
    at.switch_page("views/data_quality.py")
    at.run()
    assert not at.exception
    marts = [f for f in frames(at) if "mart" in f.columns and "owner" in f.columns][0]
    contracts = {p.stem for p in (APP.parent.parent / "data_contracts" / "marts").glob("*.yaml")}
    assert set(marts["mart"]) == contracts
    built = marts[marts["status"] != "MISSING"]
    assert {"fct_orders", "fct_shipment_eta", "fct_order_risk"} <= set(built["mart"])


def test_no_customer_pii_on_any_page(world):
    people = _q(
        "select full_name, email, phone, home_address_street from raw.customers "
        "where full_name is not null limit 200"
    )
    order_id = _an_order_with_legs()
    texts = []
    for name in ("exceptions", "kpis", "carbon", "dispatch", "risk_review", "data_quality"):
        texts.append(all_text(page(name)))
    at = page("tracking")
    at.text_input(key="track_search").set_value(order_id).run()
    texts.append(all_text(at))
    shown = "\n".join(texts)
    leaked = [
        value
        for column in people.columns
        for value in people[column].dropna().astype(str)
        if len(value) > 5 and value in shown
    ]
    assert not leaked, leaked[:5]


# -- the real app in a real browser ---------------------------------------------------------------


@pytest.mark.browser
def test_every_page_in_chromium_without_an_error(world, tmp_path):
    from dashboards import probe

    if not probe.CHROMIUM.exists():
        reason = f"{probe.CHROMIUM} is missing (apt-get install chromium)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{reason}; browser tests must run in CI")
        pytest.skip(reason)
    order_id = _an_order_with_legs()
    ARTIFACTS.mkdir(exist_ok=True)
    with (
        probe.serve({"ORDERTOWER_HOME": str(world)}, log=tmp_path / "streamlit.log") as url,
        probe.browser() as browser_page,
    ):
        p = probe.Probe(browser_page, url)
        for name, path in probe.PAGES.items():
            p.open(path)
            p.settle()
            assert not p.errors(), (name, p.errors())
            p.screenshot(ARTIFACTS / f"{name}.png")
        # search an order, then an unsafe term, in the browser
        p.open("")
        p.act(probe.search(order_id))
        p.settle()
        assert browser_page.get_by_text(f"Order {order_id}").count() == 1
        assert not p.errors(), p.errors()
        p.screenshot(ARTIFACTS / "tracking_order.png")
        p.act(probe.search("' or 1=1 --"))
        assert browser_page.get_by_text("Not found", exact=False).count() >= 1
        # a filter change and in-app navigation
        p.navigate("KPIs")
        p.act(probe.pick("Warehouses", "WH-"))
        p.navigate("Exceptions")
        assert not p.errors(), p.errors()
        # a review decision made in the browser lands in the lake with who and when
        p.navigate("Risk review")
        decided = browser_page.get_by_text("Decide on ", exact=False).first.inner_text()
        order_decided = decided.removeprefix("Decide on ").strip()
        probe.choose_radio("approve")(browser_page)  # inside a form: no run until submitted
        browser_page.get_by_label("Your name").fill("Bea Browser")
        browser_page.get_by_label("Note (why)").fill("known customer, new phone")
        p.act(probe.click_button("Record decision"))
        assert not p.errors(), p.errors()
        stored = _q(
            "select order_id, decision, reviewer, note, decided_at "
            "from ops.risk_review_decisions where reviewer = 'Bea Browser' and order_id = ?",
            [order_decided],
        )
        assert stored[["order_id", "decision", "note"]].values.tolist() == [
            [order_decided, "approve", "known customer, new phone"]
        ]
        assert pd.notna(stored.iloc[0]["decided_at"])
