"""The ETA policy (``policy.yaml``): examples, split, model, evaluation, promotion."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

POLICY_PATH = Path(__file__).with_name("policy.yaml")
#: the model's name in the MLflow registry
MODEL_NAME = "shipment_eta"


class PolicyError(ValueError):
    """The policy file is invalid (the message says which key and why)."""


@dataclass(frozen=True)
class EtaPolicy:
    maturity_days: int = 14
    between_scans_hours: float = 12.0
    max_between_scans: int = 40
    #: train on at most this many shipments, a sample spread evenly over the history (0: all)
    max_training_shipments: int = 0
    split: tuple[float, float, float] = (0.7, 0.15, 0.15)
    num_boost_round: int = 3000
    early_stopping_rounds: int = 100
    params: dict[str, Any] = field(default_factory=dict)
    within_hours: tuple[float, ...] = (2.0, 24.0)
    scan_buckets: tuple[int, ...] = (1, 2, 3, 4, 6, 9)
    open_within_days: int = 60
    promotion_metric: str = "mae_hours"
    min_improvement_hours: float = 0.05
    min_test_shipments: int = 200

    def flat(self) -> dict[str, Any]:
        """Everything as flat key -> value (what MLflow logs as params)."""
        out = {
            "maturity_days": self.maturity_days,
            "between_scans_hours": self.between_scans_hours,
            "max_between_scans": self.max_between_scans,
            "max_training_shipments": self.max_training_shipments,
            "split": "/".join(str(s) for s in self.split),
            "num_boost_round": self.num_boost_round,
            "early_stopping_rounds": self.early_stopping_rounds,
            "within_hours": ",".join(str(h) for h in self.within_hours),
            "open_within_days": self.open_within_days,
            "promotion_metric": self.promotion_metric,
            "min_improvement_hours": self.min_improvement_hours,
            "min_test_shipments": self.min_test_shipments,
        }
        out.update({f"lgbm_{k}": v for k, v in self.params.items()})
        return out


def load_policy(path: Path | None = None, **overrides: Any) -> EtaPolicy:
    path = path or POLICY_PATH
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise PolicyError(f"cannot read the ETA policy {path}: {exc}") from exc
    examples = raw.get("examples", {})
    split = raw.get("split", {})
    fractions = (split.get("train", 0.7), split.get("validation", 0.15), split.get("test", 0.15))
    if any(f <= 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-6:
        raise PolicyError(f"{path}: split fractions must be positive and sum to 1, got {fractions}")
    model = raw.get("model", {})
    evaluation = raw.get("evaluation", {})
    promotion = raw.get("promotion", {})
    buckets = tuple(int(b) for b in evaluation.get("scan_buckets", (1, 2, 3, 4, 6, 9)))
    if not buckets or buckets[0] != 1 or list(buckets) != sorted(set(buckets)):
        raise PolicyError(
            f"{path}: evaluation.scan_buckets must rise strictly from 1, got {buckets}"
        )
    metric = promotion.get("metric", "mae_hours")
    if metric != "mae_hours":
        raise PolicyError(f"{path}: promotion.metric must be mae_hours, got {metric!r}")
    policy = EtaPolicy(
        maturity_days=int(examples.get("maturity_days", 14)),
        between_scans_hours=float(examples.get("between_scans_hours", 12)),
        max_between_scans=int(examples.get("max_between_scans", 40)),
        max_training_shipments=int(examples.get("max_training_shipments", 0)),
        split=fractions,
        num_boost_round=int(model.get("num_boost_round", 3000)),
        early_stopping_rounds=int(model.get("early_stopping_rounds", 100)),
        params=dict(model.get("params", {})),
        within_hours=tuple(float(h) for h in evaluation.get("within_hours", (2, 24))),
        scan_buckets=buckets,
        open_within_days=int(raw.get("etas", {}).get("open_within_days", 60)),
        promotion_metric=metric,
        min_improvement_hours=float(promotion.get("min_improvement_hours", 0.05)),
        min_test_shipments=int(promotion.get("min_test_shipments", 200)),
    )
    if policy.maturity_days < 0 or policy.between_scans_hours < 0:
        raise PolicyError(f"{path}: maturity_days and between_scans_hours cannot be negative")
    if policy.max_training_shipments < 0:
        raise PolicyError(f"{path}: max_training_shipments cannot be negative (0: all)")
    if overrides:
        policy = EtaPolicy(**{**policy.__dict__, **overrides})
    return policy
