"""Every page of the control tower on a small world with all its marts: AppTests of each page's
main widgets, the risk analyst's decision written and read back, unsafe searches, PII, and the
app served by ``streamlit run`` and driven through every page in headless Chromium.

One world for the module (tests/dashboard_world.py): simulated, materialised (lake, ETA model,
dispatch plans and van rounds), the live path when a broker is reachable, risk scores, marts.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from ordertower import lake
from tests.auth_support import app_as, open_page
from tests.dashboard_world import finish_world, module_world

pytestmark = pytest.mark.slow

APP = Path(__file__).resolve().parent.parent / "dashboards" / "app.py"
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
TIMEOUT = 120


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The module's world (tests/dashboard_world.py): a copy of the run's lake, finished with
    scores, the stream's last day, dispatch plans and their marts."""
    yield from module_world(tmp_path_factory, "dashboard_world", finish_world)


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


#: Who opens each page in these tests (the demo identities of ordertower/roles.yaml).
ROLE_OF_PAGE = {"data_quality": "steward", "risk_review": "risk_reviewer"}


def page(name: str, role: str | None = None) -> AppTest:
    at = open_page(app_as(role or ROLE_OF_PAGE.get(name, "admin"), TIMEOUT), name)
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


def _customer_with_orders(single: bool) -> tuple[str, int, str]:
    """(customer, their orders, their newest order): the customer with the most orders, or the
    first one with exactly one (the world has both; chosen, not left to whichever comes first)."""
    rows = _q(
        "select customer_id, count(*) as n, max(order_id) as last_order from marts.fct_orders "
        f"group by 1 having count(*) {'= 1' if single else '> 1'} "
        "order by n desc, customer_id limit 1"
    )
    assert len(rows) == 1, "the dashboard world has no such customer"
    return rows.iloc[0]["customer_id"], int(rows.iloc[0]["n"]), rows.iloc[0]["last_order"]


def test_tracking_by_tracking_ref_and_by_customer(world):
    ref, order_id = _q(
        "select l.tracking_ref, l.order_id from marts.fct_shipment_legs l "
        "where l.tracking_ref is not null order by l.order_id limit 1"
    ).iloc[0]
    at = page("tracking")
    at.text_input(key="track_search").set_value(ref).run()
    assert f"Order {order_id}" in [s.value for s in at.subheader]
    # a customer with several orders: a pick list, newest first
    customer, n, _ = _customer_with_orders(single=False)
    at.text_input(key="track_search").set_value(customer).run()
    options = at.selectbox(key="track_pick").options  # shown with date, status, value
    newest = _q(
        "select order_id from marts.fct_orders where customer_id = ? "
        "order by order_date desc, order_id limit 50",
        [customer],
    )["order_id"]
    assert [o.split(" · ")[0] for o in options] == list(newest)
    assert f"{n:,} orders match (customer)" in all_text(at)
    # a customer with one order: that order opens directly, no pick list
    single, one, only_order = _customer_with_orders(single=True)
    assert one == 1
    at.text_input(key="track_search").set_value(single).run()
    assert not at.exception and not at.error
    assert f"Order {only_order}" in [s.value for s in at.subheader]
    assert not [b for b in at.selectbox if b.key == "track_pick"]
    # a customer with more orders than the list holds: the most recent, and how many in all
    from dashboards import data

    hits = data.find_orders.__wrapped__(customer, limit=1)  # the query behind the access check
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
    at = app_as("operator", TIMEOUT)
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
    # the world streams its last day through the stream's landing code and live hook (no broker
    # needed: tests/dashboard_world.py), so it always has alerts
    alerts = _q("select count(*) from marts.fct_exception_alerts").iloc[0, 0]
    assert alerts > 0
    at = page("exceptions")
    # only the open tab runs: the live alerts are not queried until their tab is opened
    assert not any("rule" in f.columns for f in frames(at))
    assert "make live" not in all_text(at)
    at.session_state["exc_tab"] = "Live alerts (stream)"
    at.run()
    assert not at.exception
    shown = [f for f in frames(at) if "rule" in f.columns]
    assert shown and all("alternatives_json" not in f.columns for f in shown)
    rules = set(_q("select distinct rule from marts.fct_exception_alerts")["rule"])
    assert set(shown[0]["rule"]) <= rules and len(shown[0]) > 0
    assert "make live" not in all_text(at)  # the empty-lake hint is not shown


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
    # the wave with the most van rounds (the world routes its last waves), chosen explicitly
    busiest = _q(
        "select wave_date, count(*) as n from marts.fct_route_plans "
        "group by 1 order by n desc, wave_date desc limit 1"
    ).iloc[0]
    wave = pd.Timestamp(busiest["wave_date"]).date()
    assert busiest["n"] > 0 and str(wave) in at.selectbox(key="dsp_wave").options
    at.selectbox(key="dsp_wave").set_value(wave).run()
    assert not at.exception
    rounds = [f for f in frames(at) if "vehicle_no" in f.columns]
    assert rounds and len(rounds[0]) == busiest["n"]
    assert "No van rounds for this wave." not in all_text(at)


