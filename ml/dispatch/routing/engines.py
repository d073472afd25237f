"""One routing interface over two engines (PyVRP and OR-Tools), every answer re-checked.

``solve(instance, engine=..., time_limit=..., seed=...)`` returns a :class:`Solution` whose
``feasible``, ``distance`` and ``violations`` come from the independent checker, never from
the engine's own accounting.

Integer data: both engines work on integers, so distances and times are multiplied by
``instance.scale`` (10 for Solomon, where the DIMACS distances are multiples of 0.1: the
engine's objective is then exactly 10x the DIMACS cost). Time data are rounded on the safe
side (travel, service and ready times up, due times down), so a plan the engine thinks
feasible is feasible on the float data too.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ml.dispatch.routing.checker import check
from ml.dispatch.routing.instance import Instance

ENGINES = ("pyvrp", "ortools")
#: the better engine on the Solomon benchmark (docs/routing.md has the numbers)
DEFAULT_ENGINE = "pyvrp"

_EPS = 1e-6


@dataclass(frozen=True)
class ScaledData:
    """An instance's data as the integers both engines consume."""

    distance: np.ndarray
    duration: np.ndarray
    service: np.ndarray
    ready: np.ndarray
    due: np.ndarray
    demand: np.ndarray


def scaled(instance: Instance) -> ScaledData:
    s = instance.scale

    def up(a):
        return np.ceil(np.asarray(a, float) * s - _EPS).astype(np.int64)

    def down(a):
        return np.floor(np.asarray(a, float) * s + _EPS).astype(np.int64)

    return ScaledData(
        distance=np.rint(np.asarray(instance.distance, float) * s).astype(np.int64),
        duration=up(instance.duration),
        service=up(instance.service),
        ready=up(instance.ready),
        due=down(instance.due),
        demand=np.asarray(instance.demand, dtype=np.int64),
    )


@dataclass(frozen=True, eq=False)
class Solution:
    instance: Instance
    engine: str
    #: customer numbers 1..N per route, the depot 0 left out
    routes: list[list[int]]
    distance: float
    vehicles: int
    seconds: float
    feasible: bool
    violations: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "instance": self.instance.name,
            "engine": self.engine,
            "vehicles": self.vehicles,
            "distance": round(self.distance, 1),
            "feasible": self.feasible,
            "seconds": round(self.seconds, 2),
            "routes": self.routes,
        }


def solve(
    instance: Instance,
    engine: str = DEFAULT_ENGINE,
    time_limit: float = 10.0,
    seed: int = 1,
    stall_iterations: int | None = None,
) -> Solution:
    """Route ``instance`` with ``engine`` within ``time_limit`` seconds; checked independently.

    ``seed`` drives PyVRP's search; OR-Tools' guided local search is deterministic and
    ignores it. ``stall_iterations`` also ends PyVRP's search once that many iterations in a
    row found nothing better (a round of a few stops is solved in the first milliseconds of
    its time limit); OR-Tools ignores it.
    """
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}: choose one of {', '.join(ENGINES)}")
    if not 0 < time_limit < float("inf"):
        raise ValueError(f"time limit must be a positive number of seconds, got {time_limit}")
    if stall_iterations is not None and stall_iterations < 1:
        raise ValueError(f"stall iterations must be a positive number, got {stall_iterations}")
    data = scaled(instance)
    started = time.perf_counter()
    if engine == "pyvrp":
        from ml.dispatch.routing.pyvrp_engine import solve_routes
    else:
        from ml.dispatch.routing.ortools_engine import solve_routes
    if engine == "pyvrp":
        routes = solve_routes(
            instance, data, time_limit=time_limit, seed=seed, stall_iterations=stall_iterations
        )
    else:
        routes = solve_routes(instance, data, time_limit=time_limit, seed=seed)
    seconds = time.perf_counter() - started
    notes = [] if routes is not None else [f"{engine} found no solution in {time_limit:g} s"]
    routes = [[int(c) for c in r] for r in (routes or []) if r]
    result = check(instance, routes)
    return Solution(
        instance=instance,
        engine=engine,
        routes=routes,
        distance=result.distance,
        vehicles=result.vehicles,
        seconds=seconds,
        feasible=result.feasible and not notes,
        violations=notes + result.violations,
    )
