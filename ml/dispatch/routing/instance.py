"""A VRPTW instance, its readers (Solomon text, VRPLIB) and the DIMACS distance.

Node 0 is the depot, nodes 1..N the customers; a route is the list of customer numbers it
visits, the depot left out (the VRPLIB ``.sol`` convention). ``distance`` is in objective units
(the DIMACS truncated Euclidean distance for Solomon, km for the lake), ``duration`` in time
units (equal to distance for Solomon, minutes for the lake). The solvers need integers: they
multiply both by ``scale`` (10 for Solomon, so the truncated-to-0.1 distances become exact
integers and a solver's objective equals the DIMACS cost).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

#: Integer scale of Solomon data under the DIMACS convention (distances truncated to 0.1).
DIMACS_SCALE = 10


class InstanceError(ValueError):
    """An instance or solution file that cannot be read, with the file and the reason."""


@dataclass(frozen=True, eq=False)
class Instance:
    name: str
    coords: np.ndarray | None
    distance: np.ndarray
    duration: np.ndarray
    demand: np.ndarray
    capacity: int
    ready: np.ndarray
    due: np.ndarray
    service: np.ndarray
    num_vehicles: int
    #: integer scale the solvers apply to distance and time (10: exact for 0.1-truncated data)
    scale: int = DIMACS_SCALE
    source: Path | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        n = len(self.demand)
        where = f"instance {self.name!r}"
        if n < 2:
            raise InstanceError(f"{where}: needs a depot and at least one customer")
        for label in ("distance", "duration"):
            if np.shape(getattr(self, label)) != (n, n):
                raise InstanceError(
                    f"{where}: {label} matrix shape {np.shape(getattr(self, label))}, "
                    f"expected {(n, n)}"
                )
        for label in ("ready", "due", "service"):
            if np.shape(getattr(self, label)) != (n,):
                raise InstanceError(f"{where}: {label} has {np.size(getattr(self, label))} values")
        if self.coords is not None and np.shape(self.coords) != (n, 2):
            raise InstanceError(f"{where}: coords shape {np.shape(self.coords)}")
        if self.demand[0] != 0:
            raise InstanceError(f"{where}: the depot (node 0) has demand {self.demand[0]}")
        if (self.demand < 0).any():
            raise InstanceError(f"{where}: negative demand")
        if self.capacity <= 0 or self.num_vehicles <= 0 or self.scale <= 0:
            raise InstanceError(
                f"{where}: capacity, num_vehicles and scale must be positive "
                f"({self.capacity}, {self.num_vehicles}, {self.scale})"
            )
        if (self.ready > self.due).any():
            bad = int(np.argmax(self.ready > self.due))
            raise InstanceError(f"{where}: node {bad} has ready time after its due time")
        if not (np.isfinite(self.distance).all() and np.isfinite(self.duration).all()):
            raise InstanceError(f"{where}: non-finite distance or duration")

    @property
    def num_customers(self) -> int:
        return len(self.demand) - 1

    @property
    def horizon(self) -> float:
        """The depot's due time: every route must be back by then."""
        return float(self.due[0])


class SolutionFile(NamedTuple):
    routes: list[list[int]]
    cost: float | None


def dimacs_distance(coords: np.ndarray) -> np.ndarray:
    """Euclidean distances truncated (not rounded) to one decimal: the DIMACS VRPTW convention.

    The 1e-9 guards against a product like 12.3 * 10 landing just below 123 in floating point;
    it cannot move a true value (with integer coordinates the gap below the next tenth is far
    larger).
    """
    xy = np.asarray(coords, dtype=float)
    diff = xy[:, None, :] - xy[None, :, :]
    exact = np.sqrt((diff**2).sum(axis=2))
    return np.floor(exact * 10 + 1e-9) / 10


def _solomon_from_rows(name: str, vehicles: int, capacity: int, rows: np.ndarray, path) -> Instance:
    ids = rows[:, 0].astype(int)
    if list(ids) != list(range(len(ids))):
        raise InstanceError(f"{path}: customer numbers are not 0..{len(ids) - 1} in order")
    coords = rows[:, 1:3].astype(float)
    dist = dimacs_distance(coords)
    return Instance(
        name=name,
        coords=coords,
        distance=dist,
        duration=dist.copy(),
        demand=rows[:, 3].astype(int),
        capacity=capacity,
        ready=rows[:, 4].astype(float),
        due=rows[:, 5].astype(float),
        service=rows[:, 6].astype(float),
        num_vehicles=vehicles,
        scale=DIMACS_SCALE,
        source=Path(path),
    )


