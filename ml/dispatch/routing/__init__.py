"""Last-mile VRPTW routing: instances and readers, two engines behind one interface, and an
independent feasibility checker (see docs/routing.md)."""

from ml.dispatch.routing.checker import CheckResult, check
from ml.dispatch.routing.engines import DEFAULT_ENGINE, ENGINES, Solution, solve
from ml.dispatch.routing.instance import (
    Instance,
    InstanceError,
    dimacs_distance,
    read_instance,
    read_solomon,
    read_solution,
    read_vrplib,
)

__all__ = [
    "DEFAULT_ENGINE",
    "ENGINES",
    "CheckResult",
    "Instance",
    "InstanceError",
    "Solution",
    "check",
    "dimacs_distance",
    "read_instance",
    "read_solomon",
    "read_solution",
    "read_vrplib",
    "solve",
]
