"""A plain-text account of what the lake holds (printed at the end of ``make demo``)."""

from __future__ import annotations

from ordertower.lake import LakeError, connect
from ordertower.redact import redact
from ordertower.settings import get_settings


def lake_status() -> str:
    settings = get_settings()
    try:
        con = connect(read_only=True)
    except LakeError as exc:
        raise RuntimeError(redact(exc)) from exc
    try:
        tables = con.execute(
            "select table_schema, table_name from information_schema.tables "
            "where table_catalog = 'lake' and table_type = 'BASE TABLE' order by 1, 2"
        ).fetchall()
        lines = [
            f"Lake: {redact(settings.ducklake_uri)} (data in {settings.data_path})",
            "",
            "Tables and rows:",
        ]
        for schema, table in tables:
            count = con.execute(f'select count(*) from "{schema}"."{table}"').fetchone()[0]
            lines.append(f"  {schema + '.' + table:40s} {count:>12,}")
        try:
            rows = con.execute(
                "select dataset, sum(received), sum(landed), sum(quarantined) from ops.ingest_status "
                "group by dataset order by dataset"
            ).fetchall()
        except Exception:
            rows = []
        if rows:
            lines += [
                "",
                f"  {'dataset':24s} {'received':>12s} {'landed':>12s} {'quarantined':>12s}",
            ]
            lines += [f"  {d:24s} {r:>12,} {la:>12,} {q:>12,}" for d, r, la, q in rows]
            reasons = con.execute(
                "select dataset, reason, count(*) n from quarantine.rejected_records "
                "group by all order by n desc limit 8"
            ).fetchall()
            if reasons:
                lines += ["", "Top quarantine reasons:"]
                lines += [f"  {n:>8,}  {d}: {r[:90]}" for d, r, n in reasons]
        lines += _risk_lines(con)
        lines += _dispatch_lines(con)
        lines += _stream_lines(con)
        snapshot = con.execute(
            "select max(snapshot_id) from ducklake_snapshots('lake')"
        ).fetchone()[0]
        lines += ["", f"Lake snapshot: {snapshot}"]
        return "\n".join(lines)
    finally:
        con.close()


def _risk_lines(con) -> list[str]:
    """The risk model's outcome: decisions, the review queue, the champion in MLflow."""
    try:
        rows = con.execute(
            "select model_decision, count(*), max(model_version) from marts.fct_order_risk "
            "group by 1 order by 1"
        ).fetchall()
        queue = con.execute("select count(*) from marts.fct_risk_review_queue").fetchone()[0]
    except Exception:  # not built yet (a lake too young to train a model on)
        return []
    if not rows:
        return ["", "Risk: no order scored yet (no champion model: too little matured history)"]
    total = sum(n for _, n, _ in rows)
    version = max(v for _, _, v in rows)
    lines = ["", f"Risk: {total:,} orders scored by order_risk version {version} (MLflow champion)"]
    lines += [f"  {d:10s} {n:>10,}  {n / total:6.2%}" for d, n, _ in rows]
    lines.append(
        f"  review queue: {queue:,} orders awaiting an analyst (marts.fct_risk_review_queue)"
    )
    return lines


def _dispatch_lines(con) -> list[str]:
    """The dispatch plans against the baseline rule over every planned wave, and the routes."""
    try:
        row = con.execute(
            """
            select count(*), sum(orders),
                sum(cost_per_order_eur * orders) / sum(orders),
                sum(baseline_cost_per_order_eur * orders) / sum(orders),
                sum(kg_co2e_per_order * orders) / sum(orders),
                sum(baseline_kg_co2e_per_order * orders) / sum(orders),
                sum(next_day_hit_rate * next_day_orders) / nullif(sum(next_day_orders), 0),
                sum(baseline_next_day_hit_rate * next_day_orders) / nullif(sum(next_day_orders), 0),
                sum(next_day_hit_rate_feasible * next_day_orders) / nullif(sum(next_day_orders), 0),
                max(proven_gap)
            from marts.fct_dispatch_plan_vs_baseline
            """
        ).fetchone()
        routes = con.execute(
            "select count(*), sum(stops), count(distinct wave_date), bool_and(is_feasible) "
            "from marts.fct_route_plans"
        ).fetchone()
    except Exception:  # not built yet
        return []
    waves, orders, cost, base_cost, co2, base_co2, nd, base_nd, nd_feasible, gap = row
    if not waves:
        return ["", "Dispatch: no wave planned yet"]
    pct = lambda v: "-" if v is None else f"{v:.1%}"  # noqa: E731
    return [
        "",
        f"Dispatch: {waves} waves, {orders:,} orders planned (marts.fct_dispatch_plan_vs_baseline)",
        f"  cost per order   {cost:8.2f} EUR   baseline {base_cost:8.2f} EUR "
        f"({(base_cost - cost) / base_cost:.1%} less)",
        f"  CO2e per order   {co2:8.3f} kg    baseline {base_co2:8.3f} kg",
        f"  next-day hit     {pct(nd):>8s}       baseline {pct(base_nd):>8s}  "
        f"(where stock and network allow: {pct(nd_feasible)})",
        f"  largest proven optimality gap {gap or 0:.2%}",
        f"  van routes: {routes[0]:,} routes, {routes[1] or 0:,} stops over {routes[2]} waves, "
        f"{'all feasible' if routes[3] else 'SOME INFEASIBLE'}",
    ]


def _stream_lines(con) -> list[str]:
    """The live stream: what it stored, the alerts it raised, where the customer messages are."""
    try:
        row = con.execute(
            "select count(*), sum(received), sum(landed), sum(duplicates), sum(quarantined), "
            "sum(eta_updates), sum(alerts), max(committed_at), max(max_event_at) "
            "from ops.stream_batches"
        ).fetchone()
    except Exception:  # the stream never ran on this lake
        return []
    batches, received, landed, dups, quarantined, etas, alerts, last, clock = row
    if not batches:
        return []
    lines = [
        "",
        f"Live stream: {batches:,} micro-batches, last committed {last:%Y-%m-%d %H:%M:%S} UTC "
        f"(stream clock {clock:%Y-%m-%d %H:%M} UTC)"
        if clock
        else f"Live stream: {batches:,} batches",
        f"  {received:,} messages: {landed:,} events stored, {dups:,} duplicates skipped, "
        f"{quarantined:,} dead-lettered; {etas:,} ETA updates",
    ]
    try:
        by_severity = con.execute(
            "select severity, count(*) from ops.exception_alerts group by 1 "
            "order by list_position(['critical', 'high', 'medium', 'low'], severity)"
        ).fetchall()
        outbox = con.execute(
            "select status, count(*) from ops.crm_outbox group by 1 order by 1"
        ).fetchall()
    except Exception:
        return lines
    lines.append(
        f"  {alerts:,} alerts ("
        + ", ".join(f"{n:,} {sev}" for sev, n in by_severity)
        + "); CRM messages: "
        + (", ".join(f"{n:,} {st}" for st, n in outbox) or "none")
    )
    return lines
