"""Customer-service linkage: message composition, the transactional outbox, the HTTP sender's
retries and back-off, and exactly-one delivery through idempotency keys.

Real HTTP to the local CRM receiver on a free port, a real lake in an isolated home. Time is
passed to the sender explicitly, so the back-off is stepped through without sleeping.
"""

from __future__ import annotations

import json
import random
import socket
import threading
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import pandas as pd
import pytest
import requests
import yaml

from ml.alerts import messages as crm_messages
from ml.alerts.messages import (
    MESSAGE_COLUMNS,
    REASONS,
    SUB_REASONS,
    TIERS,
    TemplateError,
    compose,
    load_templates,
    message_id,
    parse_templates,
)
from pipelines.cli import main
from pipelines.crm.outbox import (
    OUTBOX_TABLE,
    RetryPolicy,
    Sender,
    enqueue,
    ensure_outbox,
    outbox_counts,
    requeue_dead,
    run_sender,
)
from pipelines.crm.receiver import CrmReceiver
from pipelines.simulator.vocab import LANGUAGES

T0 = datetime(2026, 10, 1, 12, 0, tzinfo=UTC)
FAST = RetryPolicy(max_attempts=4, base_delay_s=10.0, max_delay_s=600.0, timeout=(1.0, 2.0))
DATES = {
    "en": "3 October 2026",
    "de": "3. Oktober 2026",
    "fr": "3 octobre 2026",
    "es": "3 de octubre de 2026",
    "it": "3 ottobre 2026",
    "nl": "3 oktober 2026",
    "pl": "3 października 2026",
    "pt": "3 de outubro de 2026",
    "zh": "2026年10月3日",
}


def _alert(n: int = 0, **overrides) -> dict:
    alert = {
        "alert_id": f"alert-{n:04d}",
        "rule": "carrier_delay",
        "reason": "carrier_exception",
        "sub_reason": "DELAY",
        "severity": "medium",
        "order_id": f"ORD-{n:09d}",
        "customer_id": f"CUS-{n:07d}",
        "shipment_id": f"SHP-{n:09d}",
        "tracking_ref": f"1ZTRACK{n:05d}",
        "carrier_id": "swiftparcel",
        "promised_delivery_date": date(2026, 10, 1),
        "eta_at": pd.Timestamp("2026-10-03 09:30", tz="UTC"),
        "recommended_action": "keep the current plan (delivery 2026-10-03; no extra cost)",
        "order_value_eur": 129.90,
        "detected_at": pd.Timestamp("2026-10-01 08:00", tz="UTC"),
    }
    alert.update(overrides)
    return alert


def _customer(n: int = 0, language: str = "en", tier: str = "standard", **extra) -> dict:
    return {
        "customer_id": f"CUS-{n:07d}",
        "first_name": "Anna",
        "language": language,
        "tier": tier,
        **extra,
    }


def _messages(n: int, start: int = 0) -> pd.DataFrame:
    alerts = pd.DataFrame([_alert(i) for i in range(start, start + n)])
    customers = pd.DataFrame([_customer(i) for i in range(start, start + n)])
    return compose(alerts, customers)


