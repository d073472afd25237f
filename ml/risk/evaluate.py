"""Model vs rules (and challenger vs champion) on one held-out test period.

The report is what the promotion gate and the people deciding read: ROC-AUC, PR-AUC, recall at
1 % false-positive rate, accuracy of each one's hold decision, and the share of legitimate
orders each intercepts at equal fraud recall (the rules' recall).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ml import evaluation
from ml.risk.config import RiskPolicy
from ml.risk.model import RiskModel
from ml.risk.rules import RuleSet

METRICS = ("roc_auc", "pr_auc", "recall_at_1pct_fpr", "accuracy")


def score_metrics(y: np.ndarray, score: np.ndarray, held: np.ndarray) -> dict[str, float]:
    conf = evaluation.confusion_at(y, held)
    return {
        "roc_auc": evaluation.roc_auc(y, score),
        "pr_auc": evaluation.pr_auc(y, score),
        "recall_at_1pct_fpr": evaluation.recall_at_fpr(y, score, 0.01),
        "accuracy": conf["accuracy"],
        "hold_recall": conf["recall"],
        "hold_precision": conf["precision"],
        "held_share": conf["flagged_share"],
        "legit_intercepted_share": conf["fpr"],
    }


@dataclass
class Comparison:
    period: tuple[str, str]
    orders: int
    frauds: int
    model: dict[str, float]
    rules: dict[str, float]
    equal_recall: dict[str, float | None]
    model_beats_rules: dict[str, bool]
    rules_fired: dict[str, float]

    def as_dict(self) -> dict:
        return {
            "period": {"from": self.period[0], "to": self.period[1]},
            "orders": self.orders,
            "frauds": self.frauds,
            "model": self.model,
            "rules": self.rules,
            "at_equal_recall": self.equal_recall,
            "model_beats_rules": self.model_beats_rules,
            "rules_fired_share": self.rules_fired,
        }


def compare_with_rules(model: RiskModel, rules: RuleSet, test: pd.DataFrame) -> Comparison:
    """Model and rules on the same orders (``test`` holds features, ``label``, ``order_total``)."""
    y = test["label"].to_numpy().astype(int)
    # ranking metrics on the raw score: the isotonic calibration is monotone but makes steps,
    # and ties would blur the operating points; decisions use the calibrated probability
    raw = model.raw_score(test)
    prob = model.calibration(raw)
    model_held = model.thresholds.decide(prob, test["order_total"].to_numpy()) != "approve"
    points = rules.points(test)
    rules_held = points >= rules.hold_at
    m = score_metrics(y, raw, model_held)
    r = score_metrics(y, points, rules_held)
    eq = evaluation.compare_at_equal_recall(y, raw, rules_held)
    beats = {k: bool(m[k] > r[k]) for k in METRICS}
    beats["fewer_legit_intercepted_at_equal_recall"] = bool(
        eq.get("a_fewer_legit_intercepted") is not None and eq["a_fewer_legit_intercepted"] > 0
    )
    fired = rules.fired(test).mean().round(4).to_dict()
    ts = test["ordered_at"]
    return Comparison(
        (str(ts.min()), str(ts.max())), len(test), int(y.sum()), m, r, eq, beats, fired
    )


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
    challenger: RiskModel,
    champion: RiskModel | None,
    test: pd.DataFrame,
    policy: RiskPolicy,
) -> GateDecision:
    """Promote only a challenger that beats the champion on the same test period by the margin."""
    y = test["label"].to_numpy().astype(int)
    metric = policy.promotion_metric
    fn = {"pr_auc": evaluation.pr_auc, "roc_auc": evaluation.roc_auc}[metric]
    frauds = int(y.sum())
    if frauds < policy.min_test_frauds:
        return GateDecision(
            False,
            f"the test period holds {frauds} known frauds, fewer than the "
            f"{policy.min_test_frauds} needed to compare models",
            metric,
            math.nan,
            None,
        )
    ch = fn(y, challenger.raw_score(test))
    if champion is None:
        return GateDecision(
            True, "no champion yet: the first model becomes champion", metric, ch, None
        )
    try:
        cp = fn(y, champion.raw_score(test))
    except Exception as exc:  # a champion on an older feature set cannot score: replace it
        return GateDecision(
            True, f"the champion cannot score today's features ({exc}); replaced", metric, ch, None
        )
    if ch >= cp + policy.min_improvement:
        return GateDecision(
            True,
            f"{metric} {ch:.4f} beats the champion's {cp:.4f} by at least {policy.min_improvement}",
            metric,
            ch,
            cp,
        )
    return GateDecision(
        False,
        f"{metric} {ch:.4f} does not beat the champion's {cp:.4f} by {policy.min_improvement}",
        metric,
        ch,
        cp,
    )


def report_html(comparison: Comparison, gate: GateDecision | None = None) -> str:
    """The comparison as a small HTML page (logged with the MLflow run)."""
    rows = "".join(
        f"<tr><td>{k}</td><td>{comparison.model[k]:.4f}</td><td>{comparison.rules[k]:.4f}</td>"
        f"<td>{'model' if comparison.model_beats_rules.get(k) else ('rules' if k in METRICS else '')}"
        "</td></tr>"
        for k in (
            *METRICS,
            "hold_recall",
            "hold_precision",
            "held_share",
            "legit_intercepted_share",
        )
    )
    eq = comparison.equal_recall
    fewer = eq.get("a_fewer_legit_intercepted")
    gate_html = (
        f"<h2>Promotion gate</h2><p><b>{'promoted' if gate.promote else 'not promoted'}</b>: "
        f"{gate.reason}</p>"
        if gate
        else ""
    )
    fired = "".join(
        f"<tr><td>{k}</td><td>{v:.2%}</td></tr>" for k, v in comparison.rules_fired.items()
    )
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>Risk model vs rules</title>
<style>body{{font-family:sans-serif;max-width:52em;margin:2em auto}}td,th{{padding:.2em .8em;
border-bottom:1px solid #ddd;text-align:right}}td:first-child{{text-align:left}}</style></head>
<body><h1>Risk model vs static rules</h1>
<p>Test period {comparison.period[0]} to {comparison.period[1]}: {comparison.orders:,} orders,
{comparison.frauds:,} with a known fraud verdict (matured labels).</p>
<table><tr><th>metric</th><th>model</th><th>rules</th><th>better</th></tr>{rows}</table>
<h2>At equal fraud recall</h2>
<p>At the rules' recall of {eq["recall"]:.1%}, the rules intercept {eq["b_fpr"]:.2%} of legitimate
orders and the model {eq["a_fpr"]:.2%}: <b>{"n/a" if fewer is None else f"{fewer:.0%}"} fewer
legitimate orders held</b>.</p>{gate_html}
<h2>How often each rule fired</h2><table>{fired}</table></body></html>"""
