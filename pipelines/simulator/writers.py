"""Writing the landing zone: one file per feed per day, byte-for-byte reproducible.

JSON lines and CSV are written by DuckDB's ``COPY`` from Arrow tables (fast, handles nested
structs) on a single thread so row order is exactly the table's order. Columns whose names
start with ``_`` are bookkeeping (event time, injected-defect markers) and never written.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ordertower.lake import NO_AUTO_EXTENSIONS


class LandingWriter:
    def __init__(self, root: Path, start: dt.date, days: int) -> None:
        self.root = root
        self.start = start
        self.days = days
        self.con = duckdb.connect(config=NO_AUTO_EXTENSIONS)
        self.con.execute("SET threads=1")
        self.con.execute("SET preserve_insertion_order=true")
        self.rows: dict[str, int] = {}
        self.files: list[Path] = []
        self.defects: list[dict] = []

    def write(self, table: pa.Table, rel: str, fmt: str, kind: str, delimiter: str = ",") -> None:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if "_defect" in table.column_names:
            self._note_defects(table, rel)
        data = table.select([c for c in table.column_names if not c.startswith("_")])
        self.con.register("t_out", data)
        target = str(path).replace("'", "''")
        if fmt == "json":
            self.con.execute(f"COPY t_out TO '{target}' (FORMAT json)")
        else:
            self.con.execute(
                f"COPY t_out TO '{target}' (FORMAT csv, HEADER true, DELIMITER '{delimiter}')"
            )
        self.con.unregister("t_out")
        self.rows[kind] = self.rows.get(kind, 0) + data.num_rows
        self.files.append(path)

    def partitioned(
        self,
        table: pa.Table,
        day: np.ndarray,
        folder: str,
        filename: str,
        fmt: str,
        kind: str,
        delimiter: str = ",",
    ) -> None:
        """One file per day of the world (empty days get an empty file: 'nothing happened')."""
        order = np.argsort(day, kind="stable")
        bounds = np.searchsorted(np.asarray(day)[order], np.arange(self.days + 1))
        self.rows.setdefault(kind, 0)
        for d in range(self.days):
            date = (self.start + dt.timedelta(days=d)).isoformat()
            # take() materialises the rows: DuckDB misreads nested structs of sliced arrays
            part = table.take(pa.array(order[bounds[d] : bounds[d + 1]]))
            self.write(part, f"{folder}/date={date}/{filename}", fmt, kind, delimiter)

    def _note_defects(self, table: pa.Table, rel: str) -> None:
        marks = table.column("_defect")
        rows = np.flatnonzero(pc.is_valid(marks).to_numpy(zero_copy_only=False))
        if not rows.size:
            return
        ids = table.column("_defect_id").take(pa.array(rows)).to_pylist()
        kinds = marks.take(pa.array(rows)).to_pylist()
        for r, i, k in zip(rows.tolist(), ids, kinds, strict=True):
            self.defects.append({"file": rel, "record_no": r + 1, "record_id": i, "defect": k})

    def parquet(self, table: pa.Table, rel: str) -> None:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, path, compression="zstd")
        self.files.append(path)

    def truncate_last_lines(self, rng: np.random.Generator, count: int) -> None:
        """Cut the last record of a few non-empty feed files mid-line (an aborted upload)."""
        candidates = sorted(
            p
            for p in self.files
            if "date=" in str(p) and p.suffix in (".jsonl", ".csv") and p.stat().st_size > 0
        )
        candidates = [p for p in candidates if _records(p) >= 2]
        if not candidates:
            return
        pick = rng.choice(len(candidates), min(count, len(candidates)), replace=False)
        for i in sorted(pick.tolist()):
            p = candidates[i]
            data = p.read_bytes()
            body = data.rstrip(b"\n")
            cut = body.rfind(b"\n") + 1
            last = body[cut:]
            p.write_bytes(body[: cut + max(1, len(last) // 2)])
            rel = str(p.relative_to(self.root))
            self.defects.append(
                {
                    "file": rel,
                    "record_no": _records_bytes(data, p),
                    "record_id": None,
                    "defect": "truncated_line",
                }
            )


def _records(p: Path) -> int:
    return _records_bytes(p.read_bytes(), p)


def _records_bytes(data: bytes, p: Path) -> int:
    lines = data.count(b"\n")
    return lines - 1 if p.suffix == ".csv" else lines
