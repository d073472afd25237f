"""Scan every place the platform writes for personal data, by pattern (``ordertower pii scan``).

PII is allowed in the lake's ``raw`` schema and in the steward-only original text of the
quarantine (``quarantine.rejected_records.raw_record``), nowhere else. This scanner looks for
e-mail addresses, phone numbers, IPv4 addresses and street addresses (the patterns of
:mod:`ordertower.pii`, plus the street names found in ``raw.customers`` / ``raw.orders`` and the
simulator's vocabulary, so a real-looking address on a known street is found, not only an exact
one) in:

==============  ===============================================================================
``lake``        every text column of every table and view in ``staging``, ``intermediate``,
                ``marts``, ``ml`` and ``ops`` (the CRM outbox ``ops.crm_outbox`` is reported as
                ``crm``)
``quarantine``  the reasons of ``quarantine.rejected_records`` (``reason``, ``reasons``,
                ``rules``), never ``raw_record``
``dagster``     ``DAGSTER_HOME``: run and event-log SQLite stores (metadata, log messages),
                compute logs
``mlflow``      the tracking store (``mlflow.db``: params, tags, metrics, names) and every
                artifact under ``mlartifacts``
``logs``        the ``*.log`` files the platform writes under ``ORDERTOWER_HOME``
``crm``         the outbox table and the local receiver's SQLite store (``crm/``)
==============  ===============================================================================

A finding names the surface, the table or file, the column, the kind, how many values matched
and a masked sample (its shape, never the value). Lake columns are filtered in SQL first (a
loose regular expression), then each candidate is checked with the precise patterns.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ordertower.lake import LAKE_ALIAS, columns_of, quote_identifier
from ordertower.pii import Match, find_pii, mask_sample, street_pattern
from ordertower.settings import Settings, get_settings

#: Schemas of the lake that must hold no PII (``raw`` holds it by design).
SCANNED_SCHEMAS = ("staging", "intermediate", "marts", "ml", "ops")
QUARANTINE_TABLE = ("quarantine", "rejected_records")
#: The quarantine's columns that anyone with the data-quality page reads.
QUARANTINE_COLUMNS = ("reason", "reasons", "rules")
#: Columns that hold staff identities by design (who decided, who signed in), not customers'.
IDENTITY_COLUMNS = {
    ("ops", "risk_review_decisions", "reviewer"),
    ("ops", "audit_log", "actor"),
    ("ops", "audit_log", "actor_subject"),
    # a denial's message names the staff identity it denied (who, what, whom to ask)
    ("ops", "audit_log", "detail"),
}
#: Candidate values per column checked with the precise patterns (each with its count).
MAX_CANDIDATES = 5000
#: Files read at most this far (bytes); artifact and log files are far smaller.
MAX_FILE_BYTES = 50_000_000
_TEXT_TYPES = ("VARCHAR", "JSON")
#: The loose SQL pre-filter (RE2, no look-arounds): a superset of what find_pii matches,
#: completed with the known street names by :func:`prefilter`.
_PREFILTER = (
    r"@[A-Za-z0-9-]+\.[A-Za-z]"
    r"|\+\d{1,3}[ .(-]*\d"
    r"|\(0\d{1,4}\)"
    r"|0\d{2,4}[/-]\d{5}"
    r"|\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}"
    r"|(?i:(stra(ß|ss)e|str\.|weg|allee|gasse|platz|ring|damm|gracht|straat)\W*\d"
    r"|\b(street|st\.|road|rd\.|avenue|ave\.|lane|drive|boulevard|way|court|place|terrace)\b"
    r"|\b(rue|calle|avenida|paseo|via|viale|corso|piazza|rua|praça|ul\.)\s)"
)


def prefilter(street_names: Iterable[str] = ()) -> str:
    """The SQL pre-filter, with ``street_names`` (literal, case-insensitive) added."""
    names = sorted({re.escape(n) for n in street_names if n and len(n) >= 4})
    return _PREFILTER + (f"|(?i:{'|'.join(names)})" if names else "")


@dataclass(frozen=True)
class Finding:
    surface: str
    location: str  # schema.table, or a file (relative to ORDERTOWER_HOME when under it)
    column: str  # column, or sqlite table.column; "" for plain text
    kind: str  # email | phone | ipv4 | street_address
    count: int  # values (rows, lines) with this kind of match
    sample: str  # masked: the match's shape, never its value


@dataclass
class ScanReport:
    findings: list[Finding] = field(default_factory=list)
    #: what was looked at, per surface (tables, columns, files)
    scanned: dict[str, Counter] = field(default_factory=dict)

    @property
    def clean(self) -> bool:
        return not self.findings

    def count(self, surface: str, what: str, n: int = 1) -> None:
        self.scanned.setdefault(surface, Counter())[what] += n

    def as_dict(self) -> dict:
        return {
            "clean": self.clean,
            "findings": [asdict(f) for f in self.findings],
            "scanned": {k: dict(v) for k, v in self.scanned.items()},
        }


class _Tally:
    """Matches of one location and column, by kind: how many values, and the first one."""

    def __init__(self) -> None:
        self.counts: Counter = Counter()
        self.samples: dict[str, str] = {}

    def add(self, matches: Iterable[Match], weight: int = 1) -> None:
        kinds = set()
        for m in matches:
            kinds.add(m.kind)
            self.samples.setdefault(m.kind, mask_sample(m.text))
        for kind in kinds:
            self.counts[kind] += weight

    def findings(self, surface: str, location: str, column: str) -> list[Finding]:
        return [
            Finding(surface, location, column, kind, n, self.samples[kind])
            for kind, n in sorted(self.counts.items())
        ]


# ------------------------------------------------------------------------------- the lake


@dataclass(frozen=True)
class Patterns:
    """The known street names as a precise pattern, and the SQL pre-filter that includes them."""

    streets: re.Pattern[str] | None
    sql: str

    @classmethod
    def of(cls, street_names: Iterable[str] = ()) -> Patterns:
        names = sorted(set(street_names))
        return cls(street_pattern(names), prefilter(names))


def known_streets(con) -> set[str]:
    """Street names of the simulator's truth (raw addresses) and its vocabulary."""
    names: set[str] = set()
    try:
        from pipelines.simulator import vocab

        names.update(s for streets in vocab.STREETS.values() for s in streets)
    except ImportError:  # pragma: no cover - the simulator ships with the platform
        pass
    sources = (
        ("customers", ("home_address_street",)),
        ("orders", ("shipping_address_street", "billing_address_street")),
    )
    for table, columns in sources:
        present = set(columns_of(con, "raw", table))
        for column in columns:
            if column not in present:
                continue
            rows = con.execute(
                f"select distinct trim(regexp_replace(regexp_replace({column}, "
                r"'^\s*\d+[a-zA-Z]?,?\s+', ''), '\s*,?\s*\d+[a-zA-Z]?\s*$', '')) "
                f"from raw.{table} where {column} is not null limit 20000"
            ).fetchall()
            names.update(r[0] for r in rows if r[0])
    return names


