"""The dispatch policy (``policy.yaml``): objective prices, the network's timetable, solver limits."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

POLICY_PATH = Path(__file__).with_name("policy.yaml")
PROMISES = ("next_day", "standard", "green")


class PolicyError(ValueError):
    """The policy file is invalid (the message says which key and why)."""


@dataclass(frozen=True)
class Objective:
    carbon_price_eur_per_t: float = 80.0
    green_carbon_weight: float = 10.0
    promise_miss_eur: dict[str, float] = field(
        default_factory=lambda: {"next_day": 25.0, "standard": 10.0, "green": 6.0}
    )
    split_eur: float = 1.5
    unfilled_eur: float = 500.0
    defer_eur: float = 2.0


@dataclass(frozen=True)
class Gateway:
    name: str
    lat: float
    lon: float


@dataclass(frozen=True)
class NetworkPolicy:
    cutoff_local_hour: int = 17
    direct_van_km: float = 200.0
    detour: dict[str, float] = field(
        default_factory=lambda: {
            "last_mile": 1.4,
            "road": 1.25,
            "rail": 1.3,
            "air": 1.05,
            "sea": 1.5,
        }
    )
    overnight_road_km: float = 585.0
    road_km_per_day: float = 900.0
    last_mile_km: float = 25.0
    artic_above_km: float = 250.0
    overseas_air_days: int = 5
    air_gateway: Gateway = Gateway("Leipzig", 51.42, 12.24)
    sea_gateways: tuple[Gateway, ...] = (Gateway("Rotterdam", 51.95, 4.14),)


@dataclass(frozen=True)
class SolverPolicy:
    candidates_per_order: int = 4
    max_lines_per_subproblem: int = 12_000
    # regions solved side by side, each from what the ones before the batch left (the plan
    # depends on this number, never on how many processes solve the batch)
    subproblems_per_batch: int = 1
    time_limit_s: float = 20.0
    relative_gap: float = 0.002
    workers: int = 2
    seed: int = 7
    backend: str = "highs"


@dataclass(frozen=True)
class RoutingPolicy:
    engine: str = "pyvrp"
    van_capacity_kg: float = 900.0
    van_speed_kmh: float = 30.0
    depart_hour: int = 6
    return_by_hour: int = 20
    service_minutes: float = 4.0
    time_limit_s_per_100_stops: float = 1.0
    max_time_limit_s: float = 5.0
    #: a round's search also ends after this many iterations without a better solution
    stall_iterations: int | None = None


@dataclass(frozen=True)
class DispatchPolicy:
    objective: Objective = field(default_factory=Objective)
    network: NetworkPolicy = field(default_factory=NetworkPolicy)
    solver: SolverPolicy = field(default_factory=SolverPolicy)
    routing: RoutingPolicy = field(default_factory=RoutingPolicy)

    def flat(self) -> dict[str, Any]:
        """Everything as flat key -> value (run metadata)."""
        out: dict[str, Any] = {}
        for part in ("objective", "solver", "routing"):
            for key, value in getattr(self, part).__dict__.items():
                if isinstance(value, dict):
                    out.update({f"{part}.{key}.{k}": v for k, v in value.items()})
                else:
                    out[f"{part}.{key}"] = value
        return out


def _gateway(raw: Any, where: str) -> Gateway:
    try:
        return Gateway(str(raw["name"]), float(raw["lat"]), float(raw["lon"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise PolicyError(f"{where} must have name, lat and lon: {raw!r}") from exc


def _section(cls: type, raw: dict[str, Any], where: str, **extra: Any) -> Any:
    known = set(cls.__dataclass_fields__)
    unknown = set(raw) - known
    if unknown:
        raise PolicyError(f"{where}: unknown key(s) {sorted(unknown)}; known: {sorted(known)}")
    try:
        return cls(**{**raw, **extra})
    except TypeError as exc:
        raise PolicyError(f"{where}: {exc}") from exc


def load_policy(path: Path | None = None) -> DispatchPolicy:
    path = path or POLICY_PATH
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise PolicyError(f"cannot read the dispatch policy {path}: {exc}") from exc
    objective = _section(Objective, dict(raw.get("objective", {})), f"{path}: objective")
    missing = set(PROMISES) - set(objective.promise_miss_eur)
    if missing:
        raise PolicyError(f"{path}: objective.promise_miss_eur lacks {sorted(missing)}")
    net_raw = dict(raw.get("network", {}))
    gateways = net_raw.pop("gateways", {})
    extra: dict[str, Any] = {}
    if "air" in gateways:
        extra["air_gateway"] = _gateway(gateways["air"], f"{path}: network.gateways.air")
    if "sea" in gateways:
        sea = gateways["sea"]
        if not isinstance(sea, list) or not sea:
            raise PolicyError(f"{path}: network.gateways.sea must be a non-empty list")
        extra["sea_gateways"] = tuple(_gateway(g, f"{path}: network.gateways.sea") for g in sea)
    network = _section(NetworkPolicy, net_raw, f"{path}: network", **extra)
    solver = _section(SolverPolicy, dict(raw.get("solver", {})), f"{path}: solver")
    routing = _section(RoutingPolicy, dict(raw.get("routing", {})), f"{path}: routing")
    if solver.backend not in ("highs", "scip", "cbc", "cp-sat"):
        raise PolicyError(f"{path}: solver.backend must be highs, scip, cbc or cp-sat")
    batch = solver.subproblems_per_batch
    if not isinstance(batch, int) or isinstance(batch, bool) or batch < 1:
        raise PolicyError(
            f"{path}: solver.subproblems_per_batch must be a whole number of at least 1, "
            f"not {batch!r}"
        )
    if solver.candidates_per_order < 1 or solver.time_limit_s <= 0:
        raise PolicyError(f"{path}: solver.candidates_per_order and time_limit_s must be positive")
    stall = routing.stall_iterations
    if stall is not None and (isinstance(stall, bool) or not isinstance(stall, int) or stall < 1):
        raise PolicyError(f"{path}: routing.stall_iterations must be a positive integer or null")
    if not 0 <= network.cutoff_local_hour <= 24:
        raise PolicyError(f"{path}: network.cutoff_local_hour must be an hour of the day")
    return DispatchPolicy(objective, network, solver, routing)
