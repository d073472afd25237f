"""Typed reads (pipelines/ingest/typed.py) land exactly what the record-by-record path lands.

* Every delimited contract, with files of awkward values (spaces, commas, signs, exponents,
  Unicode digits, impossible dates, naive and offset timestamps, the bounds) and files damaged
  in every way the screen must send to Python (quotes, carriage returns, a byte-order mark, NUL,
  blank lines, wrong field counts, invalid UTF-8, a missing, extra or doubled column, another
  delimiter, a line over the record cap): ingested with typed reads and without, the raw
  tables, the quarantine and the contract results are identical, row for row and value for
  value.
* The same on the hostile corpus and a simulated world with injected defects.
* The SQL casts of canonical values equal the pandas coercion, value by value.
"""

from __future__ import annotations

import random
from pathlib import Path

import pandas as pd
import pytest
from test_contract_engines import _palette, _worlds

from ordertower.lake import connect
from ordertower.settings import environment
from pipelines.contracts import load_contracts
from pipelines.contracts.coerce import coerce_column
from pipelines.ingest import typed
from pipelines.ingest.runner import ingest_source, landed_partitions
from pipelines.ingest.sources import SOURCES, SOURCES_BY_NAME

DAYS = ("2026-08-20", "2026-08-21", "2026-08-22")
CSV_SOURCES = [s for s in SOURCES if s.file_format == "csv"]
#: columns whose values vary by run, not by record
VOLATILE = {
    "_run_id",
    "_ingested_at",
    "run_id",
    "quarantined_at",
    "started_at",
    "finished_at",
    "checked_at",
}


def _cell(value) -> str | None:
    """A palette value as delimited text, or None when it cannot be one unquoted field."""
    if isinstance(value, list | dict):
        return None
    text = "" if value is None else str(value)
    if any(ch in text for ch in ',;"\r\n\x00'):
        return None
    return text


def _awkward_rows(source, n: int, seed: int) -> tuple[list[str], list[list[str]]]:
    contract = load_contracts()[source.dataset]
    rng = random.Random(seed)
    palettes = {}
    for column in contract.columns:
        cells = [
            c for c in (_cell(v) for v in [*_palette(column), *_extra(column)]) if c is not None
        ]
        palettes[column.name] = cells
    kinds = {c.name: c.logical_type for c in contract.columns}
    header = list(contract.column_names)

    def cell(name: str) -> str:
        # mostly values in their canonical form, so that whole records are too
        if rng.random() < 0.1:
            return rng.choice(palettes[name])
        return _cell(_random_text(kinds[name], rng)) or "x"

    rows = [[cell(h) for h in header] for _ in range(n)]
    return header, rows


def _extra(column) -> list[str]:
    """More text a feed may send for a column of this type: the forms on both sides of the line
    between SQL casts and the pandas coercion."""
    kind = column.logical_type
    if kind == "integer":
        return [
            "007",
            "-0",
            "+3",
            " 12",
            "12 ",
            "1e3",
            "3.0",
            "123456789012345",
            "1234567890123456",
            "9" * 19,
            "١٢",
            "NaN",
            "-5",
        ]
    if kind == "number":
        return [
            "0.1",
            "-0.0",
            "-0",
            "1.",
            ".5",
            "1e-3",
            "2,50",
            "123456789012345.123456789012345",
            "1234567890123456.5",
            "+1.5",
            " 2.5",
            "Infinity",
            "-3.25",
        ]
    if kind == "timestamp":
        return [
            "2026-08-20T10:15:00+02:00",
            "2026-08-20T10:15:00.123456Z",
            "2026-08-20T10:15:00.1234567Z",
            "2026-08-20T10:15:00z",
            "2026-08-20T24:00:00Z",
            "2026-08-20T10:15:60Z",
            "2026-02-30T10:15:00Z",
            "2026-08-20T10:15:00+05:45",
            "2026-08-20T10:15:00+14:30",
            "2026-08-20 10:15:00+02:00",
            "2026-08-20T10:15",
            "2026-08-20T10:15:00+0200",
            "1677-09-21T00:12:43Z",
            "2262-04-11T23:47:16Z",
            "2026-03-29T02:30:00",
            "2026-10-25T02:30:00",
            "2026-08-20",
        ]
    if kind == "date":
        return [
            "2026-08-20",
            "2026-02-29",
            "2024-02-29",
            "2026-8-20",
            "2026-08-20T10:00:00Z",
            "20260820",
            "1677-01-01",
            "2262-12-31",
            " 2026-08-20",
        ]
    if kind == "boolean":
        return ["true", "false", "True", "FALSE", "1", "0", "yes", "n", " true"]
    return ["plain", " padded ", "ünïcødé", "tab\there", "x" * 40, "'quoted'"]


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _lines(header: list[str], rows: list[list[str]], delimiter: str) -> list[bytes]:
    return [delimiter.join(header).encode()] + [delimiter.join(r).encode() for r in rows]


