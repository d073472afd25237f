"""The one environment resolver: every path, URL and switch the platform reads.

Nothing else in the code base calls ``os.getenv`` for platform settings. Values come from the
environment (``ORDERTOWER_*``, ``MLFLOW_TRACKING_URI``, ``DAGSTER_HOME``) with embedded defaults
under ``ORDERTOWER_HOME`` (default ``.ordertower/`` at the project root).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CONTRACTS_DIR = PROJECT_ROOT / "data_contracts"
DBT_PROJECT_DIR = PROJECT_ROOT / "dbt"
#: Real public data sets beside the checkout (never copied into it: their licences forbid it).
#: A fresh clone has no such folder; whatever reads it skips with a clear message.
SHARED_DATASETS_DIR = PROJECT_ROOT.parent / "shared" / "datasets"

#: Lake schemas, in the order data flows through them.
LAKE_SCHEMAS = ("raw", "quarantine", "staging", "intermediate", "marts", "ml", "ops")


@dataclass(frozen=True)
class Settings:
    home: Path
    #: ``sqlite`` (embedded default) or ``postgres`` (catalog in PostgreSQL).
    catalog_kind: str
    #: For ``sqlite``: the catalog file. For ``postgres``: a libpq connection string.
    catalog: str
    data_path: str
    partition_start: str
    #: processes that parse and validate landing files in parallel (the lake has one writer)
    ingest_workers: int
    routing_workers: int
    #: processes that solve the waves of a multi-day dispatch_plan run (the lake has one writer)
    dispatch_workers: int
    #: console log level of in-process runs (step events always go to the run's event log)
    log_level: str
    #: AMQP URL of the message broker carrying live carrier events (RabbitMQ)
    broker_url: str = "amqp://guest:guest@127.0.0.1:5672/%2F"
    #: where customer messages are POSTed (the CRM's inbound-message endpoint)
    crm_url: str = "http://127.0.0.1:8765/messages"
    #: a landing-file line or a broker message body longer than this many bytes is quarantined
    #: (or dead-lettered) unparsed, with a bounded prefix, its size and its SHA-256
    max_record_bytes: int = 1_048_576
    #: the live queue holds at most this many messages; more are dead-lettered, not dropped
    stream_max_length: int = 1_000_000
    #: lake upkeep (docs/lake.md, "Lake upkeep"): time travel reaches back this many days;
    #: older snapshots are expired and the files only they needed are deleted
    lake_retention_days: float = 7.0
    #: every snapshot of the last N hours is kept; older ones that only the stream wrote
    #: (micro-batches, compaction) are thinned to the last one of each hour
    lake_dense_hours: float = 24.0
    #: files unreferenced (merged, expired, orphaned) are deleted only this long after they
    #: became so: a query or a writer still reading them finishes first
    lake_delete_grace_minutes: float = 30.0
    #: the stream's duplicate check looks only at events it ingested within this many days
    stream_dedup_window_days: float = 14.0
    #: what runs the contract rules at ingestion: ``duckdb`` (set-based SQL, the default) or
    #: ``great_expectations`` (the reference engine; both give the same records and reasons)
    contract_engine: str = "duckdb"

    @property
    def landing_dir(self) -> Path:
        return self.home / "landing"

    @property
    def dagster_home(self) -> Path:
        return Path(os.environ.get("DAGSTER_HOME") or self.home / "dagster")

    @property
    def mlflow_tracking_uri(self) -> str:
        return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{self.home / 'mlflow.db'}"

    @property
    def mlflow_artifact_root(self) -> Path:
        return self.home / "mlartifacts"

    @property
    def bench_dir(self) -> Path:
        return self.home / "bench"

    @property
    def roles_file(self) -> Path:
        """Who holds which role (ordertower/roles.yaml unless a deployment names its own)."""
        return Path(
            os.environ.get("ORDERTOWER_ROLES_FILE") or PROJECT_ROOT / "ordertower" / "roles.yaml"
        )

    @property
    def actor(self) -> str | None:
        """The identity the CLI's write verbs act as when ``--as`` is not given."""
        return os.environ.get("ORDERTOWER_ACTOR") or None

    @property
    def crm_token_file(self) -> Path:
        """The bearer token the CRM sender presents and the local receiver requires."""
        return Path(
            os.environ.get("ORDERTOWER_CRM_TOKEN_FILE") or self.home / "secrets" / "crm.token"
        )

    @property
    def dbt_target_dir(self) -> Path:
        """Where dbt's runs in Dagster keep their artifacts (one folder per invocation, the
        newest few kept) and the partial parse they share: per home, like the lake they
        describe."""
        return self.home / "dbt" / "target"

    def dbt_env(self) -> dict[str, str]:
        """What dbt's profiles.yml reads: where the lake's catalog and data files are."""
        env = {
            "ORDERTOWER_DUCKLAKE_URI": self.ducklake_uri,
            "ORDERTOWER_DATA_PATH": self.data_path,
            # where the PII key is (never the key itself): the dbt plugin reads it there
            "ORDERTOWER_PII_KEY_FILE": str(self.pii_key_file),
        }
        if self.catalog_kind == "postgres":
            from ordertower.redact import split_password

            # dbt quotes the attached DSN in its logs and errors: libpq takes the password from
            # the environment instead
            dsn, password = split_password(self.catalog)
            if password is not None:
                env.update(ORDERTOWER_DUCKLAKE_URI=f"ducklake:postgres:{dsn}", PGPASSWORD=password)
        return env

    @property
    def pii_key_file(self) -> Path:
        """The secrets file of the PII HMAC key, outside the lake and the repository."""
        return Path(
            os.environ.get("ORDERTOWER_PII_KEY_FILE") or self.home / "secrets" / "pii_hmac.key"
        )

    def pii_key(self) -> bytes:
        """The key of every keyed hash (HMAC-SHA256) of personal data in the lake.

        ``ORDERTOWER_PII_KEY`` (hex, at least 16 bytes) wins; otherwise the key file, created
        on first use (32 random bytes as hex, mode 0600) so the embedded default needs no
        setup. Never logged, never passed to dbt or SQL (see docs/pii.md).
        """
        text = os.environ.get("ORDERTOWER_PII_KEY")
        where = "ORDERTOWER_PII_KEY"
        if not text:
            text, where = _read_or_create_key(self.pii_key_file), str(self.pii_key_file)
        try:
            key = bytes.fromhex(text.strip())
        except ValueError:
            key = b""
        if len(key) < 16:
            raise ValueError(f"the PII key in {where} must be at least 32 hexadecimal digits")
        return key

    @property
    def ducklake_uri(self) -> str:
        if self.catalog_kind == "postgres":
            return f"ducklake:postgres:{self.catalog}"
        return f"ducklake:sqlite:{self.catalog}"


