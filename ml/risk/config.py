"""The risk policy (``policy.yaml``): label maturity, split, model, decision costs, promotion."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

POLICY_PATH = Path(__file__).with_name("policy.yaml")
RULES_PATH = Path(__file__).with_name("rules.yaml")
#: the model's name in the MLflow registry
MODEL_NAME = "order_risk"


class PolicyError(ValueError):
    """The policy file is invalid (the message says which key and why)."""


@dataclass(frozen=True)
class DecisionPolicy:
    review_capacity: float = 0.02
    fraud_loss_rate: float = 1.0
    chargeback_fee: float = 15.0
    false_decline_cost_rate: float = 0.35
    review_cost: float = 3.0


@dataclass(frozen=True)
class RiskPolicy:
    maturity_days: int = 60
    split: tuple[float, float, float] = (0.6, 0.2, 0.2)
    num_boost_round: int = 2000
    early_stopping_rounds: int = 100
    params: dict[str, Any] = field(default_factory=dict)
    decision: DecisionPolicy = field(default_factory=DecisionPolicy)
    promotion_metric: str = "pr_auc"
    min_improvement: float = 0.002
    min_test_frauds: int = 20
    drift_features: int = 10
    drift_warn_psi: float = 0.25

    def flat(self) -> dict[str, Any]:
        """Everything as flat key -> value (what MLflow logs as params)."""
        out = {
            "maturity_days": self.maturity_days,
            "split": "/".join(str(s) for s in self.split),
            "num_boost_round": self.num_boost_round,
            "early_stopping_rounds": self.early_stopping_rounds,
            "promotion_metric": self.promotion_metric,
            "min_improvement": self.min_improvement,
        }
        out.update({f"lgbm_{k}": v for k, v in self.params.items()})
        out.update({f"decision_{k}": v for k, v in self.decision.__dict__.items()})
        return out


def load_policy(path: Path | None = None, **overrides: Any) -> RiskPolicy:
    path = path or POLICY_PATH
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise PolicyError(f"cannot read the risk policy {path}: {exc}") from exc
    split = raw.get("split", {})
    fractions = (split.get("train", 0.6), split.get("validation", 0.2), split.get("test", 0.2))
    if any(f <= 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-6:
        raise PolicyError(f"{path}: split fractions must be positive and sum to 1, got {fractions}")
    decision = DecisionPolicy(**raw.get("decision", {}))
    if not 0 < decision.review_capacity < 1:
        raise PolicyError(f"{path}: decision.review_capacity must be a share in (0, 1)")
    model = raw.get("model", {})
    promotion = raw.get("promotion", {})
    drift = raw.get("drift", {})
    policy = RiskPolicy(
        maturity_days=int(raw.get("labels", {}).get("maturity_days", 60)),
        split=fractions,
        num_boost_round=int(model.get("num_boost_round", 2000)),
        early_stopping_rounds=int(model.get("early_stopping_rounds", 100)),
        params=dict(model.get("params", {})),
        decision=decision,
        promotion_metric=promotion.get("metric", "pr_auc"),
        min_improvement=float(promotion.get("min_improvement", 0.002)),
        min_test_frauds=int(promotion.get("min_test_frauds", 20)),
        drift_features=int(drift.get("features", 10)),
        drift_warn_psi=float(drift.get("warn_psi", 0.25)),
    )
    if overrides:
        policy = RiskPolicy(**{**policy.__dict__, **overrides})
    return policy
