"""The PyVRP engine (hybrid genetic search / iterated local search, PyVRP 0.14)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyvrp import Model
from pyvrp.stop import MaxRuntime, MultipleCriteria, NoImprovement

from ml.dispatch.routing.instance import Instance

if TYPE_CHECKING:
    from ml.dispatch.routing.engines import ScaledData


def build_model(instance: Instance, data: ScaledData) -> Model:
    model = Model()
    coords = instance.coords
    n = instance.num_customers
    locations = [
        model.add_location(
            x=float(coords[i, 0]) if coords is not None else 0.0,
            y=float(coords[i, 1]) if coords is not None else 0.0,
            name=str(i),
        )
        for i in range(n + 1)
    ]
    depot = model.add_depot(
        locations[0], tw_early=int(data.ready[0]), tw_late=int(data.due[0]), name="0"
    )
    model.add_vehicle_type(
        num_available=instance.num_vehicles,
        capacity=[instance.capacity],
        start_depot=depot,
        end_depot=depot,
        tw_early=int(data.ready[0]),
        tw_late=int(data.due[0]),
    )
    # clients are added in customer order, so PyVRP's client index k is customer k + 1
    for c in range(1, n + 1):
        model.add_client(
            locations[c],
            delivery=[int(data.demand[c])],
            service_duration=int(data.service[c]),
            tw_early=int(data.ready[c]),
            tw_late=int(data.due[c]),
            name=str(c),
        )
    for i, frm in enumerate(locations):
        for j, to in enumerate(locations):
            if i != j:
                model.add_edge(
                    frm, to, distance=int(data.distance[i, j]), duration=int(data.duration[i, j])
                )
    return model


def solve_routes(
    instance: Instance,
    data: ScaledData,
    time_limit: float,
    seed: int,
    stall_iterations: int | None = None,
) -> list[list[int]] | None:
    model = build_model(instance, data)
    stop = MaxRuntime(time_limit)
    if stall_iterations is not None:
        # whichever comes first: the time limit, or that many iterations without a better one
        stop = MultipleCriteria([stop, NoImprovement(stall_iterations)])
    result = model.solve(stop=stop, seed=seed, collect_stats=False, display=False)
    routes = []
    for route in result.best.routes():
        # activities: start depot, clients (idx = client index), end depot
        routes.append([activity.idx + 1 for activity in route if activity.is_client()])
    return routes