def _read_or_create_key(path: Path) -> str:
    """The key file's text; a new random key when there is none (two racing creators agree)."""
    import secrets

    try:
        return path.read_text()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    # written whole under a private name, then linked into place: a reader never sees a
    # half-written key, and of two processes creating it at once the first link wins
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_bytes(32).hex() + "\n")
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)
    return path.read_text()


class SettingsError(ValueError):
    """An ``ORDERTOWER_*`` variable holds a value the platform cannot use (says which)."""


#: the console log levels ORDERTOWER_LOG_LEVEL may name (Python's, as Dagster accepts them)
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
#: the engines ORDERTOWER_CONTRACT_ENGINE may name (pipelines/contracts/sql_checks.py)
CONTRACT_ENGINES = ("duckdb", "great_expectations")


def _number(name: str, default: float, kind: type = int, minimum: float = 1) -> Any:
    """``ORDERTOWER_<name>`` as a whole (``kind=int``) or decimal number of at least
    ``minimum``, or :class:`SettingsError` naming the variable and the value (never a bare
    ValueError from deep inside a command)."""
    raw = os.environ.get(name)
    if not raw:
        return kind(default)
    try:
        value = kind(raw)
    except ValueError:
        value = None
    if value is None or not math.isfinite(value) or value < minimum:
        what = "a whole number" if kind is int else "a number"
        raise SettingsError(f"{name} must be {what} of at least {minimum:g}, not {raw!r}")
    return value


