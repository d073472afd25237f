"""dbt-duckdb plugin: where the lake is, and ``pii_hmac()`` keyed with the PII key.

Declared under ``plugins:`` in ``dbt/profiles.yml``, and run by dbt-duckdb on its connection
before the profile's ``attach:``.

* **The lake's location** is a DuckDB secret (``TYPE ducklake``, temporary: it lives in this
  connection only) named :data:`LAKE_SECRET`, made from ``ORDERTOWER_DUCKLAKE_URI`` and
  ``ORDERTOWER_DATA_PATH`` (:meth:`ordertower.settings.Settings.dbt_env`); the profile attaches
  ``ducklake:<LAKE_SECRET>``. The profile is part of dbt's partial-parse check, so with the paths
  out of it, it is the same for every lake and one parse of the project serves them all (a new
  lake no longer parses the project again), and a catalog's DSN never appears in dbt's logs.
* **The PII key** is read here, in dbt's own process
  (:meth:`ordertower.settings.Settings.pii_key`: ``ORDERTOWER_PII_KEY`` or the key file named by
  ``ORDERTOWER_PII_KEY_FILE``), and captured by the Python function: it is never a dbt var, an
  ``env_var()`` in SQL or a macro body, so it cannot reach compiled SQL, dbt's logs,
  ``run_results.json`` or the manifest.
"""

from __future__ import annotations

import os

from dbt.adapters.duckdb.plugins import BasePlugin
from duckdb import DuckDBPyConnection

from ordertower.lake import load_lake_extensions, sql_literal
from ordertower.pii import register_pii_functions

#: the secret ``dbt/profiles.yml`` attaches (``ducklake:ordertower_lake``)
LAKE_SECRET = "ordertower_lake"


def lake_secret_sql(ducklake_uri: str, data_path: str) -> str:
    """The temporary DuckLake secret for a catalog URI (``ducklake:sqlite:...`` or
    ``ducklake:postgres:...``) and its data path."""
    metadata = ducklake_uri.removeprefix("ducklake:")
    return (
        f"CREATE OR REPLACE TEMPORARY SECRET {LAKE_SECRET} (TYPE ducklake, "
        f"METADATA_PATH {sql_literal(metadata)}, DATA_PATH {sql_literal(data_path)})"
    )


class Plugin(BasePlugin):
    def configure_connection(self, conn: DuckDBPyConnection) -> None:
        from ordertower.settings import get_settings

        env = os.environ if "ORDERTOWER_DUCKLAKE_URI" in os.environ else get_settings().dbt_env()
        uri = env["ORDERTOWER_DUCKLAKE_URI"]
        load_lake_extensions(conn, "postgres" if uri.startswith("ducklake:postgres:") else "sqlite")
        conn.execute(lake_secret_sql(uri, env["ORDERTOWER_DATA_PATH"]))
        register_pii_functions(conn)