def _outbox(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    return con.execute(f"select * from {OUTBOX_TABLE} order by message_id").df()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def crm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The local CRM, with a token file of the test's own that senders of the test read too."""
    token_file = tmp_path / "secrets" / "crm.token"
    token_file.parent.mkdir()
    token_file.write_text("test-token-" + "x" * 32 + "\n")
    monkeypatch.setenv("ORDERTOWER_CRM_TOKEN_FILE", str(token_file))
    with CrmReceiver(tmp_path / "crm.sqlite") as receiver:
        yield receiver


# ------------------------------------------------------------------------------- templates


def test_templates_cover_every_reason_language_and_tier():
    templates = load_templates()
    assert set(LANGUAGES) <= set(templates.languages)  # every language of the simulated world
    assert set(templates.tiers) == set(TIERS)
    rules = yaml.safe_load(Path("ml/alerts/rules.yaml").read_text())
    raised = {rule["reason"] for rule in rules["rules"]}
    assert raised <= set(REASONS)
    for lang in templates.languages.values():
        assert raised <= set(lang.messages)
        assert set(SUB_REASONS) <= set(lang.messages["carrier_exception"].body)


def test_template_mistakes_are_reported_with_their_place():
    raw = yaml.safe_load(crm_messages.MESSAGES_PATH.read_text())
    raw["languages"]["de"]["messages"]["stuck"]["body"] = "Hallo {first_name}, {email}"
    del raw["languages"]["fr"]["closing"]["platinum"]
    del raw["languages"]["it"]["messages"]["carrier_exception"]["body"]["LOST"]
    raw["languages"]["nl"]["voucher"] = "{amount"
    raw["tiers"]["gold"]["voucher_eur"] = -5
    with pytest.raises(TemplateError) as exc:
        parse_templates(raw)
    text = str(exc.value)
    assert "languages.de.messages.stuck.body: unknown placeholder(s) {email}, {first_name}" in text
    assert "languages.fr.closing: no text for tier 'platinum'" in text
    assert "languages.it.messages.carrier_exception.body: no text for LOST" in text
    assert "languages.nl.voucher" in text
    assert "tiers.gold.voucher_eur" in text


@pytest.mark.parametrize("language", sorted(DATES))
@pytest.mark.parametrize("tier", TIERS)
def test_compose_in_the_customers_language_and_tier(language: str, tier: str):
    alerts = pd.DataFrame(
        [_alert(1, reason="predicted_late", sub_reason=None, rule="predicted_late")]
    )
    customers = pd.DataFrame([_customer(1, language, tier)])
    out = compose(alerts, customers)
    assert list(out.columns) == MESSAGE_COLUMNS and len(out) == 1
    msg = out.iloc[0]
    lang = load_templates().languages[language]
    assert (msg.language, msg.tier, msg.message_id) == (language, tier, message_id("alert-0001"))
    assert msg.subject == lang.messages["predicted_late"].subject.format(
        order_id="ORD-000000001", tracking_ref="1ZTRACK00001", carrier="SwiftParcel"
    )
    body = msg.body
    assert body.startswith(lang.greeting[tier].format(first_name="Anna"))
    assert "1ZTRACK00001" in body and "ORD-000000001" in body
    assert DATES[language] in body  # the new ETA, formatted for the language
    assert body.rstrip().endswith(lang.closing[tier].rstrip())
    policy = load_templates().tiers[tier]
    payload = json.loads(msg.payload)
    if policy.voucher_eur:
        assert lang.money(policy.voucher_eur) in body
        assert payload["offer"] == {"kind": "voucher", "amount_eur": policy.voucher_eur}
    else:
        assert payload["offer"] is None
    priority = lang.priority_line.format(tier_name=lang.tier_names[tier])
    assert (priority in body) == policy.priority_line
    assert (lang.help_line in body) != policy.priority_line
    assert payload["body"] == body and payload["subject"] == msg.subject
    assert payload["message_id"] == msg.message_id and payload["customer_id"] == "CUS-0000001"
    assert payload["context"]["eta_at"] == "2026-10-03T09:30:00+00:00"
    assert payload["context"]["promised_delivery_date"] == "2026-10-01"


@pytest.mark.parametrize("reason", [*REASONS, "a_reason_no_template_knows"])
def test_every_reason_has_its_own_message(reason: str):
    subs = SUB_REASONS if reason == "carrier_exception" else (None,)
    alerts = pd.DataFrame([_alert(i, reason=reason, sub_reason=s) for i, s in enumerate(subs)])
    customers = pd.DataFrame([_customer(i, "de", "silver") for i in range(len(subs))])
    out = compose(alerts, customers)
    template = load_templates().languages["de"].template(reason)
    assert len(out) == len(subs)
    for i, (msg, sub) in enumerate(zip(out.itertuples(), subs, strict=True)):
        text, _ = template.body_for(sub)
        context = {
            "order_id": f"ORD-{i:09d}",
            "tracking_ref": f"1ZTRACK{i:05d}",
            "carrier": "SwiftParcel",
        }
        assert text.format(**context) in msg.body
        assert msg.subject == template.subject.format(**context)
    assert out["body"].str.split("\n\n").str[1].nunique() == len(subs)


def test_a_lost_parcel_gets_no_delivery_date_and_the_critical_channel():
    alerts = pd.DataFrame([_alert(2, sub_reason="LOST", severity="critical")])
    msg = compose(alerts, pd.DataFrame([_customer(2, "fr", "platinum")])).iloc[0]
    assert "octobre" not in msg.body  # no ETA for a parcel that will not arrive
    assert msg.channel == "sms"
    assert "perte" in msg.body and "25 €" in msg.body


def test_no_personal_data_but_the_customers_own_first_name():
    secrets = {
        "full_name": "Anna Kowalczyk-Brandt",
        "email": "anna.kowalczyk@example.org",
        "phone": "+48 601 234 567",
        "home_address_street": "ul. Marszałkowska 84",
        "home_address_city": "Warszawa",
        "home_address_postal_code": "00-514",
        "devices": "dev-8f2a91",
        "ip_addresses": "203.0.113.77",
    }
    customers = pd.DataFrame([_customer(3, "pl", "gold", **secrets)])
    out = compose(pd.DataFrame([_alert(3)]), customers)
    text = " ".join(str(v) for v in out.iloc[0].to_dict().values())
    assert "Anna" in text
    for value in (*secrets.values(), "Kowalczyk", "Brandt"):
        assert value not in text, value
    payload = json.loads(out.iloc[0].payload)
    assert set(payload) == {
        "schema", "message_id", "alert_id", "customer_id", "order_id", "language", "tier",
        "channel", "subject", "body", "reason", "sub_reason", "severity", "offer",
        "priority_line", "context",
    }  # fmt: skip


def test_fallbacks_for_unknown_language_tier_customer_and_repeats():
    alerts = pd.DataFrame(
        [
            _alert(10),
            _alert(11),
            _alert(12),
            _alert(13, customer_id=None),  # nobody to write to
            _alert(10),  # the same alert twice
            _alert(14, eta_at=pd.NaT, promised_delivery_date=None, tracking_ref=None),
        ]
    )
    customers = pd.DataFrame(
        [
            _customer(10, "sv", "diamond"),  # no Swedish templates, no such tier
            _customer(11, "pt-BR", "GOLD"),
            _customer(14, "nl", "standard", first_name=None),
        ]
    )
    out = compose(alerts, customers).set_index("alert_id")
    assert list(out.index) == ["alert-0010", "alert-0011", "alert-0012", "alert-0014"]
    assert out.loc["alert-0010", ["language", "tier"]].tolist() == ["en", "standard"]
    assert out.loc["alert-0011", ["language", "tier"]].tolist() == ["pt", "gold"]
    unknown = out.loc["alert-0012"]  # not in the customer frame: default language, no name
    assert (unknown.language, unknown.tier) == ("en", "standard")
    assert unknown.body.startswith("Hello,\n")
    nl = out.loc["alert-0014"]
    assert nl.body.startswith("Hallo,\n") and "SHP-000000014" in nl.body
    assert "verwachten" not in nl.body  # no ETA: no date line
    again = compose(pd.DataFrame([_alert(10)]), customers)
    assert again.iloc[0].message_id == out.loc["alert-0010", "message_id"]
    assert again.iloc[0].payload == out.loc["alert-0010", "payload"]
    assert compose(pd.DataFrame(columns=list(_alert())), customers).empty


def test_compose_reads_the_alerts_as_the_detector_stores_them(lake_writer):
    """The stream passes ops.exception_alerts rows (DuckDB types: decimal, date, timestamptz)."""
    from ml.alerts.detect import ALERT_COLUMNS, Detector, ensure_alerts_table

    con = lake_writer
    ensure_alerts_table(con)
    row = {c: None for c in ALERT_COLUMNS}
    row.update(_alert(5, sub_reason="ADDRESS_ISSUE", severity="high"))
    row.update(sla_minutes=60, clock_at=row["detected_at"], promise_at_risk=True)
    stored = Detector.store(con, pd.DataFrame([row]))
    alerts = con.execute("select * from ops.exception_alerts").df()
    assert len(stored) == 1 and alerts["order_value_eur"].map(type).iloc[0] is not str
    out = compose(alerts, pd.DataFrame([_customer(5, "es", "gold")]))
    payload = json.loads(out.iloc[0].payload)
    assert "1ZTRACK00005" in out.iloc[0].body and "3 de octubre de 2026" in out.iloc[0].body
    assert payload["context"]["order_value_eur"] == 129.9
    assert payload["context"]["promised_delivery_date"] == "2026-10-01"
    assert payload["sub_reason"] == "ADDRESS_ISSUE" and payload["channel"] == "email"


# ------------------------------------------------------------------------------- outbox


def test_enqueue_twice_keeps_one_row_and_joins_the_callers_transaction(lake_writer):
    con = lake_writer
    messages = _messages(3)
    con.execute("begin transaction")
    assert enqueue(con, messages, now=T0) == 3
    con.execute("rollback")  # the caller's transaction decides: nothing was committed
    assert outbox_counts(con)["pending"] == 0

    con.execute("begin transaction")
    assert enqueue(con, pd.concat([messages, messages]), now=T0) == 3
    con.execute("commit")
    con.execute("begin transaction")
    assert enqueue(con, _messages(4), now=T0) == 1  # three already there, one new
    con.execute("commit")
    rows = _outbox(con)
    assert len(rows) == 4 and rows["message_id"].is_unique
    assert set(rows["status"]) == {"pending"} and set(rows["attempts"]) == {0}
    assert (
        rows["payload"].map(lambda p: json.loads(p)["message_id"]).tolist()
        == rows["message_id"].tolist()
    )


def test_crm_outage_keeps_messages_pending_with_back_off_then_delivers_each_once(lake_writer, crm):
    con = lake_writer
    enqueue(con, _messages(5), now=T0)
    sender = Sender(url=crm.url, policy=FAST, rng=random.Random(1))

    crm.fail_next(100)  # the CRM answers 503
    stats = sender.send_pending(con, now=T0)
    assert (stats.due, stats.sent, stats.retrying) == (5, 0, 5)
    rows = _outbox(con)
    assert set(rows["status"]) == {"pending"} and set(rows["attempts"]) == {1}
    assert set(rows["last_status"]) == {503}
    assert rows["last_error"].str.startswith("HTTP 503").all()
    waits = (rows["next_attempt_at"] - pd.Timestamp(T0)).dt.total_seconds()
    assert waits.between(5.0, 10.0).all() and waits.nunique() > 1  # 10 s, jittered
    assert sender.send_pending(con, now=T0 + timedelta(seconds=4)).due == 0  # not due yet

    # the second failure waits longer: 20 s with jitter
    sender.send_pending(con, now=T0 + timedelta(seconds=11))
    rows = _outbox(con)
    assert set(rows["attempts"]) == {2}
    waits = (rows["next_attempt_at"] - pd.Timestamp(T0 + timedelta(seconds=11))).dt.total_seconds()
    assert waits.between(10.0, 20.0).all()

    # the CRM is gone altogether: connection refused, nothing lost
    down = Sender(url=f"http://127.0.0.1:{_free_port()}/messages", policy=FAST)
    stats = down.send_pending(con, now=T0 + timedelta(minutes=5))
    assert stats.retrying == 5 and stats.errors == {"ConnectionError": 5}
    rows = _outbox(con)
    assert set(rows["status"]) == {"pending"} and set(rows["attempts"]) == {3}
    assert rows["last_status"].isna().all()
    assert rows["last_error"].str.contains("ConnectionError").all()

    # the CRM is back: everything is delivered, exactly once
    crm.fail_next(0)
    stats = sender.send_pending(con, now=T0 + timedelta(hours=1))
    assert (stats.sent, stats.duplicates) == (5, 0)
    rows = _outbox(con)
    assert set(rows["status"]) == {"sent"} and set(rows["attempts"]) == {4}
    assert set(rows["last_status"]) == {201}
    assert rows["last_error"].str.contains("ConnectionError").all()  # the history is kept
    stored = crm.messages()
    assert sorted(m["idempotency_key"] for m in stored) == sorted(rows["message_id"])
    assert [m["message"]["message_id"] for m in stored] == [m["idempotency_key"] for m in stored]
    assert sender.send_pending(con, now=T0 + timedelta(days=1)).due == 0


def test_a_crash_after_the_post_is_deduplicated_by_the_crm(lake_writer, crm):
    """The sender POSTs, then dies before recording: the re-send is recognised by its key."""
    con = lake_writer
    enqueue(con, _messages(4), now=T0)
    crashed = Sender(url=crm.url, policy=FAST)
    for row in crashed.due(con, 100, T0).itertuples():
        assert crashed.post(row.message_id, row.payload).ok  # ...and nothing is recorded
    assert outbox_counts(con)["pending"] == 4

    restarted = Sender(url=crm.url, policy=FAST)
    stats = restarted.send_pending(con, now=T0)
    assert (stats.sent, stats.duplicates) == (4, 4)
    assert outbox_counts(con) == {"pending": 0, "sent": 4, "dead": 0}
    assert crm.counters()["stored"] == 4 and crm.counters()["posts"] == 8
    assert all(crm.posts_for(mid) == 2 for mid in _outbox(con)["message_id"])


def test_a_timeout_on_a_slow_crm_is_retried_without_a_second_message(lake_writer, crm):
    """The CRM stores the message but answers too late: the sender's retry is a duplicate."""
    con = lake_writer
    enqueue(con, _messages(1), now=T0)
    impatient = RetryPolicy(max_attempts=4, base_delay_s=1.0, timeout=(1.0, 0.3))
    sender = Sender(url=crm.url, policy=impatient)
    crm.slow(0.8)
    stats = sender.send_pending(con, now=T0)
    assert stats.retrying == 1 and "ReadTimeout" in _outbox(con)["last_error"][0]
    deadline = time.monotonic() + 5
    while crm.counters()["stored"] < 1 and time.monotonic() < deadline:
        time.sleep(0.05)  # the CRM is still finishing the first request
    crm.slow(0)
    stats = sender.send_pending(con, now=T0 + timedelta(minutes=1))
    assert (stats.sent, stats.duplicates) == (1, 1)
    assert crm.counters()["stored"] == 1


def test_dead_after_max_attempts_is_kept_with_its_error_and_can_be_requeued(lake_writer, crm):
    con = lake_writer
    enqueue(con, _messages(2), now=T0)
    sender = Sender(url=crm.url, policy=FAST)
    crm.fail_next(100, status=502)
    now = T0
    for attempt in range(1, FAST.max_attempts + 1):
        stats = sender.send_pending(con, now=now)
        assert stats.due == 2 and set(_outbox(con)["attempts"]) == {attempt}
        now += timedelta(hours=1)
    assert stats.dead == 2
    rows = _outbox(con)
    assert set(rows["status"]) == {"dead"} and set(rows["attempts"]) == {FAST.max_attempts}
    assert rows["last_error"].str.startswith("HTTP 502").all() and set(rows["last_status"]) == {502}
    assert sender.send_pending(con, now=now + timedelta(days=30)).due == 0  # dead stays dead

    # a request the CRM will never accept is dead at once
    enqueue(con, _messages(1, start=7), now=T0)
    crm.fail_next(1, status=422)
    stats = sender.send_pending(con, now=now)
    assert stats.dead == 1 and outbox_counts(con)["dead"] == 3

    crm.fail_next(0)
    assert requeue_dead(con, now=now) == 3
    stats = sender.send_pending(con, now=now)
    assert stats.sent == 3 and outbox_counts(con) == {"pending": 0, "sent": 3, "dead": 0}


def test_retry_policy_grows_exponentially_with_bounded_jitter():
    policy = RetryPolicy(base_delay_s=5.0, max_delay_s=300.0, jitter=0.5)
    rng = random.Random(7)
    for attempts, full in [(1, 5.0), (2, 10.0), (3, 20.0), (6, 160.0), (7, 300.0), (20, 300.0)]:
        delays = [policy.delay(attempts, rng) for _ in range(50)]
        assert all(full * 0.5 <= d <= full for d in delays)
    assert RetryPolicy(jitter=0.0).delay(3) == 20.0


def test_a_retry_after_header_is_respected(lake_writer, crm):
    con = lake_writer
    enqueue(con, _messages(1), now=T0)
    crm.configure(fail_next=1, fail_status=429, retry_after_s=120)
    Sender(url=crm.url, policy=FAST).send_pending(con, now=T0)
    row = _outbox(con).iloc[0]
    assert (row.status, row.last_status) == ("pending", 429)
    assert (row.next_attempt_at - pd.Timestamp(T0)).total_seconds() == pytest.approx(120.0)


# ------------------------------------------------------------------------------- receiver


def test_receiver_contract(crm):
    def post(body, key="k-1"):
        headers = {"Idempotency-Key": key} if key else {}
        return requests.post(crm.url, data=body, headers=headers | crm.auth_headers, timeout=5)

    assert post(b'{"message_id": "m1"}', key=None).status_code == 400
    assert post(b"not json").status_code == 400
    assert post(b"[1, 2]").status_code == 400
    first = post('{"message_id": "m1", "body": "Grüße"}'.encode())
    assert first.status_code == 201 and first.json()["duplicate"] is False
    again = post(b'{"message_id": "m1", "body": "changed"}')
    assert again.status_code == 200 and again.json()["duplicate"] is True
    auth = crm.auth_headers
    listed = requests.get(crm.url, headers=auth, timeout=5).json()
    assert listed["count"] == 1 and listed["messages"][0]["message"]["body"] == "Grüße"
    admin = requests.post(f"{crm.base_url}/admin", json={"fail_next": 1}, headers=auth, timeout=5)
    assert admin.status_code == 200
    assert post(b'{"message_id": "m2"}', key="k-2").status_code == 503
    assert post(b'{"message_id": "m2"}', key="k-2").status_code == 201
    health = requests.get(f"{crm.base_url}/health", headers=auth, timeout=5)
    assert health.json()["stored"] == 2
    assert requests.get(f"{crm.base_url}/nowhere", headers=auth, timeout=5).status_code == 404


@pytest.mark.parametrize(
    "header",
    [None, "Bearer wrong-token", "Basic dXNlcjpwYXNz", "Bearer", "bearer  ", "Token test-token"],
)
def test_receiver_refuses_every_endpoint_without_the_token(crm, header):
    headers = {"Idempotency-Key": "k-1"} | ({"Authorization": header} if header else {})
    calls = [
        ("POST", crm.url, b'{"message_id": "m1"}'),
        ("GET", crm.url, None),
        ("GET", f"{crm.base_url}/messages?customer_id=CUS-1", None),
        ("GET", f"{crm.base_url}/health", None),
        ("POST", f"{crm.base_url}/admin", b'{"fail_next": 5}'),
        ("GET", f"{crm.base_url}/nowhere", None),
    ]
    with requests.Session() as session:  # one kept-alive connection: refusals leave it usable
        for method, url, body in calls:
            answer = session.request(method, url, data=body, headers=headers, timeout=5)
            assert answer.status_code == 401, (method, url)
            assert answer.headers["WWW-Authenticate"].startswith("Bearer")
            assert crm.token not in answer.text
    assert crm.counters()["stored"] == 0
    assert crm._take_failure() == (0, None)  # the refused /admin changed nothing
    # the right token, scheme in any case, is let in on the same endpoints
    ok = requests.get(crm.url, headers={"Authorization": f"bEaReR {crm.token}"}, timeout=5)
    assert ok.status_code == 200


def test_sender_presents_the_token_and_not_url_credentials(crm, lake_writer):
    """The token comes from the file; user:password written into the URL is not sent instead."""
    enqueue(lake_writer, _messages(1), now=T0)
    url = crm.url.replace("http://", "http://user:S3cretCrmUrl@")
    stats = Sender(url=url, policy=FAST).send_pending(lake_writer, now=T0)
    assert stats.sent == 1 and crm.counters()["stored"] == 1
    wrong = Sender(url=crm.url, policy=FAST, token="not-the-token")
    enqueue(lake_writer, _messages(1, start=1), now=T0)
    assert wrong.send_pending(lake_writer, now=T0).dead == 1  # a 401 is no outage: dead at once
    refused = _outbox(lake_writer).query("status == 'dead'")
    assert len(refused) == 1 and refused.iloc[0].last_status == 401
    assert "not-the-token" not in refused.iloc[0].last_error


def test_token_file_default_is_created_private_and_explicit_one_must_exist(
    lake_home: Path, monkeypatch: pytest.MonkeyPatch
):
    import stat

    from pipelines.crm.auth import TokenError, authorised, crm_token

    monkeypatch.delenv("ORDERTOWER_CRM_TOKEN_FILE", raising=False)
    token = crm_token()
    path = lake_home / "secrets" / "crm.token"
    assert path.read_text().strip() == token and len(token) >= 40
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert crm_token() == token  # created once, then read
    assert authorised(f"Bearer {token}", token) and not authorised(f"Bearer {token}x", token)
    monkeypatch.setenv("ORDERTOWER_CRM_TOKEN_FILE", str(lake_home / "elsewhere.token"))
    with pytest.raises(TokenError, match="no CRM token file"):
        crm_token()
    assert not (lake_home / "elsewhere.token").exists()


def test_receiver_binds_loopback_by_default(tmp_path: Path):
    from pipelines.cli import build_parser

    with CrmReceiver(tmp_path / "crm.sqlite", token="t" * 40) as receiver:
        assert receiver._server.server_address[0] == "127.0.0.1"
    assert build_parser().parse_args(["crm", "serve"]).host == "127.0.0.1"


# ------------------------------------------------------------------------------- running


def test_background_sender_delivers_what_the_stream_commits(lake_home, crm):
    from ordertower.lake import connect

    con = connect()
    ensure_outbox(con)
    lake_lock = threading.Lock()  # the stream's lake lock, shared with the sender
    stop = threading.Event()
    thread = threading.Thread(
        target=run_sender,
        args=(stop,),
        kwargs={"interval": 0.2, "url": crm.url, "policy": FAST, "lock": lake_lock},
    )
    thread.start()
    try:
        for batch in range(3):  # three micro-batches, each an alert + message transaction
            with lake_lock:
                con.execute("begin transaction")
                enqueue(con, _messages(2, start=2 * batch))
                con.execute("commit")
        deadline = time.monotonic() + 30
        while crm.counters()["stored"] < 6 and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not thread.is_alive()
    assert crm.counters()["stored"] == 6
    deadline = time.monotonic() + 10
    while outbox_counts(con)["sent"] < 6 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert outbox_counts(con) == {"pending": 0, "sent": 6, "dead": 0}
    con.close()


def test_cli_crm_commands(lake_home, crm, monkeypatch, capsys):
    assert main(["crm", "check"]) == 0
    assert "9 languages" in capsys.readouterr().out
    broken = lake_home / "messages.yaml"
    broken.write_text(
        crm_messages.MESSAGES_PATH.read_text().replace("order {order_id}", "order {email}")
    )
    assert main(["crm", "check", str(broken)]) == 1
    assert "unknown placeholder(s) {email}" in capsys.readouterr().err
    assert main(["crm", "send", "--once"]) == 1  # no lake yet: one clear line
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no lake" in err and "Traceback" not in err
    assert main(["crm", "serve", "--port", str(crm.port)]) == 1
    assert "cannot listen" in capsys.readouterr().err

    from ordertower.lake import connect

    con = connect()
    enqueue(con, _messages(2))
    con.close()
    monkeypatch.setenv("ORDERTOWER_CRM_URL", crm.url)
    assert main(["crm", "send", "--once"]) == 0
    assert json.loads(capsys.readouterr().out)["sent"] == 2
    assert main(["crm", "status"]) == 0
    assert "pending: 0, sent: 2, dead: 0" in capsys.readouterr().out
    assert crm.counters()["stored"] == 2


# ------------------------------------------------------------------ which alerts reach customers


def _told(order: str, severity: str, at: datetime) -> dict:
    return {"order_id": order, "severity": severity, "clock_at": at}


def test_only_alerts_worth_a_message_reach_the_customer():
    """A delay that keeps the promise is not announced; an order hears once per repeat window
    unless the news gets more severe; a storm's or a lost parcel's alert is never folded away."""
    templates = load_templates()
    assert templates.repeat_after_hours and "stuck" in templates.only_if_promise_at_risk
    at = pd.Timestamp(T0)
    alerts = pd.DataFrame(
        [
            _alert(1, promise_at_risk=False, clock_at=at),  # delay, still on time: no message
            _alert(2, promise_at_risk=True, clock_at=at),  # delay, promise at risk: message
            _alert(3, promise_at_risk=True, clock_at=at) | {"order_id": "ORD-000000002"},
            _alert(
                4,
                rule="lost_or_damaged",
                sub_reason="LOST",
                severity="critical",
                promise_at_risk=True,
                clock_at=at,
            ),
            _alert(5, promise_at_risk=True, clock_at=at),  # told 1 h ago at the same severity
            _alert(6, severity="high", promise_at_risk=True, clock_at=at),  # told, but worse now
        ]
    )
    told = pd.DataFrame(
        [
            _told("ORD-000000005", "medium", at - timedelta(hours=1)),
            _told("ORD-000000006", "medium", at - timedelta(hours=1)),
            _told("ORD-000000004", "critical", at - timedelta(days=30)),  # long ago
        ]
    )
    kept = crm_messages.worth_a_message(alerts, templates, told)
    assert sorted(kept["alert_id"]) == ["alert-0002", "alert-0004", "alert-0006"]


def test_a_bad_repeat_or_promise_policy_is_refused():
    raw = yaml.safe_load(crm_messages.MESSAGES_PATH.read_text(encoding="utf-8"))
    with pytest.raises(TemplateError, match="repeat_after_hours"):
        parse_templates({**raw, "repeat_after_hours": "often"})
    with pytest.raises(TemplateError, match="only_if_promise_at_risk"):
        parse_templates({**raw, "only_if_promise_at_risk": ["stuk"]})