def get_settings() -> Settings:
    """Resolve settings from the environment (read on every call, so tests can repoint them)."""
    home = Path(os.environ.get("ORDERTOWER_HOME") or PROJECT_ROOT / ".ordertower").resolve()
    kind = os.environ.get("ORDERTOWER_CATALOG", "sqlite").lower()
    if kind not in ("sqlite", "postgres"):
        raise SettingsError(f"ORDERTOWER_CATALOG must be 'sqlite' or 'postgres', not {kind!r}")
    log_level = os.environ.get("ORDERTOWER_LOG_LEVEL", "WARNING").upper()
    if log_level not in LOG_LEVELS:
        raise SettingsError(
            f"ORDERTOWER_LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, not {log_level!r}"
        )
    engine = os.environ.get("ORDERTOWER_CONTRACT_ENGINE", "duckdb").lower().replace("-", "_")
    if engine not in CONTRACT_ENGINES:
        raise SettingsError(
            f"ORDERTOWER_CONTRACT_ENGINE must be one of {', '.join(CONTRACT_ENGINES)}, not {engine!r}"
        )
    if kind == "postgres":
        catalog = os.environ.get(
            "ORDERTOWER_CATALOG_DSN", "dbname=ordertower host=127.0.0.1 port=5432 user=postgres"
        )
    else:
        catalog = str(home / "lake" / "catalog.sqlite")
    data_path = os.environ.get("ORDERTOWER_DATA_PATH") or str(home / "lake" / "data")
    return Settings(
        home=home,
        catalog_kind=kind,
        catalog=catalog,
        data_path=data_path.rstrip("/") + "/",
        partition_start=os.environ.get("ORDERTOWER_PARTITION_START", "2026-01-01"),
        log_level=log_level,
        broker_url=os.environ.get("ORDERTOWER_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672/%2F"),
        crm_url=os.environ.get("ORDERTOWER_CRM_URL", "http://127.0.0.1:8765/messages"),
        max_record_bytes=_number("ORDERTOWER_MAX_RECORD_BYTES", 1_048_576),
        stream_max_length=_number("ORDERTOWER_STREAM_MAX_LENGTH", 1_000_000),
        ingest_workers=_number("ORDERTOWER_INGEST_WORKERS", min(2, os.cpu_count() or 1)),
        routing_workers=_number("ORDERTOWER_ROUTING_WORKERS", min(2, os.cpu_count() or 1)),
        dispatch_workers=_number("ORDERTOWER_DISPATCH_WORKERS", min(2, os.cpu_count() or 1)),
        lake_retention_days=_number("ORDERTOWER_LAKE_RETENTION_DAYS", 7, float, 0),
        lake_dense_hours=_number("ORDERTOWER_LAKE_DENSE_HOURS", 24, float, 0),
        lake_delete_grace_minutes=_number("ORDERTOWER_LAKE_DELETE_GRACE_MINUTES", 30, float, 0),
        stream_dedup_window_days=_number("ORDERTOWER_STREAM_DEDUP_WINDOW_DAYS", 14, float, 0),
        contract_engine=engine,
    )


@contextmanager
def environment(values: Mapping[str, str | None]) -> Iterator[None]:
    """Set (or, for None, unset) environment variables for a while, then restore them: how a
    run, a bench or a test points the settings (read on every call) somewhere else."""
    saved = {k: os.environ.get(k) for k in values}
    for key, value in values.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