def _text_columns(con, schemas: Iterable[str]) -> dict[tuple[str, str], list[str]]:
    """Every table and view of the lake's ``schemas`` with its text columns in order (one read
    of ``duckdb_columns()``; information_schema gathers every DuckLake table's statistics)."""
    rows = con.execute(
        "select schema_name, table_name, column_name, data_type from duckdb_columns() "
        "where database_name = ? and schema_name in (select unnest(?)) "
        "order by schema_name, table_name, column_index",
        [LAKE_ALIAS, list(schemas)],
    ).fetchall()
    relations: dict[tuple[str, str], list[str]] = {}
    for schema, table, column, kind in rows:
        columns = relations.setdefault((schema, table), [])
        if any(t in kind.upper() for t in _TEXT_TYPES):
            columns.append(column)
    return relations


def _scan_columns(
    con, schema: str, table: str, columns: list[str], patterns: Patterns
) -> dict[str, _Tally]:
    """The candidates of every column in one pass over the table (unpivoted to column, value):
    at most :data:`MAX_CANDIDATES` distinct values per column, each with its count."""
    tallies = {column: _Tally() for column in columns}
    if not columns:
        return tallies
    casts = ", ".join(
        f"cast({quote_identifier(c)} as varchar) as {quote_identifier(c)}" for c in columns
    )
    rows = con.execute(
        f"select column_name, v, count(*) from (unpivot (select {casts} "
        f"from lake.{quote_identifier(schema)}.{quote_identifier(table)}) on columns(*) "
        f"into name column_name value v) where regexp_matches(v, ?) group by column_name, v "
        f"qualify row_number() over (partition by column_name order by v) <= {MAX_CANDIDATES}",
        [patterns.sql],
    ).fetchall()
    for column, value, n in rows:
        tallies[column].add(find_pii(value, patterns.streets), int(n))
    return tallies


def scan_lake(con, report: ScanReport, patterns: Patterns) -> None:
    """Every text column of the lake's non-raw schemas, and the quarantine's reasons."""
    for (schema, table), columns in _text_columns(con, SCANNED_SCHEMAS).items():
        surface = "crm" if (schema, table) == ("ops", "crm_outbox") else "lake"
        report.count(surface, "tables")
        scanned = [c for c in columns if (schema, table, c) not in IDENTITY_COLUMNS]
        report.count(surface, "columns", len(scanned))
        for column, tally in _scan_columns(con, schema, table, scanned, patterns).items():
            report.findings.extend(tally.findings(surface, f"{schema}.{table}", column))
    schema, table = QUARANTINE_TABLE
    relations = _text_columns(con, [schema])
    if (schema, table) in relations:
        report.count("quarantine", "tables")
        present = set(relations[schema, table]) | {"reasons", "rules"}
        scanned = [c for c in QUARANTINE_COLUMNS if c in present]
        report.count("quarantine", "columns", len(scanned))
        for column, tally in _scan_columns(con, schema, table, scanned, patterns).items():
            report.findings.extend(tally.findings("quarantine", f"{schema}.{table}", column))


# ------------------------------------------------------------------------------- files