def _read_text(path: str | Path) -> tuple[Path, str]:
    p = Path(path)
    if not p.is_file():
        raise InstanceError(f"{p}: no such file")
    try:
        return p, p.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise InstanceError(f"{p}: cannot read as text ({exc.__class__.__name__})") from exc


def _numbers(line: str, path: Path, lineno: int) -> list[float]:
    try:
        return [float(tok) for tok in line.split()]
    except ValueError as exc:
        raise InstanceError(f"{path}:{lineno}: not numbers: {line.strip()[:60]!r}") from exc


def read_solomon(path: str | Path) -> Instance:
    """The original Solomon text format: name, VEHICLE (number, capacity), CUSTOMER rows."""
    p, text = _read_text(path)
    lines = text.splitlines()
    nonblank = [(i + 1, ln) for i, ln in enumerate(lines) if ln.strip()]
    if not nonblank:
        raise InstanceError(f"{p}: empty file")
    name = nonblank[0][1].strip()
    upper = [ln.strip().upper() for _, ln in nonblank]
    try:
        v_at = upper.index("VEHICLE")
        c_at = upper.index("CUSTOMER")
    except ValueError as exc:
        raise InstanceError(f"{p}: not a Solomon file (no VEHICLE / CUSTOMER sections)") from exc
    vehicle_rows = [
        _numbers(ln, p, no) for no, ln in nonblank[v_at + 1 : c_at] if re.match(r"^\s*[-+\d.]", ln)
    ]
    if len(vehicle_rows) != 1 or len(vehicle_rows[0]) != 2:
        raise InstanceError(f"{p}: VEHICLE section must hold one 'NUMBER CAPACITY' row")
    vehicles, capacity = (int(v) for v in vehicle_rows[0])
    rows = []
    for no, ln in nonblank[c_at + 1 :]:
        if not re.match(r"^\s*[-+\d.]", ln):
            continue  # the column header line
        values = _numbers(ln, p, no)
        if len(values) != 7:
            raise InstanceError(f"{p}:{no}: a customer row needs 7 numbers, got {len(values)}")
        rows.append(values)
    if len(rows) < 2:
        raise InstanceError(f"{p}: no customers")
    return _solomon_from_rows(name, vehicles, capacity, np.array(rows), p)


_SECTIONS = {
    "NODE_COORD_SECTION",
    "DEMAND_SECTION",
    "TIME_WINDOW_SECTION",
    "SERVICE_TIME_SECTION",
    "DEPOT_SECTION",
    "EDGE_WEIGHT_SECTION",
}