# -- risk review ---------------------------------------------------------------------------------


REVIEWER = "reviewer@demo.ordertower.example"


def _audit(action: str, target: str) -> pd.DataFrame:
    return _q(
        "select actor, roles, channel, outcome, before_state, after_state, detail "
        "from ops.audit_log where action = ? and target = ? order by occurred_at",
        [action, target],
    )


def test_review_decision_is_written_and_read_back(world):
    at = page("risk_review")
    queue = [f for f in frames(at) if "expected_loss" in f.columns][0]
    assert len(queue) >= 2  # one order leaves it, the queue stays on the page
    order_id = queue.iloc[0]["order_id"]
    assert f"Deciding as **{REVIEWER}**" in all_text(at)
    assert not at.text_input, "the reviewer is the signed-in identity, never a text box"
    at.radio(key="risk_decision_choice").set_value("reject")
    at.text_area(key="risk_note").set_value("ring device, card tested twice")
    at.button[0].click().run()
    assert not at.exception and not at.error
    assert any(order_id in s.value and REVIEWER in s.value for s in at.success)
    stored = _q(
        "select decision, reviewer, note, decided_at, model_version "
        "from ops.risk_review_decisions where order_id = ?",
        [order_id],
    )
    assert stored[["decision", "reviewer", "note"]].values.tolist() == [
        ["reject", REVIEWER, "ring device, card tested twice"]
    ]
    assert pd.notna(stored.iloc[0]["decided_at"]) and stored.iloc[0]["model_version"]
    audited = _audit("risk_decision", order_id)
    assert audited[["actor", "roles", "outcome"]].values.tolist() == [
        [REVIEWER, "risk_reviewer", "ok"]
    ]
    assert '"status": "pending"' in audited.iloc[0]["before_state"]
    assert '"decision": "reject"' in audited.iloc[0]["after_state"]
    # read back: the decision log shows it and the order left the queue
    log = [f for f in frames(at) if "reviewer" in f.columns][0]
    assert log.iloc[0]["order_id"] == order_id
    queue = [f for f in frames(at) if "expected_loss" in f.columns]
    assert queue and order_id not in set(queue[0]["order_id"])


def test_counters_agree_with_the_queue(world):
    at = page("risk_review")
    shown = metrics(at)
    queue = [f for f in frames(at) if "expected_loss" in f.columns]
    waiting = int(shown["Waiting in the queue"].replace(",", ""))
    assert waiting > 0 and queue
    assert len(queue[0]) == min(waiting, 500)  # the list shows at most 500
    held = int(shown["Held for review"].replace(",", ""))
    assert waiting <= held
    assert f"{held:,} orders held in the selection" in all_text(at)


