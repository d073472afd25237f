"""Personalised customer messages for exception alerts, from the templates in ``messages.yaml``.

:func:`compose` turns the alerts a micro-batch raised into one message per alert, in the
customer's language (English when there are no templates for it) and with the tone and
compensation of the customer's tier, filled with the order's context: order, parcel, carrier,
promised day, new expected day. The only personal data a message carries is the customer's
own first name; the CRM knows the customer by ``customer_id`` (no address, e-mail or phone).

The message id is a hash of the alert id, so an alert detected again (a replayed batch) composes
the same message with the same id, and the outbox and the CRM keep it once.

Templates are validated strictly when they are loaded, because customer service edits them by
hand and the stream reads them for days: a missing template, an unknown placeholder or a
misspelt key is an error naming its place, never a message with a hole in it.
"""

from __future__ import annotations

import hashlib
import json
import math
import string
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

MESSAGES_PATH = Path(__file__).with_name("messages.yaml")
PAYLOAD_SCHEMA = "ordertower.crm.message/v1"

REASONS = (
    "carrier_exception",
    "customs_hold",
    "stuck",
    "milestone_missed",
    "predicted_late",
    "delivery_failed",
)
#: the template for an alert reason the file does not know yet (a new rule)
GENERIC = "generic"
#: the carrier's reasons for an exception; ``OTHER`` also serves any reason not listed
SUB_REASONS = ("ADDRESS_ISSUE", "DAMAGED", "LOST", "DELAY", "REFUSED", "OTHER")
TIERS = ("standard", "silver", "gold", "platinum")
SEVERITIES = ("low", "medium", "high", "critical")

#: what :func:`compose` returns, one row per alert
MESSAGE_COLUMNS = [
    "message_id",
    "alert_id",
    "customer_id",
    "order_id",
    "language",
    "tier",
    "channel",
    "subject",
    "body",
    "payload",
]

# the placeholders each kind of text may use
_CONTEXT = frozenset({"order_id", "tracking_ref", "carrier"})
_PLACEHOLDERS: dict[str, frozenset[str]] = {
    "date_format": frozenset({"day", "month", "year"}),
    "currency": frozenset({"amount"}),
    "greeting": frozenset({"first_name"}),
    "greeting_no_name": frozenset(),
    "subject": _CONTEXT,
    "body": _CONTEXT,
    "eta_line": frozenset({"eta_date"}),
    "eta_line_promised": frozenset({"eta_date", "promised_date"}),
    "voucher": frozenset({"amount"}),
    "priority_line": frozenset({"tier_name"}),
    "help_line": frozenset(),
    "closing": frozenset(),
}
_LANGUAGE_KEYS = {
    "date_format",
    "months",
    "first_of_month",
    "currency",
    "decimal_separator",
    "sentence_separator",
    "tier_names",
    "greeting",
    "greeting_no_name",
    "messages",
    "eta_line",
    "eta_line_promised",
    "voucher",
    "priority_line",
    "help_line",
    "closing",
}
_OPTIONAL_LANGUAGE_KEYS = {"first_of_month", "decimal_separator", "sentence_separator"}
_TOP_KEYS = {
    "version",
    "default_language",
    "channels",
    "tiers",
    "voucher_for",
    "eta_for",
    "carriers",
    "languages",
    "only_if_promise_at_risk",
    "repeat_after_hours",
}


class TemplateError(ValueError):
    """messages.yaml is incomplete or says something compose cannot do."""


@dataclass(frozen=True)
class TierPolicy:
    voucher_eur: float = 0.0
    priority_line: bool = False


@dataclass(frozen=True)
class ReasonTemplate:
    subject: str
    #: by sub-reason (``OTHER`` always present); a reason without sub-reasons has only ``OTHER``
    body: dict[str, str]

    def body_for(self, sub_reason: str | None) -> tuple[str, str]:
        """The body for a sub-reason, and the sub-reason key it was taken from."""
        key = (sub_reason or "").strip().upper()
        return (self.body[key], key) if key in self.body else (self.body["OTHER"], "OTHER")


