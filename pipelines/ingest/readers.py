"""Read landing files record by record without ever failing on bad input.

Real feeds arrive damaged: a byte-order mark, a truncated last line, a line that is not JSON,
a CSV written with the wrong delimiter or without a column. A reader never raises on content:
it returns the records it could parse and, for everything else, a :class:`Reject` with the
original text and the reason, so the caller can quarantine it. Nothing is dropped silently.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_BOM = b"\xef\xbb\xbf"


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


def flatten(obj: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested objects become ``parent_child`` columns; lists stay lists (raw mirrors source)."""
    out: dict[str, Any] = {}
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, f"{name}_"))
        else:
            out[name] = value
    return out


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


def read_jsonl(path: Path) -> ParsedFile:
    """One JSON object per line. Blank lines are not records."""
    parsed = ParsedFile(path)
    data = _read_bytes(path, parsed)
    if data is None:
        return parsed
    lines = data.split(b"\n")
    last = len(lines)
    for number, raw_bytes in enumerate(lines, start=1):
        raw_bytes = raw_bytes.rstrip(b"\r")
        if not raw_bytes.strip():
            continue
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
            continue
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as exc:
            hint = " (truncated last line)" if number == last and not data.endswith(b"\n") else ""
            parsed.rejects.append(
                Reject(number, raw, f"invalid JSON{hint}: {exc.msg} at column {exc.colno}")
            )
            continue
        if not isinstance(obj, dict):
            parsed.rejects.append(
                Reject(number, raw, f"not a JSON object but a {type(obj).__name__}")
            )
            continue
        parsed.records.append(obj)
        parsed.record_nos.append(number)
        parsed.raws.append(raw)
    return parsed


def _sniff_other_delimiter(header: str, delimiter: str) -> str | None:
    for candidate in (",", ";", "\t", "|"):
        if candidate != delimiter and header.count(candidate) >= 1 and header.count(delimiter) == 0:
            return candidate
    return None


def read_csv(path: Path, columns: tuple[str, ...], delimiter: str = ",") -> ParsedFile:
    """A delimited file with a header row; ``columns`` are the ones the contract expects.

    Columns are matched by header name, so their order does not matter. A header without some
    expected columns still lands its rows (those columns are null, and rules decide); a file in
    another delimiter, or a row with the wrong number of fields, is rejected with the reason.
    """
    parsed = ParsedFile(path)
    data = _read_bytes(path, parsed)
    if data is None:
        return parsed
    text = data.decode("utf-8", errors="replace")
    if "\ufffd" in text:
        parsed.warnings.append("invalid UTF-8 bytes replaced by U+FFFD")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        parsed.warnings.append("empty file")
        return parsed
    except csv.Error as exc:
        parsed.rejects.append(Reject(1, text[:2000], f"unreadable CSV header: {exc}"))
        return parsed
    header = [h.strip() for h in header]
    other = _sniff_other_delimiter(delimiter.join(header), delimiter) if len(header) == 1 else None
    if other is not None:
        reason = f"wrong delimiter: expected {delimiter!r} but the file is separated by {other!r}"
        for number, line in enumerate(text.splitlines()[1:], start=2):
            if line.strip():
                parsed.rejects.append(Reject(number, line, reason))
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
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator="")
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            parsed.rejects.append(Reject(reader.line_num, "", f"unreadable CSV row: {exc}"))
            continue
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        out.seek(0)
        out.truncate()
        writer.writerow(row)
        raw = out.getvalue()
        if len(row) != width:
            parsed.rejects.append(
                Reject(
                    reader.line_num,
                    raw,
                    f"expected {width} fields, found {len(row)}"
                    + (" (truncated line)" if len(row) < width else ""),
                )
            )
            continue
        parsed.records.append(
            {h: (v if v != "" else None) for h, v in zip(header, row, strict=True)}
        )
        parsed.record_nos.append(reader.line_num)
        parsed.raws.append(raw)
    return parsed