def test_a_changed_queue_never_moves_a_decision_to_another_order(world):
    """Between drawing the form and submitting it, another reviewer decides the displayed
    order (so another order is now on top), or decides a different order: the decision is
    refused in the first case and lands on the displayed order in the second, never on the
    order that happens to be on top when it is submitted."""
    from ml.risk.store import decide
    from ordertower.access import named

    other = named("admin@demo.ordertower.example")
    # 1. the displayed order is decided by someone else before the submit
    at = page("risk_review")
    queue = [f for f in frames(at) if "expected_loss" in f.columns][0]
    shown_order, next_order = queue.iloc[0]["order_id"], queue.iloc[1]["order_id"]
    decide(other, shown_order, "approve", "decided elsewhere first")
    at.radio(key="risk_decision_choice").set_value("reject")
    at.button[0].click().run()
    assert any("already decided" in e.value for e in at.error), [e.value for e in at.error]
    assert (
        _q(
            "select count(*) from ops.risk_review_decisions where reviewer = ? and order_id in (?, ?)",
            [REVIEWER, shown_order, next_order],
        ).iloc[0, 0]
        == 0
    )
    refused = _audit("risk_decision", shown_order)
    assert refused["outcome"].tolist() == ["ok", "refused"]  # admin's decision, then ours
    # 2. a different order leaves the queue before the submit: ours lands where it was shown
    at = page("risk_review")
    queue = [f for f in frames(at) if "expected_loss" in f.columns][0]
    shown_order, first_other = queue.iloc[0]["order_id"], queue.iloc[1]["order_id"]
    decide(other, first_other, "approve", "another order decided meanwhile")
    at.radio(key="risk_decision_choice").set_value("reject")
    at.button[0].click().run()
    assert not at.error, [e.value for e in at.error]
    mine = _q("select order_id from ops.risk_review_decisions where reviewer = ?", [REVIEWER])
    assert shown_order in set(mine["order_id"]) and first_other not in set(mine["order_id"])


def test_a_role_without_risk_decide_cannot_decide(world):
    """An operator is denied the page; a steward-made identity without the role is refused in
    the write path itself, not only in the page."""
    at = open_page(app_as("operator", TIMEOUT), "risk_review")
    assert not at.exception
    assert any("may not open the Risk review page" in e.value for e in at.error)
    assert not frames(at) and not at.metric
    from ml.risk.store import decide
    from ordertower.access import AccessDenied, named

    order_id = _q("select order_id from marts.fct_risk_review_queue limit 1").iloc[0, 0]
    with pytest.raises(AccessDenied, match="risk_reviewer"):
        decide(named("operator@demo.ordertower.example"), order_id, "approve")
    assert "denied" in set(_audit("risk_decision", order_id)["outcome"])


def lake_has_decisions() -> bool:
    con = lake.connect(read_only=True)
    try:
        return lake.table_exists(con, "ops", "risk_review_decisions")
    finally:
        con.close()


# -- data quality and PII -------------------------------------------------------------------------


