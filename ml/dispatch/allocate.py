"""Who ships what: the optimised allocation (a MIP through OR-Tools) and the rule it replaces.

**Model** (one wave; docs/dispatch.md has the full statement). Binary ``y[o,w,v]``: order ``o``
gets a shipment from warehouse ``w`` on lane variant ``v`` (standard or green); binary
``x[l,w,v]``: line ``l`` travels in it; ``u[l]``: the line is back-ordered; ``z[o]``: the
order waits for the next wave with its units reserved (outbound capacity used up). Every line
is in exactly one of them. Available stock per (warehouse, SKU) bounds the ``x`` and the
reserved units; outbound units per warehouse bound today's ``x``. Minimise, in euro cents:
lane fixed costs and a split penalty per shipment, EUR per tonne-km and the carbon price times
CO2e per line's weight (carbon weighs ``green_carbon_weight`` times more for customers who
chose the green option), the promise-miss penalty per late order, and the back-order and
deferral penalties.

**Why a MIP (HiGHS, through OR-Tools MathOpt) and not CP-SAT**: the model is an assignment
with knapsack rows whose LP relaxation is tight, which LP-based branch and cut exploits. On the
same 3,672-line wave HiGHS proved optimality in 7.6 s; CP-SAT (8 workers on 2 cores) stopped at
a 2.7 % gap after 51 s, SCIP needed 19 s. CP-SAT and SCIP stay selectable
(``solver.backend``). Each subproblem starts from the better of the baseline and a greedy
plan (the baseline whenever it fits the subproblem, so the objective is never worse than
today's rule), and reports the gap the solver proved.

**Baseline**: "nearest warehouse with stock, ship each line as it comes": lines in order time
take the nearest warehouse holding their units; a warehouse ships in arrival order until its
outbound capacity is used, the rest leave with the next wave.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from ml.dispatch.network import STD
from ml.dispatch.wave import Wave

CENTS = 100


@dataclass
class Plan:
    """Line-level decisions of one plan over a wave."""

    name: str
    line_wh: np.ndarray  # warehouse index per line, -1 = back-ordered
    line_variant: np.ndarray  # STD / GREEN
    line_deferred: np.ndarray  # ships with the next wave
    stats: dict = field(default_factory=dict)


# --------------------------------------------------------------------------------- baseline


def baseline_plan(wave: Wave) -> Plan:
    """Nearest warehouse with stock per line, in order time; capacity overflow waits a wave."""
    t0 = time.perf_counter()
    li = wave.lines
    o = wave.orders
    n_wh = len(wave.network.warehouses)
    stock = wave.stock.copy()
    order_idx = li["order_idx"].to_numpy()
    sku = li["sku_idx"].to_numpy()
    qty = li["quantity"].to_numpy()
    dist = wave.network.straight_km(
        o["ship_lat"].to_numpy(float)[:, None],
        o["ship_lon"].to_numpy(float)[:, None],
        np.arange(n_wh)[None, :],
    )
    rank = np.argsort(dist, axis=1)
    line_wh = np.full(len(li), -1, dtype=np.int64)
    for i in range(len(li)):  # sequential by nature: each line sees what earlier ones left
        s, q = sku[i], qty[i]
        for w in rank[order_idx[i]]:
            if stock[w, s] >= q:
                stock[w, s] -= q
                line_wh[i] = w
                break
    # outbound capacity in arrival order; a shipment leaves when all of its lines can
    deferred = np.zeros(len(li), dtype=bool)
    for w in range(n_wh):
        sel = np.flatnonzero(line_wh == w)
        over = np.cumsum(qty[sel]) > wave.capacity[w]
        deferred[sel[over]] = True
    key = order_idx * n_wh + np.maximum(line_wh, 0)
    late_keys = np.unique(key[deferred])
    deferred |= np.isin(key, late_keys) & (line_wh >= 0)
    return Plan(
        "baseline",
        line_wh,
        np.full(len(li), STD, dtype=np.int64),
        deferred,
        {"solve_seconds": round(time.perf_counter() - t0, 3), "status": "RULE"},
    )


# --------------------------------------------------------------------------------- optimiser


def _chunks(wave: Wave, max_lines: int) -> list[np.ndarray]:
    """Order indices per subproblem: destination regions (country, then latitude bands), packed
    in order up to ``max_lines`` lines each."""
    o = wave.orders
    n_lines = np.bincount(wave.lines["order_idx"], minlength=len(o))
    if n_lines.sum() <= max_lines:
        return [np.arange(len(o))]
    order = np.lexsort((o["ship_lat"].to_numpy(float), o["shipping_country_code"].to_numpy(str)))
    cum = np.cumsum(n_lines[order])
    cut = np.searchsorted(cum, np.arange(max_lines, cum[-1], max_lines), side="right")
    return [c for c in np.split(order, cut) if len(c)]


def optimise(wave: Wave, hint: Plan | None = None, workers: int = 1) -> Plan:
    """The optimised plan for the wave, decomposed into regions when it is large.

    Each region gets at least the stock and outbound capacity the baseline uses for its own
    orders (so the baseline's plan stays feasible region by region and the optimised plan is
    never worse than it), plus a share of the rest in proportion to its units. The regions are
    solved in batches of ``subproblems_per_batch``: the regions of a batch take their shares of
    what the batches before it left, the last region gets all that is left. With ``workers``
    of 2 or more the regions of a batch are solved side by side in worker processes (the MIP
    runs on one thread); the plan is the same either way."""
    hint = hint or baseline_plan(wave)
    wave.ensure_candidates(wave.lines["order_idx"].to_numpy(), hint.line_wh)
    li = wave.lines
    qty = li["quantity"].to_numpy()
    sku = li["sku_idx"].to_numpy()
    n_wh = len(wave.capacity)
    line_wh = np.full(len(li), -1, dtype=np.int64)
    line_var = np.full(len(li), STD, dtype=np.int64)
    line_def = np.zeros(len(li), dtype=bool)
    stock = wave.stock.copy()
    cap_left = wave.capacity.astype(np.int64).copy()
    chunks = _chunks(wave, wave.policy.solver.max_lines_per_subproblem)
    batch = wave.policy.solver.subproblems_per_batch
    order_of_line = li["order_idx"].to_numpy()
    chunk_of_order = np.zeros(len(wave.orders), dtype=np.int64)
    for c, orders in enumerate(chunks):
        chunk_of_order[orders] = c
    chunk_of_line = chunk_of_order[order_of_line]
    base_taken = hint.line_wh >= 0
    base_today = base_taken & ~hint.line_deferred

    def baseline_use(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        use = np.zeros_like(stock)
        np.add.at(
            use, (hint.line_wh[mask & base_taken], sku[mask & base_taken]), qty[mask & base_taken]
        )
        cap_use = np.bincount(
            hint.line_wh[mask & base_today], weights=qty[mask & base_today], minlength=n_wh
        ).astype(np.int64)
        return use, cap_use

    use_left, cap_use_left = baseline_use(np.ones(len(li), dtype=bool))
    units_left = qty.sum()
    stats = {"subproblems": len(chunks), "status": [], "objective": 0.0, "bound": 0.0}
    t0 = time.perf_counter()
    greedy = _option_costs(wave)
    parallel = workers > 1 and batch > 1 and len(chunks) > 1
    with _chunk_solver(wave, hint, greedy, min(workers, batch) if parallel else 1) as solve:
        for first in range(0, len(chunks), batch):
            group = []
            for c in range(first, min(first + batch, len(chunks))):
                lines = np.flatnonzero(chunk_of_line == c)
                use, cap_use = baseline_use(chunk_of_line == c)
                share = qty[lines].sum() / max(units_left, 1)
                allowed = use + np.floor(np.maximum(stock - use_left, 0) * share).astype(np.int64)
                cap = cap_use + np.floor(np.maximum(cap_left - cap_use_left, 0) * share).astype(
                    np.int64
                )
                group.append(_Region(chunks[c], lines, use, cap_use, allowed, cap))
            if first + batch >= len(chunks):
                # the last region: all that is left once the others of its batch have theirs
                last = group[-1]
                last.allowed = np.maximum(stock - sum(g.allowed for g in group[:-1]), 0)
                last.cap = np.maximum(cap_left - sum(g.cap for g in group[:-1]), 0)
            for region, sub in zip(group, solve(group), strict=True):
                lines = region.lines
                line_wh[lines], line_var[lines], line_def[lines] = (
                    sub["wh"],
                    sub["var"],
                    sub["deferred"],
                )
                taken = sub["wh"] >= 0  # shipped today or reserved for the next wave
                np.subtract.at(stock, (sub["wh"][taken], sku[lines][taken]), qty[lines][taken])
                today = taken & ~sub["deferred"]
                np.subtract.at(cap_left, sub["wh"][today], qty[lines][today])
                use_left -= region.use
                cap_use_left -= region.cap_use
                units_left -= qty[lines].sum()
                stats["status"].append(sub["status"])
                stats["objective"] += sub["objective"]
                stats["bound"] += sub["bound"]
    stats["solve_seconds"] = round(time.perf_counter() - t0, 3)
    obj, bound = stats["objective"], stats["bound"]
    stats["gap"] = (obj - bound) / max(abs(obj), 1e-9) if obj else 0.0
    stats["status"] = ",".join(sorted(set(stats["status"])))
    return Plan("optimised", line_wh, line_var, line_def, stats)


@dataclass
class _Region:
    """One subproblem of a decomposed wave: its orders and lines, what the baseline uses for
    them (stock by warehouse and SKU, outbound units by warehouse) and what it may use."""

    orders: np.ndarray
    lines: np.ndarray
    use: np.ndarray
    cap_use: np.ndarray
    allowed: np.ndarray
    cap: np.ndarray


#: the wave a worker process solves regions of (:func:`_chunk_solver`), set once per worker
_INSTALLED: tuple = ()


def _install(wave: Wave, hint: Plan, greedy: dict) -> None:
    global _INSTALLED
    _INSTALLED = (wave, hint, greedy)


def _solve_installed(orders, lines, allowed, cap) -> dict:
    wave, hint, greedy = _INSTALLED
    return _solve_chunk(wave, orders, lines, allowed, cap, hint, greedy)


@contextlib.contextmanager
def _chunk_solver(wave: Wave, hint: Plan, greedy: dict, workers: int):
    """``solve(regions)`` -> their solutions in order: in this process, or with ``workers``
    of 2 or more in that many spawned processes, each sent the wave once."""
    if workers < 2:
        yield lambda group: [
            _solve_chunk(wave, g.orders, g.lines, g.allowed, g.cap, hint, greedy) for g in group
        ]
        return
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        max_workers=workers, mp_context=context, initializer=_install, initargs=(wave, hint, greedy)
    ) as pool:
        yield lambda group: [
            f.result()
            for f in [
                pool.submit(_solve_installed, g.orders, g.lines, g.allowed, g.cap) for g in group
            ]
        ]


@dataclass
class Problem:
    """One subproblem, solver-neutral: binary variables with costs in cents and four kinds of
    rows (exactly one, a <= b, at most one of two, weighted sum <= bound)."""

    cost: np.ndarray
    exactly_one: list[list[int]]
    implies: list[tuple[int, int]]
    at_most_one: list[tuple[int, int]]
    knapsacks: list[tuple[list[int], list[int], int]]
    hint: np.ndarray | None


def _solve_chunk(
    wave: Wave,
    orders: np.ndarray,
    lines: np.ndarray,
    stock: np.ndarray,
    cap: np.ndarray,
    hint: Plan,
    greedy_costs: dict,
) -> dict:
    pol = wave.policy
    obj = pol.objective
    li = wave.lines.iloc[lines]
    o = wave.orders
    opt = wave.options
    k_idx = np.flatnonzero(np.isin(opt.order, orders))
    sku = li["sku_idx"].to_numpy()
    qty = li["quantity"].to_numpy()
    wt = li["line_weight_kg"].to_numpy() / 1000.0
    l_order = li["order_idx"].to_numpy()
    promise = o["promise_type"].to_numpy(object)
    carbon_eur_per_kg = obj.carbon_price_eur_per_t / 1000.0
    green_w = np.where(promise == "green", obj.green_carbon_weight, 1.0)
    miss = np.array([obj.promise_miss_eur.get(p, 0.0) for p in promise])

    # variables, in blocks: y (shipments) | x (line in shipment) | u (back order) | z | late
    n_y = len(k_idx)
    first = np.searchsorted(opt.order[k_idx], l_order, side="left")
    last = np.searchsorted(opt.order[k_idx], l_order, side="right")
    x_line, x_opt = [], []
    for i in range(len(lines)):
        for j in range(first[i], last[i]):
            if stock[opt.wh[k_idx[j]], sku[i]] >= qty[i]:
                x_line.append(i)
                x_opt.append(j)
    x_line_a, x_opt_a = np.array(x_line, dtype=np.int64), np.array(x_opt, dtype=np.int64)
    n_x = len(x_line_a)
    local_orders = np.unique(l_order)
    z_of = {int(v): n_y + n_x + len(lines) + i for i, v in enumerate(local_orders)}
    late_orders = sorted({int(opt.order[k]) for k in k_idx if not opt.on_time[k]})
    base = n_y + n_x + len(lines) + len(local_orders)
    late_of = {v: base + i for i, v in enumerate(late_orders)}
    kk = k_idx[x_opt_a]
    defer_cost = _deferral_cost(wave, local_orders)
    cheapest = _cheapest_std(wave, local_orders)
    holds = set(zip(opt.order[opt.holds_all].tolist(), opt.wh[opt.holds_all].tolist(), strict=True))
    defer_wh = {v: w for v, w in cheapest.items() if (v, w) in holds}
    cost = np.concatenate(
        [
            (opt.fixed_eur[k_idx] + obj.split_eur) * CENTS,
            wt[x_line_a]
            * (
                opt.eur_per_t[kk]
                + carbon_eur_per_kg * opt.kg_co2e_per_t[kk] * green_w[opt.order[kk]]
            )
            * CENTS,
            np.full(len(lines), obj.unfilled_eur * CENTS),
            [defer_cost[v] for v in local_orders.tolist()],
            [miss[v] * CENTS for v in late_orders],
        ]
    )
    by_line: list[list[int]] = [[] for _ in range(len(lines))]
    for n, i in enumerate(x_line):
        by_line[i].append(n_y + n)
    exactly_one = [
        [*by_line[i], n_y + n_x + i]
        + ([z_of[int(l_order[i])]] if int(l_order[i]) in defer_wh else [])
        for i in range(len(lines))
    ]
    implies = [(n_y + n, int(x_opt_a[n])) for n in range(n_x)]
    implies += [(j, late_of[int(opt.order[k])]) for j, k in enumerate(k_idx) if not opt.on_time[k]]
    ow = opt.order[k_idx] * 1000 + opt.wh[k_idx]
    at_most_one = [(j, j + 1) for j in range(n_y - 1) if ow[j] == ow[j + 1]]
    knapsacks: list[tuple[list[int], list[int], int]] = []
    x_wh, x_sku, x_qty = opt.wh[kk], sku[x_line_a], qty[x_line_a]
    # stock rows: lines shipped today, and lines of deferred orders (their units are reserved
    # at the warehouse they will leave from)
    entries: dict[tuple[int, int], dict[int, int]] = {}
    for n in range(n_x):
        cell = entries.setdefault((int(x_wh[n]), int(x_sku[n])), {})
        cell[n_y + n] = cell.get(n_y + n, 0) + int(x_qty[n])
    for i in range(len(lines)):
        w = defer_wh.get(int(l_order[i]), -1)
        if w >= 0:
            cell = entries.setdefault((w, int(sku[i])), {})
            z = z_of[int(l_order[i])]
            cell[z] = cell.get(z, 0) + int(qty[i])
    for (w, s_), members in entries.items():
        if sum(members.values()) > stock[w, s_]:
            knapsacks.append((list(members), list(members.values()), int(stock[w, s_])))
    for w in np.unique(x_wh):
        members = np.flatnonzero(x_wh == w)
        if x_qty[members].sum() > cap[w]:
            knapsacks.append(
                ((n_y + members).tolist(), x_qty[members].tolist(), int(max(cap[w], 0)))
            )
    problem = Problem(
        np.round(cost).astype(np.int64), exactly_one, implies, at_most_one, knapsacks, None
    )
    # start from the better of the baseline and a greedy plan (whichever is feasible here)
    starts = [
        (hint.line_wh[lines], hint.line_variant[lines], hint.line_deferred[lines]),
        _greedy_chunk(wave, lines, stock, cap, greedy_costs, defer_wh),
    ]
    best = None
    for start in starts:
        vec = _hint(
            wave, start, lines, k_idx, x_line_a, x_opt_a, n_y, n_x, z_of, late_of, len(cost)
        )
        if _violations(problem, vec) == 0 and (
            best is None or problem.cost @ vec < problem.cost @ best
        ):
            best = vec
    problem.hint = best if best is not None else vec
    backend = pol.solver.backend
    solution, status, value, bound = (
        _solve_cpsat(problem, pol) if backend == "cp-sat" else _solve_mip(problem, pol, backend)
    )
    wh = np.full(len(lines), -1, dtype=np.int64)
    var = np.full(len(lines), STD, dtype=np.int64)
    on = solution[n_y : n_y + n_x]
    k = k_idx[x_opt_a[on]]
    wh[x_line_a[on]], var[x_line_a[on]] = opt.wh[k], opt.variant[k]
    deferred = np.array([bool(solution[z_of[int(v)]]) for v in l_order])
    wh[deferred] = [cheapest[int(v)] for v in l_order[deferred]]
    return {
        "wh": wh,
        "var": var,
        "deferred": deferred,
        "status": status,
        "objective": value / CENTS,
        "bound": bound / CENTS,
        "variables": len(cost),
    }


def _hint(wave, start, lines, k_idx, x_line_a, x_opt_a, n_y, n_x, z_of, late_of, n) -> np.ndarray:
    """A start plan (warehouse, variant, deferred per line of the chunk) as a variable vector."""
    opt = wave.options
    h_wh, h_var, h_def = start
    l_order = wave.lines["order_idx"].to_numpy()[lines]
    deferred = set(l_order[h_def].tolist())
    out = np.zeros(n, dtype=bool)
    k = k_idx[x_opt_a]
    on = (
        (opt.wh[k] == h_wh[x_line_a])
        & (opt.variant[k] == h_var[x_line_a])
        & ~np.isin(l_order[x_line_a], list(deferred))
    )
    out[n_y + np.flatnonzero(on)] = True
    out[np.unique(x_opt_a[on])] = True
    covered = np.zeros(len(lines), dtype=bool)
    covered[x_line_a[on]] = True
    for i in range(len(lines)):
        if int(l_order[i]) in deferred:
            out[z_of[int(l_order[i])]] = True
        elif not covered[i]:
            out[n_y + n_x + i] = True
    for j in np.unique(x_opt_a[on]):
        if not opt.on_time[k_idx[j]]:
            out[late_of[int(opt.order[k_idx[j]])]] = True
    return out


def _option_costs(wave: Wave) -> dict:
    """Per option, the objective's euros for shipping the whole order on it (for the greedy
    start), and each order's options."""
    pol = wave.policy.objective
    opt = wave.options
    o = wave.orders
    promise = o["promise_type"].to_numpy(object)[opt.order]
    green_w = np.where(promise == "green", pol.green_carbon_weight, 1.0)
    weight_t = o["weight_kg"].to_numpy()[opt.order] / 1000
    miss = np.array([pol.promise_miss_eur.get(p, 0.0) for p in promise])
    cost = (
        opt.fixed_eur
        + pol.split_eur
        + weight_t
        * (opt.eur_per_t + pol.carbon_price_eur_per_t / 1000 * opt.kg_co2e_per_t * green_w)
        + np.where(opt.on_time, 0.0, miss)
    )
    bounds = np.searchsorted(opt.order, np.arange(len(o) + 1))
    index = {v: np.arange(bounds[v], bounds[v + 1]) for v in range(len(o))}
    return {"order_cost": cost, "_index": index}


