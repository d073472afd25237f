"""Real-world defects that ingestion must quarantine, injected at ``dirty_rate``.

Each feed declares which of its columns can break and how. Marked rows carry ``_defect`` and
``_defect_id`` (the record's original key) so the writer can log file + record number into
``truth/defects.parquet``. With ``dirty_rate == 0`` nothing is touched.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .textutil import list_array, struct_array

BAD_TIMESTAMPS = ["2026-13-45T25:61:00+02:00", "20/08/2026 10:15", "not-a-timestamp"]


@dataclass
class DefectSpec:
    key: str
    required: str | None = None  # a required non-key column to blank out
    enum: tuple[str, str] | None = None  # (column, value outside the enum)
    numeric: str | None = None  # column made negative
    timestamp: str | None = None
    duplicates: bool = True


def inject(
    rng: np.random.Generator, table: pa.Table, spec: DefectSpec, rate: float, negate=None
) -> pa.Table:
    """Return ``table`` with defects (and the bookkeeping columns) added."""
    n = table.num_rows
    kinds = [
        "missing_required_field",
        "null_key",
        "unknown_enum",
        "out_of_range",
        "malformed_timestamp",
        "duplicate_key",
    ]
    usable = [
        spec.required,
        spec.key,
        spec.enum,
        spec.numeric or negate,
        spec.timestamp,
        spec.duplicates,
    ]
    kinds = [k for k, u in zip(kinds, usable, strict=True) if u]
    k = int(rng.binomial(n, rate)) if rate > 0 and n else 0
    marks = np.full(n, None, dtype=object)
    if k == 0:
        return table.append_column("_defect", pa.array(marks, pa.string())).append_column(
            "_defect_id", table.column(spec.key).cast(pa.string())
        )
    rows = rng.choice(n, min(k, n), replace=False)
    which = rng.integers(0, len(kinds), len(rows))
    ids = table.column(spec.key).cast(pa.string())
    dup_rows = []
    for kind_i, kind in enumerate(kinds):
        sel = np.sort(rows[which == kind_i])
        if not sel.size:
            continue
        mask = np.zeros(n, bool)
        mask[sel] = True
        marks[sel] = kind
        if kind == "missing_required_field":
            table = _set_null(table, spec.required, mask)
        elif kind == "null_key":
            table = _set_null(table, spec.key, mask)
        elif kind == "unknown_enum":
            col, bad = spec.enum
            table = _replace(table, col, mask, pa.scalar(bad))
        elif kind == "out_of_range":
            table = negate(table, mask) if negate else _negate(table, spec.numeric, mask)
        elif kind == "malformed_timestamp":
            bad = np.array(BAD_TIMESTAMPS)[rng.integers(0, len(BAD_TIMESTAMPS), n)]
            col = table.column(spec.timestamp).cast(pa.string())
            new = pc.if_else(pa.array(mask), pa.array(bad), col)
            table = table.set_column(table.column_names.index(spec.timestamp), spec.timestamp, new)
        else:
            dup_rows = sel
    table = table.append_column("_defect", pa.array(marks, pa.string()))
    table = table.append_column("_defect_id", ids)
    if len(dup_rows):
        # a re-sent record with the same key right after the original
        extra = table.take(pa.array(dup_rows))
        extra = extra.set_column(
            extra.column_names.index("_defect"),
            "_defect",
            pa.array(["duplicate_key"] * len(dup_rows), pa.string()),
        )
        order = np.argsort(np.concatenate([np.arange(n), dup_rows]), kind="stable")
        table = pa.concat_tables([_clear(table, dup_rows), extra]).take(pa.array(order))
    return table


def _clear(table: pa.Table, rows: np.ndarray) -> pa.Table:
    """The original of a duplicated record is fine; only the copy is the defect."""
    marks = table.column("_defect").to_numpy(zero_copy_only=False).copy()
    marks[rows] = None
    return table.set_column(
        table.column_names.index("_defect"), "_defect", pa.array(marks, pa.string())
    )


def _set_null(table: pa.Table, col: str, mask: np.ndarray) -> pa.Table:
    c = table.column(col)
    new = pc.if_else(pa.array(mask), pa.scalar(None, c.type), c)
    return table.set_column(table.column_names.index(col), col, new)


def _replace(table: pa.Table, col: str, mask: np.ndarray, value: pa.Scalar) -> pa.Table:
    c = table.column(col)
    new = pc.if_else(pa.array(mask), value.cast(c.type), c)
    return table.set_column(table.column_names.index(col), col, new)


def _negate(table: pa.Table, col: str, mask: np.ndarray) -> pa.Table:
    c = table.column(col)
    # a null (a contact without a rating) becomes -1: the defect must really be out of range
    negated = pc.subtract(pc.negate(pc.fill_null(c, pa.scalar(0, c.type))), pa.scalar(1, c.type))
    new = pc.if_else(pa.array(mask), negated, c)
    return table.set_column(table.column_names.index(col), col, new)


def negate_first_line_qty(table: pa.Table, mask: np.ndarray) -> pa.Table:
    """Orders: a negative quantity inside the nested lines of the marked orders."""
    lines = table.column("lines").combine_chunks()
    offsets = lines.offsets.to_numpy()
    values = lines.values
    qty = values.field("quantity").to_numpy().copy()
    first = offsets[:-1][mask]
    qty[first] = -qty[first]
    fields = [values.field(i) for i in range(values.type.num_fields)]
    names = [values.type.field(i).name for i in range(values.type.num_fields)]
    fields[names.index("quantity")] = pa.array(qty)
    new_values = struct_array(fields, names)
    new = list_array(lines.offsets, new_values)
    return table.set_column(table.column_names.index("lines"), "lines", new)