def _damaged(lines: list[bytes], delimiter: str, cap: int) -> dict[str, bytes]:
    """One file per damage the screen must send to the record-by-record reader."""
    d = delimiter.encode()
    body = b"\n".join(lines) + b"\n"
    first, rest = lines[1], lines[2:]
    head = lines[0]
    return {
        "quote": b"\n".join([head, first.replace(d, d + b'"x', 1) + b'"', *rest]) + b"\n",
        "quoted_delimiter": b"\n".join([head, b'"a' + d + b'b"' + d + first, *rest]) + b"\n",
        "crlf": body.replace(b"\n", b"\r\n"),
        "bom": b"\xef\xbb\xbf" + body,
        "nul": b"\n".join([head, first + b"\x00", *rest]) + b"\n",
        "blank_line": b"\n".join([head, first, b"", *rest]) + b"\n",
        "space_line": b"\n".join([head, first, b"   ", *rest]) + b"\n",
        "short_row": b"\n".join([head, first.rsplit(d, 1)[0], *rest]) + b"\n",
        "long_row": b"\n".join([head, first + d + b"extra", *rest]) + b"\n",
        "invalid_utf8": b"\n".join([head, first + b"\xff\xfe", *rest]) + b"\n",
        "no_final_newline": body[:-1],
        "missing_column": b"\n".join(
            [d.join(head.split(d)[1:]), *(d.join(r.split(d)[1:]) for r in lines[1:])]
        )
        + b"\n",
        "extra_column": b"\n".join([head + d + b"note", *(r + d + b"n" for r in lines[1:])])
        + b"\n",
        "doubled_column": b"\n".join(
            [head + d + head.split(d)[0], *(r + d + r.split(d)[0] for r in lines[1:])]
        )
        + b"\n",
        "other_delimiter": body.replace(d, b"|"),
        "oversize": b"\n".join([head, first + b"y" * (cap + 10), *rest]) + b"\n",
        "header_only": head + b"\n",
        "empty": b"",
    }


def _csv_world(root: Path, cap: int) -> Path:
    """Every delimited source: a clean-ish day of awkward values per partition, and damaged
    files beside them."""
    landing = root / "landing"
    for i, source in enumerate(CSV_SOURCES):
        header, rows = _awkward_rows(source, 60, seed=i)
        lines = _lines(header, rows, source.delimiter)
        body = b"\n".join(lines) + b"\n"
        if not source.partitioned:
            _write(landing / source.pattern, body)
            continue
        _write(landing / source.pattern.format(date=DAYS[0]).replace("*", "awkward"), body)
        for j, (kind, data) in enumerate(_damaged(lines, source.delimiter, cap).items()):
            day = DAYS[1 + j % 2]
            _write(landing / source.pattern.format(date=day).replace("*", kind), data)
    # reference files damaged too: one each way the screen refuses
    return landing


