"""Personal data in the lake: the keyed hash that replaces identifiers, and the patterns of PII.

**Keyed hash.** Identifiers that models must still count and join on (IP addresses, device ids,
payment instruments, shipping addresses, IP networks) leave the raw layer only as
HMAC-SHA256 hex digests under a secret key (:meth:`Settings.pii_key`: an environment variable
or a secrets file, never in the lake or the repository). An unkeyed SHA-256 of an IPv4 address
falls to 2^32 guesses (256 once its /24 is known); without the key there is nothing to guess
against. The hash runs as the DuckDB scalar function ``pii_hmac(varchar) -> varchar``,
registered by :func:`register_pii_functions` on every lake connection (``ordertower.lake``) and
on dbt's (``ordertower.dbt_plugin``): the key lives in the function's closure, so it never
appears in SQL, dbt's compiled files and logs, or ``duckdb_functions()``.

**Patterns.** :func:`find_pii` finds e-mail addresses, phone numbers, IPv4 addresses and street
addresses in free text (the PII scanner, ``ordertower pii scan``, and masking). The patterns are
written to leave timestamps, decimals, version strings, tracking references and ids alone; see
docs/pii.md for what each one matches and skips.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import duckdb
import pyarrow as pa

from ordertower.settings import Settings, get_settings

#: The SQL name of the keyed hash.
UDF_NAME = "pii_hmac"
_BLOCK = 64  # SHA-256 block size in bytes (RFC 2104)


def hmac_hasher(key: bytes) -> Callable[[str], str]:
    """``value -> HMAC-SHA256(key, value)`` as 64 hex digits (UTF-8), equal to ``hmac.new``.

    The inner and outer pads are hashed once and their SHA-256 states copied per value: about
    twice as fast as ``hmac.new(...).copy()`` per value, which matters at 200k rows per build.
    """
    if len(key) > _BLOCK:
        key = hashlib.sha256(key).digest()
    key = key.ljust(_BLOCK, b"\0")
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))

    def digest(value: str) -> str:
        i = inner.copy()
        i.update(value.encode("utf-8"))
        o = outer.copy()
        o.update(i.digest())
        return o.hexdigest()

    return digest


def pii_hmac(value: str | None, settings: Settings | None = None) -> str | None:
    """The keyed hash of one value, as the lake stores it (``None`` stays ``None``)."""
    if value is None:
        return None
    return hmac_hasher((settings or get_settings()).pii_key())(str(value))


def register_pii_functions(
    con: duckdb.DuckDBPyConnection, key: bytes | None = None, settings: Settings | None = None
) -> None:
    """Register ``pii_hmac(varchar) -> varchar`` on ``con`` (idempotent; cursors inherit it).

    Vectorised over Arrow arrays; nulls stay null. ``key`` defaults to the configured one.
    """
    digest = hmac_hasher(key if key is not None else (settings or get_settings()).pii_key())

    def udf(values: pa.Array) -> pa.Array:
        return pa.array(
            [None if v is None else digest(v) for v in values.to_pylist()], type=pa.string()
        )

    try:
        con.create_function(
            UDF_NAME,
            udf,
            ["VARCHAR"],
            "VARCHAR",
            type="arrow",
            null_handling="special",
            side_effects=False,
        )
    except duckdb.NotImplementedException as exc:  # already registered on this connection
        if "already" not in str(exc).lower():
            raise


# ------------------------------------------------------------------------------- patterns

#: ``local@domain.tld``; the local part and each label as RFC 5321 allows in practice.
EMAIL = re.compile(
    r"(?<![\w.%+-])[A-Za-z0-9][\w.%+-]{0,63}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.[A-Za-z]{2,24}(?![\w-])"
)
#: Domains reserved for documentation and tests (RFC 2606, RFC 6761): team mailboxes of the
#: contracts (``risk-stewards@ordertower.example``) and test identities, never a person's.
RESERVED_EMAIL_DOMAINS = re.compile(
    r"(?:^|\.)(?:example|test|invalid|localhost)$|^example\.(?:com|net|org)$", re.IGNORECASE
)
#: International numbers (``+49 151 2345678``, ``+1 (212) 555-0100``): a ``+``, a country code
#: and groups split by spaces, dots, dashes or parentheses; 8 to 15 digits in all (E.164).
#: National numbers with a parenthesised or dashed trunk prefix (``(030) 1234567``,
#: ``0151-2345678``). Not: a ``+`` right after a digit or letter (UTC offsets ``+02:00``),
#: bare digit runs (ids, amounts, epoch seconds), space-separated number lists.
PHONE = re.compile(
    r"(?<![\w+/=.])\+\d{1,3}(?:[ .-]?\(\d{1,5}\)|[ .-]?\d{1,5}){1,6}(?![\w.]|-\d)"
    r"|(?<![\w./:-])\(0\d{1,4}\)[ ]?\d{3,9}(?:[ -]\d{2,6})?(?![\w.]|-\d)"
    r"|(?<![\w./:-])0\d{2,4}[/-]\d{5,9}(?![\w./:-])"
)
_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
#: A dotted-quad host address. Not: part of a longer dotted number (``1.2.3.4.5``, versions
#: with four parts after ``==``/``>=``/``v``/``Product/``), a CIDR network (``10.0.0.0/8``: a range, not a
#: host), loopback, ``0.0.0.0`` or the broadcast address.
IPV4 = re.compile(rf"(?<![\w.])(?:{_OCTET}\.){{3}}{_OCTET}(?![\w]|\.\d|/\d)")
_NOT_A_HOST = re.compile(r"^(?:127\.|0\.0\.0\.0$|255\.255\.255\.255$)")
#: ``pkg==1.2.3.4``, ``version 1.2.3.4``, ``Chrome/120.0.0.0`` (a user agent's product token)
_VERSION_BEFORE = re.compile(r"(?:[=<>~!]=|[=@]|version\s?|[A-Za-z]/)$", re.IGNORECASE)
#: Street forms without a list of names: a street-type word and a house number.
_STREET_WORDS = (
    r"[A-ZÄÖÜ][a-zäöüß]+(?:straße|strasse|str\.|weg|allee|gasse|platz|ring|damm|gracht)"
    r"|(?:[A-Z][a-z]+ ){1,3}(?:Street|St\.|Road|Rd\.|Avenue|Ave\.|Lane|Drive|Boulevard|Way"
    r"|Court|Place|Terrace)"
    r"|(?:Rue|Avenue|Boulevard|Calle|Avenida|Paseo|Via|Viale|Corso|Piazza|Rua|Praça|ul\.)"
    r"(?: [\w'’.-]+){1,4}?"
)
STREET_GENERIC = re.compile(
    rf"(?<![\w])(?:(?:{_STREET_WORDS}),? \d{{1,5}}[a-z]?(?![\w.])"
    rf"|\d{{1,5}}[a-z]?,? (?:{_STREET_WORDS}))(?![\w])"
)


def street_pattern(names: Iterable[str]) -> re.Pattern[str] | None:
    """Any of these street names with a house number before or after it (``Hauptstraße 12``,
    ``12 Main Street``): real-looking addresses on known streets, not only the exact ones."""
    cleaned = sorted(
        {re.sub(r"^\d+[a-z]?,?\s+|,?\s+\d+[a-z]?$", "", n.strip()) for n in names if n},
        key=len,
        reverse=True,
    )
    cleaned = [n for n in cleaned if len(n) >= 4]
    if not cleaned:
        return None
    alt = "|".join(re.escape(n) for n in cleaned)
    return re.compile(
        rf"(?<![\w])(?:(?:{alt}),? \d{{1,5}}[a-z]?|\d{{1,5}}[a-z]?,? (?:{alt}))(?![\w])",
        re.IGNORECASE,
    )


@dataclass(frozen=True)
class Match:
    kind: str  # email | phone | ipv4 | street_address
    text: str


def find_pii(text: str, streets: re.Pattern[str] | None = None) -> list[Match]:
    """Every e-mail, phone number, IPv4 address and street address in ``text``."""
    found: list[Match] = []
    if "@" in text:
        for m in EMAIL.finditer(text):
            domain = m.group().rsplit("@", 1)[1]
            if not RESERVED_EMAIL_DOMAINS.search(domain):
                found.append(Match("email", m.group()))
    for m in PHONE.finditer(text):
        digits = sum(c.isdigit() for c in m.group())
        if 8 <= digits <= 15:
            found.append(Match("phone", m.group()))
    if text.count(".") >= 3:
        for m in IPV4.finditer(text):
            if _NOT_A_HOST.match(m.group()) or _VERSION_BEFORE.search(text[: m.start()][-9:]):
                continue
            found.append(Match("ipv4", m.group()))
    for pattern in (streets, STREET_GENERIC):
        if pattern is not None:
            found.extend(Match("street_address", m.group()) for m in pattern.finditer(text))
    return found


def mask_sample(text: str) -> str:
    """A match as a report may show it: its shape, never its value (``j***@***.com``,
    ``+## ### #######``, ``###.###.#.##``, ``*********** ##``)."""
    if "@" in text:
        local, domain = text.rsplit("@", 1)
        return f"{local[:1]}***@***.{domain.rsplit('.', 1)[-1]}"
    return re.sub(r"\d", "#", re.sub(r"[^\W\d_]", "*", text))


#: What replaces personal data that must not be shown.
WITHHELD = "<pii withheld>"


def withhold(text: str, streets: re.Pattern[str] | None = None, mark: str = WITHHELD) -> str:
    """``text`` with every e-mail, phone number, IPv4 and street address replaced by ``mark``."""
    for match in sorted(find_pii(text, streets), key=lambda m: len(m.text), reverse=True):
        text = text.replace(match.text, mark)
    return text
