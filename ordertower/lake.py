"""Open the DuckLake order lake.

DuckDB extensions come from their PyPI packages (``duckdb-extension-*``), imported once per
process and then loaded: nothing is ever downloaded with ``INSTALL``.

The embedded default keeps the DuckLake catalog in a SQLite file under ``ORDERTOWER_HOME`` and
the Parquet data files beside it; ``ORDERTOWER_CATALOG=postgres`` keeps the catalog in
PostgreSQL so many processes can write at once. Readers (dashboards, ``ordertower sql``) attach
the same catalog read-only and see the last committed snapshot while a materialisation writes.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from ordertower.redact import redact
from ordertower.settings import LAKE_SCHEMAS, Settings, get_settings

LAKE_ALIAS = "lake"
_EXTENSIONS = ("ducklake", "sqlite_scanner", "postgres_scanner", "spatial")
_imported = False
_import_lock = threading.Lock()
#: Every DuckDB connection of the platform: an extension is loaded by name (``LOAD``) or not at
#: all, never fetched from the network or loaded behind a query's back.
NO_AUTO_EXTENSIONS = {"autoinstall_known_extensions": False, "autoload_known_extensions": False}


class LakeError(RuntimeError):
    """The lake cannot be opened (missing catalog, locked, misconfigured)."""


def import_extensions() -> None:
    """Make the packaged DuckDB extensions available to ``LOAD`` (idempotent, offline)."""
    global _imported
    with _import_lock:
        if _imported:
            return
        import duckdb_extensions

        for name in _EXTENSIONS:
            duckdb_extensions.import_extension(name)
        _imported = True


def sql_literal(text: str) -> str:
    """``text`` as a quoted SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def quote_identifier(name: str) -> str:
    """``name`` as a quoted SQL identifier (a column or table name of any spelling)."""
    return '"' + name.replace('"', '""') + '"'


def load_lake_extensions(con: duckdb.DuckDBPyConnection, catalog_kind: str) -> None:
    """``LOAD`` DuckLake and the scanner of its catalog (``sqlite`` or ``postgres``) from the
    packaged extensions, on a connection that autoloads nothing."""
    import_extensions()
    con.execute("LOAD ducklake")
    con.execute("LOAD sqlite_scanner" if catalog_kind == "sqlite" else "LOAD postgres_scanner")


def _attach_sql(settings: Settings, read_only: bool, inline_rows: int = 500) -> str:
    options = [f"DATA_PATH {sql_literal(settings.data_path)}"]
    if read_only:
        options.append("READ_ONLY")
    else:
        # Small writes (stream micro-batches, ops logs) stay in the catalog instead of
        # producing one tiny Parquet file each; they are flushed by compaction.
        options.append(f"DATA_INLINING_ROW_LIMIT {int(inline_rows)}")
    return f"ATTACH {sql_literal(settings.ducklake_uri)} AS {LAKE_ALIAS} ({', '.join(options)})"


def exists(settings: Settings | None = None) -> bool:
    """Whether there is a lake to open (a PostgreSQL catalog is taken to exist: connecting
    tells)."""
    settings = settings or get_settings()
    return settings.catalog_kind != "sqlite" or Path(settings.catalog).exists()


#: SQLite catalogs already switched to write-ahead logging by this process
_WAL: set[str] = set()


def _write_ahead_log(catalog: Path) -> None:
    """Put a SQLite catalog in WAL mode (persistent in the file; done once per process).

    In SQLite's default rollback-journal mode a writer about to commit blocks every new reader,
    and a reader that holds its lock blocks the commit: with the stream, the runs, dbt and the
    dashboards on one catalog, readers then fail with "database is locked" in chains, and the
    platform stalled for minutes under load (the soak test). In WAL mode readers never wait for
    a writer and never block one; writers still take turns (and retry, ``transient``)."""
    key = str(catalog)
    if key in _WAL or not catalog.exists():
        return
    try:
        with contextlib.closing(sqlite3.connect(catalog, timeout=1.0)) as db:
            mode = db.execute("pragma journal_mode").fetchone()[0]
            if str(mode).lower() != "wal":
                mode = db.execute("pragma journal_mode=wal").fetchone()[0]
    except sqlite3.Error:  # busy now: the next connection switches it
        return
    if str(mode).lower() == "wal":
        _WAL.add(key)