@dataclass(frozen=True)
class Language:
    code: str
    date_format: str
    months: tuple[str, ...]
    currency: str
    tier_names: dict[str, str]
    greeting: dict[str, str]
    greeting_no_name: str
    messages: dict[str, ReasonTemplate]
    eta_line: str
    eta_line_promised: str
    voucher: str
    priority_line: str
    help_line: str
    closing: dict[str, str]
    first_of_month: str = "1"
    decimal_separator: str = "."
    sentence_separator: str = " "

    def date(self, day: date) -> str:
        number = self.first_of_month if day.day == 1 else str(day.day)
        return self.date_format.format(day=number, month=self.months[day.month - 1], year=day.year)

    def money(self, amount: float) -> str:
        text = f"{amount:.0f}" if float(amount).is_integer() else f"{amount:.2f}"
        return self.currency.format(amount=text.replace(".", self.decimal_separator))

    def template(self, reason: str) -> ReasonTemplate:
        return self.messages.get(reason) or self.messages[GENERIC]


@dataclass(frozen=True)
class Templates:
    default_language: str
    channels: dict[str, str]
    tiers: dict[str, TierPolicy]
    voucher_for: frozenset[str]
    eta_for: frozenset[str]
    carriers: dict[str, str]
    languages: dict[str, Language]
    #: alerts (reason or reason/SUB_REASON) that reach the customer only when the promise is at
    #: risk: a delay that still arrives on time is operations' business, not the customer's
    only_if_promise_at_risk: frozenset[str] = frozenset()
    #: an order gets at most one message per this many hours of the stream clock, unless the new
    #: alert is more severe than the last one it was told about (None: every alert)
    repeat_after_hours: float | None = None

    def language(self, code: object) -> Language:
        """The templates of a language code (``pt-BR`` -> ``pt``), or the default language's."""
        text = str(code or "").strip().lower().replace("_", "-").split("-")[0]
        return self.languages.get(text) or self.languages[self.default_language]

    def tier(self, tier: object) -> str:
        text = str(tier or "").strip().lower()
        return text if text in self.tiers else "standard"


# ------------------------------------------------------------------------------- loading


def _fields(text: str, where: str, problems: list[str]) -> set[str]:
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as exc:
        problems.append(f"{where}: {exc} in {text!r}")
        return set()
    names = set()
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if not name or spec or conversion:
            problems.append(f"{where}: write placeholders as {{name}}, not {{{name}...}}")
        names.add(name)
    return names


def _text(value: Any, kind: str, where: str, problems: list[str]) -> str:
    if not isinstance(value, str) or not value.strip():
        problems.append(f"{where}: must be a non-empty text")
        return ""
    unknown = _fields(value, where, problems) - _PLACEHOLDERS[kind]
    if unknown:
        allowed = ", ".join(f"{{{p}}}" for p in sorted(_PLACEHOLDERS[kind])) or "none"
        problems.append(
            f"{where}: unknown placeholder(s) {', '.join(f'{{{u}}}' for u in sorted(unknown))}"
            f" (allowed here: {allowed})"
        )
    return value


def _by_tier(value: Any, kind: str, where: str, problems: list[str]) -> dict[str, str]:
    """A text for every tier: one text for all, or a mapping with every tier."""
    if isinstance(value, str):
        return {t: _text(value, kind, where, problems) for t in TIERS}
    if not isinstance(value, dict):
        problems.append(f"{where}: must be a text or a mapping of tiers ({', '.join(TIERS)})")
        return {}
    for extra in sorted(set(value) - set(TIERS)):
        problems.append(f"{where}: unknown tier {extra!r} (tiers: {', '.join(TIERS)})")
    out = {}
    for tier in TIERS:
        if tier not in value:
            problems.append(f"{where}: no text for tier {tier!r}")
        else:
            out[tier] = _text(value[tier], kind, f"{where}.{tier}", problems)
    return out


def _reason(value: Any, reason: str, where: str, problems: list[str]) -> ReasonTemplate | None:
    if not isinstance(value, dict) or set(value) != {"subject", "body"}:
        problems.append(f"{where}: must have exactly `subject` and `body`")
        return None
    subject = _text(value["subject"], "subject", f"{where}.subject", problems)
    body = value["body"]
    if isinstance(body, str):
        if reason == "carrier_exception":
            problems.append(f"{where}.body: needs one text per carrier reason: {SUB_REASONS}")
        return ReasonTemplate(subject, {"OTHER": _text(body, "body", f"{where}.body", problems)})
    if not isinstance(body, dict):
        problems.append(f"{where}.body: must be a text or a mapping of sub-reasons")
        return None
    required = SUB_REASONS if reason == "carrier_exception" else ("OTHER",)
    for sub in required:
        if sub not in body:
            problems.append(f"{where}.body: no text for {sub}")
    texts = {
        str(sub).upper(): _text(text, "body", f"{where}.body.{sub}", problems)
        for sub, text in body.items()
    }
    return ReasonTemplate(subject, texts)


