"""What ``ordertower bench`` measures of the ETA model on the current lake (no MLflow).

:func:`measure` builds the examples of the delivered history, trains, evaluates the test period
against the carrier's plan (the naive baseline) and times the live scorer on a few hundred
tracking references of shipments in transit, as the stream consumer calls it.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import duckdb

from ml.eta.config import EtaPolicy, load_policy
from ml.eta.evaluate import HEADLINE, evaluate
from ml.eta.features import SAMPLE_SCALE, lake_clock, training_examples
from ml.eta.live import EtaScorer, open_points
from ml.eta.model import train

#: segments reported (the rest is in ``segments``)
REPORTED = (HEADLINE, "dispatch", "scans", "between_scans", "all")


def _in_transit_refs(con: duckdb.DuckDBPyConnection, as_of, policy: EtaPolicy, n: int) -> list:
    """Up to ``n`` tracking references of shipments open at ``as_of`` (their current legs)."""
    rows = con.execute(
        f"""
        with open as ({open_points()})
        select legs.tracking_ref
        from staging.stg_tms__shipment_legs as legs
        inner join open on legs.shipment_id = open.shipment_id
        order by hash(legs.tracking_ref)
        limit {int(n)}
        """,
        {"as_of": as_of, "open_days": policy.open_within_days},
    ).fetchall()
    return [r[0] for r in rows]


def measure(
    con: duckdb.DuckDBPyConnection, policy: EtaPolicy | None = None, live_refs: int = 300
) -> dict[str, Any]:
    """Evaluation numbers (MAE hours, within ±2 h / ±24 h; model vs the carrier's plan, at
    dispatch, at scans and per scan bucket), training and prediction times and row counts.

    ``con`` is a lake connection (``ordertower.lake.connect(read_only=True)`` will do).
    """
    policy = policy or load_policy()
    clock = lake_clock(con)
    started = time.perf_counter()
    frame = training_examples(con, clock, policy)
    feature_s = time.perf_counter() - started
    started = time.perf_counter()
    result = train(frame, policy)
    train_s = time.perf_counter() - started
    test = result.test
    started = time.perf_counter()
    predicted = result.model.predict_remaining_hours(test)
    predict_s = time.perf_counter() - started
    evaluation = evaluate(test, {"model": predicted}, policy)
    segments = evaluation.segments

    def pick(who: str) -> dict[str, dict]:
        return {
            s: {k: v for k, v in segments[s][who].items() if k != "median_abs_error_hours"}
            for s in REPORTED
            if s in segments
        }

    refs = _in_transit_refs(con, clock, policy, live_refs)
    scorer = EtaScorer(result.model, "bench")
    live_runs = []
    live_rows = 0
    for _ in range(3):
        started = time.perf_counter()
        live_rows = len(scorer.predict(con, refs))
        live_runs.append(time.perf_counter() - started)
    head_model, head_plan = segments[HEADLINE]["model"], segments[HEADLINE]["baseline"]
    return {
        "cutoff": str(clock),
        "examples": len(frame),
        "shipments": int(frame["shipment_id"].nunique()),
        "feature_seconds": round(feature_s, 2),
        "train_examples": int(result.metrics["train_examples"]),
        "train_seconds": round(train_s, 2),
        "best_iteration": int(result.model.booster.best_iteration),
        "test_period": {"from": evaluation.period[0], "to": evaluation.period[1]},
        "test_shipments": evaluation.shipments,
        "test_examples": len(test),
        "predict_rows_per_s": round(len(test) / predict_s) if predict_s else None,
        "live_refs": len(refs),
        "live_shipments": live_rows,
        "live_seconds": round(statistics.median(live_runs), 3) if refs else None,
        "mae_hours": {"model": head_model["mae_hours"], "plan": head_plan["mae_hours"]},
        "mae_ratio_model_to_plan": round(head_model["mae_hours"] / head_plan["mae_hours"], 3),
        "within_2h": {"model": head_model["within_2h"], "plan": head_plan["within_2h"]},
        "within_24h": {"model": head_model["within_24h"], "plan": head_plan["within_24h"]},
        "model": pick("model"),
        "plan": pick("baseline"),
        "segments": segments,
    }


def sampling_effect(
    con: duckdb.DuckDBPyConnection, share: float = 1 / 3, policy: EtaPolicy | None = None
) -> dict[str, Any]:
    """What training on a sample of the shipments costs: the model trained on every shipment
    and the one trained on ``share`` of them, both measured on the same examples (the full
    run's test period, from the moment the sampled run's own training and validation end)."""
    policy = policy or load_policy()
    clock = lake_clock(con)
    runs = {}
    for name, keep in (("all", SAMPLE_SCALE), ("sample", max(1, int(SAMPLE_SCALE * share)))):
        started = time.perf_counter()
        frame = training_examples(con, clock, policy, keep=keep)
        result = train(frame, policy)
        runs[name] = {
            "result": result,
            "shipments": int(frame["shipment_id"].nunique()),
            "examples": len(frame),
            "seconds": round(time.perf_counter() - started, 2),
        }
        del frame
    fitted_until = runs["sample"]["result"].splits[1].end
    test = runs["all"]["result"].test
    test = test[test["created_at"] > fitted_until]
    evaluation = evaluate(
        test,
        {n: r["result"].model.predict_remaining_hours(test) for n, r in runs.items()},
        policy,
    )
    head = evaluation.segments[HEADLINE]
    return {
        "share": round(share, 3),
        "test_examples": len(test),
        **{
            name: {
                "shipments": r["shipments"],
                "examples": r["examples"],
                "seconds": r["seconds"],
                "mae_hours": head[name]["mae_hours"],
            }
            for name, r in runs.items()
        },
    }