def test_data_quality_lists_every_mart_contract(world):
    at = page("data_quality")
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
    """Signed in through the local OpenID Connect provider: anonymous visitors see only the
    sign-in; a viewer sees the KPIs and is denied the risk review; an admin walks every page;
    a risk reviewer's decision lands in the lake under the signed-in identity."""
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
        # anonymous: every page is the sign-in page, with no data
        for path in ("", "kpis", "risk-review", "audit-log"):
            browser_page.goto(f"{url}/{path}", wait_until="domcontentloaded")
            browser_page.get_by_role("button", name="Sign in").wait_for(timeout=60_000)
            assert browser_page.locator('[data-testid="stMetric"]').count() == 0
            assert browser_page.locator('[data-testid="stDataFrame"]').count() == 0
            assert browser_page.locator('[data-testid="stSidebarNav"]').count() == 0
        browser_page.screenshot(path=str(ARTIFACTS / "sign_in.png"))

        # a viewer: the KPIs, and a clear denial on the risk review
        with _fresh_context(browser_page) as viewer:
            probe.sign_in(viewer, url, "viewer")
            p = probe.Probe(viewer, url)
            p.open("kpis")
            p.settle()
            assert not p.errors(), p.errors()
            assert viewer.locator('[data-testid="stMetric"]').count() > 0
            nav = viewer.locator('[data-testid="stSidebarNav"]').inner_text()
            assert "KPIs" in nav and "Risk review" not in nav and "Order tracking" not in nav
            viewer.goto(f"{url}/risk-review", wait_until="domcontentloaded")
            denial = viewer.get_by_text("may not open the Risk review page", exact=False)
            denial.wait_for(timeout=60_000)
            assert viewer.locator('[data-testid="stDataFrame"]').count() == 0
            viewer.screenshot(path=str(ARTIFACTS / "viewer_denied.png"))

        # an admin: every page, a search, a filter change
        with _fresh_context(browser_page) as admin:
            probe.sign_in(admin, url, "admin")
            p = probe.Probe(admin, url)
            for name, path in probe.PAGES.items():
                p.open(path)
                p.settle()
                assert not p.errors(), (name, p.errors())
                p.screenshot(ARTIFACTS / f"{name}.png")
            p.open("")
            p.act(probe.search(order_id))
            p.settle()
            assert admin.get_by_text(f"Order {order_id}").count() == 1
            assert not p.errors(), p.errors()
            p.screenshot(ARTIFACTS / "tracking_order.png")
            p.act(probe.search("' or 1=1 --"))
            assert admin.get_by_text("Not found", exact=False).count() >= 1
            p.navigate("KPIs")
            p.act(probe.pick("Warehouses", "WH-"))
            p.navigate("Exceptions")
            assert not p.errors(), p.errors()

        # a risk reviewer: a decision made in the browser lands with the signed-in identity
        with _fresh_context(browser_page) as reviewer:
            probe.sign_in(reviewer, url, "risk_reviewer")
            p = probe.Probe(reviewer, url)
            p.open("risk-review")
            p.settle()
            decided = reviewer.get_by_text("Decide on ", exact=False).first.inner_text()
            order_decided = decided.removeprefix("Decide on ").strip()
            probe.choose_radio("approve")(reviewer)  # inside a form: no run until submitted
            reviewer.get_by_label("Note (why)").fill("known customer, new phone")
            p.act(probe.click_button("Record decision"))
            assert not p.errors(), p.errors()
            stored = _q(
                "select order_id, decision, reviewer, note, decided_at "
                "from ops.risk_review_decisions where order_id = ?",
                [order_decided],
            )
            assert stored[["order_id", "decision", "reviewer", "note"]].values.tolist() == [
                [order_decided, "approve", REVIEWER, "known customer, new phone"]
            ]
            assert pd.notna(stored.iloc[0]["decided_at"])
            audited = _audit("risk_decision", order_decided)
            assert audited[["actor", "outcome"]].values.tolist() == [[REVIEWER, "ok"]]
    signed_in = _q("select actor, outcome from ops.audit_log where action = 'sign_in'")
    assert {
        "viewer@demo.ordertower.example",
        "admin@demo.ordertower.example",
        REVIEWER,
    } <= set(signed_in["actor"])
    denied = _q(
        "select actor, target from ops.audit_log where action = 'access_denied' "
        "and actor = 'viewer@demo.ordertower.example'"
    )
    assert "page:Risk review" in set(denied["target"])


@contextlib.contextmanager
def _fresh_context(page):
    """A new browser context (no cookies: a different person at the same browser)."""
    context = page.context.browser.new_context(viewport={"width": 1440, "height": 1000})
    try:
        new = context.new_page()
        from dashboards.probe import _STATE_RECORDER

        new.add_init_script(_STATE_RECORDER)
        yield new
    finally:
        context.close()
