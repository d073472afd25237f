"""dbt-duckdb plugin: every dbt connection gets ``pii_hmac()`` keyed with the PII key.

Declared under ``plugins:`` in ``dbt/profiles.yml``. The key is read here, in dbt's own process
(:meth:`ordertower.settings.Settings.pii_key`: ``ORDERTOWER_PII_KEY`` or the key file named by
``ORDERTOWER_PII_KEY_FILE``), and captured by the Python function: it is never a dbt var, an
``env_var()`` in SQL or a macro body, so it cannot reach compiled SQL, dbt's logs,
``run_results.json`` or the manifest.
"""

from __future__ import annotations

from dbt.adapters.duckdb.plugins import BasePlugin
from duckdb import DuckDBPyConnection

from ordertower.pii import register_pii_functions


class Plugin(BasePlugin):
    def configure_connection(self, conn: DuckDBPyConnection) -> None:
        register_pii_functions(conn)
