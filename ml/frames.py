"""Large query results as pandas frames without a Python string per row of repeated text.

DuckDB's ``.df()`` turns every text value into a Python string: about 60 bytes a value, so the
ten low-cardinality text columns of the ETA training examples (carriers, modes, countries,
event codes) took half of a 0.9 GB frame at 100k orders, and converting held DuckDB's result
and the frame at once. :func:`fetch_frame` streams the result as Arrow record batches,
dictionary-encodes the named columns batch by batch, and converts once, releasing the Arrow
buffers as it goes: those columns arrive as pandas categoricals (a small integer per row), and
the peak is the compact Arrow copy plus the frame, not DuckDB's result plus a frame of strings.
Every other column converts as Arrow converts it, decimals as doubles: the same values as
``.df()`` (an integer column with nulls arrives as floats).
"""

from __future__ import annotations

from collections.abc import Iterable

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc


def _target(field: pa.Field, names: set[str]) -> pa.Field:
    """The Arrow type a column is converted from: dictionary-encoded text for the named text
    columns, doubles for decimals (as ``.df()`` gives them, not a Decimal object per row)."""
    text = pa.types.is_string(field.type) or pa.types.is_large_string(field.type)
    if field.name in names and text:
        return pa.field(field.name, pa.dictionary(pa.int32(), field.type), field.nullable)
    if pa.types.is_decimal(field.type):
        return pa.field(field.name, pa.float64(), field.nullable)
    return field


def _converted(column: pa.Array, target: pa.Field) -> pa.Array:
    if pa.types.is_dictionary(target.type):
        return pc.dictionary_encode(column)
    if column.type != target.type:
        return pc.cast(column, target.type)
    return column


def fetch_frame(
    con: duckdb.DuckDBPyConnection,
    sql: str,
    params: dict | list | None = None,
    categorical: Iterable[str] = (),
    batch_rows: int = 1_000_000,
) -> pd.DataFrame:
    """The result of ``sql`` as a DataFrame, the text columns named in ``categorical`` as
    pandas categoricals (their categories: the values present, in text order). ``batch_rows``:
    the rows of each Arrow batch."""
    reader = con.execute(sql, params or {}).to_arrow_reader(batch_rows)
    names = set(categorical)
    schema = pa.schema([_target(f, names) for f in reader.schema])
    batches = []
    for batch in reader:
        columns = [_converted(c, t) for c, t in zip(batch.columns, schema, strict=True)]
        batches.append(pa.RecordBatch.from_arrays(columns, schema=schema))
    table = pa.Table.from_batches(batches, schema=schema)
    del batches
    frame = table.to_pandas(self_destruct=True, split_blocks=True)
    # categories in text order (Arrow's are in order of appearance): sorting and comparing
    # the column then go as they would on the text
    for name in names & set(frame.columns):
        if isinstance(frame[name].dtype, pd.CategoricalDtype):
            frame[name] = frame[name].cat.reorder_categories(sorted(frame[name].cat.categories))
    return frame
