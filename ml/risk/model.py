"""The risk model: matured labels, a time split, LightGBM with early stopping, isotonic
calibration, cost-based decision thresholds and readable reasons.

A :class:`RiskModel` is everything needed to score an order the same way later: the booster,
the calibration curve, the categorical vocabularies, the decision thresholds and the drift
reference. It is saved as a folder (:meth:`RiskModel.save`) that MLflow logs and registers.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ml import evaluation
from ml.risk.config import DecisionPolicy, RiskPolicy
from ml.risk.features import catalogue, describe, feature_names, model_matrix

if TYPE_CHECKING:  # LightGBM loads in seconds: imported where a model trains or loads
    import lightgbm as lgb

DECISIONS = ("approve", "review", "reject")


class TrainingError(RuntimeError):
    """The data cannot train a model (too few matured orders or no fraud among them)."""


# --------------------------------------------------------------------------------------- labels


def matured_labels(
    orders: pd.DataFrame, verdicts: pd.DataFrame, cutoff: pd.Timestamp, maturity_days: int
) -> pd.DataFrame:
    """Labels as they were known at ``cutoff``, for the orders old enough to trust them.

    ``orders`` has ``order_id, ordered_at``; ``verdicts`` has ``order_id, is_fraud,
    fraud_known_at``. An order is fraud when a fraud verdict was known by the cut-off, and
    legitimate otherwise; only orders placed ``maturity_days`` before the cut-off are kept,
    since a younger order's chargeback may simply not have arrived yet.
    """
    cutoff = pd.Timestamp(cutoff)
    matured = orders[orders["ordered_at"] <= cutoff - pd.Timedelta(days=maturity_days)]
    known = verdicts[verdicts["is_fraud"].astype(bool) & (verdicts["fraud_known_at"] <= cutoff)]
    out = matured[["order_id", "ordered_at"]].copy()
    out["label"] = out["order_id"].isin(set(known["order_id"])).astype(np.int8)
    return out


@dataclass(frozen=True)
class Split:
    name: str
    start: pd.Timestamp
    end: pd.Timestamp  # inclusive: the last order's timestamp
    rows: np.ndarray  # positions in the frame


def time_split(ordered_at: pd.Series, fractions: tuple[float, float, float]) -> list[Split]:
    """Train | validation | test by order time: every validation order is later than every
    training order, every test order later than every validation order."""
    order = np.argsort(ordered_at.to_numpy(), kind="stable")
    n = len(order)
    cuts = [0, int(n * fractions[0]), int(n * (fractions[0] + fractions[1])), n]
    splits = []
    ts = ordered_at.to_numpy()
    for name, lo, hi in zip(("train", "validation", "test"), cuts[:-1], cuts[1:], strict=True):
        rows = order[lo:hi]
        if len(rows) == 0:
            raise TrainingError(f"the {name} period is empty ({n} matured orders)")
        splits.append(Split(name, pd.Timestamp(ts[rows[0]]), pd.Timestamp(ts[rows[-1]]), rows))
    return splits


# --------------------------------------------------------------------------------- calibration


@dataclass
class Calibration:
    """Isotonic map raw score -> probability, stored as its breakpoints."""

    x: list[float]
    y: list[float]

    @classmethod
    def fit(cls, raw: np.ndarray, y: np.ndarray) -> Calibration:
        from sklearn.isotonic import IsotonicRegression

        iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0)
        iso.fit(raw, y)
        return cls([float(v) for v in iso.X_thresholds_], [float(v) for v in iso.y_thresholds_])

    def __call__(self, raw: np.ndarray) -> np.ndarray:
        return np.interp(raw, self.x, self.y)


# ---------------------------------------------------------------------------------- decisions


@dataclass
class Thresholds:
    """How a calibrated probability and an order value become approve / review / reject.

    * reject when declining is cheaper than approving in expectation:
      ``p * (value * fraud_loss_rate + chargeback_fee) > (1 - p) * value * false_decline_cost_rate``
    * otherwise review when the expected fraud loss of approving is at least
      ``review_min_expected_loss``: the value at which the validation period's review queue
      fills the capacity (and never below the cost of a review);
    * otherwise approve.
    """

    review_min_expected_loss: float
    decision: DecisionPolicy = field(default_factory=DecisionPolicy)

    def expected_loss(self, prob: np.ndarray, value: np.ndarray) -> np.ndarray:
        d = self.decision
        return prob * (value * d.fraud_loss_rate + d.chargeback_fee)

    def decide(self, prob: np.ndarray, value: np.ndarray) -> np.ndarray:
        d = self.decision
        value = np.nan_to_num(np.asarray(value, dtype=float), nan=0.0)
        loss_approve = self.expected_loss(prob, value)
        loss_decline = (1 - prob) * value * d.false_decline_cost_rate
        out = np.full(len(prob), "approve", dtype=object)
        review = loss_approve >= self.review_min_expected_loss
        out[review] = "review"
        out[loss_approve > loss_decline] = "reject"
        return out

    @classmethod
    def fit(cls, prob: np.ndarray, value: np.ndarray, decision: DecisionPolicy) -> Thresholds:
        value = np.nan_to_num(np.asarray(value, dtype=float), nan=0.0)
        probe = cls(math.inf, decision)
        loss = probe.expected_loss(prob, value)
        candidates = loss[probe.decide(prob, value) == "approve"]
        k = int(decision.review_capacity * len(prob))
        if k <= 0 or len(candidates) == 0:
            return cls(math.inf, decision)
        kth = np.sort(candidates)[::-1][min(k, len(candidates)) - 1]
        return cls(float(max(kth, decision.review_cost)), decision)


# ------------------------------------------------------------------------------------ reasons


def _fmt(value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "unknown"
    if isinstance(value, (float, np.floating)):
        v = float(value)
        if v.is_integer():
            return f"{int(v):,}"
        return f"{v:,.2f}" if abs(v) < 1000 else f"{v:,.0f}"
    return str(value)


#: the reason shown where fewer features than asked raised the score (a low-risk order)
NO_REASON = "No feature raised the risk score"
NO_OTHER_REASON = "No other feature raised the risk score"


def reason_text(name: str, value: object) -> str:
    """A feature and its value as a sentence a reviewer can read."""
    feat = describe([name])[name]
    text = feat.definition.rstrip(".")
    binary = feat.sql.endswith("::int)") or feat.sql.endswith("::int")
    if binary and not feat.categorical:
        return text if _fmt(value) == "1" else f"Not: {text[0].lower()}{text[1:]}"
    return f"{text}: {_fmt(value)}"


# --------------------------------------------------------------------------------------- model


@dataclass
class RiskModel:
    booster: lgb.Booster
    calibration: Calibration
    categories: dict[str, list[str]]
    thresholds: Thresholds
    drift_reference: dict = field(default_factory=dict)
    info: dict = field(default_factory=dict)

    @property
    def features(self) -> list[str]:
        return feature_names()

    def matrix(self, frame: pd.DataFrame) -> pd.DataFrame:
        return model_matrix(frame, self.categories)[0]

    def raw_score(self, frame: pd.DataFrame) -> np.ndarray:
        return self.booster.predict(self.matrix(frame), num_iteration=self.booster.best_iteration)

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        return self.calibration(self.raw_score(frame))

    def score(self, frame: pd.DataFrame, reasons: int = 3, batch: int = 50_000) -> pd.DataFrame:
        """``risk_score``, ``decision`` and the top reasons of every order in ``frame``.

        A reason is a feature whose SHAP contribution raised the order's score, the largest
        first. An order with fewer such features (a low-risk order: most contributions are
        zero or negative) gets :data:`NO_REASON` / :data:`NO_OTHER_REASON` in the remaining
        places, with no feature and no contribution, never a feature that did not raise it.
        Scored in batches: SHAP contributions are one float per feature and order.
        """
        parts = [
            self._score_batch(frame.iloc[i : i + batch], reasons)
            for i in range(0, max(len(frame), 1), batch)
        ]
        return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()

    def _score_batch(self, frame: pd.DataFrame, reasons: int) -> pd.DataFrame:
        x = self.matrix(frame)
        raw = self.booster.predict(x, num_iteration=self.booster.best_iteration)
        prob = self.calibration(raw)
        decision = self.thresholds.decide(prob, frame["order_total"].to_numpy(dtype=float))
        contrib = self.booster.predict(
            x, num_iteration=self.booster.best_iteration, pred_contrib=True
        )[:, :-1]
        top = np.argsort(-contrib, axis=1, kind="stable")[:, :reasons]
        names = np.array(self.features)
        out = pd.DataFrame(
            {
                "order_id": frame["order_id"].to_numpy(),
                "risk_score": prob.astype(float),
                "raw_score": raw.astype(float),
                "decision": decision,
            }
        )
        values = frame[self.features].to_numpy(dtype=object)
        rows = np.arange(len(frame))
        for k in range(reasons):
            cols = top[:, k]
            raised = contrib[rows, cols] > 0
            none = NO_REASON if k == 0 else NO_OTHER_REASON
            out[f"reason_{k + 1}_feature"] = np.where(raised, names[cols], None)
            out[f"reason_{k + 1}"] = [
                reason_text(names[c], values[i, c]) if up else none
                for i, c, up in zip(rows, cols, raised, strict=True)
            ]
            out[f"reason_{k + 1}_contribution"] = np.where(raised, contrib[rows, cols], np.nan)
        return out

    # -- persistence: one folder, what MLflow logs as the model's artifacts
    def save(self, path: Path) -> Path:
        path.mkdir(parents=True, exist_ok=True)
        self.booster.save_model(
            str(path / "booster.txt"), num_iteration=self.booster.best_iteration
        )
        meta = {
            "calibration": {"x": self.calibration.x, "y": self.calibration.y},
            "categories": self.categories,
            "thresholds": {
                "review_min_expected_loss": self.thresholds.review_min_expected_loss,
                "decision": self.thresholds.decision.__dict__,
            },
            "drift_reference": self.drift_reference,
            "features": self.features,
            "info": self.info,
        }
        (path / "risk_model.json").write_text(json.dumps(meta, indent=1, default=str))
        return path

    @classmethod
    def load(cls, path: Path) -> RiskModel:
        meta = json.loads((Path(path) / "risk_model.json").read_text())
        if meta["features"] != feature_names():
            missing = set(meta["features"]) ^ set(feature_names())
            raise TrainingError(
                f"the model at {path} was trained on another feature set ({len(missing)} differ): "
                "retrain it"
            )
        import lightgbm as lgb

        booster = lgb.Booster(model_file=str(Path(path) / "booster.txt"))
        th = meta["thresholds"]
        return cls(
            booster=booster,
            calibration=Calibration(**meta["calibration"]),
            categories=meta["categories"],
            thresholds=Thresholds(
                float(th["review_min_expected_loss"]), DecisionPolicy(**th["decision"])
            ),
            drift_reference=meta.get("drift_reference", {}),
            info=meta.get("info", {}),
        )


@dataclass
class TrainResult:
    model: RiskModel
    splits: list[Split]
    metrics: dict[str, float]
    test: pd.DataFrame  # the test period's rows: features, label, calibrated probability


def train(frame: pd.DataFrame, policy: RiskPolicy) -> TrainResult:
    """Train on a frame of features plus ``label`` (matured) and ``order_total``.

    Early stopping and calibration use the validation period; the test period is left
    untouched for :mod:`ml.risk.evaluate` (model vs rules vs champion).
    """
    if frame.empty:
        raise TrainingError("no matured orders to train on")
    import lightgbm as lgb

    splits = time_split(frame["ordered_at"], policy.split)
    parts = {s.name: frame.iloc[s.rows] for s in splits}
    for name, part in parts.items():
        if part["label"].sum() == 0:
            raise TrainingError(
                f"the {name} period ({len(part)} orders) holds no known fraud: "
                "the lake needs more matured history"
            )
    x_train, categories = model_matrix(parts["train"])
    x_val, _ = model_matrix(parts["validation"], categories)
    cat_cols = [f.name for f in catalogue() if f.categorical]
    dtrain = lgb.Dataset(x_train, parts["train"]["label"], categorical_feature=cat_cols)
    dval = lgb.Dataset(x_val, parts["validation"]["label"], reference=dtrain)
    booster = lgb.train(
        policy.params,
        dtrain,
        num_boost_round=policy.num_boost_round,
        valid_sets=[dval],
        valid_names=["validation"],
        callbacks=[lgb.early_stopping(policy.early_stopping_rounds, verbose=False)],
    )
    raw_val = booster.predict(x_val, num_iteration=booster.best_iteration)
    calibration = Calibration.fit(raw_val, parts["validation"]["label"].to_numpy())
    prob_val = calibration(raw_val)
    thresholds = Thresholds.fit(
        prob_val, parts["validation"]["order_total"].to_numpy(), policy.decision
    )
    model = RiskModel(booster, calibration, categories, thresholds)
    # drift reference: the top features by gain and the score, on the training period
    gain = booster.feature_importance("gain")
    top = [feature_names()[i] for i in np.argsort(-gain)[: policy.drift_features]]
    numeric_top = [n for n in top if n not in categories]
    model.drift_reference = {
        "features": {
            n: evaluation.psi_reference(x_train[n].to_numpy(dtype=float)) for n in numeric_top
        },
        "score": evaluation.psi_reference(
            calibration(booster.predict(x_train, num_iteration=booster.best_iteration))
        ),
    }
    test = parts["test"].copy()
    test["prob"] = model.predict_proba(test)
    metrics = {
        "best_iteration": float(booster.best_iteration),
        "validation_roc_auc": evaluation.roc_auc(parts["validation"]["label"], raw_val),
        "validation_pr_auc": evaluation.pr_auc(parts["validation"]["label"], raw_val),
        "review_min_expected_loss": thresholds.review_min_expected_loss,
    }
    for s in splits:
        metrics[f"{s.name}_orders"] = float(len(s.rows))
        metrics[f"{s.name}_frauds"] = float(frame["label"].iloc[s.rows].sum())
    model.info = {
        "splits": {s.name: [str(s.start), str(s.end), len(s.rows)] for s in splits},
        "best_iteration": booster.best_iteration,
    }
    return TrainResult(model, splits, metrics, test)
