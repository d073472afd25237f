"""Sign-in, roles and the audit trail: the roles file, the dashboards' gate on every page and
every query, the review write path's own checks, and the CLI's write verbs.

The browser round trip through the local OpenID Connect provider (anonymous, viewer, risk
reviewer) is in tests/test_dashboard_pages.py, on a world with every mart.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from ml.risk.store import SCORE_COLUMNS, ReviewError, decide
from ordertower import access, audit
from ordertower.access import AccessDenied, RolesFileError, named, parse_policy, resolve
from ordertower.lake import connect
from pipelines.cli import main
from tests.auth_support import app_as, claims, open_page

ROLES = access.DEFAULT_ROLES_FILE
PAGES = ("tracking", "exceptions", "dispatch", "kpis", "carbon", "risk_review", "data_quality")
AUTH_SECRETS = {
    "redirect_uri": "http://127.0.0.1:8501/oauth2callback",
    "cookie_secret": "x" * 32,
    "client_id": "ordertower-dashboards",
    "client_secret": "y" * 24,
    "server_metadata_url": "http://127.0.0.1:9400/.well-known/openid-configuration",
}

pytestmark = pytest.mark.usefixtures("fresh_streamlit_caches")


# -- the roles file --------------------------------------------------------------------------


def test_the_shipped_roles_file_is_valid_and_defines_every_role():
    policy = access.load_policy(ROLES)
    assert set(access.REQUIRED_ROLES) <= set(policy.role_permissions)
    assert main(["access", "lint"]) == 0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t.replace("[kpis, carbon]\n", "[kpis, carbon, everything]\n", 1), "everything"),
        (lambda t: t.replace("roles: [viewer]", "roles: [superuser]"), "superuser"),
        (lambda t: t.replace("  steward:\n", "  stewart:\n"), "steward"),
        (lambda t: t.replace("  - group: ordertower-ops", "  - group: ordertower-ops\n    email: a@b.c"), "exactly one"),
        (lambda t: t + "\nextra_key: 1\n", "extra_key"),
        (lambda t: t.replace("version: 1", "version: [1"), "YAML"),
    ],
)  # fmt: skip
def test_an_invalid_roles_file_names_what_is_wrong(change, message, tmp_path):
    text = change(ROLES.read_text())
    with pytest.raises(RolesFileError, match=message):
        parse_policy(text, tmp_path / "roles.yaml")
    bad = tmp_path / "roles.yaml"
    bad.write_text(text)
    assert main(["access", "lint", str(bad)]) == 1


def test_identities_resolve_by_email_subject_and_group():
    policy = access.load_policy(ROLES)
    viewer = resolve({"sub": "abc", "email": "Viewer@Demo.OrderTower.Example"}, policy=policy)
    assert viewer.roles == {"viewer"} and viewer.may("kpis") and not viewer.may("tracking")
    # an address the provider says it has not verified gives no role
    unverified = resolve(
        {"sub": "abc", "email": "admin@demo.ordertower.example", "email_verified": False},
        policy=policy,
    )
    assert unverified.roles == frozenset()
    by_group = resolve({"sub": "u-1", "groups": ["ordertower-ops"]}, policy=policy)
    assert by_group.roles == {"operator"} and by_group.may("tracking")
    nobody = resolve({"sub": "someone@else.example", "email": "someone@else.example"}, policy)
    assert not nobody.permissions
    with pytest.raises(AccessDenied, match="needs the admin or operator or risk_reviewer role"):
        access.require(nobody, "tracking", "order tracking")
    with pytest.raises(AccessDenied, match="Sign in first"):
        access.require(None, "kpis")


def test_a_roles_file_edit_applies_without_a_restart(tmp_path, monkeypatch):
    path = tmp_path / "roles.yaml"
    path.write_text(ROLES.read_text())
    monkeypatch.setenv("ORDERTOWER_ROLES_FILE", str(path))
    assert named("viewer@demo.ordertower.example").roles == {"viewer"}
    path.write_text(ROLES.read_text().replace("roles: [viewer]", "roles: [viewer, steward]"))
    import os

    os.utime(path, (1, 1))  # a new mtime even within the same clock tick
    assert named("viewer@demo.ordertower.example").roles == {"viewer", "steward"}


# -- the dashboards' gate --------------------------------------------------------------------


@pytest.mark.parametrize("page", PAGES)
def test_anonymous_visitors_see_only_the_sign_in(page, seeded_lake):
    at = app_as(None)
    at.secrets["auth"] = AUTH_SECRETS
    at.run()
    assert not at.exception
    assert [b.label for b in at.button] == ["Sign in"]
    assert not at.dataframe and not at.metric and not at.error
    # a deep link to a page is no way round it
    at = app_as(None)
    at.secrets["auth"] = AUTH_SECRETS
    at.switch_page(f"views/{page}.py")
    at.run()
    assert [b.label for b in at.button] == ["Sign in"] and not at.dataframe and not at.metric


def test_without_a_provider_the_app_says_sign_in_is_not_configured(seeded_lake):
    at = app_as(None)
    at.run()
    assert any("Sign-in is not configured" in e.value for e in at.error)
    assert not at.dataframe and not at.metric and not at.button


def test_a_viewer_is_denied_the_data_quality_page_and_it_is_audited(seeded_lake):
    at = open_page(app_as("viewer"), "data_quality")
    assert not at.exception
    assert any(
        "may not open the Data quality page" in e.value and "steward" in e.value for e in at.error
    )
    assert not at.dataframe and not at.metric
    con = connect(read_only=True)
    try:
        rows = con.execute(
            "select actor, roles, action, target, outcome from ops.audit_log order by occurred_at"
        ).fetchall()
    finally:
        con.close()
    viewer = "viewer@demo.ordertower.example"
    assert (viewer, "viewer", "sign_in", "dashboards", "ok") in rows
    assert (viewer, "viewer", "access_denied", "page:Data quality", "denied") in rows


def test_navigation_lists_only_what_the_roles_open(seeded_lake):
    at = app_as("viewer")
    at.run()
    assert at.title[0].value == "KPIs"  # the first page a viewer may open is the default


def test_a_signed_in_identity_without_a_role_sees_nothing(seeded_lake):
    at = AppTest.from_file(str(Path(__file__).parent.parent / "dashboards" / "app.py"))
    at.user = {"is_logged_in": True, "sub": "stranger", "email": "stranger@else.example"}
    at.run()
    assert any("holds no role" in e.value for e in at.error)
    assert not at.dataframe and not at.metric


def _data_call(call: str) -> None:
    """An app script that calls one data function directly (no page, no page check)."""
    import streamlit as st

    from dashboards import data

    try:
        result = eval(call, {"data": data})  # noqa: S307 - a fixed call from the test
        st.write(f"rows: {len(result)}")
    except data.NotAllowed as exc:
        st.error(f"not allowed: {exc}")


@pytest.mark.parametrize(
    ("role", "call", "allowed"),
    [
        ("viewer", "data.list_datasets()", False),
        ("viewer", "data.quarantined_records('orders', '2026-01-01')", False),
        ("steward", "data.list_datasets()", True),
        ("steward", "data.quarantined_records('orders', '2026-01-01', reveal=True)", True),
        ("admin", "data.quarantined_records('orders', '2026-01-01', reveal=True)", False),
        ("viewer", "data.audit_events(__import__('datetime').date(2026, 1, 1), __import__('datetime').date(2026, 1, 2))", False),
        ("steward", "data.audit_events(__import__('datetime').date(2026, 1, 1), __import__('datetime').date(2026, 1, 2))", True),
        (None, "data.list_datasets()", False),
    ],
)  # fmt: skip
def test_every_query_checks_the_reader_itself(role, call, allowed, seeded_lake):
    at = AppTest.from_function(_data_call, args=(call,), default_timeout=60)
    at.user = claims(role) if role else {"is_logged_in": False}
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    if allowed:
        assert not at.error, [e.value for e in at.error]
    else:
        assert at.error and at.error[0].value.startswith("not allowed")


def test_a_cached_result_is_not_served_to_a_reader_without_the_role(seeded_lake):
    steward = AppTest.from_function(_data_call, args=("data.list_datasets()",))
    steward.user = claims("steward")
    steward.run()
    assert not steward.error  # the result is cached now
    viewer = AppTest.from_function(_data_call, args=("data.list_datasets()",))
    viewer.user = claims("viewer")
    viewer.run()
    assert viewer.error and viewer.error[0].value.startswith("not allowed")


def test_outside_a_session_nobody_is_signed_in(seeded_lake):
    from dashboards import data

    with pytest.raises(data.NotAllowed, match="Sign in"):
        data.list_datasets()


# -- the review write path ---------------------------------------------------------------------


@pytest.fixture
def scored_lake(lake_home):
    """A lake with three scored orders: two held for review, one approved by the model."""
    con = connect()
    cols = ", ".join(f"{c} {t}" for c, t in SCORE_COLUMNS.items())
    con.execute(f"create table ml.order_risk_scores ({cols})")
    rows = pd.DataFrame(
        {
            "order_id": ["ORD-1", "ORD-2", "ORD-3"],
            "decision": ["review", "review", "approve"],
            "risk_score": [0.8, 0.7, 0.1],
            "model_version": ["7", "7", "7"],
        }
    )
    con.register("rows", rows)
    con.execute(
        "insert into ml.order_risk_scores (order_id, decision, risk_score, model_version) "
        "select * from rows"
    )
    con.close()
    return lake_home


def _rows(sql: str, params: list | None = None) -> list[tuple]:
    con = connect(read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def test_a_decision_and_its_audit_row_are_written_together(scored_lake):
    reviewer = named("reviewer@demo.ordertower.example")
    record = decide(reviewer, "ORD-1", "reject", "card tested twice")
    assert record["reviewer"] == "reviewer@demo.ordertower.example"
    assert _rows("select order_id, decision, reviewer from ops.risk_review_decisions") == [
        ("ORD-1", "reject", "reviewer@demo.ordertower.example")
    ]
    [row] = _rows(
        "select actor, roles, channel, action, target, outcome, before_state, after_state "
        "from ops.audit_log"
    )
    assert row[:6] == (
        "reviewer@demo.ordertower.example", "risk_reviewer", "cli", "risk_decision", "ORD-1", "ok"
    )  # fmt: skip
    assert '"status": "pending"' in row[6] and '"decision": "reject"' in row[7]


@pytest.mark.parametrize(
    ("who", "order_id", "error", "match", "outcome"),
    [
        ("viewer@demo.ordertower.example", "ORD-1", AccessDenied, "risk_reviewer", "denied"),
        (
            "reviewer@demo.ordertower.example",
            "ORD-3",
            ReviewError,
            "not held for review",
            "refused",
        ),
        ("reviewer@demo.ordertower.example", "ORD-404", ReviewError, "no risk score", "refused"),
    ],
)
def test_the_write_path_refuses_on_its_own(scored_lake, who, order_id, error, match, outcome):
    with pytest.raises(error, match=match):
        decide(named(who), order_id, "approve")
    assert _rows("select count(*) from information_schema.tables where table_name = "
                 "'risk_review_decisions'") == [(0,)]  # fmt: skip
    assert _rows("select actor, target, outcome from ops.audit_log") == [(who, order_id, outcome)]


def test_an_order_is_decided_once(scored_lake):
    decide(named("reviewer@demo.ordertower.example"), "ORD-2", "approve")
    with pytest.raises(ReviewError, match="already decided: approve by reviewer@"):
        decide(named("admin@demo.ordertower.example"), "ORD-2", "reject")
    assert _rows("select count(*) from ops.risk_review_decisions") == [(1,)]


def test_a_decision_without_a_lake_is_an_error_and_creates_none(lake_home):
    from ordertower.settings import get_settings

    with pytest.raises(audit.AuditError, match="no lake at"):
        decide(named("reviewer@demo.ordertower.example"), "ORD-1", "approve")
    assert not Path(get_settings().catalog).exists()


def test_nobody_signed_in_cannot_decide(scored_lake):
    with pytest.raises(AccessDenied, match="Sign in first"):
        decide(None, "ORD-1", "approve")
    assert _rows("select actor, outcome from ops.audit_log") == [("(anonymous)", "denied")]


def test_the_cli_write_verbs_check_the_same_roles(scored_lake, capsys, monkeypatch):
    assert (
        main(["risk", "decide", "ORD-1", "approve", "--as", "viewer@demo.ordertower.example"]) == 1
    )
    assert "may not" in capsys.readouterr().err
    assert main(["risk", "decide", "ORD-1", "approve"]) == 1  # nobody named
    assert "--as" in capsys.readouterr().err
    monkeypatch.setenv("ORDERTOWER_ACTOR", "reviewer@demo.ordertower.example")
    assert main(["risk", "decide", "ORD-1", "approve", "--note", "known"]) == 0
    assert main(["crm", "requeue", "--as", "reviewer@demo.ordertower.example"]) == 1
    assert "operator" in capsys.readouterr().err
    assert main(["crm", "requeue", "--as", "operator@demo.ordertower.example"]) == 0
    actions = _rows("select actor, action, outcome from ops.audit_log order by occurred_at")
    assert actions == [
        ("viewer@demo.ordertower.example", "access_denied", "denied"),
        ("reviewer@demo.ordertower.example", "risk_decision", "ok"),
        ("reviewer@demo.ordertower.example", "access_denied", "denied"),
        ("operator@demo.ordertower.example", "crm_requeue", "ok"),
    ]


def test_the_audit_log_only_grows(scored_lake):
    """No code path updates or deletes audit rows: every audited event is an insert."""
    assert not hasattr(audit, "update") and not hasattr(audit, "delete")
    for i in range(3):
        audit.append(named("admin@demo.ordertower.example"), "sign_in", f"t{i}")
    assert _rows("select count(*) from ops.audit_log") == [(3,)]
    with pytest.raises(ValueError, match="unknown audit action"):
        con = connect()
        try:
            audit.record(con, None, "drop_everything")
        finally:
            con.close()


def test_an_audit_event_the_lake_cannot_take_goes_to_the_log(lake_home, caplog, monkeypatch):
    """A denial is a denial even when the lake cannot store its audit row right now."""

    def failing(fn):
        raise audit.AuditError("the change could not be stored: database is locked")

    monkeypatch.setattr(audit, "write", failing)
    assert audit.append(None, "access_denied", "page:x", "denied") is False
    assert "audit row not stored" in caplog.text


def test_a_process_pool_after_an_apptest_does_not_start_the_app(seeded_lake):
    """AppTest leaves the app as this process's main module; multiprocessing's spawn re-runs
    that module in each child (ingestion's worker pool does). The app must not start a page
    (and so fail on nobody signed in) when it is not run by Streamlit."""
    import concurrent.futures
    import multiprocessing

    app_as("viewer").run()
    spawn = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=spawn) as pool:
        assert pool.submit(abs, -3).result(timeout=120) == 3