def connect(
    read_only: bool = False,
    settings: Settings | None = None,
    retries: int = 20,
    memory_limit: str | None = None,
    inline_rows: int = 500,
    create: bool = True,
) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with the lake attached as ``lake`` and selected as default catalog.

    Writers create the lake (catalog, data folder, schemas) on first use. Readers fail with a
    clear :class:`LakeError` when no lake exists yet. A catalog briefly locked by a writer in
    another process is retried with back-off. ``inline_rows``: inserts up to this many rows stay
    in the catalog instead of becoming a Parquet file (the stream's micro-batches).
    ``create=False``: a writer that only changes an existing lake (an audited decision) fails
    like a reader instead of creating an empty lake.
    """
    settings = settings or get_settings()
    import_extensions()
    if settings.catalog_kind == "sqlite":
        catalog = Path(settings.catalog)
        if (read_only or not create) and not exists(settings):
            raise LakeError(
                f"no lake at {catalog}: run `make demo` (or `ordertower materialize`) first"
            )
        catalog.parent.mkdir(parents=True, exist_ok=True)
        if not settings.data_path.startswith(("s3://", "gs://", "az://")):
            Path(settings.data_path).mkdir(parents=True, exist_ok=True)
        _write_ahead_log(catalog)
    delay = 0.05
    for attempt in range(retries + 1):
        config: dict[str, object] = dict(NO_AUTO_EXTENSIONS)
        if memory_limit:
            config["memory_limit"] = memory_limit
        con = duckdb.connect(config=config)
        try:
            # no progress bar drawn into a command's, a run's or a bench's output
            con.execute("SET enable_progress_bar = false")
            load_lake_extensions(con, settings.catalog_kind)
            con.execute(_attach_sql(settings, read_only, inline_rows))
            con.execute(f"USE {LAKE_ALIAS}")
            _register_pii(con, settings, read_only)
            if not read_only:
                _ensure_schemas(con)
                if settings.catalog_kind == "sqlite":  # a catalog this connection created
                    _write_ahead_log(Path(settings.catalog))
            return con
        except duckdb.Error as exc:  # the SQLite catalog is locked by a writer: wait and retry
            # close before anything else: a half-opened connection must not keep a lock
            con.close()
            if not transient(exc) or attempt == retries:
                raise LakeError(
                    redact(f"cannot attach the lake ({settings.ducklake_uri}): {exc}")
                ) from exc
            time.sleep(delay)
            delay = min(delay * 2, 1.0)
    raise AssertionError("unreachable")  # pragma: no cover


def sandbox(con: duckdb.DuckDBPyConnection, settings: Settings | None = None) -> None:
    """Lock an open lake connection down for SQL a person types (``ordertower sql``).

    After this the connection reads the lake and nothing else: no file outside the lake's data
    path, no ``COPY ... TO``, no ``ATTACH``, no ``INSTALL`` or ``LOAD`` (nothing downloads), and
    no ``SET`` (the configuration is locked). A lake on object storage keeps the network access
    its reads need; only the configuration is locked there."""
    settings = settings or get_settings()
    if not settings.data_path.startswith(("s3://", "gs://", "az://")):
        con.execute("SET allowed_directories = ?", [[settings.data_path]])
        con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")


def _register_pii(con: duckdb.DuckDBPyConnection, settings: Settings, read_only: bool) -> None:
    """``pii_hmac()``, which the staging views call, keyed with the PII key (docs/pii.md)."""
    from ordertower.pii import register_pii_functions

    try:
        register_pii_functions(con, settings=settings)
    except ValueError as exc:  # a malformed key: say where, never what
        con.close()
        raise LakeError(str(exc)) from exc
    except OSError as exc:
        if not read_only:  # a reader without the key still reads every table and mart
            con.close()
            raise LakeError(f"cannot read or create the PII key: {exc}") from exc


def transient(exc: BaseException | str) -> bool:
    """A lock or a write conflict another writer caused (an error or its message): worth
    retrying."""
    text = str(exc).lower()
    return "locked" in text or "busy" in text or "conflict" in text


def _ensure_schemas(con: duckdb.DuckDBPyConnection) -> None:
    """Create the lake's schemas that are missing (a catalog write only when one is)."""
    present = {
        r[0]
        for r in con.execute(
            "select schema_name from information_schema.schemata where catalog_name = ?",
            [LAKE_ALIAS],
        ).fetchall()
    }
    for schema in LAKE_SCHEMAS:
        if schema not in present:
            con.execute(f"CREATE SCHEMA IF NOT EXISTS {LAKE_ALIAS}.{schema}")


@contextmanager
def lake(
    read_only: bool = False, settings: Settings | None = None
) -> Iterator[duckdb.DuckDBPyConnection]:
    """Context-managed :func:`connect`."""
    con = connect(read_only=read_only, settings=settings)
    try:
        yield con
    finally:
        con.close()


def table_exists(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    """Whether the lake has a table or view ``schema.table``."""
    return bool(columns_of(con, schema, table))


def columns_of(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> list[str]:
    """The columns of the lake's table or view ``schema.table`` in order; [] when there is
    none. Read from ``duckdb_columns()``: on DuckLake, ``duckdb_tables()`` and
    information_schema gather every table's statistics first (about 80 ms a call against
    10 ms, and much slower beside a registered data frame)."""
    return [
        r[0]
        for r in con.execute(
            "select column_name from duckdb_columns() "
            "where database_name = $db and schema_name = $schema and table_name = $name "
            "order by column_index",
            {"db": LAKE_ALIAS, "schema": schema, "name": table},
        ).fetchall()
    ]


def current_snapshot_id(con: duckdb.DuckDBPyConnection) -> int | None:
    """The lake's latest snapshot id: the data version recorded with runs and models."""
    row = con.execute(f"select max(snapshot_id) from ducklake_snapshots('{LAKE_ALIAS}')").fetchone()
    return None if row is None else row[0]
