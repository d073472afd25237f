"""How good an ETA is: MAE in hours and the share of deliveries within ±2 h and ±24 h of it,
at dispatch and at each scan, for the model and for the naive baseline on the same examples.

The baseline is the carrier's plan: the TMS's planned delivery (the last leg's planned
arrival), unchanged by scans, as a tracking page would show it. Once that time has passed
without a delivery the plan is plainly wrong; ``baseline_not_before_now`` is the fairer variant
that moves it to the moment of the prediction, and both are reported.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ml.eta.config import EtaPolicy

#: the segment the promotion gate and the headline numbers use
HEADLINE = "dispatch_and_scans"


def accuracy(actual: np.ndarray, predicted: np.ndarray, within: tuple[float, ...]) -> dict:
    """MAE, median absolute error, mean signed error (late > 0) and the share within each
    tolerance, of predicted vs actual remaining hours."""
    actual = np.asarray(actual, dtype=float)
    predicted = np.asarray(predicted, dtype=float)
    if len(actual) == 0:
        return {"examples": 0}
    error = actual - predicted
    out = {
        "examples": int(len(actual)),
        "mae_hours": float(np.abs(error).mean()),
        "median_abs_error_hours": float(np.median(np.abs(error))),
        "bias_hours": float(error.mean()),
    }
    for h in within:
        out[f"within_{_fmt(h)}h"] = float((np.abs(error) <= h).mean())
    return out


def _fmt(h: float) -> str:
    return str(int(h)) if float(h).is_integer() else str(h)


def scan_bucket(scans: pd.Series, buckets: tuple[int, ...]) -> pd.Series:
    """Scan counts as labels: ``scan_1``, ``scan_4-5``, ``scan_9+`` for buckets (1, ..., 4, 6, 9)."""
    edges = list(buckets)
    labels = []
    for lo, hi in zip(edges, [*edges[1:], None], strict=True):
        if hi is None:
            labels.append(f"scan_{lo}+")
        elif hi - lo == 1:
            labels.append(f"scan_{lo}")
        else:
            labels.append(f"scan_{lo}-{hi - 1}")
    idx = np.searchsorted(edges, scans.to_numpy(dtype=int), side="right") - 1
    return pd.Series(
        np.where(idx >= 0, np.array(labels, dtype=object)[np.maximum(idx, 0)], "scan_0"),
        index=scans.index,
    )


def segments(test: pd.DataFrame, policy: EtaPolicy) -> dict[str, np.ndarray]:
    """Row masks: all points, dispatch and scans together, dispatch, every scan bucket, and the
    points between scans."""
    kind = test["point_kind"].to_numpy()
    out = {
        "all": np.ones(len(test), dtype=bool),
        HEADLINE: np.isin(kind, ["dispatch", "scan"]),
        "dispatch": kind == "dispatch",
        "scans": kind == "scan",
    }
    buckets = scan_bucket(test["scans"], policy.scan_buckets)
    for label in pd.unique(buckets[kind == "scan"]):
        out[label] = (kind == "scan") & (buckets.to_numpy() == label)
    out["between_scans"] = kind == "between_scans"
    return {k: v for k, v in out.items() if v.any()}


def _order(name: str) -> tuple[int, int]:
    if name.startswith("scan_") and name[5:6].isdigit():
        return (3, int(name[5:].split("-")[0].rstrip("+")))
    return ({"all": 0, HEADLINE: 1, "dispatch": 2, "scans": 4, "between_scans": 5}[name], 0)


@dataclass
class Evaluation:
    period: tuple[str, str]
    shipments: int
    segments: dict[str, dict[str, dict]]  # segment -> model / baseline / ... -> metrics

    def headline(self, who: str = "model") -> dict:
        return self.segments.get(HEADLINE, {}).get(who, {})

    def as_dict(self) -> dict:
        return {
            "period": {"from": self.period[0], "to": self.period[1]},
            "shipments": self.shipments,
            "segments": self.segments,
        }


def evaluate(
    test: pd.DataFrame, predictions: dict[str, np.ndarray], policy: EtaPolicy
) -> Evaluation:
    """Every predictor in ``predictions`` (name -> remaining hours per row of ``test``) and the
    two baselines, per segment. ``test`` holds :func:`~ml.eta.features.training_examples`."""
    actual = test["remaining_hours"].to_numpy(dtype=float)
    planned = test["planned_remaining_hours"].to_numpy(dtype=float)
    every = {
        **predictions,
        "baseline": planned,
        "baseline_not_before_now": np.maximum(planned, 0.0),
    }
    out: dict[str, dict[str, dict]] = {}
    for name, mask in sorted(segments(test, policy).items(), key=lambda kv: _order(kv[0])):
        out[name] = {
            who: accuracy(actual[mask], np.asarray(pred, dtype=float)[mask], policy.within_hours)
            for who, pred in every.items()
        }
        out[name]["shipments"] = int(test["shipment_id"][mask].nunique())
    created = test["created_at"]
    period = (str(created.min()), str(created.max())) if len(test) else ("", "")
    return Evaluation(period, int(test["shipment_id"].nunique()), out)


def beats_baseline(evaluation: Evaluation, segment: str = HEADLINE) -> bool:
    seg = evaluation.segments.get(segment, {})
    model, base = seg.get("model", {}), seg.get("baseline", {})
    return bool(model and base and model["mae_hours"] < base["mae_hours"])


@dataclass
class GateDecision:
    promote: bool
    reason: str
    metric: str
    challenger: float
    champion: float | None

    def as_dict(self) -> dict:
        return self.__dict__.copy()


def promotion_gate(
    challenger_mae: float,
    champion_mae: float | None,
    shipments: int,
    policy: EtaPolicy,
    champion_error: str | None = None,
) -> GateDecision:
    """Promote only a challenger whose MAE on the test period is below the champion's on the
    same examples by at least ``min_improvement_hours``."""
    metric = policy.promotion_metric
    if shipments < policy.min_test_shipments:
        return GateDecision(
            False,
            f"the test period holds {shipments} delivered shipments, fewer than the "
            f"{policy.min_test_shipments} needed to compare models",
            metric,
            challenger_mae,
            champion_mae,
        )
    if not math.isfinite(challenger_mae):
        return GateDecision(False, "the challenger's MAE is not a number", metric, math.nan, None)
    if champion_error is not None:
        return GateDecision(
            True,
            f"the champion cannot predict today's features ({champion_error}); replaced",
            metric,
            challenger_mae,
            None,
        )
    if champion_mae is None:
        return GateDecision(
            True, "no champion yet: the first model becomes champion", metric, challenger_mae, None
        )
    margin = policy.min_improvement_hours
    if challenger_mae <= champion_mae - margin:
        return GateDecision(
            True,
            f"MAE {challenger_mae:.3f} h beats the champion's {champion_mae:.3f} h by at least "
            f"{margin} h",
            metric,
            challenger_mae,
            champion_mae,
        )
    return GateDecision(
        False,
        f"MAE {challenger_mae:.3f} h does not beat the champion's {champion_mae:.3f} h by {margin} h",
        metric,
        challenger_mae,
        champion_mae,
    )


def report_markdown(evaluation: Evaluation, policy: EtaPolicy) -> str:
    """The evaluation as a Markdown table (logged with the MLflow run, quoted in the docs)."""
    within = [f"within_{_fmt(h)}h" for h in policy.within_hours]
    head = ["segment", "examples", "MAE h model", "MAE h plan"]
    head += [f"{w.replace('within_', '±')} model" for w in within]
    head += [f"{w.replace('within_', '±')} plan" for w in within]
    lines = [
        f"Test period {evaluation.period[0]} .. {evaluation.period[1]}: "
        f"{evaluation.shipments:,} delivered shipments.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for name, seg in evaluation.segments.items():
        m, b = seg["model"], seg["baseline"]
        cells = [name, f"{m['examples']:,}", f"{m['mae_hours']:.2f}", f"{b['mae_hours']:.2f}"]
        cells += [f"{m[w]:.1%}" for w in within] + [f"{b[w]:.1%}" for w in within]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_segments(path: Path, evaluation: Evaluation) -> Path:
    """MAE per segment, the model's bars beside the plan's (logged with the MLflow run)."""
    from ml.evaluation import _pyplot

    plt = _pyplot()
    names = list(evaluation.segments)
    model = [evaluation.segments[n]["model"]["mae_hours"] for n in names]
    plan = [evaluation.segments[n]["baseline"]["mae_hours"] for n in names]
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(9, 4))
    ax.bar(x - 0.2, model, 0.4, label="model")
    ax.bar(x + 0.2, plan, 0.4, label="carrier's plan")
    ax.set_xticks(x, names, rotation=30, ha="right")
    ax.set_ylabel("MAE (hours)")
    ax.set_title("ETA error on the test period")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