def _language(code: str, raw: Any, problems: list[str]) -> Language | None:
    where = f"languages.{code}"
    if not isinstance(raw, dict):
        problems.append(f"{where}: must be a mapping")
        return None
    for extra in sorted(set(raw) - _LANGUAGE_KEYS):
        problems.append(f"{where}: unknown key {extra!r}")
    missing = sorted(_LANGUAGE_KEYS - _OPTIONAL_LANGUAGE_KEYS - set(raw))
    problems.extend(f"{where}: missing {key!r}" for key in missing)
    if missing:
        return None
    months = raw["months"]
    if not (isinstance(months, list) and len(months) == 12 and all(months)):
        problems.append(f"{where}.months: must list the 12 month names")
        months = [str(m) for m in range(1, 13)]
    tier_names = raw["tier_names"]
    if not isinstance(tier_names, dict) or set(tier_names) != set(TIERS):
        problems.append(f"{where}.tier_names: must name every tier ({', '.join(TIERS)})")
        tier_names = {t: t for t in TIERS}
    messages_raw = raw["messages"] if isinstance(raw["messages"], dict) else {}
    messages = {}
    for reason in (*REASONS, GENERIC):
        if reason not in messages_raw:
            problems.append(f"{where}.messages: no template for {reason!r}")
            continue
        template = _reason(messages_raw[reason], reason, f"{where}.messages.{reason}", problems)
        if template is not None:
            messages[reason] = template
    for extra in sorted(set(messages_raw) - set(REASONS) - {GENERIC}):
        # a reason the rules do not raise (yet) is allowed: it is ready when a rule uses it
        template = _reason(messages_raw[extra], extra, f"{where}.messages.{extra}", problems)
        if template is not None:
            messages[extra] = template
    text = {
        key: _text(raw[key], key, f"{where}.{key}", problems)
        for key in (
            "date_format",
            "currency",
            "greeting_no_name",
            "eta_line",
            "eta_line_promised",
            "voucher",
            "priority_line",
            "help_line",
        )
    }
    return Language(
        code=code,
        months=tuple(str(m) for m in months),
        tier_names={t: str(n) for t, n in tier_names.items()},
        greeting=_by_tier(raw["greeting"], "greeting", f"{where}.greeting", problems),
        messages=messages,
        closing=_by_tier(raw["closing"], "closing", f"{where}.closing", problems),
        first_of_month=str(raw.get("first_of_month", "1")),
        decimal_separator=str(raw.get("decimal_separator", ".")),
        sentence_separator=str(raw.get("sentence_separator", " ")),
        **text,
    )


def _keys(values: Any, where: str, problems: list[str]) -> frozenset[str]:
    if not isinstance(values, list):
        problems.append(f"{where}: must be a list of reasons (reason or reason/SUB_REASON)")
        return frozenset()
    return frozenset(str(v) for v in values)