def _violations(problem: Problem, vec: np.ndarray) -> int:
    bad = sum(int(vec[group].sum() != 1) for group in problem.exactly_one)
    bad += sum(int(vec[a] and not vec[b]) for a, b in problem.implies)
    bad += sum(int(vec[a] and vec[b]) for a, b in problem.at_most_one)
    bad += sum(int(np.dot(vec[idx], coef) > rhs) for idx, coef, rhs in problem.knapsacks)
    return bad


def _greedy_chunk(
    wave: Wave,
    lines: np.ndarray,
    stock: np.ndarray,
    cap: np.ndarray,
    costs: dict,
    defer_wh: dict[int, int],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A quick feasible plan to start the solver from: orders by urgency (next-day first, then
    order time) take their cheapest whole-order lane with stock and capacity left; otherwise
    each line its cheapest lane with its units; otherwise the order waits or is back-ordered."""
    opt = wave.options
    li = wave.lines.iloc[lines]
    stock, cap = stock.copy(), cap.astype(np.int64).copy()
    l_order = li["order_idx"].to_numpy()
    sku, qty = li["sku_idx"].to_numpy(), li["quantity"].to_numpy()
    wh = np.full(len(lines), -1, dtype=np.int64)
    var = np.full(len(lines), STD, dtype=np.int64)
    deferred = np.zeros(len(lines), dtype=bool)
    urgency = {"next_day": 0, "standard": 1, "green": 2}
    promise = wave.orders["promise_type"].to_numpy(object)
    local = np.unique(l_order)
    # the orders with the fewest warehouses able to ship them whole go first, then by urgency
    holders = np.bincount(opt.order[opt.holds_all], minlength=len(promise))
    order_seq = sorted(
        local.tolist(), key=lambda v: (min(holders[v], 3), urgency.get(promise[v], 3), v)
    )
    line_pos = {}
    for i, v in enumerate(l_order.tolist()):
        line_pos.setdefault(v, []).append(i)
    for v in order_seq:
        rows = np.array(line_pos[v])
        ks = np.flatnonzero(opt.order == v) if costs.get("_index") is None else costs["_index"][v]
        if not len(ks):
            continue
        whole = costs["order_cost"][ks]
        units = qty[rows].sum()
        # units per product (an order may list one product on several lines)
        need_sku, need_idx = np.unique(sku[rows], return_inverse=True)
        need = np.bincount(need_idx, weights=qty[rows]).astype(np.int64)
        ok = np.array(
            [cap[opt.wh[k]] >= units and np.all(stock[opt.wh[k], need_sku] >= need) for k in ks]
        )
        if ok.any():
            k = ks[np.flatnonzero(ok)[np.argmin(whole[ok])]]
            wh[rows], var[rows] = opt.wh[k], opt.variant[k]
            np.subtract.at(stock, (opt.wh[k], sku[rows]), qty[rows])
            cap[opt.wh[k]] -= units
            continue
        taken = []
        capacity_short = False
        for i in rows:
            with_stock = [
                k for k in ks if opt.variant[k] == STD and stock[opt.wh[k], sku[i]] >= qty[i]
            ]
            fits = [k for k in with_stock if cap[opt.wh[k]] >= qty[i]]
            if not fits:
                capacity_short |= bool(with_stock)
                continue  # no candidate holds the units: the line is back-ordered
            k = min(fits, key=lambda kk: costs["order_cost"][kk])
            taken.append((i, k))
            stock[opt.wh[k], sku[i]] -= qty[i]
            cap[opt.wh[k]] -= qty[i]
        w_defer = defer_wh.get(v, -1)
        if capacity_short and w_defer >= 0:  # the whole order waits, its units reserved
            for i, k in taken:
                stock[opt.wh[k], sku[i]] += qty[i]
                cap[opt.wh[k]] += qty[i]
            if np.all(stock[w_defer, need_sku] >= need):
                np.subtract.at(stock, (w_defer, sku[rows]), qty[rows])
                wh[rows] = w_defer
                deferred[rows] = True
            continue
        for i, k in taken:
            wh[i], var[i] = opt.wh[k], opt.variant[k]
    return wh, var, deferred


def _solve_cpsat(problem: Problem, pol) -> tuple[np.ndarray, str, float, float]:
    from ortools.sat.python import cp_model  # imported when a wave is solved, not at load

    model = cp_model.CpModel()
    v = [model.new_bool_var(f"v{i}") for i in range(len(problem.cost))]
    for group in problem.exactly_one:
        model.add_exactly_one([v[i] for i in group])
    for a, b in problem.implies:
        model.add_implication(v[a], v[b])
    for a, b in problem.at_most_one:
        model.add_at_most_one([v[a], v[b]])
    for idx, coef, rhs in problem.knapsacks:
        model.add(cp_model.LinearExpr.weighted_sum([v[i] for i in idx], coef) <= rhs)
    model.minimize(cp_model.LinearExpr.weighted_sum(v, problem.cost.tolist()))
    for i, h in enumerate(problem.hint.tolist()):
        model.add_hint(v[i], h)
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = float(pol.solver.time_limit_s)
    solver.parameters.num_workers = int(pol.solver.workers)
    solver.parameters.relative_gap_limit = float(pol.solver.relative_gap)
    solver.parameters.random_seed = int(pol.solver.seed)
    status = solver.solve(model)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        raise RuntimeError(f"CP-SAT found no plan for the wave ({solver.status_name(status)})")
    values = np.array([solver.boolean_value(x) for x in v], dtype=bool)
    return values, solver.status_name(status), solver.objective_value, solver.best_objective_bound


def mip_model_proto(problem: Problem):
    """The problem as a MathOpt ``ModelProto``, built from arrays: binary variables ``0..n-1``
    with their costs (minimised), then the rows in the order of :class:`Problem` (each group
    exactly one, each pair ``a - b <= 0``, each pair ``a + b <= 1``, each knapsack ``<= rhs``).

    The same model as adding each row through MathOpt's Python API, which cost about a third of
    a 1M-order wave's time in Python objects (12k orders: 159k rows, 186k variables)."""
    from ortools.math_opt import model_pb2

    n = len(problem.cost)
    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    coefs: list[np.ndarray] = []
    lower: list[np.ndarray] = []
    upper: list[np.ndarray] = []
    count = 0

    def block(members: list[np.ndarray], weights: list[np.ndarray], lo, hi) -> None:
        nonlocal count
        sizes = np.fromiter((len(m) for m in members), dtype=np.int64, count=len(members))
        rows.append(np.repeat(np.arange(count, count + len(members), dtype=np.int64), sizes))
        cols.append(np.concatenate(members).astype(np.int64) if members else np.empty(0, np.int64))
        coefs.append(
            np.concatenate(weights).astype(np.float64) if weights else np.empty(0, np.float64)
        )
        lower.append(np.broadcast_to(np.asarray(lo, np.float64), len(members)))
        upper.append(np.broadcast_to(np.asarray(hi, np.float64), len(members)))
        count += len(members)

    groups = [np.asarray(g, np.int64) for g in problem.exactly_one]
    block(groups, [np.ones(len(g)) for g in groups], 1.0, 1.0)
    for pairs, second, hi in ((problem.implies, -1.0, 0.0), (problem.at_most_one, 1.0, 1.0)):
        ab = np.asarray(pairs, np.int64).reshape(-1, 2)
        block(list(ab), [np.array([1.0, second])] * len(ab), -np.inf, hi)
    block(
        [np.asarray(idx, np.int64) for idx, _, _ in problem.knapsacks],
        [np.asarray(coef, np.float64) for _, coef, _ in problem.knapsacks],
        -np.inf,
        np.array([float(rhs) for _, _, rhs in problem.knapsacks]),
    )
    row, col, coef = np.concatenate(rows), np.concatenate(cols), np.concatenate(coefs)
    # row-major, one entry per (row, column): repeated columns of a row add up, zeros go
    key, at = np.unique(row * n + col, return_inverse=True)
    summed = np.bincount(at, weights=coef, minlength=len(key))
    keep = summed != 0
    key, summed = key[keep], summed[keep]

    proto = model_pb2.ModelProto(name="dispatch")
    variables = proto.variables
    variables.ids.extend(range(n))
    variables.lower_bounds.extend(np.zeros(n).tolist())
    variables.upper_bounds.extend(np.ones(n).tolist())
    variables.integers.extend([True] * n)
    objective = proto.objective.linear_coefficients
    nonzero = np.flatnonzero(problem.cost)
    objective.ids.extend(nonzero.tolist())
    objective.values.extend(np.asarray(problem.cost, np.float64)[nonzero].tolist())
    constraints = proto.linear_constraints
    constraints.ids.extend(range(count))
    constraints.lower_bounds.extend(np.concatenate(lower).tolist())
    constraints.upper_bounds.extend(np.concatenate(upper).tolist())
    matrix = proto.linear_constraint_matrix
    matrix.row_ids.extend((key // n).tolist())
    matrix.column_ids.extend((key % n).tolist())
    matrix.coefficients.extend(summed.tolist())
    return proto


def _solve_mip(problem: Problem, pol, backend: str) -> tuple[np.ndarray, str, float, float]:
    """The problem as a MIP through OR-Tools MathOpt (HiGHS by default, or SCIP)."""
    import datetime as dt

    from ortools.math_opt.python import mathopt

    kinds = {"highs": mathopt.SolverType.HIGHS, "scip": mathopt.SolverType.GSCIP}
    model = mathopt.Model.from_model_proto(mip_model_proto(problem))
    v = [model.get_variable(i, validate=False) for i in range(len(problem.cost))]
    hint = mathopt.SolutionHint(
        variable_values={x: float(h) for x, h in zip(v, problem.hint.tolist(), strict=True)}
    )
    params = mathopt.SolveParameters(
        time_limit=dt.timedelta(seconds=float(pol.solver.time_limit_s)),
        relative_gap_tolerance=float(pol.solver.relative_gap),
        # HiGHS takes its thread count from its globals, not per solve
        threads=None if backend == "highs" else int(pol.solver.workers),
        random_seed=int(pol.solver.seed),
        # ORDERTOWER_SOLVER_LOG=1 prints the solver's log (HiGHS, SCIP)
        enable_output=bool(os.environ.get("ORDERTOWER_SOLVER_LOG")),
    )
    result = mathopt.solve(
        model,
        kinds[backend],
        params=params,
        model_params=mathopt.ModelSolveParameters(solution_hints=[hint]),
    )
    if not result.has_primal_feasible_solution():
        raise RuntimeError(f"the {backend} MIP found no plan for the wave ({result.termination})")
    values = np.array(result.variable_values(v), dtype=float) > 0.5
    reason = result.termination.reason.name
    status = "OPTIMAL" if reason == "OPTIMAL" else "FEASIBLE"
    return values, status, result.objective_value(), result.best_objective_bound()


def _cheapest_std(wave: Wave, orders: np.ndarray) -> dict[int, int]:
    """Per order, the warehouse of its cheapest standard lane among those holding every line
    (any candidate when none does): where a deferred order ships from in the next wave."""
    opt = wave.options
    sel = np.flatnonzero(np.isin(opt.order, orders) & (opt.variant == STD))
    w = wave.orders["weight_kg"].to_numpy()[opt.order[sel]] / 1000
    cost = opt.fixed_eur[sel] + w * opt.eur_per_t[sel]
    cost = cost + np.where(opt.holds_all[sel], 0.0, 1e6)
    best: dict[int, tuple[float, int]] = {}
    for k, c in zip(sel, cost, strict=True):
        o_ = int(opt.order[k])
        if o_ not in best or c < best[o_][0]:
            best[o_] = (c, int(opt.wh[k]))
    return {o_: best.get(o_, (0.0, -1))[1] for o_ in map(int, orders)}


def _deferral_cost(wave: Wave, orders: np.ndarray) -> dict[int, float]:
    """Cents for holding an order a wave: the penalty, its cheapest standard lane, and the
    promise penalty when one more day makes it late."""
    from ml.dispatch.network import delivery_dates

    pol = wave.policy.objective
    opt = wave.options
    o = wave.orders
    out: dict[int, float] = {}
    cheapest = _cheapest_std(wave, orders)
    for o_ in map(int, orders):
        w = cheapest[o_]
        sel = np.flatnonzero((opt.order == o_) & (opt.wh == w) & (opt.variant == STD))
        if not len(sel):
            out[o_] = (pol.defer_eur + pol.unfilled_eur) * CENTS
            continue
        k = sel[0]
        weight = o["weight_kg"].iat[o_] / 1000
        ship = o["ship_date"].to_numpy("datetime64[D]")[o_] + np.timedelta64(1, "D")
        arrive = delivery_dates(np.array([ship]), np.array([opt.transit_days[k]]))[0]
        late = arrive > o["promised"].to_numpy("datetime64[D]")[o_]
        miss = pol.promise_miss_eur.get(o["promise_type"].iat[o_], 0.0) if late else 0.0
        lane = opt.fixed_eur[k] + weight * opt.eur_per_t[k]
        out[o_] = (pol.defer_eur + lane + miss) * CENTS
    return out
