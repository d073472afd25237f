"""Read landing files record by record without ever failing on bad input.

Real feeds arrive damaged: a byte-order mark, a truncated last line, a line that is not JSON,
a CSV written with the wrong delimiter or without a column. Hostile ones too: JSON nested
thousands of levels deep, a line of many megabytes, NUL characters, numbers JSON does not
know (``NaN``), the same key twice. A reader never raises on content: it returns the records
it could parse and, for everything else, a :class:`Reject` with the original text and the
reason, so the caller can quarantine it. Nothing is dropped silently.

The same checks serve the live stream (``pipelines/stream/land.py``): :func:`parse_json_object`
and :func:`parse_delimited_row` read one message body as the file readers read one line.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ordertower.settings import get_settings

_BOM = b"\xef\xbb\xbf"

#: How deep JSON may nest (objects and lists). The feeds need 3 levels; anything past this is
#: refused before it can exhaust the recursion of the parser or of :func:`flatten`.
MAX_JSON_DEPTH = 32
#: What quarantine keeps of a record over the size cap (characters), beside its size and hash.
KEPT_PREFIX = 2000


class RecordError(ValueError):
    """One record cannot be read; the message is the reason a steward reads in quarantine."""


@dataclass
class Reject:
    record_no: int | None
    raw: str
    reason: str


@dataclass
class ParsedFile:
    path: Path
    records: list[dict[str, Any]] = field(default_factory=list)
    record_nos: list[int] = field(default_factory=list)
    raws: list[str] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    #: contract columns the file header lacks (CSV)
    missing_columns: set[str] = field(default_factory=set)
    warnings: list[str] = field(default_factory=list)

    @property
    def received(self) -> int:
        return len(self.records) + len(self.rejects)


# ------------------------------------------------------------------------------ size cap


def max_record_bytes() -> int:
    return get_settings().max_record_bytes


def oversize(data: bytes | str, cap: int | None = None) -> tuple[str, str] | None:
    """``(kept text, reason)`` for a record over the size cap, else None.

    The record is not parsed. Quarantine keeps its first :data:`KEPT_PREFIX` characters, its
    size and its SHA-256 (so it can be found in the source), never the whole text.
    """
    cap = max_record_bytes() if cap is None else cap
    if len(data) <= cap // 4:  # a character is at most 4 bytes: surely within the cap
        return None
    raw = data if isinstance(data, bytes) else data.encode("utf-8", errors="surrogatepass")
    if len(raw) <= cap:
        return None
    digest = hashlib.sha256(raw).hexdigest()
    kept = raw[: KEPT_PREFIX * 4].decode("utf-8", errors="replace")[:KEPT_PREFIX]
    reason = (
        f"record too large: {len(raw)} bytes, over the cap of {cap} bytes "
        f"(ORDERTOWER_MAX_RECORD_BYTES); not parsed; raw_record keeps its first "
        f"{KEPT_PREFIX} characters, sha256 {digest}"
    )
    return f"{kept}... [{len(raw)} bytes in all, sha256 {digest}]", reason


def bounded(text: str, cap: int | None = None) -> str:
    """``text`` as quarantine stores it: whole, or a prefix with size and hash when over cap."""
    over = oversize(text, cap)
    return text if over is None else over[0]


# ------------------------------------------------------------------------------ JSON


def _no_constants(name: str) -> Any:
    raise RecordError(f"invalid JSON: {name} is not a JSON number")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        dup = next(k for k, _ in pairs if k in seen or seen.add(k))
        raise RecordError(f"invalid JSON: duplicate key {dup[:60]!r} (which value is meant?)")
    return obj


_JSON_KINDS = {
    list: "an array",
    str: "a string",
    int: "a number",
    float: "a number",
    bool: "a boolean",
    type(None): "null",
}
_DECODER = json.JSONDecoder(object_pairs_hook=_unique_keys, parse_constant=_no_constants)


def json_depth_exceeds(obj: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """True when ``obj`` nests objects or lists more than ``limit`` levels (no recursion)."""
    stack = [(obj, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def _has_nul(obj: Any) -> bool:
    stack = [obj]
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            if "\x00" in value:
                return True
        elif isinstance(value, dict):
            stack.extend(value.keys())
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return False


def parse_json_object(text: str, hint: str = "") -> dict[str, Any]:
    """One JSON object, or :class:`RecordError` with the reason (never anything else)."""
    if not text.strip():
        raise RecordError("empty record: no JSON object")
    # a cheap bound first: fewer brackets than the limit cannot nest deeper than it
    deep_possible = text.count("{") + text.count("[") > MAX_JSON_DEPTH
    try:
        obj = _DECODER.decode(text)
    except json.JSONDecodeError as exc:
        raise RecordError(f"invalid JSON{hint}: {exc.msg} at column {exc.colno}") from exc
    except RecursionError as exc:
        raise RecordError(
            f"invalid JSON: nested deeper than {MAX_JSON_DEPTH} levels (the parser gave up)"
        ) from exc
    except RecordError:
        raise
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        raise RecordError(f"invalid JSON: {str(exc)[:120]}") from exc
    if not isinstance(obj, dict):
        raise RecordError(f"not a JSON object but {_JSON_KINDS.get(type(obj), 'a value')}")
    if deep_possible and json_depth_exceeds(obj):
        raise RecordError(f"invalid JSON: nested deeper than {MAX_JSON_DEPTH} levels")
    if "\\u0000" in text and _has_nul(obj):
        raise RecordError("contains a NUL character (U+0000)")
    return obj


def flatten(obj: dict[str, Any], prefix: str = "", depth: int = 0) -> dict[str, Any]:
    """Nested objects become ``parent_child`` columns; lists stay lists (raw mirrors source).

    Below :data:`MAX_JSON_DEPTH` levels an object stays whole (the contract then refuses it as
    not a scalar value) instead of recursing further.
    """
    out: dict[str, Any] = {}
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and depth < MAX_JSON_DEPTH:
            out.update(flatten(value, f"{name}_", depth + 1))
        else:
            out[name] = value
    return out


# ------------------------------------------------------------------------------ files


def _read_bytes(path: Path, parsed: ParsedFile) -> bytes | None:
    try:
        data = path.read_bytes()
    except OSError as exc:
        parsed.rejects.append(Reject(None, "", f"file cannot be read: {exc}"))
        return None
    if data.startswith(_BOM):
        parsed.warnings.append("byte-order mark removed")
        data = data[len(_BOM) :]
    return data


def read_jsonl(path: Path, max_bytes: int | None = None) -> ParsedFile:
    """One JSON object per line. Blank lines are not records."""
    parsed = ParsedFile(path)
    data = _read_bytes(path, parsed)
    if data is None:
        return parsed
    cap = max_record_bytes() if max_bytes is None else max_bytes
    lines = data.split(b"\n")
    last = len(lines)
    for number, raw_bytes in enumerate(lines, start=1):
        hint = " (truncated last line)" if number == last and not data.endswith(b"\n") else ""
        read_json_line(parsed, number, raw_bytes, cap, hint)
    return parsed


def read_json_line(parsed: ParsedFile, number: int, raw_bytes: bytes, cap: int, hint: str) -> None:
    """Line ``number`` of a JSON-lines file into ``parsed``: a record, a reject with the reason,
    or nothing (a blank line)."""
    raw_bytes = raw_bytes.rstrip(b"\r")
    if raw_bytes.startswith(_BOM):  # a line written with its own byte-order mark
        raw_bytes = raw_bytes[len(_BOM) :]
    if not raw_bytes.strip():
        return
    over = oversize(raw_bytes, cap)
    if over is not None:
        parsed.rejects.append(Reject(number, *over))
        return
    try:
        raw = raw_bytes.decode("utf-8")
    except UnicodeDecodeError as exc:
        parsed.rejects.append(
            Reject(
                number,
                raw_bytes.decode("utf-8", "replace"),
                f"not valid UTF-8 ({exc.reason} at byte {exc.start})",
            )
        )
        return
    try:
        obj = parse_json_object(raw, hint)
    except RecordError as exc:
        parsed.rejects.append(Reject(number, raw, str(exc)))
        return
    parsed.records.append(obj)
    parsed.record_nos.append(number)
    parsed.raws.append(raw)


# ------------------------------------------------------------------------------ CSV


def _sniff_other_delimiter(header: str, delimiter: str) -> str | None:
    for candidate in (",", ";", "\t", "|"):
        if candidate != delimiter and header.count(candidate) >= 1 and header.count(delimiter) == 0:
            return candidate
    return None


def _allow_fields_up_to(cap: int) -> None:
    """The csv module refuses fields over 128 KiB: allow what the record cap allows."""
    if csv.field_size_limit() < cap:
        csv.field_size_limit(cap)


def parse_delimited_row(
    text: str, columns: tuple[str, ...], delimiter: str = ","
) -> dict[str, str]:
    """One delimited row (a live rail message) as ``{column: value}``, or :class:`RecordError`."""
    row_text = text[:-2] if text.endswith("\r\n") else text.rstrip("\n")
    if "\n" in row_text or "\r" in row_text:
        raise RecordError("row: contains a line break (CR/LF) inside the row")
    if "\x00" in row_text:
        raise RecordError("row: contains a NUL character (U+0000)")
    if not row_text.strip():
        raise RecordError("row: empty")
    try:
        rows = list(csv.reader([row_text], delimiter=delimiter, strict=True))
    except csv.Error as exc:
        raise RecordError(f"row: unreadable CSV ({exc})") from exc
    cells = rows[0] if rows else []
    if len(cells) != len(columns):
        other = _sniff_other_delimiter(row_text, delimiter) if len(cells) == 1 else None
        extra = f" (separated by {other!r}?)" if other else ""
        raise RecordError(
            f"row: expected {len(columns)} {delimiter!r}-separated fields, got {len(cells)}{extra}"
        )
    return dict(zip(columns, cells, strict=True))


def read_csv(
    path: Path,
    columns: tuple[str, ...],
    delimiter: str = ",",
    max_bytes: int | None = None,
    one_line_rows: bool = False,
) -> ParsedFile:
    """A delimited file with a header row; ``columns`` are the ones the contract expects.

    Columns are matched by header name, so their order does not matter. A header without some
    expected columns still lands its rows (those columns are null, and rules decide); a file in
    another delimiter, a row with the wrong number of fields, a NUL character or a line over
    the size cap is rejected with the reason, and the rows after it are read as usual.

    ``one_line_rows``: every row is one physical line (a rail feed): a quote left open or a
    line break inside a row then spoils that line only, instead of joining the lines after it.
    """
    parsed = ParsedFile(path)
    data = _read_bytes(path, parsed)
    if data is None:
        return parsed
    cap = max_record_bytes() if max_bytes is None else max_bytes
    _allow_fields_up_to(cap)
    text = data.decode("utf-8", errors="replace")
    if "\ufffd" in text:
        parsed.warnings.append("invalid UTF-8 bytes replaced by U+FFFD")
    consumed: list[str] = []  # the physical lines of the row being read (its original text)
    too_long: list[tuple[int, tuple[str, str]]] = []
    counter = [0]

    def lines():
        for line in io.StringIO(text, newline=""):
            counter[0] += 1
            over = oversize(line, cap)
            if over is not None:  # never handed to the parser
                too_long.append((counter[0], over))
                line = "\n"
            consumed.append(line)
            yield line

    def original() -> str:
        raw = "".join(consumed).rstrip("\r\n")
        consumed.clear()
        return bounded(raw, cap)

    def drain_too_long() -> None:
        for number, over in too_long:
            parsed.rejects.append(Reject(number, *over))
        too_long.clear()

    source = lines()
    reader = csv.reader(source, delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        parsed.warnings.append("empty file")
        return parsed
    except csv.Error as exc:
        parsed.rejects.append(Reject(1, original(), f"unreadable CSV header: {exc}"))
        return parsed
    consumed.clear()
    if too_long and not header:
        drain_too_long()
        return parsed
    header = [h.strip() for h in header]
    other = _sniff_other_delimiter(delimiter.join(header), delimiter) if len(header) == 1 else None
    if other is not None:
        reason = f"wrong delimiter: expected {delimiter!r} but the file is separated by {other!r}"
        for number, line in enumerate(text.splitlines()[1:], start=2):
            if line.strip():
                parsed.rejects.append(Reject(number, bounded(line, cap), reason))
        return parsed
    parsed.missing_columns = set(columns) - set(header)
    extra = [h for h in header if h not in columns]
    if extra:
        parsed.warnings.append(f"columns not in the contract ignored: {', '.join(extra)}")
    if parsed.missing_columns:
        parsed.warnings.append(
            f"columns missing from the header: {', '.join(sorted(parsed.missing_columns))}"
        )
    width = len(header)
    if one_line_rows:
        for line in source:
            number = counter[0]
            consumed.clear()
            drain_too_long()
            raw = line.rstrip("\r\n")
            if not raw.strip():
                continue
            try:
                row = next(csv.reader([raw], delimiter=delimiter, strict=True))
            except (csv.Error, StopIteration) as exc:
                parsed.rejects.append(
                    Reject(number, bounded(raw, cap), f"unreadable CSV row: {exc}")
                )
                continue
            _take_row(parsed, header, row, number, raw, width)
        return parsed
    while True:
        first_line = counter[0] + 1
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            parsed.rejects.append(Reject(reader.line_num, original(), f"unreadable CSV row: {exc}"))
            continue
        finally:
            drain_too_long()
        raw = original()
        _take_row(parsed, header, row, reader.line_num, raw, width, reader.line_num - first_line)
    return parsed


def _take_row(
    parsed: ParsedFile,
    header: list[str],
    row: list[str],
    number: int,
    raw: str,
    width: int,
    spans: int = 0,
) -> None:
    """One parsed row: a record, or a reject with the reason (blank rows are not records)."""
    if not row or (len(row) == 1 and not row[0].strip()):
        return
    if len(row) != width:
        parsed.rejects.append(
            Reject(
                number,
                raw,
                f"expected {width} fields, found {len(row)}"
                + (" (truncated line)" if len(row) < width and not spans else "")
                + (f" (the row runs over {spans + 1} lines: an unclosed quote?)" if spans else ""),
            )
        )
        return
    if "\x00" in raw:
        parsed.rejects.append(
            Reject(number, raw.replace("\x00", "\\x00"), "contains a NUL character (U+0000)")
        )
        return
    parsed.records.append({h: (v if v != "" else None) for h, v in zip(header, row, strict=True)})
    parsed.record_nos.append(number)
    parsed.raws.append(raw)