def parse_templates(raw: Any, source: str = "messages.yaml") -> Templates:
    """Validate the parsed YAML; every problem is reported at once."""
    problems: list[str] = []
    if not isinstance(raw, dict):
        raise TemplateError(f"{source}: must be a mapping")
    for extra in sorted(set(raw) - _TOP_KEYS):
        problems.append(f"unknown key {extra!r}")
    languages_raw = raw.get("languages")
    if not isinstance(languages_raw, dict) or not languages_raw:
        raise TemplateError(f"{source}: `languages` must map language codes to templates")
    languages = {}
    for code, body in languages_raw.items():
        parsed = _language(str(code), body, problems)
        if parsed is not None:
            languages[str(code)] = parsed
    default = str(raw.get("default_language", "en"))
    if default not in languages_raw:
        problems.append(f"default_language {default!r} has no templates")

    channels = raw.get("channels") or {}
    if not isinstance(channels, dict) or set(channels) != set(SEVERITIES):
        problems.append(f"channels: must name a channel for every severity ({SEVERITIES})")
        channels = {}

    tiers_raw = raw.get("tiers") or {}
    tiers: dict[str, TierPolicy] = {}
    if not isinstance(tiers_raw, dict) or set(tiers_raw) != set(TIERS):
        problems.append(f"tiers: must describe every tier ({', '.join(TIERS)})")
    else:
        for tier, policy in tiers_raw.items():
            policy = policy or {}
            extra = set(policy) - {"voucher_eur", "priority_line"}
            if extra:
                problems.append(f"tiers.{tier}: unknown key(s) {sorted(extra)}")
            voucher = policy.get("voucher_eur", 0)
            if not isinstance(voucher, int | float) or voucher < 0:
                problems.append(f"tiers.{tier}.voucher_eur: must be a number >= 0")
                voucher = 0
            tiers[tier] = TierPolicy(float(voucher), bool(policy.get("priority_line", False)))

    known = set(REASONS) | {GENERIC} | {f"carrier_exception/{s}" for s in SUB_REASONS}
    voucher_for = _keys(raw.get("voucher_for", []), "voucher_for", problems)
    eta_for = _keys(raw.get("eta_for", []), "eta_for", problems)
    at_risk = _keys(raw.get("only_if_promise_at_risk", []), "only_if_promise_at_risk", problems)
    repeat = raw.get("repeat_after_hours")
    if repeat is not None and (
        isinstance(repeat, bool) or not isinstance(repeat, int | float) or repeat < 0
    ):
        problems.append("repeat_after_hours: must be a number of hours >= 0")
        repeat = None
    for name, keys in (
        ("voucher_for", voucher_for),
        ("eta_for", eta_for),
        ("only_if_promise_at_risk", at_risk),
    ):
        for key in sorted(keys - known):
            problems.append(f"{name}: unknown reason {key!r}")
    carriers = raw.get("carriers") or {}
    if not isinstance(carriers, dict):
        problems.append("carriers: must map carrier ids to display names")
        carriers = {}
    if problems:
        raise TemplateError(
            f"{source} has {len(problems)} problem(s):\n" + "\n".join(f"  - {p}" for p in problems)
        )
    return Templates(
        default_language=default,
        channels={str(k): str(v) for k, v in channels.items()},
        tiers=tiers,
        voucher_for=voucher_for,
        eta_for=eta_for,
        only_if_promise_at_risk=at_risk,
        repeat_after_hours=None if repeat is None else float(repeat),
        carriers={str(k): str(v) for k, v in carriers.items()},
        languages=languages,
    )


_cache: dict[tuple[str, int, int], Templates] = {}


def load_templates(path: Path | None = None) -> Templates:
    """Read and validate ``messages.yaml`` (re-read when the file changes). Any problem is a
    :class:`TemplateError`, whatever shape the bad edit has."""
    path = Path(path or MESSAGES_PATH)
    try:
        st = path.stat()
        key = (str(path.resolve()), st.st_mtime_ns, st.st_size)
    except OSError as exc:
        raise TemplateError(f"cannot read message templates {path}: {exc}") from exc
    if key not in _cache:
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise TemplateError(f"cannot read message templates {path}: {exc}") from exc
        except yaml.YAMLError as exc:
            raise TemplateError(f"{path.name} is not valid YAML: {exc}") from exc
        try:
            _cache[key] = parse_templates(raw, path.name)
        except TemplateError:
            raise
        except (TypeError, ValueError, AttributeError, KeyError, IndexError) as exc:
            raise TemplateError(f"{path.name}: cannot be read as templates: {exc!r}") from exc
    return _cache[key]


class TemplateReloader:
    """The templates a long-running process uses (the stream), re-read when the file changes.

    The first load must succeed: the stream never starts on bad templates. Afterwards a bad edit
    keeps the last good templates; :meth:`poll` returns them with the error, once per bad version
    of the file, so the caller raises one operational alert and customers still get messages
    from the last good version.
    """

    def __init__(self, path: Path | None = None) -> None:
        self.path = Path(path or MESSAGES_PATH)
        self.current = load_templates(self.path)
        self._stamp = self._stat()
        self.error: str | None = None

    def _stat(self) -> tuple[int, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size)

    @property
    def stamp(self) -> tuple[int, int] | None:
        return self._stamp

    def poll(self) -> tuple[Templates, str | None]:
        """(the templates to use, the error of a newly seen bad edit or None)."""
        stamp = self._stat()
        if stamp == self._stamp:
            return self.current, None
        self._stamp = stamp
        try:
            self.current = load_templates(self.path)
        except TemplateError as exc:
            self.error = str(exc)
            return self.current, self.error
        self.error = None
        return self.current, None


# ------------------------------------------------------------------------------- composing


def message_id(alert_id: str) -> str:
    """The message's id: a hash of its alert's id, so a re-detected alert yields the same id."""
    return hashlib.sha256(f"crm-message|{alert_id}".encode()).hexdigest()[:32]