def read_vrplib(path: str | Path) -> Instance:
    """A VRPLIB (CVRPTW) file; EUC_2D distances follow the DIMACS convention (truncated)."""
    p, text = _read_text(path)
    header: dict[str, str] = {}
    sections: dict[str, list[tuple[int, list[float]]]] = {}
    current: str | None = None
    for no, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        key = line.split()[0].rstrip(":").upper()
        if key == "EOF":
            break
        if key in _SECTIONS:
            current = key
            sections[current] = []
            continue
        if current is None or ":" in line and not re.match(r"^[-+\d.]", line):
            if ":" not in line:
                raise InstanceError(f"{p}:{no}: expected 'KEY : value', got {line[:60]!r}")
            k, _, v = line.partition(":")
            header[k.strip().upper()] = v.strip()
            current = None
            continue
        sections[current].append((no, _numbers(line, p, no)))
    if "NODE_COORD_SECTION" not in sections and "EDGE_WEIGHT_SECTION" not in sections:
        raise InstanceError(f"{p}: not a VRPLIB file (no NODE_COORD_SECTION)")

    try:
        dimension = int(header["DIMENSION"])
        capacity = int(float(header["CAPACITY"]))
    except KeyError as exc:
        raise InstanceError(f"{p}: header {exc.args[0]} is missing") from exc
    except ValueError as exc:
        raise InstanceError(f"{p}: DIMENSION / CAPACITY are not numbers") from exc
    if dimension < 2:
        raise InstanceError(f"{p}: DIMENSION {dimension} < 2")

    def by_node(section: str, width: int, required: bool = True) -> np.ndarray | None:
        rows = sections.get(section)
        if rows is None:
            if required:
                raise InstanceError(f"{p}: {section} is missing")
            return None
        out = np.full((dimension, width), np.nan)
        for no, values in rows:
            if len(values) != width + 1:
                raise InstanceError(f"{p}:{no}: {section} rows need {width + 1} numbers")
            node = int(values[0])
            if not 1 <= node <= dimension:
                raise InstanceError(f"{p}:{no}: node {node} outside 1..{dimension}")
            out[node - 1] = values[1:]
        if np.isnan(out).any():
            missing = int(np.argmax(np.isnan(out).any(axis=1))) + 1
            raise InstanceError(f"{p}: {section} has no row for node {missing}")
        return out

    depots = [int(v[0]) for _, v in sections.get("DEPOT_SECTION", [(0, [1.0])]) if v[0] != -1]
    if depots != [1]:
        raise InstanceError(f"{p}: only one depot, node 1, is supported (DEPOT_SECTION {depots})")

    coords = by_node("NODE_COORD_SECTION", 2, required=False)
    weight_type = header.get("EDGE_WEIGHT_TYPE", "EUC_2D").upper()
    if weight_type == "EUC_2D":
        if coords is None:
            raise InstanceError(f"{p}: EUC_2D needs a NODE_COORD_SECTION")
        dist = dimacs_distance(coords)
    elif weight_type == "EXPLICIT":
        fmt = header.get("EDGE_WEIGHT_FORMAT", "FULL_MATRIX").upper()
        values = [x for _, row in sections.get("EDGE_WEIGHT_SECTION", []) for x in row]
        if fmt != "FULL_MATRIX" or len(values) != dimension * dimension:
            raise InstanceError(
                f"{p}: EXPLICIT weights need a FULL_MATRIX of {dimension}x{dimension} values"
            )
        dist = np.array(values, dtype=float).reshape(dimension, dimension)
    else:
        raise InstanceError(f"{p}: EDGE_WEIGHT_TYPE {weight_type} is not supported")

    demand = by_node("DEMAND_SECTION", 1)[:, 0]
    if (demand != np.round(demand)).any():
        raise InstanceError(f"{p}: demands must be integers")
    windows = by_node("TIME_WINDOW_SECTION", 2, required=False)
    if windows is None:
        windows = np.tile([0.0, np.inf], (dimension, 1))
    service = by_node("SERVICE_TIME_SECTION", 1, required=False)
    if service is None:
        try:
            service = np.full(dimension, float(header.get("SERVICE_TIME", 0)))
        except ValueError as exc:
            raise InstanceError(f"{p}: SERVICE_TIME is not a number") from exc
    else:
        service = service[:, 0]
    service[0] = 0.0  # the depot's header service time applies to customers only
    if not np.isfinite(windows[0, 1]):
        raise InstanceError(f"{p}: the depot needs a time window (the horizon)")
    try:
        vehicles = int(header.get("VEHICLES", dimension - 1))
    except ValueError as exc:
        raise InstanceError(f"{p}: VEHICLES is not an integer") from exc
    return Instance(
        name=header.get("NAME", p.stem),
        coords=coords,
        distance=dist,
        duration=dist.copy(),
        demand=demand.astype(int),
        capacity=capacity,
        ready=windows[:, 0].copy(),
        due=windows[:, 1].copy(),
        service=service,
        num_vehicles=vehicles,
        scale=DIMACS_SCALE,
        source=p,
    )


def read_instance(path: str | Path) -> Instance:
    """Solomon ``.txt`` or VRPLIB ``.vrp``, by suffix, else by the file's content."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix == ".vrp":
        return read_vrplib(p)
    if suffix == ".txt":
        return read_solomon(p)
    _, text = _read_text(p)
    head = text[:4000].upper()
    if "NODE_COORD_SECTION" in head or re.search(r"^\s*DIMENSION\s*:", head, re.M):
        return read_vrplib(p)
    if "VEHICLE" in head and "CUSTOMER" in head:
        return read_solomon(p)
    raise InstanceError(f"{p}: neither a Solomon nor a VRPLIB instance")


def read_solution(path: str | Path) -> SolutionFile:
    """A VRPLIB ``.sol``: ``Route #k: 1 2 3`` lines and an optional ``Cost x``."""
    p, text = _read_text(path)
    routes: list[list[int]] = []
    cost: float | None = None
    for no, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        if m := re.match(r"^Route\s*#\s*\d+\s*:(.*)$", line, re.I):
            try:
                routes.append([int(tok) for tok in m.group(1).split()])
            except ValueError as exc:
                raise InstanceError(f"{p}:{no}: route holds a non-integer") from exc
        elif m := re.match(r"^Cost\s+(\S+)$", line, re.I):
            try:
                cost = float(m.group(1))
            except ValueError as exc:
                raise InstanceError(f"{p}:{no}: cost {m.group(1)!r} is not a number") from exc
    if not routes:
        raise InstanceError(f"{p}: no 'Route #k:' lines")
    return SolutionFile(routes=routes, cost=cost)
