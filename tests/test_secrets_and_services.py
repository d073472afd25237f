"""Secrets and services: no password in any output, log or page when a service is down; servers
on 127.0.0.1; no DuckDB extension fetched or loaded behind our back; landing-zone links and
hostile contract names refused.

The service tests run the real ``ordertower`` command in a subprocess against a port where
nothing listens, then look for the password in stdout, stderr and every file the command left
under ``ORDERTOWER_HOME`` (logs, the lake's catalog and data files, the outbox).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tomllib
from pathlib import Path

import duckdb
import landing_factory as lf
import pytest
import yaml

from ordertower.redact import redact, split_password
from ordertower.settings import CONTRACTS_DIR, PROJECT_ROOT

CATALOG_SECRET = "S3cretCatalog-Pw_42"
BROKER_SECRET = "S3cretBroker-Pw_42"
CRM_SECRET = "S3cretCrm-Pw_42"
SECRETS = (CATALOG_SECRET, BROKER_SECRET, CRM_SECRET)


def _dead_port() -> int:
    """A port on 127.0.0.1 where nothing listens (bound, released, never listened on)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ORDERTOWER_", "DAGSTER_", "MLFLOW_", "PG"))
    }
    # every log line a command writes is checked for the secret: the most verbose level
    return {**env, "ORDERTOWER_HOME": str(home), "ORDERTOWER_LOG_LEVEL": "DEBUG", **extra}


