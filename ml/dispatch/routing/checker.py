"""An independent VRPTW feasibility checker (plain Python and NumPy, no solver code).

It re-simulates every route on the instance's own (float) matrices: each customer 1..N served
exactly once, no unknown ids, load within capacity, service start = max(ready, arrival) and
no later than the due time, back at the depot by the depot's due time, no more routes than
vehicles. The distance is the sum of ``instance.distance`` along the routes (under the DIMACS
convention, the truncated matrix), so it is the number compared with best-known costs.
"""

from __future__ import annotations

import numbers
from collections import defaultdict
from dataclasses import dataclass, field

from ml.dispatch.routing.instance import Instance

TOLERANCE = 1e-6


@dataclass
class CheckResult:
    feasible: bool
    distance: float
    vehicles: int
    violations: list[str] = field(default_factory=list)


def _listing(values: list[int], limit: int = 10) -> str:
    shown = ", ".join(str(v) for v in values[:limit])
    return shown + (f", ... ({len(values) - limit} more)" if len(values) > limit else "")


def check(instance: Instance, routes: list[list[int]]) -> CheckResult:
    """Check ``routes`` (customer numbers, the depot 0 left out) against ``instance``."""
    n = instance.num_customers
    dist, dur = instance.distance, instance.duration
    violations: list[str] = []
    seen: dict[int, list[int]] = defaultdict(list)
    total = 0.0
    vehicles = 0

    for r, route in enumerate(routes, start=1):
        stops = list(route)
        if not stops:
            continue  # an unused vehicle
        vehicles += 1
        known: list[int] = []
        for c in stops:
            if isinstance(c, bool) or not isinstance(c, numbers.Integral) or not 1 <= c <= n:
                violations.append(f"route {r}: unknown customer id {c!r} (customers are 1..{n})")
            else:
                known.append(int(c))
                seen[int(c)].append(r)
        load = int(sum(int(instance.demand[c]) for c in known))
        if load > instance.capacity:
            violations.append(f"route {r}: load {load} exceeds capacity {instance.capacity}")

        prev, clock = 0, float(instance.ready[0])
        for c in known:
            total += float(dist[prev, c])
            arrival = clock + float(dur[prev, c])
            start = max(float(instance.ready[c]), arrival)
            if start > float(instance.due[c]) + TOLERANCE:
                violations.append(
                    f"route {r}: time window of customer {c} missed: service starts at "
                    f"{start:g}, due {float(instance.due[c]):g}"
                )
            clock = start + float(instance.service[c])
            prev = c
        total += float(dist[prev, 0])
        back = clock + float(dur[prev, 0])
        if back > instance.horizon + TOLERANCE:
            violations.append(
                f"route {r}: returns to the depot at {back:g}, after its due {instance.horizon:g}"
            )

    for c in sorted(seen):
        if len(seen[c]) > 1:
            violations.append(
                f"customer {c} served {len(seen[c])} times (routes {_listing(seen[c])})"
            )
    missing = [c for c in range(1, n + 1) if c not in seen]
    if missing:
        violations.append(f"{len(missing)} customer(s) not served: {_listing(missing)}")
    if vehicles > instance.num_vehicles:
        violations.append(
            f"{vehicles} routes exceed the {instance.num_vehicles} vehicles available"
        )
    return CheckResult(
        feasible=not violations, distance=total, vehicles=vehicles, violations=violations
    )
