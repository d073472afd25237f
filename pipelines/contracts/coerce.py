"""Coerce raw record values to the types a contract declares, recording why a value failed.

Sources deliver text (CSV) or loosely typed JSON. Before any rule runs, every column is cast to
its contract type; a value that cannot be cast becomes null and its record gets a reason such as
``quantity: 'three' is not an integer``. Timestamps are converted to UTC; when the contract says
``timezone: true`` a timestamp without an offset is refused rather than guessed, and when it
names a ``defaultTimezone`` such a timestamp is read as that zone's local time.

A reason never shows the value of a column the contract classifies as personal data
(``classification: pii``): ``email: <pii withheld> is not ...`` names the column and the rule
only, because reasons are stored in the quarantine and shown on the data-quality page.
"""

from __future__ import annotations

from collections import defaultdict
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from ordertower.pii import WITHHELD, withhold
from pipelines.contracts.model import Column, Contract

_TZ_SUFFIX = r"(?:Z|z|[+-]\d{2}:?\d{2})$"
_TRUE = {"true", "1", "yes", "y", "t"}
_FALSE = {"false", "0", "no", "n", "f"}

Reasons = dict[int, list[str]]
#: What a reason shows in place of the value of a PII column.
PII_WITHHELD = WITHHELD


def show_value(value: object, limit: int = 40) -> str:
    """A value as a reason shows it: Python literals, numpy scalars unwrapped, long text cut.

    Whatever looks like personal data (an e-mail, phone, IPv4 or street address in a column
    the contract does not classify as PII, e.g. typed into the wrong field) is withheld too,
    before the text is cut so that no part of it survives.
    """
    if hasattr(value, "item") and not isinstance(value, pd.Timestamp):
        value = value.item()
    if isinstance(value, pd.Timestamp):
        value = value.isoformat()
    text = withhold(repr(value)) if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _present(series: pd.Series) -> pd.Series:
    """Values that were actually delivered (not null and not an empty string)."""
    present = series.notna()
    if pd.api.types.is_object_dtype(series.dtype):
        present &= series.ne("")
    return present


def reason_value(value: object, column: Column | None) -> str:
    """The value as a reason shows it, or :data:`PII_WITHHELD` for a PII column."""
    return PII_WITHHELD if column is not None and column.is_pii else show_value(value)


def _flag(
    reasons: Reasons, series: pd.Series, failed: pd.Series, message: str, column: Column
) -> None:
    for idx in series.index[failed.to_numpy()]:
        shown = reason_value(series.at[idx], column)
        reasons[int(idx)].append(f"{series.name}: {shown} {message}")


def _is_nested(series: pd.Series) -> pd.Series:
    """True where a value is a list or an object (JSON where a single value belongs)."""
    if not pd.api.types.is_object_dtype(series.dtype):
        return pd.Series(False, index=series.index)
    return series.map(lambda v: isinstance(v, dict | list | tuple | set))


def _to_numeric(series: pd.Series, column: Column, reasons: Reasons) -> pd.Series:
    raw = series
    if raw.dtype == object:
        # text as delivered; JSON booleans, lists and objects are not numbers
        raw = raw.map(
            lambda v: (
                v.strip().replace(",", ".")
                if isinstance(v, str)
                else (np.nan if isinstance(v, bool | dict | list | tuple | set) else v)
            )
        )
    values = pd.to_numeric(raw, errors="coerce")
    present = _present(series)
    kind = "an integer" if column.logical_type == "integer" else "a number"
    # NaN and Infinity (JSON has neither, CSV text may) are not measurements
    infinite = np.isinf(values.to_numpy(dtype="float64", na_value=np.nan))
    if infinite.any():
        _flag(
            reasons,
            series,
            pd.Series(infinite, index=series.index),
            "is not a finite number",
            column,
        )
        values = values.where(~infinite)
    bad = present & values.isna() & ~infinite
    if column.logical_type == "integer":
        # beyond 64 bits a value cannot be stored (and the cast would fail the whole batch)
        huge = (values.abs() >= 2.0**63).fillna(False).to_numpy(dtype=bool)
        if huge.any():
            _flag(
                reasons,
                series,
                pd.Series(huge, index=series.index),
                "is out of the 64-bit integer range",
                column,
            )
            values = values.where(~huge)
        fractional = values.notna() & (values != np.floor(values.fillna(0)))
        bad |= fractional
        values = values.where(~fractional)
        _flag(reasons, series, bad, f"is not {kind}", column)
        return values.astype("Int64")
    _flag(reasons, series, bad, f"is not {kind}", column)
    return values.astype("float64")


def _to_timestamp(series: pd.Series, column: Column, reasons: Reasons) -> pd.Series:
    present = _present(series)
    nested = _is_nested(series)
    text = series.where(present & ~nested).astype("string").str.strip()
    values = _parse_timestamps(text)
    bad = present & values.isna()
    _flag(reasons, series, bad, "is not an ISO-8601 timestamp", column)
    naive = present & ~bad & ~text.str.contains(_TZ_SUFFIX, regex=True, na=False)
    if column.timezone:
        _flag(reasons, series, naive, "has no time zone offset", column)
        values = values.where(~naive)
    elif column.default_timezone and naive.any():
        values = values.where(~naive, _localise(values[naive], column.default_timezone))
    return values


