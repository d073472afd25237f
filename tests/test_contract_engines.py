"""The two contract engines agree record by record: DuckDB's set-based checks (the default) and
Great Expectations (the reference) reject the same records with the same reasons and report
the same per-rule results.

* Every contract on batches of awkward values (nulls, empty text, Unicode digits, line breaks,
  quotes, values at and beyond every bound, duplicates), compared rule by rule.
* The hostile corpus and a simulated world with injected defects, ingested once per engine:
  the quarantine, the landed rows and ``ops.contract_results`` must be identical.
"""

from __future__ import annotations

import random
from pathlib import Path

import pandas as pd
import pytest
from test_hostile import _cases, _write_landing

from ordertower.lake import connect
from pipelines.contracts import load_contracts
from pipelines.contracts.coerce import coerce_frame
from pipelines.contracts.expectations import compile_rules, rule_frame, validate_frame
from pipelines.contracts.model import Column
from pipelines.contracts.sql_checks import sql_outcomes
from pipelines.ingest.runner import ingest_source, landed_partitions
from pipelines.ingest.sources import SOURCES
from pipelines.simulator import simulate

ENGINES = ("duckdb", "great_expectations")
TEXT = [
    None,
    "",
    " ",
    "A",
    "abc",
    "ABC-123",
    "ORD-00000001",
    "ünïcødé",
    "٣٣٣",  # Arabic-Indic digits: Python's \d matches them, RE2's does not
    "AB\n",  # Python's $ matches before a final newline, RE2's does not
    "a\nb",
    "tab\there",
    "O'Brien",
    'say "hi"',
    "x" * 300,
    "DE",
    "de",
    "EUR",
    "10115",
    "jane@example.com",
    "\u00a0nbsp",
]


def _around(value, step):
    return [value - step, value, value + step] if value is not None else []


def _palette(column: Column) -> list:
    kind = column.logical_type
    if kind in ("integer", "number"):
        out = [None, "", 0, 1, -1, 1.5, "12", "1,5", "abc", "nan", "inf", 10**20, True]
        for bound in (
            column.minimum,
            column.maximum,
            column.exclusive_minimum,
            column.exclusive_maximum,
        ):
            out += _around(bound, 1)
        return out
    if kind == "timestamp":
        return [
            None,
            "",
            "2026-01-01T00:00:00Z",
            "2026-01-01T00:00:00+02:00",
            "2026-01-01 00:00:00",
            "1999-12-31T23:59:59Z",
            "2300-01-01T00:00:00Z",
            "not a time",
            5,
        ]
    if kind == "date":
        return [None, "", "2026-01-01", "1999-12-31", "2100-01-01", "2026-13-01", "x"]
    if kind == "boolean":
        return [None, "", True, False, "yes", "0", "maybe", 2]
    if kind == "array":
        return [None, [], ["a"], ["a", "b"], "x", {"k": 1}]
    out = list(TEXT)
    out += list(column.enum or [])
    if column.max_length is not None:
        out += ["y" * column.max_length, "y" * (column.max_length + 1), "ü" * column.max_length]
    if column.min_length:
        out += ["z" * (column.min_length - 1)]
    return out


def _batch(contract, rows: int, seed: int) -> pd.DataFrame:
    rng = random.Random(seed)
    palettes = {c.name: _palette(c) for c in contract.columns}
    return pd.DataFrame(
        {name: [rng.choice(values) for _ in range(rows)] for name, values in palettes.items()},
        index=pd.RangeIndex(100, 100 + rows),
    )


@pytest.mark.parametrize("name", sorted(load_contracts()))
def test_engines_agree_on_awkward_batches(name: str):
    contract = load_contracts()[name]
    rules = compile_rules(contract)
    for seed in (1, 2):
        frame = _batch(contract, 120, seed)
        typed, _ = coerce_frame(frame, contract)
        receipt = pd.Timestamp("2026-01-02T00:00:00Z")
        # no rule may be left to Great Expectations by the DuckDB engine on these contracts
        _, rest = sql_outcomes(rule_frame(typed, contract, receipt), contract, rules)
        assert [r.name for r in rest] == []
        runs = {e: validate_frame(typed, contract, rules, receipt, engine=e) for e in ENGINES}
        fast, reference = runs["duckdb"], runs["great_expectations"]
        assert fast.reasons == reference.reasons
        for a, b in zip(fast.results, reference.results, strict=True):
            assert a.rule.name == b.rule.name
            assert (a.success, a.unexpected_count, a.evaluated_rows, a.unexpected_index) == (
                b.success,
                b.unexpected_count,
                b.evaluated_rows,
                b.unexpected_index,
            ), a.rule.name


def test_text_outside_printable_ascii_is_checked_by_python():
    """The cases where RE2 and Python's ``re`` differ are decided as Great Expectations does."""
    contract = load_contracts()["orders"]
    pattern_columns = [c for c in contract.columns if c.pattern]
    assert pattern_columns, "orders has pattern rules"
    column = pattern_columns[0]
    frame = pd.DataFrame({column.name: ["٣٣٣", "AB\n", "ünï", None]})
    typed, _ = coerce_frame(frame, contract)
    runs = {e: validate_frame(typed, contract, engine=e) for e in ENGINES}
    assert runs["duckdb"].reasons == runs["great_expectations"].reasons


# ------------------------------------------------------------------------- whole ingestion


def _worlds(root: Path) -> dict[str, Path]:
    """The hostile corpus, and a small simulated world with injected defects."""
    hostile, defects = root / "hostile", root / "defects"
    _write_landing(hostile, _cases())
    simulate(defects, orders=600, days=4, seed=5, dirty_rate=0.05)
    return {"hostile": hostile, "defects": defects}


def _ingest(home: Path, landing: Path, engine: str, monkeypatch) -> dict:
    monkeypatch.setenv("ORDERTOWER_HOME", str(home))
    monkeypatch.setenv("ORDERTOWER_CONTRACT_ENGINE", engine)
    con = connect()
    try:
        for source in SOURCES:
            ingest_source(source, landed_partitions(source, landing), con, landing, "engines")
        quarantine = con.execute(
            "select dataset, partition_key, source_file, record_no, reason, reasons, rules "
            "from quarantine.rejected_records order by all"
        ).fetchall()
        results = con.execute(
            "select dataset, partition_key, rule, column_name, expectation, severity, success, "
            "unexpected_count, evaluated_rows from ops.contract_results order by all"
        ).fetchall()
        landed = {}
        for source in SOURCES:
            for dataset in source.datasets:
                table = load_contracts()[dataset].table
                landed[dataset] = con.execute(
                    f"select count(*), count(distinct _source_file || ':' || _record_no) "
                    f"from {table}"
                ).fetchone()
    finally:
        con.close()
    return {"quarantine": quarantine, "results": results, "landed": landed}


@pytest.mark.slow
def test_engines_agree_on_the_hostile_corpus_and_simulated_defects(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    for world, landing in _worlds(tmp_path / "landing").items():
        runs = {
            engine: _ingest(tmp_path / world / engine, landing, engine, monkeypatch)
            for engine in ENGINES
        }
        fast, reference = runs["duckdb"], runs["great_expectations"]
        assert len(fast["quarantine"]) > 40, world  # the corpus and the defects were rejected
        assert fast["quarantine"] == reference["quarantine"], world
        assert fast["results"] == reference["results"], world
        assert fast["landed"] == reference["landed"], world
