"""A plain-text account of what the lake holds (printed at the end of ``make demo``)."""

from __future__ import annotations

from ordertower.lake import LakeError, connect
from ordertower.settings import get_settings


def lake_status() -> str:
    settings = get_settings()
    try:
        con = connect(read_only=True)
    except LakeError as exc:
        raise RuntimeError(str(exc)) from exc
    try:
        tables = con.execute(
            "select table_schema, table_name from information_schema.tables "
            "where table_catalog = 'lake' and table_type = 'BASE TABLE' order by 1, 2"
        ).fetchall()
        lines = [
            f"Lake: {settings.ducklake_uri} (data in {settings.data_path})",
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