def _is_sqlite(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(16) == b"SQLite format 3\x00"


def _scan_sqlite(path: Path, patterns: Patterns) -> Iterator[tuple[str, _Tally]]:
    """Every text (and blob) column of every table of a SQLite file, read-only."""
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        tables = [
            r[0]
            for r in con.execute(
                "select name from sqlite_master where type = 'table' and name not like 'sqlite_%'"
            )
        ]
        for table in tables:
            columns = [r[1] for r in con.execute(f'pragma table_info("{table}")')]
            for column in columns:
                tally = _Tally()
                cursor = con.execute(
                    f'select "{column}" from "{table}" '
                    f"where typeof(\"{column}\") in ('text', 'blob')"
                )
                for (value,) in cursor:
                    if isinstance(value, bytes):
                        value = value.decode("utf-8", "replace")
                    tally.add(find_pii(value, patterns.streets))
                yield f"{table}.{column}", tally
    finally:
        con.close()


def _scan_text_file(path: Path, patterns: Patterns) -> _Tally:
    """A text file line by line; a binary one (pickles, images) for e-mails and IPs only,
    the kinds whose pattern random bytes do not imitate."""
    tally = _Tally()
    with open(path, "rb") as fh:
        data = fh.read(MAX_FILE_BYTES)
    if b"\x00" in data[:8192]:
        text = data.decode("latin-1")
        tally.add(m for m in find_pii(text) if m.kind in ("email", "ipv4"))
        return tally
    for line in data.decode("utf-8", "replace").splitlines():
        if line.strip():
            tally.add(find_pii(line, patterns.streets))
    return tally


def _files(root: Path, pattern: str = "*", exclude: Iterable[Path] = ()) -> Iterator[Path]:
    skip = [p.resolve() for p in exclude]
    if not root.exists():
        return
    for path in sorted(root.rglob(pattern)):
        resolved = path.resolve()
        if path.is_symlink() or not path.is_file():
            continue
        if any(resolved == s or s in resolved.parents for s in skip):
            continue
        yield path


def _where(path: Path, home: Path) -> str:
    try:
        return str(path.resolve().relative_to(home))
    except ValueError:
        return str(path)


def scan_files(
    surface: str,
    paths: Iterable[Path],
    home: Path,
    report: ScanReport,
    patterns: Patterns,
) -> None:
    """SQLite stores table by table, every other file as text."""
    for path in paths:
        report.count(surface, "files")
        where = _where(path, home)
        try:
            if _is_sqlite(path):
                for column, tally in _scan_sqlite(path, patterns):
                    report.findings.extend(tally.findings(surface, where, column))
            else:
                report.findings.extend(_scan_text_file(path, patterns).findings(surface, where, ""))
        except (OSError, sqlite3.Error) as exc:  # a store locked or vanished mid-scan
            report.count(surface, f"unreadable: {type(exc).__name__}")


def _mlflow_store(settings: Settings) -> Path | None:
    uri = settings.mlflow_tracking_uri
    return Path(uri.removeprefix("sqlite:///")) if uri.startswith("sqlite:///") else None


def file_surfaces(settings: Settings) -> dict[str, list[Path]]:
    """The files of each surface outside the lake."""
    home = settings.home
    mlflow = [p for p in [_mlflow_store(settings)] if p is not None and p.is_file()]
    private = [home / "landing", home / "lake", home / "secrets"]
    return {
        "dagster": list(_files(settings.dagster_home)),
        "mlflow": mlflow + list(_files(settings.mlflow_artifact_root)),
        "logs": list(
            _files(
                home,
                "*.log",
                exclude=[*private, settings.dagster_home, settings.mlflow_artifact_root],
            )
        ),
        "crm": list(_files(home / "crm")),
    }


# ------------------------------------------------------------------------------- entry point


def scan(settings: Settings | None = None, con=None) -> ScanReport:
    """Scan every surface; ``con`` a lake connection (default: a read-only one of its own)."""
    from ordertower import lake

    settings = settings or get_settings()
    report = ScanReport()
    own = con is None
    if own:
        con = lake.connect(read_only=True, settings=settings)
    try:
        patterns = Patterns.of(known_streets(con))
        scan_lake(con, report, patterns)
    finally:
        if own:
            con.close()
    for surface, paths in file_surfaces(settings).items():
        scan_files(surface, paths, settings.home, report, patterns)
    return report


def format_report(report: ScanReport) -> str:
    """The report as a table for a terminal."""
    scanned = "; ".join(
        f"{surface}: " + ", ".join(f"{n} {what}" for what, n in sorted(counts.items()))
        for surface, counts in sorted(report.scanned.items())
    )
    if report.clean:
        return f"no personal data found ({scanned})"
    header = ("surface", "location", "column", "kind", "count", "sample")
    rows = [
        (f.surface, f.location, f.column or "-", f.kind, str(f.count), f.sample)
        for f in report.findings
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in [header, *rows]]
    return (
        f"personal data found in {len(report.findings)} place(s):\n"
        + "\n".join(lines)
        + f"\n(scanned {scanned})"
    )


def report_json(report: ScanReport) -> str:
    return json.dumps(report.as_dict(), indent=2)
