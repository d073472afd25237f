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
    sweep_every_s: float = 30.0
    sweep_lookback_hours: float = 168.0
    severity_sla_minutes: dict[str, int] = field(default_factory=dict)
    alternatives: AlternativesPolicy = field(default_factory=AlternativesPolicy)

    def of_kind(self, kind: str) -> list[Rule]:
        return [r for r in self.rules if r.kind == kind]


def _one_of(value: Any, allowed: tuple[str, ...], where: str) -> str:
    if value not in allowed:
        raise RulesError(f"{where}: {value!r} is not one of {', '.join(allowed)}")
    return value


def _rule(raw: dict[str, Any], i: int) -> Rule:
    where = f"rules[{i}]"
    if not isinstance(raw, dict) or not raw.get("id"):
        raise RulesError(f"{where}: every rule needs an id")
    where = f"rule {raw['id']!r}"
    kind = _one_of(raw.get("kind"), KINDS, f"{where} kind")
    reason = _one_of(raw.get("reason"), REASONS, f"{where} reason")
    severity = _one_of(raw.get("severity"), SEVERITIES, f"{where} severity")
    by_service = {
        str(k): _one_of(v, SEVERITIES, f"{where} severity_by_service.{k}")
        for k, v in (raw.get("severity_by_service") or {}).items()
    }
    when: dict[str, tuple[str, ...]] = {}
    params = {
        k: v
        for k, v in raw.items()
        if k not in ("id", "kind", "reason", "severity", "when", "severity_by_service")
    }
    if kind == "carrier_event":
        spec = raw.get("when") or {}
        if not spec.get("event_code"):
            raise RulesError(f"{where}: a carrier_event rule needs when.event_code")
        unknown = set(spec) - {"event_code", "exception_reason"}
        if unknown:
            raise RulesError(
                f"{where}: when can only test event_code, exception_reason, not {sorted(unknown)}"
            )
        when["event_code"] = tuple(
            _one_of(c, EVENT_CODES, f"{where} event_code") for c in spec["event_code"]
        )
        if spec.get("exception_reason"):
            when["exception_reason"] = tuple(
                _one_of(c, EXCEPTION_REASONS, f"{where} exception_reason")
                for c in spec["exception_reason"]
            )
    elif kind == "predicted_late":
        params["min_hours_late"] = float(raw.get("min_hours_late", 0))
    elif kind == "stuck":
        hours = raw.get("hours") or {}
        for mode, h in hours.items():
            _one_of(mode, MODES, f"{where} hours")
            if not isinstance(h, int | float) or h <= 0:
                raise RulesError(f"{where}: hours.{mode} must be a positive number")
        missing = set(MODES) - set(hours)
        if missing:
            raise RulesError(f"{where}: hours needs every mode; missing {sorted(missing)}")
        params["hours"] = {m: float(h) for m, h in hours.items()}
    elif kind == "milestone_missed":
        _one_of(raw.get("milestone"), MILESTONES, f"{where} milestone")
        params["grace_hours"] = float(raw.get("grace_hours", 0))
    return Rule(raw["id"], kind, reason, severity, when, params, by_service)


def load_rules(path: Path | None = None) -> RuleSet:
    path = path or RULES_PATH
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise RulesError(f"cannot read {path}: {exc}") from exc
    rules = tuple(_rule(r, i) for i, r in enumerate(raw.get("rules") or []))
    ids = [r.id for r in rules]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise RulesError(f"rule ids must be unique: {dup}")
    clock = _one_of(raw.get("clock", "watermark"), ("watermark", "wall"), "clock")
    sla = {s: int((raw.get("severity_sla_minutes") or {}).get(s, 60)) for s in SEVERITIES}
    alt = raw.get("alternatives") or {}
    return RuleSet(
        rules=rules,
        clock=clock,
        sweep_every_s=float(raw.get("sweep_every_s", 30)),
        sweep_lookback_hours=float(raw.get("sweep_lookback_hours", 168)),
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
