"""Passwords out of every message: connection strings, URLs and the error text that quotes them.

The catalog DSN (``ORDERTOWER_CATALOG_DSN``), the broker URL (``ORDERTOWER_BROKER_URL``), the CRM
URL (``ORDERTOWER_CRM_URL``) and ``MLFLOW_TRACKING_URI`` may carry a password, and DuckDB, libpq,
pika and requests quote the connection string they failed on in their exceptions. Whatever the
platform prints, logs, stores or raises about a connection goes through :func:`redact`, which

* masks the password of every URL (``scheme://user:secret@host`` -> ``scheme://user:***@host``),
* masks every libpq ``password=`` value, quoted or not (``password=***``), and
* masks, as a safety net, the literal passwords of the configured connections wherever else they
  appear (percent-decoded too), for the text formats nobody foresaw.

:func:`install_log_redaction` applies the same to every log record of the process (message,
exception and stack text), whatever handler writes it.
"""

from __future__ import annotations

import functools
import logging
import re
import traceback
from urllib.parse import unquote, urlsplit

MASK = "***"
#: Literal passwords shorter than this are not searched for in free text (a two-letter password
#: would mask every word containing it); the URL and ``password=`` patterns still apply.
MIN_LITERAL = 6

# scheme://user:secret@  (the secret runs to the last "@" before the next "/" or blank, so an
# unencoded "@" in it is masked too)
_URL_PASSWORD = re.compile(
    r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s/@:'\"]*):(?P<secret>[^\s/]*)@"
)
# libpq key=value: password=secret | password = 'se cret' | password='it\'s' | the same inside
# an SQL literal (password=''se cret''); also ?password= in a URI's query string. Unquoted
# values run to the next blank (over-masking is harmless).
_KV_PASSWORD = re.compile(
    r"(?P<key>\b(?:password|passwd)\s*=\s*)"
    r"(?:''(?:[^']|'''')+''|'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|\S+)",
    re.IGNORECASE,
)


def redact(text: object, secrets: tuple[str, ...] | list[str] = ()) -> str:
    """``text`` (any object: an exception, a URL, a DSN) as a string without passwords.

    ``secrets``: more literal values to mask besides those of the configured connections."""
    out = text if isinstance(text, str) else str(text)
    if not out:
        return out
    out = _URL_PASSWORD.sub(lambda m: f"{m['head']}:{MASK}@", out)
    out = _KV_PASSWORD.sub(lambda m: f"{m['key']}{MASK}", out)
    for secret in sorted({*known_secrets(), *secrets}, key=len, reverse=True):
        if secret and len(secret) >= MIN_LITERAL and secret in out:
            out = out.replace(secret, MASK)
    return out


def known_secrets() -> tuple[str, ...]:
    """The passwords of the connections the settings configure (may be empty)."""
    try:
        from ordertower.settings import get_settings

        s = get_settings()
        sources = (s.catalog if s.catalog_kind == "postgres" else "", s.broker_url, s.crm_url)
        return _secrets_of((*sources, s.mlflow_tracking_uri))
    except Exception:  # noqa: BLE001 - redaction must never fail the message it protects
        return ()


@functools.lru_cache(maxsize=16)
def _secrets_of(values: tuple[str, ...]) -> tuple[str, ...]:
    found: set[str] = set()
    for value in values:
        if not value:
            continue
        for match in re.finditer(r"://[^\s/@:]*:([^\s/]*)@", value):
            found.update({match[1], unquote(match[1])})
        if "://" in value:
            try:
                password = urlsplit(value.strip()).password
            except ValueError:
                password = None
            if password:
                found.update({password, unquote(password)})
        for match in _KV_PASSWORD.finditer(value):
            raw = match[0][len(match["key"]) :]
            if raw[:1] in ("'", '"') and raw[-1:] == raw[:1]:
                inner = raw[1:-1]
                found.update({inner, re.sub(r"\\(.)", r"\1", inner).replace("''", "'")})
            else:
                found.update({raw, unquote(raw)})
    return tuple(sorted(s for s in found if s))


# --------------------------------------------------------------------------------- logging


def _redact_record(record: logging.LogRecord) -> None:
    if isinstance(record.msg, str):
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, ()
    if record.exc_info and record.exc_info[0] is not None and not record.exc_text:
        text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
        record.exc_text = redact(text)
    if record.stack_info:
        record.stack_info = redact(record.stack_info)


def install_log_redaction() -> None:
    """Make every log record of this process redact itself (idempotent).

    A record factory around the current one, not a handler filter: it covers every handler,
    including those that libraries (Dagster, pika, MLflow) add after this call."""
    current = logging.getLogRecordFactory()
    if getattr(current, "redacts", False):
        return

    def factory(*args, **kwargs) -> logging.LogRecord:
        record = current(*args, **kwargs)
        _redact_record(record)
        return record

    factory.redacts = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)


def split_password(dsn: str) -> tuple[str, str | None]:
    """A libpq connection string (key=value or URI) without its password, and the password.

    For processes that quote the DSN in their own logs (dbt): they get the DSN without the
    password and the password in ``PGPASSWORD``, which libpq reads."""
    if "://" in dsn:
        parts = urlsplit(dsn)
        if parts.password is None:
            return dsn, None
        netloc = parts.netloc.rsplit("@", 1)
        user = netloc[0].split(":", 1)[0]
        return parts._replace(netloc=f"{user}@{netloc[1]}").geturl(), unquote(parts.password)
    match = _KV_PASSWORD.search(dsn)
    if match is None:
        return dsn, None
    raw = match[0][len(match["key"]) :]
    if raw[:1] == "'" and raw[-1:] == "'" and len(raw) >= 2:
        raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
    rest = (dsn[: match.start()] + dsn[match.end() :]).split()
    return " ".join(rest), raw