def _missing(value: Any) -> bool:
    if value is None or value is pd.NaT:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _clean(value: Any) -> str:
    return "" if _missing(value) else str(value).strip()


def _day(value: Any) -> date | None:
    """A date from a date, a timestamp (its UTC day) or ISO text; None when missing."""
    if _missing(value):
        return None
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    stamp = pd.Timestamp(value)
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert("UTC")
    return stamp.date()


def _iso(value: Any) -> str | None:
    if _missing(value):
        return None
    if isinstance(value, date) and not isinstance(value, datetime):
        return value.isoformat()
    stamp = pd.Timestamp(value)
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert("UTC")
    return stamp.isoformat()


def _number(value: Any) -> float | None:
    if _missing(value):
        return None
    return round(float(value), 2)


def _matches(keys: frozenset[str], reason: str, sub_reason: str) -> bool:
    return reason in keys or f"{reason}/{sub_reason}" in keys


def render(
    alert: Mapping[str, Any], customer: Mapping[str, Any] | None, templates: Templates
) -> dict[str, Any]:
    """One alert's message (the columns of :data:`MESSAGE_COLUMNS`)."""
    customer = customer or {}
    lang = templates.language(customer.get("language"))
    tier = templates.tier(customer.get("tier"))
    policy = templates.tiers[tier]
    reason = _clean(alert.get("reason"))
    template = lang.template(reason)
    body, sub_key = template.body_for(_clean(alert.get("sub_reason")))
    carrier_id = _clean(alert.get("carrier_id"))
    carrier = _clean(alert.get("carrier_name")) or templates.carriers.get(carrier_id, carrier_id)
    context = {
        "order_id": _clean(alert.get("order_id")),
        "tracking_ref": _clean(alert.get("tracking_ref")) or _clean(alert.get("shipment_id")),
        "carrier": carrier,
    }
    # the customer's own first name is the only personal data in a message
    first_name = " ".join(_clean(customer.get("first_name")).split())[:60]
    greeting = (
        lang.greeting[tier].format(first_name=first_name) if first_name else lang.greeting_no_name
    )

    paragraph = [body.format(**context)]
    eta, promised = _day(alert.get("eta_at")), _day(alert.get("promised_delivery_date"))
    if eta is not None and _matches(templates.eta_for, reason, sub_key):
        if promised is not None and promised != eta:
            paragraph.append(
                lang.eta_line_promised.format(
                    eta_date=lang.date(eta), promised_date=lang.date(promised)
                )
            )
        else:
            paragraph.append(lang.eta_line.format(eta_date=lang.date(eta)))
    voucher = policy.voucher_eur if _matches(templates.voucher_for, reason, sub_key) else 0.0
    parts = [greeting, lang.sentence_separator.join(paragraph)]
    if voucher:
        parts.append(lang.voucher.format(amount=lang.money(voucher)))
    parts.append(
        lang.priority_line.format(tier_name=lang.tier_names[tier])
        if policy.priority_line
        else lang.help_line
    )
    parts.append(lang.closing[tier])
    subject = template.subject.format(**context)
    text = "\n\n".join(parts)

    alert_id = _clean(alert.get("alert_id"))
    severity = _clean(alert.get("severity")).lower()
    channel = templates.channels.get(severity, templates.channels.get("medium", "email"))
    mid = message_id(alert_id)
    customer_id = _clean(alert.get("customer_id"))
    payload = {
        "schema": PAYLOAD_SCHEMA,
        "message_id": mid,
        "alert_id": alert_id,
        "customer_id": customer_id,
        "order_id": context["order_id"] or None,
        "language": lang.code,
        "tier": tier,
        "channel": channel,
        "subject": subject,
        "body": text,
        "reason": reason or None,
        "sub_reason": _clean(alert.get("sub_reason")) or None,
        "severity": severity or None,
        "offer": {"kind": "voucher", "amount_eur": voucher} if voucher else None,
        "priority_line": policy.priority_line,
        "context": {
            "shipment_id": _clean(alert.get("shipment_id")) or None,
            "tracking_ref": _clean(alert.get("tracking_ref")) or None,
            "carrier_id": carrier_id or None,
            "promised_delivery_date": promised.isoformat() if promised else None,
            "eta_at": _iso(alert.get("eta_at")),
            "order_value_eur": _number(alert.get("order_value_eur")),
            "recommended_action": _clean(alert.get("recommended_action")) or None,
            "detected_at": _iso(alert.get("detected_at")),
        },
    }
    return {
        "message_id": mid,
        "alert_id": alert_id,
        "customer_id": customer_id,
        "order_id": context["order_id"] or None,
        "language": lang.code,
        "tier": tier,
        "channel": channel,
        "subject": subject,
        "body": text,
        "payload": json.dumps(payload, ensure_ascii=False, sort_keys=True),
    }