def _parse_timestamps(text: pd.Series) -> pd.Series:
    """ISO-8601 text -> UTC timestamps (NaT where it does not parse or lies outside what pandas
    can hold, years 1677..2262)."""
    try:
        return pd.to_datetime(text, utc=True, errors="coerce", format="ISO8601")
    except (ValueError, OverflowError, TypeError):
        # one odd value can fail the vectorised parse of the whole column: parse one by one
        def one(v: object) -> pd.Timestamp:
            try:
                return pd.to_datetime(v, utc=True, errors="coerce", format="ISO8601")
            except (ValueError, OverflowError, TypeError):
                return pd.NaT

        return pd.Series([one(v) for v in text], index=text.index, dtype="datetime64[ns, UTC]")


def _localise(parsed_as_utc: pd.Series, zone: str) -> pd.Series:
    """Offset-less timestamps (parsed as if UTC) read as wall-clock time in ``zone``, in UTC.

    Daylight-saving changes resolve as Python's ``zoneinfo`` does (PEP 495, ``fold=0``), like
    the rail feed's local times: an hour that occurs twice is the earlier one (daylight time),
    and an hour that does not exist (the gap) keeps the offset from before the change.
    """
    wall = parsed_as_utc.dt.tz_localize(None)
    local = wall.dt.tz_localize(
        zone, ambiguous=np.ones(len(wall), dtype=bool), nonexistent="NaT"
    ).dt.tz_convert("UTC")
    local = local.copy()  # an accessor's result is read-only
    gap = local.isna() & wall.notna()
    if gap.any():
        tz = ZoneInfo(zone)
        local[gap] = [
            pd.Timestamp(w.to_pydatetime().replace(tzinfo=tz)).tz_convert("UTC") for w in wall[gap]
        ]
    return local


def _to_date(series: pd.Series, column: Column, reasons: Reasons) -> pd.Series:
    present = _present(series)
    text = series.where(present & ~_is_nested(series)).astype("string").str.strip().str.slice(0, 10)
    values = pd.to_datetime(text, errors="coerce", format="%Y-%m-%d")
    _flag(reasons, series, present & values.isna(), "is not a date (YYYY-MM-DD)", column)
    return values.dt.date.where(values.notna(), None).astype(object)


def _to_boolean(series: pd.Series, column: Column, reasons: Reasons) -> pd.Series:
    def convert(v: object) -> object:
        if isinstance(v, bool | np.bool_):
            return bool(v)
        if isinstance(v, int | float) and not isinstance(v, bool) and v in (0, 1):
            return bool(v)
        if isinstance(v, str):
            low = v.strip().lower()
            if low in _TRUE:
                return True
            if low in _FALSE:
                return False
        return pd.NA

    present = _present(series)
    values = series.map(convert).astype("boolean")
    _flag(reasons, series, present & values.isna(), "is not a boolean", column)
    return values


def _to_string(series: pd.Series, column: Column, reasons: Reasons) -> pd.Series:
    present = _present(series)
    if pd.api.types.infer_dtype(series, skipna=True) in ("string", "empty"):
        return series.where(present, None).astype(object)  # fast path: already text
    nested = present & series.map(lambda v: isinstance(v, dict | list | tuple | set))
    _flag(reasons, series, nested, "is not a scalar text value", column)
    # a JSON true where text belongs would land as the text "True"
    boolean = present & series.map(lambda v: isinstance(v, bool | np.bool_))
    _flag(reasons, series, boolean, "is a boolean, not text", column)
    nested |= boolean
    values = series.where(present & ~nested, None)
    return values.map(lambda v: v if v is None or isinstance(v, str) else str(v)).astype(object)


def _to_array(series: pd.Series, column: Column, reasons: Reasons) -> pd.Series:
    present = _present(series)
    bad = present & ~series.map(lambda v: isinstance(v, list))
    _flag(reasons, series, bad, "is not a list", column)
    return series.map(lambda v: [str(x) for x in v] if isinstance(v, list) else None).astype(object)


def coerce_column(series: pd.Series, column: Column, reasons: Reasons) -> pd.Series:
    """Cast one column to its contract type, appending a reason for each value that fails."""
    kind = column.logical_type
    if kind in ("integer", "number"):
        return _to_numeric(series, column, reasons)
    if kind == "timestamp":
        return _to_timestamp(series, column, reasons)
    if kind == "date":
        return _to_date(series, column, reasons)
    if kind == "boolean":
        return _to_boolean(series, column, reasons)
    if kind == "array":
        return _to_array(series, column, reasons)
    return _to_string(series, column, reasons)


def coerce_frame(
    frame: pd.DataFrame, contract: Contract, missing_columns: dict[int, set[str]] | None = None
) -> tuple[pd.DataFrame, Reasons]:
    """Cast ``frame`` to the contract's columns (in contract order).

    Columns the source did not deliver at all are null; ``missing_columns`` (record index ->
    column names absent from that record's file header) turns those into explicit reasons for
    required columns, so a missing column is reported as such rather than as a null value.
    """
    reasons: Reasons = defaultdict(list)
    typed = {}
    for column in contract.columns:
        if column.name in frame.columns:
            series = frame[column.name]
        else:
            series = pd.Series(
                [None] * len(frame), index=frame.index, dtype=object, name=column.name
            )
        typed[column.name] = coerce_column(series.rename(column.name), column, reasons)
    if missing_columns:
        required = {c.name for c in contract.columns if c.required}
        for idx, names in missing_columns.items():
            for name in sorted(names & required):
                reasons[idx].append(f"{name}: column missing from the file header")
    return pd.DataFrame(typed, index=frame.index), reasons
