"""The one environment resolver: every path, URL and switch the platform reads.

Nothing else in the code base calls ``os.getenv`` for platform settings. Values come from the
environment (``ORDERTOWER_*``, ``MLFLOW_TRACKING_URI``, ``DAGSTER_HOME``) with embedded defaults
under ``ORDERTOWER_HOME`` (default ``.ordertower/`` at the project root).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

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
    #: console log level of in-process runs (step events always go to the run's event log)
    log_level: str
    #: AMQP URL of the message broker carrying live carrier events (RabbitMQ)
    broker_url: str = "amqp://guest:guest@127.0.0.1:5672/%2F"
    #: where customer messages are POSTed (the CRM's inbound-message endpoint)
    crm_url: str = "http://127.0.0.1:8765/messages"

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

    def dbt_env(self) -> dict[str, str]:
        """What dbt's profiles.yml reads: where the lake's catalog and data files are."""
        return {
            "ORDERTOWER_DUCKLAKE_URI": self.ducklake_uri,
            "ORDERTOWER_DATA_PATH": self.data_path,
        }

    @property
    def ducklake_uri(self) -> str:
        if self.catalog_kind == "postgres":
            return f"ducklake:postgres:{self.catalog}"
        return f"ducklake:sqlite:{self.catalog}"


def get_settings() -> Settings:
    """Resolve settings from the environment (read on every call, so tests can repoint them)."""
    home = Path(os.environ.get("ORDERTOWER_HOME") or PROJECT_ROOT / ".ordertower").resolve()
    kind = os.environ.get("ORDERTOWER_CATALOG", "sqlite").lower()
    if kind not in ("sqlite", "postgres"):
        raise ValueError(f"ORDERTOWER_CATALOG must be 'sqlite' or 'postgres', not {kind!r}")
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
        log_level=os.environ.get("ORDERTOWER_LOG_LEVEL", "INFO").upper(),
        broker_url=os.environ.get("ORDERTOWER_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672/%2F"),
        crm_url=os.environ.get("ORDERTOWER_CRM_URL", "http://127.0.0.1:8765/messages"),
        ingest_workers=int(
            os.environ.get("ORDERTOWER_INGEST_WORKERS") or min(2, os.cpu_count() or 1)
        ),
    )
