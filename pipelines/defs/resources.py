"""Resources shared by every domain."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import duckdb

from ordertower import lake
from ordertower.settings import get_settings


class LakeResource(dg.ConfigurableResource):
    """The DuckLake lake (catalog and data path from ``ordertower.settings``)."""

    def connect(self, read_only: bool = False) -> duckdb.DuckDBPyConnection:
        return lake.connect(read_only=read_only)

    @property
    def landing_dir(self) -> Path:
        return get_settings().landing_dir


#: Lake writers share this pool: the SQLite catalog takes one writer at a time.
LAKE_WRITER_POOL = "lake_writer"