def _ingest_dump(home: Path, landing: Path, typed_reads: bool) -> tuple[dict, dict]:
    with environment(
        {"ORDERTOWER_HOME": str(home), "ORDERTOWER_TYPED_READS": str(int(typed_reads))}
    ):
        con = connect()
        counts = {}
        try:
            for source in SOURCES:
                results = ingest_source(
                    source, landed_partitions(source, landing), con, landing, "typed", workers=1
                )
                for name, r in results.items():
                    counts[name] = (r.received, r.typed_records, sorted(r.warnings))
            tables = con.execute(
                "select table_schema || '.' || table_name from information_schema.tables "
                "where table_schema in ('raw', 'quarantine', 'ops') and table_type = 'BASE TABLE'"
            ).fetchall()
            dump = {}
            for (table,) in tables:
                cols = [
                    r[0]
                    for r in con.execute(
                        "select column_name from information_schema.columns "
                        "where table_schema || '.' || table_name = ? order by ordinal_position",
                        [table],
                    ).fetchall()
                    if r[0] not in VOLATILE
                ]
                rows = con.execute(
                    f"select {', '.join(chr(34) + c + chr(34) for c in cols)} from {table}"
                ).fetchall()
                dump[table] = sorted(map(repr, rows))
        finally:
            con.close()
    return dump, counts


def _assert_same(landing: Path, root: Path) -> dict:
    on, on_counts = _ingest_dump(root / "typed", landing, True)
    off, off_counts = _ingest_dump(root / "python", landing, False)
    assert set(on) == set(off)
    for table in sorted(on):
        only_typed = sorted(set(on[table]) - set(off[table]))[:3]
        only_python = sorted(set(off[table]) - set(on[table]))[:3]
        assert on[table] == off[table], (table, only_typed, only_python)
    for name, (received, _, warnings) in off_counts.items():
        assert on_counts[name][0] == received, name
        assert on_counts[name][2] == warnings, (name, on_counts[name][2], warnings)
    assert all(c[1] == 0 for c in off_counts.values())
    return on_counts


@pytest.mark.slow
def test_delimited_files_land_the_same_with_typed_reads_and_without(tmp_path: Path):
    cap = 4096
    with environment({"ORDERTOWER_MAX_RECORD_BYTES": str(cap)}):
        landing = _csv_world(tmp_path, cap)
        counts = _assert_same(landing, tmp_path)
    # the awkward files went through DuckDB, their non-canonical records through pandas
    for source in CSV_SOURCES:
        received, typed_records, _ = counts[source.dataset]
        contract = load_contracts()[source.dataset]
        assert typed_records > 0, source.name
        if any(c.logical_type != "string" for c in contract.columns):
            assert typed_records < received, source.name  # some values were not canonical


JSON_SOURCES = [s for s in SOURCES if s.file_format == "jsonl"]


def _json_value(column, rng: random.Random):
    """A value for ``column`` as a feed would send it: mostly well formed, sometimes not."""
    kind = column.logical_type
    if rng.random() < 0.15:
        return rng.choice(
            [
                None,
                "",
                " ",
                12,
                -0.0,
                0,
                1.5,
                1e5,
                10**20,
                True,
                False,
                [],
                ["a"],
                [1],
                {"k": 1},
                "12",
                " 12",
                "1,5",
                "٣",
                "true",
                "2026-08-20",
                "2026-08-20T10:15:00",
                "x, nan, y",
                "Delivery address, Naples",
                "é",
                "A" * 80,
            ]
        )
    if kind == "integer":
        return rng.choice([rng.randint(-5, 10**6), str(rng.randint(0, 99))])
    if kind == "number":
        return rng.choice([round(rng.uniform(-10, 10**5), rng.randint(0, 6)), rng.randint(0, 50)])
    if kind == "boolean":
        return rng.random() < 0.5
    if kind == "array":
        return [f"dev_{rng.randint(0, 99)}" for _ in range(rng.randint(0, 3))]
    return _random_text(kind, rng)


