"""The OR-Tools engine: routing library, cheapest-arc start, guided local search."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ortools.constraint_solver import pywrapcp, routing_enums_pb2

from ml.dispatch.routing.instance import Instance

if TYPE_CHECKING:
    from ml.dispatch.routing.engines import ScaledData


def solve_routes(
    instance: Instance,
    data: ScaledData,
    time_limit: float,
    seed: int,
    first_solution: str = "PATH_CHEAPEST_ARC",
    drop_penalty: bool = True,
) -> list[list[int]] | None:
    """Routes as customer numbers, or None when OR-Tools found no assignment in time.

    ``seed`` is unused: OR-Tools' routing search has no random seed. With ``drop_penalty``
    every customer may be left out at a prohibitive cost (far above any detour): the
    cheapest-arc start then always yields a solution that guided local search repairs, where
    without it PATH_CHEAPEST_ARC gets stuck on tight windows (R101: no solution in 10 s). A
    customer still dropped at the end is reported by the checker as not served.
    """
    del seed
    nodes = instance.num_customers + 1
    vehicles = instance.num_vehicles
    horizon = int(data.due[0])
    manager = pywrapcp.RoutingIndexManager(nodes, vehicles, 0)
    routing = pywrapcp.RoutingModel(manager)

    # transit evaluators held in C++ (a matrix is much faster than a Python callback)
    distance = routing.RegisterTransitMatrix(data.distance.tolist())
    routing.SetArcCostEvaluatorOfAllVehicles(distance)

    # time: service at the origin plus travel; waiting is slack
    travel = data.duration + data.service[:, None]
    transit_time = routing.RegisterTransitMatrix(travel.tolist())
    routing.AddDimension(transit_time, horizon, horizon, False, "Time")
    time_dim = routing.GetDimensionOrDie("Time")
    for node in range(1, nodes):
        time_dim.CumulVar(manager.NodeToIndex(node)).SetRange(
            int(data.ready[node]), int(data.due[node])
        )
    for v in range(vehicles):
        for index in (routing.Start(v), routing.End(v)):
            time_dim.CumulVar(index).SetRange(int(data.ready[0]), horizon)

    demand = routing.RegisterUnaryTransitVector(data.demand.tolist())
    routing.AddDimensionWithVehicleCapacity(
        demand, 0, [int(instance.capacity)] * vehicles, True, "Capacity"
    )

    if drop_penalty:
        penalty = max(1, int(data.distance.max())) * nodes * 10
        for node in range(1, nodes):
            routing.AddDisjunction([manager.NodeToIndex(node)], penalty)

    params = pywrapcp.DefaultRoutingSearchParameters()
    params.first_solution_strategy = getattr(
        routing_enums_pb2.FirstSolutionStrategy, first_solution
    )
    params.local_search_metaheuristic = (
        routing_enums_pb2.LocalSearchMetaheuristic.GUIDED_LOCAL_SEARCH
    )
    params.time_limit.FromMilliseconds(max(1, int(time_limit * 1000)))
    assignment = routing.SolveWithParameters(params)
    if assignment is None:
        return None

    routes = []
    for v in range(vehicles):
        index = assignment.Value(routing.NextVar(routing.Start(v)))
        route = []
        while not routing.IsEnd(index):
            route.append(manager.IndexToNode(index))
            index = assignment.Value(routing.NextVar(index))
        if route:
            routes.append(route)
    return routes
