"""The exception rules operations edit (``rules.yaml``), parsed and validated.

Validation is strict because the file is edited by hand and read by a process that runs for
days: an unknown kind, event code, exception reason, mode or severity is an error naming the
rule, not a rule that silently never fires.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

RULES_PATH = Path(__file__).with_name("rules.yaml")
KINDS = ("carrier_event", "predicted_late", "stuck", "milestone_missed")
SEVERITIES = ("low", "medium", "high", "critical")
REASONS = (
    "carrier_exception",
    "delivery_failed",
    "customs_hold",
    "predicted_late",
    "stuck",
    "milestone_missed",
)
EVENT_CODES = (
    "INFO_RECEIVED",
    "PICKED_UP",
    "DEPARTED",
    "IN_TRANSIT",
    "ARRIVED",
    "CUSTOMS_HOLD",
    "CUSTOMS_CLEARED",
    "OUT_FOR_DELIVERY",
    "DELIVERY_FAILED",
    "AVAILABLE_FOR_PICKUP",
    "DELIVERED",
    "EXCEPTION",
    "RETURNED",
    "UNKNOWN",
)
EXCEPTION_REASONS = (
    "ADDRESS_ISSUE",
    "CUSTOMS_HOLD",
    "DAMAGED",
    "LOST",
    "DELAY",
    "REFUSED",
    "OTHER",
)
MODES = ("last_mile", "road", "rail", "air", "sea")
MILESTONES = ("departure",)
#: ``watermark``: the latest actual event time received, guarded (see ``ClockGuard``);
#: ``watermark_unbounded``: the latest event time of any event, as before issue 18 (baseline
#: only: one future-dated event or a carrier's estimate moves it); ``wall``: the machine's clock
CLOCKS = ("watermark", "watermark_unbounded", "wall")
_TOP_KEYS = {
    "clock",
    "clock_guard",
    "sweep_every_s",
    "sweep_every_clock_minutes",
    "sweep_lookback_hours",
    "severity_sla_minutes",
    "storm",
    "rules",
    "alternatives",
}
_RULE_KEYS = {"id", "kind", "reason", "severity", "when", "severity_by_service", "budget_per_hour"}
_KIND_KEYS = {
    "carrier_event": set(),
    "predicted_late": {"min_hours_late"},
    "stuck": {"hours"},
    "milestone_missed": {"milestone", "grace_hours"},
}


class RulesError(ValueError):
    """rules.yaml says something the detector cannot do."""


@dataclass(frozen=True)
class Rule:
    id: str
    kind: str
    reason: str
    severity: str
    when: dict[str, tuple[str, ...]] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    severity_by_service: dict[str, str] = field(default_factory=dict)
    #: the most alerts this rule may raise per hour of the stream clock before it is a storm
    budget_per_hour: int | None = None


@dataclass(frozen=True)
class ClockGuard:
    """What may move the alert clock (``clock: watermark``).

    Only actual events (not a carrier's estimate of a future arrival) move it; an event more than
    ``margin_minutes`` ahead of its receipt never does, nor does the clock pass the wall clock
    plus the margin; and it moves to the ``corroborate``-th latest event time of distinct legs,
    so one future-dated event (or two) cannot move it at all.
    """

    margin_minutes: float = 60.0
    corroborate: int = 3


@dataclass(frozen=True)
class StormPolicy:
    """When a flood of alerts is a fault, not the world: suppress the messages, raise one ops alert.

    A rule storms when it raises more than ``max_alerts`` within ``window_minutes`` of the stream
    clock (or more than its own ``budget_per_hour``), or when one sweep finds it on more than
    ``max_share_of_open_legs`` of the open legs (once at least ``min_open_legs`` are open).
    """

    window_minutes: float = 60.0
    max_alerts: int = 500
    max_share_of_open_legs: float = 0.2
    min_open_legs: int = 200


@dataclass(frozen=True)
class AlternativesPolicy:
    reship_candidates: int = 2
    expedite_fee_eur: float = 15.0
    goods_write_off_share: dict[str, float] = field(default_factory=lambda: {"default": 0.1})

    def write_off(self, rule_id: str) -> float:
        return float(
            self.goods_write_off_share.get(rule_id, self.goods_write_off_share.get("default", 0.0))
        )


@dataclass(frozen=True)
class RuleSet:
    rules: tuple[Rule, ...]
    clock: str = "watermark"
    clock_guard: ClockGuard = field(default_factory=ClockGuard)
    storm: StormPolicy = field(default_factory=StormPolicy)
    sweep_every_s: float = 30.0
    #: also sweep whenever the stream clock moved this far (a replay's clock runs fast)
    sweep_every_clock_minutes: float | None = None
    sweep_lookback_hours: float = 168.0
    severity_sla_minutes: dict[str, int] = field(default_factory=dict)
    alternatives: AlternativesPolicy = field(default_factory=AlternativesPolicy)

    def of_kind(self, kind: str) -> list[Rule]:
        return [r for r in self.rules if r.kind == kind]


def _one_of(value: Any, allowed: tuple[str, ...], where: str) -> str:
    if value not in allowed:
        raise RulesError(f"{where}: {value!r} is not one of {', '.join(allowed)}")
    return value


def _number(value: Any, where: str, minimum: float = 0.0, integer: bool = False) -> float:
    """A number >= minimum (YAML booleans are not numbers)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value < minimum:
        raise RulesError(f"{where}: {value!r} must be a number >= {minimum:g}")
    if integer and int(value) != value:
        raise RulesError(f"{where}: {value!r} must be a whole number")
    return int(value) if integer else float(value)


def _mapping(value: Any, where: str, keys: set[str]) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise RulesError(f"{where}: must be a mapping")
    unknown = set(value) - keys
    if unknown:
        raise RulesError(f"{where}: unknown key(s) {sorted(unknown)} (known: {sorted(keys)})")
    return value


def _rule(raw: dict[str, Any], i: int) -> Rule:
    where = f"rules[{i}]"
    if not isinstance(raw, dict) or not raw.get("id"):
        raise RulesError(f"{where}: every rule needs an id")
    where = f"rule {raw['id']!r}"
    kind = _one_of(raw.get("kind"), KINDS, f"{where} kind")
    unknown = set(raw) - _RULE_KEYS - _KIND_KEYS[kind]
    if unknown:
        raise RulesError(f"{where}: unknown key(s) {sorted(unknown)} for a {kind} rule")
    budget = raw.get("budget_per_hour")
    if budget is not None:
        budget = int(_number(budget, f"{where} budget_per_hour", 1, integer=True))
    reason = _one_of(raw.get("reason"), REASONS, f"{where} reason")
    severity = _one_of(raw.get("severity"), SEVERITIES, f"{where} severity")
    by_service_raw = raw.get("severity_by_service") or {}
    if not isinstance(by_service_raw, dict):
        raise RulesError(f"{where}: severity_by_service must map service levels to severities")
    by_service = {
        str(k): _one_of(v, SEVERITIES, f"{where} severity_by_service.{k}")
        for k, v in by_service_raw.items()
    }
    when: dict[str, tuple[str, ...]] = {}
    params = {k: v for k, v in raw.items() if k in _KIND_KEYS[kind]}
    if kind == "carrier_event":
        spec = _mapping(raw.get("when"), f"{where} when", {"event_code", "exception_reason"})
        if not spec.get("event_code"):
            raise RulesError(f"{where}: a carrier_event rule needs when.event_code")
        for key, codes in spec.items():
            if not isinstance(codes, list) or not codes:
                raise RulesError(f"{where} when.{key}: must be a non-empty list")
        when["event_code"] = tuple(
            _one_of(c, EVENT_CODES, f"{where} event_code") for c in spec["event_code"]
        )
        if spec.get("exception_reason"):
            when["exception_reason"] = tuple(
                _one_of(c, EXCEPTION_REASONS, f"{where} exception_reason")
                for c in spec["exception_reason"]
            )
    elif raw.get("when") is not None:
        raise RulesError(f"{where}: only carrier_event rules have `when`")
    if kind == "predicted_late":
        params["min_hours_late"] = _number(raw.get("min_hours_late", 0), f"{where} min_hours_late")
    elif kind == "stuck":
        hours = raw.get("hours") or {}
        if not isinstance(hours, dict):
            raise RulesError(f"{where}: hours must map every mode to hours")
        for mode, h in hours.items():
            _one_of(mode, MODES, f"{where} hours")
            if isinstance(h, bool) or not isinstance(h, int | float) or h <= 0:
                raise RulesError(f"{where}: hours.{mode} must be a positive number")
        missing = set(MODES) - set(hours)
        if missing:
            raise RulesError(f"{where}: hours needs every mode; missing {sorted(missing)}")
        params["hours"] = {m: float(h) for m, h in hours.items()}
    elif kind == "milestone_missed":
        _one_of(raw.get("milestone"), MILESTONES, f"{where} milestone")
        params["grace_hours"] = _number(raw.get("grace_hours", 0), f"{where} grace_hours")
    return Rule(raw["id"], kind, reason, severity, when, params, by_service, budget)


def parse_rules(raw: Any, source: str = "rules.yaml") -> RuleSet:
    """Validate the parsed YAML: any mistake is a :class:`RulesError` naming its place."""
    try:
        return _parse(raw)
    except RulesError as exc:
        raise RulesError(f"{source}: {exc}") from exc
    except (TypeError, ValueError, AttributeError, KeyError) as exc:  # a shape nobody foresaw
        raise RulesError(f"{source}: cannot be read as rules: {exc!r}") from exc


def _parse(raw: Any) -> RuleSet:
    raw = _mapping(raw, "the file", _TOP_KEYS)
    if not isinstance(raw.get("rules"), list) or not raw["rules"]:
        raise RulesError("`rules` must be a non-empty list")
    rules = tuple(_rule(r, i) for i, r in enumerate(raw["rules"]))
    ids = [r.id for r in rules]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise RulesError(f"rule ids must be unique: {dup}")
    clock = _one_of(raw.get("clock", "watermark"), CLOCKS, "clock")
    guard = _mapping(raw.get("clock_guard"), "clock_guard", {"margin_minutes", "corroborate"})
    storm = _mapping(
        raw.get("storm"),
        "storm",
        {"window_minutes", "max_alerts", "max_share_of_open_legs", "min_open_legs"},
    )
    share = _number(storm.get("max_share_of_open_legs", 0.2), "storm.max_share_of_open_legs")
    if share > 1:
        raise RulesError(f"storm.max_share_of_open_legs: {share} is a share (0..1)")
    sla_raw = _mapping(raw.get("severity_sla_minutes"), "severity_sla_minutes", set(SEVERITIES))
    sla = {
        s: int(_number(sla_raw.get(s, 60), f"severity_sla_minutes.{s}", 1, integer=True))
        for s in SEVERITIES
    }
    alt = _mapping(
        raw.get("alternatives"),
        "alternatives",
        {"reship_candidates", "expedite_fee_eur", "goods_write_off_share"},
    )
    return RuleSet(
        rules=rules,
        clock=clock,
        clock_guard=ClockGuard(
            margin_minutes=_number(guard.get("margin_minutes", 60), "clock_guard.margin_minutes"),
            corroborate=int(
                _number(guard.get("corroborate", 3), "clock_guard.corroborate", 1, integer=True)
            ),
        ),
        storm=StormPolicy(
            window_minutes=_number(storm.get("window_minutes", 60), "storm.window_minutes", 1),
            max_alerts=int(_number(storm.get("max_alerts", 500), "storm.max_alerts", 1, True)),
            max_share_of_open_legs=share,
            min_open_legs=int(
                _number(storm.get("min_open_legs", 200), "storm.min_open_legs", 0, True)
            ),
        ),
        sweep_every_s=_number(raw.get("sweep_every_s", 30), "sweep_every_s"),
        sweep_every_clock_minutes=(
            None
            if raw.get("sweep_every_clock_minutes") is None
            else _number(raw["sweep_every_clock_minutes"], "sweep_every_clock_minutes", 1)
        ),
        sweep_lookback_hours=_number(raw.get("sweep_lookback_hours", 168), "sweep_lookback_hours"),
        severity_sla_minutes=sla,
        alternatives=AlternativesPolicy(
            reship_candidates=int(alt.get("reship_candidates", 2)),
            expedite_fee_eur=float(alt.get("expedite_fee_eur", 15.0)),
            goods_write_off_share={
                str(k): float(v) for k, v in (alt.get("goods_write_off_share") or {}).items()
            }
            or {"default": 0.1},
        ),
    )


def _read(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError, UnicodeDecodeError) as exc:
        raise RulesError(f"cannot read {path}: {exc}") from exc


def load_rules(path: Path | None = None) -> RuleSet:
    path = Path(path or RULES_PATH)
    return parse_rules(_read(path), path.name)


class RulesReloader:
    """The rules a long-running process uses, re-read when the file changes.

    The first load must succeed (a stream never starts on bad rules). Afterwards a bad edit keeps
    the last good rules: :meth:`poll` returns them with the error, once per bad version of the
    file, so the caller can raise one operational alert and go on.
    """

    def __init__(self, path: Path | None = None) -> None:
        self.path = Path(path or RULES_PATH)
        self._stamp = self._stat()
        self.current = load_rules(self.path)
        self.error: str | None = None

    def _stat(self) -> tuple[float, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size)

    def poll(self) -> tuple[RuleSet, str | None]:
        """(the rules to use, the error of a newly seen bad edit or None)."""
        stamp = self._stat()
        if stamp == self._stamp:
            return self.current, None
        self._stamp = stamp
        try:
            self.current = load_rules(self.path)
        except RulesError as exc:
            self.error = str(exc)
            return self.current, self.error
        self.error = None
        return self.current, None