_RANK = {s: i for i, s in enumerate(SEVERITIES)}


def worth_a_message(
    alerts: pd.DataFrame, templates: Templates, told: pd.DataFrame | None = None
) -> pd.DataFrame:
    """The alerts that should reach the customer (the others stay stored for operations).

    ``alerts``: new alerts (``alert_id, order_id, reason, sub_reason, severity,
    promise_at_risk, clock_at``); ``told``: the alerts the orders were already messaged about
    (``order_id, severity, clock_at``). An alert listed in ``only_if_promise_at_risk`` needs its
    promise at risk; per order the most severe alert of the batch is kept; and within
    ``repeat_after_hours`` of the last message an order hears again only of something more
    severe."""
    if alerts is None or alerts.empty:
        return alerts
    frame = alerts.copy()
    keys = templates.only_if_promise_at_risk
    if keys:
        listed = [
            _matches(keys, _clean(r), _clean(s).upper() or "OTHER")
            for r, s in zip(
                frame["reason"], frame.get("sub_reason", [None] * len(frame)), strict=True
            )
        ]
        at_risk = frame.get("promise_at_risk", pd.Series(True, index=frame.index))
        frame = frame.loc[
            ~pd.Series(listed, index=frame.index) | at_risk.fillna(False).astype(bool)
        ]
    if templates.repeat_after_hours is None or frame.empty:
        return frame
    frame = frame.assign(_rank=frame["severity"].map(_RANK).fillna(0))
    no_order = frame["order_id"].isna()
    ranked = frame.loc[~no_order].sort_values(["_rank", "clock_at"], ascending=[False, True])
    frame = pd.concat([ranked.drop_duplicates("order_id"), frame.loc[no_order]])
    if told is not None and not told.empty:
        last = told.assign(_told=told["severity"].map(_RANK).fillna(0))
        last = (
            last.sort_values("clock_at")
            .groupby("order_id")
            .agg(told_at=("clock_at", "last"), told_rank=("_told", "max"))
        )
        frame = frame.join(last, on="order_id")
        window = pd.Timedelta(hours=templates.repeat_after_hours)
        recent = (
            pd.to_datetime(frame["clock_at"], utc=True) - pd.to_datetime(frame["told_at"], utc=True)
        ) < window
        repeat = recent.fillna(False) & (frame["_rank"] <= frame["told_rank"].fillna(-1))
        frame = frame.loc[~repeat].drop(columns=["told_at", "told_rank"])
    return frame.drop(columns="_rank")


def compose(
    alerts: pd.DataFrame, customers: pd.DataFrame, templates: Templates | None = None
) -> pd.DataFrame:
    """One message per alert (columns :data:`MESSAGE_COLUMNS`).

    ``alerts``: ``alert_id, rule, reason, severity, order_id, customer_id, shipment_id,
    tracking_ref, carrier_id, promised_delivery_date, eta_at, recommended_action,
    order_value_eur, detected_at`` and, when known, ``sub_reason`` (the carrier's exception
    reason) and ``carrier_name``. ``customers``: ``customer_id, first_name, language, tier``;
    any other column is ignored, so no other personal data can reach a message.

    An alert without a customer id has nobody to write to and gets no message; a customer
    missing from ``customers`` is written to in the default language and the standard tier,
    without a name. An alert id that appears twice yields one message.
    """
    templates = templates or load_templates()
    if alerts is None or alerts.empty:
        return pd.DataFrame(columns=MESSAGE_COLUMNS)
    people: dict[str, dict[str, Any]] = {}
    if customers is not None and not customers.empty:
        wanted = [c for c in ("customer_id", "first_name", "language", "tier") if c in customers]
        for row in customers[wanted].to_dict("records"):
            people.setdefault(_clean(row.get("customer_id")), row)
    rows = []
    seen: set[str] = set()
    for alert in alerts.to_dict("records"):
        alert_id, customer_id = _clean(alert.get("alert_id")), _clean(alert.get("customer_id"))
        if not alert_id or not customer_id or alert_id in seen:
            continue
        seen.add(alert_id)
        rows.append(render(alert, people.get(customer_id), templates))
    return pd.DataFrame(rows, columns=MESSAGE_COLUMNS)