def _run(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pipelines.cli", *args],
        env=env,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _assert_nowhere(secret: str, result: subprocess.CompletedProcess, home: Path) -> None:
    assert secret not in result.stdout, result.stdout
    assert secret not in result.stderr, result.stderr
    leaked = [p for p in home.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]
    assert not leaked, f"{secret} written to {leaked}"


# ------------------------------------------------------------------------------ redaction


@pytest.mark.parametrize(
    ("text", "gone"),
    [
        ("amqp://u:pw-123456@127.0.0.1:5672/%2F", "pw-123456"),
        ("http://u:p@ss:word1@host:8765/messages", "ss:word1"),
        ("postgresql://u:pw-abcdef@db/lake?sslmode=require", "pw-abcdef"),
        ("dbname=x host=h password=pw-plain1 user=u", "pw-plain1"),
        ("dbname=x password = 'pw with space' user=u", "pw with space"),
        ("ATTACH 'ducklake:postgres:password=''pw quoted'' host=h'", "pw quoted"),
        ('Unable to connect to Postgres at "host=h password=pw-q2x": refused', "pw-q2x"),
        ("postgresql://h/db?user=u&password=pw-query1", "pw-query1"),
    ],
)
def test_redact_removes_passwords_from_urls_dsns_and_error_text(text: str, gone: str):
    out = redact(text)
    assert gone not in out and "***" in out


def test_redact_keeps_what_says_where_and_masks_configured_secrets_anywhere(monkeypatch):
    assert redact("amqp://guest:guest@127.0.0.1:5672/%2F") == "amqp://guest:***@127.0.0.1:5672/%2F"
    assert redact("http://127.0.0.1:8765/messages") == "http://127.0.0.1:8765/messages"
    assert redact("dbname=x host=h port=1") == "dbname=x host=h port=1"
    monkeypatch.setenv("ORDERTOWER_CATALOG", "postgres")
    monkeypatch.setenv("ORDERTOWER_CATALOG_DSN", f"host=h password='{CATALOG_SECRET}'")
    assert redact(f"an odd format: [{CATALOG_SECRET}]") == "an odd format: [***]"
    assert split_password(f"dbname=x password={CATALOG_SECRET} user=u") == (
        "dbname=x user=u",
        CATALOG_SECRET,
    )
    assert split_password("postgresql://u:p%40ss@h/db") == ("postgresql://u@h/db", "p@ss")


def test_log_records_are_redacted(capsys):
    import logging

    from ordertower.redact import install_log_redaction

    install_log_redaction()
    log = logging.getLogger("ordertower.test.redact")
    handler = logging.StreamHandler(sys.stderr)
    log.addHandler(handler)
    try:
        log.warning("broker %s", f"amqp://u:{BROKER_SECRET}@h")
        try:
            raise RuntimeError(f"dsn password={CATALOG_SECRET}")
        except RuntimeError:
            log.exception("failed")
    finally:
        log.removeHandler(handler)
    err = capsys.readouterr().err
    assert "amqp://u:***@h" in err and "password=***" in err
    assert BROKER_SECRET not in err and CATALOG_SECRET not in err


# ------------------------------------------------------------------- services that are down


def test_catalog_password_nowhere_when_postgres_is_down(tmp_path: Path):
    home = tmp_path / "home"
    port = _dead_port()
    env = _env(
        home,
        ORDERTOWER_CATALOG="postgres",
        ORDERTOWER_CATALOG_DSN=(
            f"dbname=ordertower host=127.0.0.1 port={port} user=u password={CATALOG_SECRET}"
        ),
    )
    for args in (["status"], ["sql", "select 1"], ["crm", "status"]):
        result = _run(env, *args)
        _assert_nowhere(CATALOG_SECRET, result, home)
        assert result.returncode == 1, result
        # still says what is wrong, and where
        assert "cannot attach the lake" in result.stderr, result.stderr
        assert f"port={port}" in result.stderr and "password=***" in result.stderr
        assert "Traceback" not in result.stderr


def test_broker_password_nowhere_when_rabbitmq_is_down(tmp_path: Path):
    home = tmp_path / "home"
    port = _dead_port()
    env = _env(home, ORDERTOWER_BROKER_URL=f"amqp://u:{BROKER_SECRET}@127.0.0.1:{port}/%2F")
    runs = {
        "stream": ["stream", "--idle-exit", "1"],
        "live-demo": ["live-demo"],
        "simulate --live": [
            "simulate",
            "--orders",
            "300",
            "--days",
            "2",
            "--out",
            str(tmp_path / "world"),
            "--live",
        ],
    }
    for name, args in runs.items():
        result = _run(env, *args)
        _assert_nowhere(BROKER_SECRET, result, home)
        assert result.returncode == 1, (name, result)
        assert f"u:***@127.0.0.1:{port}" in result.stderr, (name, result.stderr)
        if name != "simulate --live":  # (there pika also logs its own traceback, redacted)
            assert "Traceback" not in result.stderr, (name, result.stderr)
    # the live part of make demo is skipped with the reason, still without the password
    result = _run(env, "live-demo", "--if-broker")
    _assert_nowhere(BROKER_SECRET, result, home)
    assert result.returncode == 0 and "live part skipped: no message broker" in result.stdout


def test_crm_password_nowhere_when_the_crm_is_down(tmp_path: Path):
    home = tmp_path / "home"
    port = _dead_port()
    url = f"http://u:{CRM_SECRET}@127.0.0.1:{port}/messages"
    env = _env(home, ORDERTOWER_CRM_URL=url)
    seed = (
        "from tests.test_crm import _messages\n"
        "from ordertower.lake import connect\n"
        "from pipelines.crm.outbox import enqueue\n"
        "con = connect(); enqueue(con, _messages(2)); con.close()\n"
    )
    subprocess.run([sys.executable, "-c", seed], env=env, cwd=PROJECT_ROOT, check=True)
    result = _run(env, "crm", "send", "--once")
    _assert_nowhere(CRM_SECRET, result, home)
    assert result.returncode == 0 and '"retrying": 2' in result.stdout
    assert "ConnectionError" in result.stdout  # what went wrong is still said
    result = _run(env, "crm", "status")
    _assert_nowhere(CRM_SECRET, result, home)
    assert "pending: 2" in result.stdout
    result = _run(env, "crm", "send", "--url", f"ftp://u:{CRM_SECRET}@127.0.0.1/x", "--once")
    _assert_nowhere(CRM_SECRET, result, home)
    assert result.returncode == 1 and "not an http(s) URL" in result.stderr
    # the stored errors say what happened, without the URL's password
    check = (
        "from ordertower.lake import connect\n"
        "print(connect(read_only=True).execute("
        "'select last_error from ops.crm_outbox').fetchall())\n"
    )
    stored = subprocess.run(
        [sys.executable, "-c", check], env=env, cwd=PROJECT_ROOT, capture_output=True, text=True
    )
    assert "ConnectionError" in stored.stdout and CRM_SECRET not in stored.stdout


def test_dashboard_error_text_is_redacted(monkeypatch):
    from dashboards import actions, data
    from ordertower.audit import AuditError

    dsn = f"dbname=x host=127.0.0.1 port=1 password={CATALOG_SECRET}"
    exc = duckdb.IOException(f'Unable to connect to Postgres at "{dsn}": refused')
    assert CATALOG_SECRET not in data._first_line(exc) and "password=***" in data._first_line(exc)

    monkeypatch.setattr(data, "lake_connection", lambda: _Cursorless(exc))
    with pytest.raises(data.DataUnavailable) as raised:
        data._query("select 1")
    assert CATALOG_SECRET not in str(raised.value) and "could not be read" in str(raised.value)

    def store_fails(*args, **kwargs):
        raise AuditError(f"cannot attach the lake (ducklake:postgres:{dsn})")

    monkeypatch.setattr(actions.auth, "identity", lambda: None)
    monkeypatch.setattr(actions, "store_decide", store_fails)
    with pytest.raises(actions.DecisionError) as decided:
        actions.decide("ORD-1", "approve")
    assert CATALOG_SECRET not in str(decided.value) and "password=***" in str(decided.value)


class _Cursorless:
    """A lake connection whose every cursor fails the way an unreachable catalog does."""

    def __init__(self, exc: Exception) -> None:
        self.exc = exc

    def cursor(self):
        exc = self.exc

        class _Cursor:
            def execute(self, *args, **kwargs):
                raise exc

            def close(self) -> None:
                pass

        return _Cursor()


# ------------------------------------------------------------------------------- servers


def test_streamlit_listens_on_loopback_unless_told_otherwise():
    config = tomllib.loads((PROJECT_ROOT / ".streamlit" / "config.toml").read_text())
    assert config["server"]["address"] == "127.0.0.1"
    assert config["server"]["port"] == 8501


def test_make_starts_every_server_on_loopback():
    makefile = (PROJECT_ROOT / "Makefile").read_text()
    for server in ("dg dev", "streamlit run", "mlflow ui", "dbt docs serve"):
        line = next(line for line in makefile.splitlines() if server in line)
        assert "127.0.0.1" in line, line


# ---------------------------------------------------------------------------- extensions


def test_lake_connections_never_autoinstall_or_autoload_extensions(lake_home: Path):
    from ordertower.lake import connect

    for read_only in (False, True):
        con = connect(read_only=read_only)
        try:
            row = con.execute(
                "select current_setting('autoinstall_known_extensions'), "
                "current_setting('autoload_known_extensions')"
            ).fetchone()
            loaded = {
                r[0]
                for r in con.execute(
                    "select extension_name from duckdb_extensions() where loaded"
                ).fetchall()
            }
        finally:
            con.close()
        assert row == (False, False)
        assert {"ducklake", "sqlite_scanner"} <= loaded  # the explicit LOADs still work


def test_dbt_profile_turns_extension_autoloading_off():
    profile = yaml.safe_load((PROJECT_ROOT / "dbt" / "profiles.yml").read_text())
    lake = profile["ordertower"]["outputs"]["lake"]
    assert lake["config_options"]["autoinstall_known_extensions"] is False
    assert lake["settings"] == lake["settings"] | {
        "autoinstall_known_extensions": False,
        "autoload_known_extensions": False,
    }


# --------------------------------------------------------------------------- landing zone


def test_landing_links_are_refused_with_a_reason_and_the_run_carries_on(
    lake_home: Path, tmp_path: Path
):
    from ordertower.lake import connect
    from pipelines.ingest.runner import ingest_source, landed_partitions
    from pipelines.ingest.sources import SOURCES_BY_NAME

    landing = lake_home / "landing"
    lf.reference(landing)
    lf.clean_day(landing)
    outside = tmp_path / "outside"
    lf.clean_day(outside, day="2026-08-22", n_orders=2)
    lf.write_text(outside / "secret.jsonl", '{"order_id": "STOLEN"}\n')
    day = landing / "oms" / "orders" / "date=2026-08-20"
    (day / "linked.jsonl").symlink_to(outside / "secret.jsonl")  # a file link, out of the zone
    (day / "inside.jsonl").symlink_to(day / "orders.jsonl")  # a file link, even inside
    (landing / "oms" / "orders" / "date=2026-08-22").symlink_to(  # a linked folder
        outside / "oms" / "orders" / "date=2026-08-22", target_is_directory=True
    )
    (day / "dangling.jsonl").symlink_to(tmp_path / "nowhere.jsonl")

    source = SOURCES_BY_NAME["orders"]
    con = connect()
    try:
        results = ingest_source(source, landed_partitions(source, landing), con, landing, "r1")
        landed = con.execute("select order_id from raw.orders order by 1").fetchall()
        refused = con.execute(
            "select source_file, reason from quarantine.rejected_records "
            "where dataset = 'orders' order by 1"
        ).fetchall()
    finally:
        con.close()
    assert landed == [(f"ORD-{i:08d}",) for i in (1, 2, 3)]  # the regular files only
    assert results["orders"].conserved
    reasons = dict(refused)
    assert set(reasons) == {
        "oms/orders/date=2026-08-20/dangling.jsonl",
        "oms/orders/date=2026-08-20/inside.jsonl",
        "oms/orders/date=2026-08-20/linked.jsonl",
        "oms/orders/date=2026-08-22/orders.jsonl",
    }
    assert reasons["oms/orders/date=2026-08-20/linked.jsonl"].startswith(
        "refused: the file is a symbolic link"
    )
    assert (
        "its folder oms/orders/date=2026-08-22 is a symbolic link"
        in (reasons["oms/orders/date=2026-08-22/orders.jsonl"])
    )


def test_refusal_rules(tmp_path: Path):
    from pipelines.ingest.landing import refusal

    root = tmp_path / "landing"
    (root / "a").mkdir(parents=True)
    (root / "a" / "f.csv").write_text("x\n")
    assert refusal(root / "a" / "f.csv", root) is None
    (tmp_path / "x.csv").write_text("x\n")
    assert "outside the landing zone" in refusal(tmp_path / "x.csv", root)
    assert "resolves outside the landing zone" in refusal(root / ".." / "x.csv", root)
    assert "cannot be resolved" in refusal(root / "a" / "gone.csv", root)


def test_olist_lander_refuses_a_linked_target(tmp_path: Path):
    from pipelines.ingest.olist import OLIST_FILES, OlistError, land

    source = tmp_path / "olist_src"
    source.mkdir()
    for name in OLIST_FILES:
        (source / name).write_text("a,b\n1,2\n")
    landing = tmp_path / "landing"
    landing.mkdir()
    (landing / "olist").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    with pytest.raises(OlistError, match="refused"):
        land(source, landing)
    assert not (tmp_path / "elsewhere").exists()


# ------------------------------------------------------------------------------ contracts


@pytest.mark.parametrize(
    ("where", "value"),
    [
        ("column", "x; drop table raw.orders --"),
        ("column", 'a"b'),
        ("column", "Order_Id"),
        ("column", "x" * 64),
        ("column", "ok\n"),
        ("physicalName", 'raw."orders"'),
        ("name", "orders; select 1"),
    ],
)
def test_contract_names_must_be_identifiers(tmp_path: Path, where: str, value: str):
    from pipelines.contracts.lint import lint_paths
    from pipelines.contracts.model import ContractError, load_contract

    doc = yaml.safe_load((CONTRACTS_DIR / "orders.yaml").read_text())
    if where == "column":
        doc["schema"][0]["properties"][1]["name"] = value
    elif where == "physicalName":
        doc["schema"][0]["physicalName"] = value
    else:
        doc["name"] = value
    path = tmp_path / "orders.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True))
    with pytest.raises(ContractError) as raised:
        load_contract(path)
    message = str(raised.value)  # names the file, the contract and the offending name
    assert message.startswith("orders.yaml: contract ") and "not a valid identifier" in message
    findings = [f for f in lint_paths([path]) if f.severity == "error"]
    assert any("not a valid identifier" in f.message for f in findings), findings


def test_every_project_contract_name_is_an_identifier():
    from pipelines.contracts.marts import mart_contracts
    from pipelines.contracts.model import load_contracts

    contracts = {**load_contracts(), **mart_contracts()}
    assert len(contracts) > 20