def _json_record(source, rng: random.Random, contracts: dict) -> dict:
    contract = contracts[source.dataset]
    record: dict = {}
    for column in contract.columns:
        owner = next((o for o in source.objects if column.name.startswith(o + "_")), None)
        value = _json_value(column, rng)
        if rng.random() < 0.05:
            continue  # the key is not sent at all
        if owner:
            record.setdefault(owner, {})[column.name[len(owner) + 1 :]] = value
        else:
            record[column.name] = value
    for child in source.children:
        child_contract = contracts[child.dataset]
        record[child.field] = [
            {
                c.name: _json_value(c, rng)
                for c in child_contract.columns
                if c.name != child.parent_key
            }
            for _ in range(rng.randint(0, 3))
        ]
    return record


def _json_damage(line: str, record: dict, source, rng: random.Random) -> str:
    """The line, or the line with one of the faults the SQL side must leave to Python."""
    owner = source.objects[0] if source.objects else None
    child = source.children[0].field if source.children else None
    faults = [
        lambda: line[:-1] + ',"' + next(iter(record)) + '":1}',  # a key twice
        lambda: line[:-1] + ",}",  # a trailing comma
        lambda: line[:-1] + ',"x":NaN}',
        lambda: line[:-1] + ',"x":-Infinity}',
        lambda: line[:-1] + ',"x":inf}',
        lambda: line[:-1] + ',"extra":{"a":{"b":1}}}',  # an object nobody declared
        lambda: line[:-1] + ',"note":"{ curly }"}',
        lambda: line[:-1] + ',"esc":"caf\\u00e9 \\"q\\""}',
        lambda: line[:-1] + ',"sur":"\\ud800"}',
        lambda: line.replace('":', '" :', 1),
        lambda: line[: len(line) // 2],  # truncated
        lambda: "[" + line + "]",
        lambda: '"just text"',
        lambda: "   ",
        lambda: "",
        lambda: "\ufeff" + line,
        lambda: " " + line,
        lambda: line + " ",
        lambda: line[:-1] + ',"deep":' + "[" * 40 + "]" * 40 + "}",
    ]
    if owner:
        faults += [
            lambda: line[:-1] + f',"{owner}_city":"Lyon"}}',  # a top-level twin of a nested key
            lambda: line[:-1] + f',"{owner}_city":null}}',  # a twin that is null: still a twin
            lambda: line[:-1] + f',"{owner}":null}}',
            lambda: line.replace(f'"{owner}":{{', f'"{owner}":{{"city":"a","city":"b",', 1),
            lambda: line.replace(f'"{owner}":{{', f'"{owner}_":{{', 1),
            lambda: line[:-1] + f',"{owner}":"flat"}}',
        ]
    if child:
        faults += [
            lambda: line.replace(f'"{child}":[', f'"{child}":[{{"a":1,"a":2}},', 1),
            lambda: line.replace(f'"{child}":[', f'"{child}":[5,', 1),
            lambda: line.replace(f'"{child}":[', f'"{child}":[{{}},', 1),
            lambda: line[:-1] + f',"{child}":"none"}}',
            lambda: line[:-1] + f',"{child}":null}}',
        ]
    return rng.choice(faults)()


def _json_world(root: Path) -> Path:
    landing = root / "landing"
    import json

    contracts = load_contracts()
    for i, source in enumerate(JSON_SOURCES):
        rng = random.Random(100 + i)
        lines = []
        for _ in range(150):
            record = _json_record(source, rng, contracts)
            line = json.dumps(record, ensure_ascii=False, separators=(",", ":"))
            if rng.random() < 0.3:
                line = _json_damage(line, record, source, rng)
            lines.append(line)
        body = ("\n".join(lines) + "\n").encode("utf-8")
        if not source.partitioned:
            _write(landing / source.pattern, body)
            continue
        _write(landing / source.pattern.format(date=DAYS[0]).replace("*", "awkward"), body)
        # whole files Python reads: a byte-order mark, CRLF, no final newline, invalid UTF-8
        _write(
            landing / source.pattern.format(date=DAYS[1]).replace("*", "bom"),
            b"\xef\xbb\xbf" + body,
        )
        _write(
            landing / source.pattern.format(date=DAYS[1]).replace("*", "crlf"),
            body.replace(b"\n", b"\r\n"),
        )
        _write(landing / source.pattern.format(date=DAYS[2]).replace("*", "open"), body[:-1])
        _write(
            landing / source.pattern.format(date=DAYS[2]).replace("*", "latin"), body + b"\xff\n"
        )
    return landing


@pytest.mark.slow
def test_json_lines_land_the_same_with_typed_reads_and_without(tmp_path: Path):
    cap = 4096
    with environment({"ORDERTOWER_MAX_RECORD_BYTES": str(cap)}):
        landing = _json_world(tmp_path)
        counts = _assert_same(landing, tmp_path)
    for source in JSON_SOURCES:
        for dataset in source.datasets:
            received, typed_records, _ = counts[dataset]
            assert 0 < typed_records < received, dataset


def _rail_world(root: Path) -> Path:
    """A rail operator's files: station-local times in and around both daylight-saving changes
    of 2026 in several zones, odd time formats, stations of every shape, known and unknown
    codes, exceptions with and without a remark."""
    import landing_factory as lf

    landing = root / "landing"
    lf.reference(landing)
    rng = random.Random(7)
    times = [
        "29.03.2026 01:59",
        "29.03.2026 02:00",
        "29.03.2026 02:30",
        "29.03.2026 03:00",
        "25.10.2026 01:30",
        "25.10.2026 02:00",
        "25.10.2026 02:30",
        "25.10.2026 03:00",
        "29.03.2026 00:30",
        "29.03.2026 01:30",
        "25.10.2026 00:59",
        "25.10.2026 01:00",
        "20.08.2026 09:15",
        "31.12.2026 23:59",
        "01.01.2026 00:00",
        "31.02.2026 10:00",
        "1.8.2026 1:51",
        " 20.08.2026 09:15",
        "20.08.2026 09:15 ",
        "2026-08-20T09:15:00Z",
        "20.08.2026 24:00",
        "20.08.1600 10:00",
        "",
    ]
    stations = ["DEHAM", "GBLON", "PTLIS", "FRPAR", "deham", "D", "", "ÖSVIE", "XXABC", "ATVIE"]
    codes = ["AN", "AB", "UB", "AK", "ZU", "ST", "BS", "QQ", ""]
    remarks = ["", "", "Sendung beschädigt", "nicht auffindbar", "Verspätung", "note"]
    rows = []
    for n in range(400):
        rows.append(
            ";".join(
                [
                    f"EH{n % 150:010d}",
                    rng.choice(codes),
                    rng.choice(stations),
                    rng.choice(["Hamburg hub", "", "Wien Süd"]),
                    rng.choice(times),
                    rng.choice(["LKW-1", ""]),
                    rng.choice(remarks),
                ]
            )
        )
    header = "consignment_no;status_code;station_code;station_name;local_time;train_no;remarks"
    body = (header + "\n" + "\n".join(rows) + "\n").encode()
    for day in DAYS:
        _write(landing / f"carriers/EURORAIL/date={day}/events.csv", body)
    return landing


@pytest.mark.slow
def test_rail_files_land_the_same_with_typed_reads_and_without(tmp_path: Path):
    counts = _assert_same(_rail_world(tmp_path), tmp_path)
    received, typed_records, _ = counts["carrier_events"]
    assert 0 < typed_records < received


@pytest.mark.slow
def test_the_hostile_corpus_and_simulated_defects_land_the_same(tmp_path: Path):
    for world, landing in _worlds(tmp_path / "landing").items():
        counts = _assert_same(landing, tmp_path / world)
        if world == "defects":  # the day files were typed reads
            assert counts["inventory_snapshots"][1] > 0
            assert counts["orders"][1] > 0 and counts["order_lines"][1] > 0
            assert counts["carrier_events"][1] > 0


def test_a_plain_file_is_read_by_duckdb_and_a_damaged_one_is_not(tmp_path: Path):
    source = SOURCES_BY_NAME["inventory"]
    contract = load_contracts()[source.dataset]
    header, rows = _awkward_rows(source, 20, seed=3)
    lines = _lines(header, rows, ",")
    plain = tmp_path / "plain.csv"
    _write(plain, b"\n".join(lines) + b"\n")
    con = typed.connection()
    try:
        read = typed.typed_csv(con, plain, contract, ",", 4096)
        assert read is not None and read.received == 20
        assert read.record_nos == list(range(2, 22))
        assert sorted([*read.typed.index, *read.python_at]) == list(range(20))
        for kind, data in _damaged(lines, ",", 4096).items():
            path = tmp_path / f"{kind}.csv"
            _write(path, data)
            read = typed.typed_csv(con, path, contract, ",", 4096)
            if kind == "extra_column":  # read, the column ignored with a warning as in Python
                assert read is not None and read.warnings == [
                    "columns not in the contract ignored: note"
                ]
            elif kind == "header_only":  # no records, as in Python
                assert read is not None and read.received == 0
            else:
                assert read is None, kind
    finally:
        con.close()


@pytest.mark.parametrize("kind", ["integer", "number", "timestamp", "date", "boolean", "string"])
def test_sql_casts_of_canonical_values_equal_the_pandas_coercion(kind: str):
    contract = next(
        c for c in load_contracts().values() if any(col.logical_type == kind for col in c.columns)
    )
    column = next(col for col in contract.columns if col.logical_type == kind)
    rng = random.Random(11)
    values = [c for c in (_cell(v) for v in _palette(column)) if c is not None] + _extra(column)
    values += [_random_text(kind, rng) for _ in range(3000)]
    values = [v if v != "" else None for v in values]
    cast, canonical = typed.column_sql(column, "v")
    con = typed.connection()
    try:
        table = con.execute(
            f"select i, {canonical} as ok, case when {canonical} then {cast} end as {column.name} "
            "from (select unnest(?) as v, unnest(range(?)) as i) order by i",
            [values, len(values)],
        ).to_arrow_table()
    finally:
        con.close()
    ok = table.column("ok").to_pylist()
    got = typed.typed_frame(table.select([column.name]), contract)[column.name]
    reasons: dict = {i: [] for i in range(len(values))}
    from collections import defaultdict

    reasons = defaultdict(list)
    want = coerce_column(pd.Series(values, dtype=object, name=column.name), column, reasons)
    canonical_rows = [i for i, flag in enumerate(ok) if flag]
    assert len(canonical_rows) > len(values) // 4  # most random values are canonical
    assert str(got.dtype) == str(want.dtype)
    for i in canonical_rows:
        assert not reasons.get(i), (values[i], reasons[i])
        a, b = got.iloc[i], want.iloc[i]
        assert (pd.isna(a) and pd.isna(b)) or a == b, (values[i], a, b)
        if kind == "number" and not pd.isna(a):
            assert str(a) == str(b), values[i]  # the sign of zero too


def _random_text(kind: str, rng: random.Random) -> str:
    if kind == "integer":
        return str(rng.randint(-(10 ** rng.randint(1, 16)), 10 ** rng.randint(1, 16)))
    if kind == "number":
        return f"{rng.uniform(-1e6, 1e6):.{rng.randint(0, 14)}f}"
    if kind == "timestamp":
        offset = rng.choice(["Z", "+02:00", "-03:00", "+05:45", "-09:30", "+14:00"])
        frac = rng.choice(["", ".5", ".123", ".123456"])
        return (
            f"{rng.randint(1990, 2200)}-{rng.randint(1, 12):02d}-{rng.randint(1, 31):02d}T"
            f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}"
            f"{frac}{offset}"
        )
    if kind == "date":
        return f"{rng.randint(1900, 2300)}-{rng.randint(1, 12):02d}-{rng.randint(1, 31):02d}"
    if kind == "boolean":
        return rng.choice(["true", "false"])
    return "".join(rng.choice("abcXYZ -_/ü") for _ in range(rng.randint(1, 20)))
