"""The ETA model: LightGBM regression of the delay against the carrier's plan, split by time.

The target is ``delay_hours`` (delivery - planned delivery); the ETA is the plan plus the
predicted delay, never earlier than the moment of the prediction (a parcel that has not been
delivered yet cannot arrive in the past). Trees reproduce a continuous plan only in steps, but
they are good at learning when and by how much it is wrong: missed van rounds, failed attempts,
late line-hauls, customs, busy days.

An :class:`EtaModel` is everything needed to predict the same way later: the booster, the
categorical vocabularies and the feature list. It is saved as a folder (:meth:`EtaModel.save`)
that MLflow logs and registers.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ml.eta.config import EtaPolicy
from ml.eta.features import categorical_names, feature_names

if TYPE_CHECKING:  # LightGBM loads in seconds: imported where a model trains or loads
    import lightgbm as lgb


class TrainingError(RuntimeError):
    """The data cannot train a model (too few delivered shipments)."""


def model_matrix(
    frame: pd.DataFrame,
    categories: dict[str, list[str]] | None = None,
    rows: np.ndarray | None = None,
) -> tuple[pd.DataFrame, dict[str, list[str]]]:
    """The features as LightGBM reads them: numbers as floats, categoricals with a fixed
    vocabulary (learnt from the training rows when ``categories`` is None; a value outside it
    becomes missing). ``rows``: the positions to take (every row when None), taken column by
    column, so the frame is never copied whole."""

    def column(name: str) -> pd.Series:
        return frame[name] if rows is None else frame[name].iloc[rows]

    cats = categorical_names()
    if categories is None:
        categories = {
            c: sorted(str(v) for v in column(c).dropna().unique()) if c in frame else []
            for c in cats
        }
    x = pd.DataFrame(index=frame.index if rows is None else frame.index[rows])
    for name in feature_names():
        if name in categories:
            x[name] = pd.Categorical(
                column(name).astype("string").to_numpy(dtype=object), categories=categories[name]
            )
        else:
            x[name] = pd.to_numeric(column(name), errors="coerce").astype(float)
    return x, categories


@dataclass(frozen=True)
class Split:
    name: str
    start: pd.Timestamp  # the first shipment's creation
    end: pd.Timestamp  # the last shipment's creation (inclusive)
    shipments: int
    rows: np.ndarray  # positions in the frame


def time_split(frame: pd.DataFrame, fractions: tuple[float, float, float]) -> list[Split]:
    """Train | validation | test by shipment creation: every example of a shipment falls in
    the same part, and every test shipment was created after every training one. A part starts
    at its first shipment's creation time (shipments created at that very instant go with it),
    so a test period is rebuilt from the lake by time alone."""
    created = frame.groupby("shipment_id", sort=False)["created_at"].first().sort_values()
    n = len(created)
    times = created.to_numpy()
    first = [0, int(n * fractions[0]), int(n * (fractions[0] + fractions[1]))]
    bounds = [pd.Timestamp(times[i]) if i < n else None for i in first]
    at = frame["created_at"]
    splits = []
    for k, name in enumerate(("train", "validation", "test")):
        mask = at >= bounds[k] if bounds[k] is not None else at != at
        if k < 2 and bounds[k + 1] is not None:
            mask &= at < bounds[k + 1]
        rows = np.flatnonzero(mask.to_numpy())
        if len(rows) == 0:
            raise TrainingError(f"the {name} period is empty ({n} delivered shipments)")
        part = at.iloc[rows]
        splits.append(
            Split(
                name,
                pd.Timestamp(part.min()),
                pd.Timestamp(part.max()),
                frame["shipment_id"].iloc[rows].nunique(),
                rows,
            )
        )
    return splits


@dataclass
class EtaModel:
    booster: lgb.Booster
    categories: dict[str, list[str]]
    info: dict = field(default_factory=dict)

    @property
    def features(self) -> list[str]:
        return feature_names()

    def matrix(self, frame: pd.DataFrame) -> pd.DataFrame:
        return model_matrix(frame, self.categories)[0]

    def predict_delay_hours(self, frame: pd.DataFrame) -> np.ndarray:
        if frame.empty:
            return np.zeros(0)
        return self.booster.predict(self.matrix(frame), num_iteration=self.booster.best_iteration)

    def predict_remaining_hours(self, frame: pd.DataFrame) -> np.ndarray:
        """Hours from each row's ``as_of`` to its predicted delivery (0 when already delivered
        by then)."""
        if frame.empty:
            return np.zeros(0)
        planned = frame["planned_remaining_hours"].to_numpy(dtype=float)
        remaining = np.maximum(planned + self.predict_delay_hours(frame), 0.0)
        delivered = frame["known_delivered_at"].notna().to_numpy()
        return np.where(delivered, 0.0, remaining)

    # -- persistence: one folder, what MLflow logs as the model's artifacts
    def save(self, path: Path) -> Path:
        path.mkdir(parents=True, exist_ok=True)
        self.booster.save_model(
            str(path / "booster.txt"), num_iteration=self.booster.best_iteration
        )
        meta = {"categories": self.categories, "features": self.features, "info": self.info}
        (path / "eta_model.json").write_text(json.dumps(meta, indent=1, default=str))
        return path

    @classmethod
    def load(cls, path: Path) -> EtaModel:
        meta = json.loads((Path(path) / "eta_model.json").read_text())
        if meta["features"] != feature_names():
            differ = set(meta["features"]) ^ set(feature_names())
            raise TrainingError(
                f"the model at {path} was trained on another feature set ({len(differ)} differ): "
                "retrain it"
            )
        import lightgbm as lgb

        booster = lgb.Booster(model_file=str(Path(path) / "booster.txt"))
        return cls(booster=booster, categories=meta["categories"], info=meta.get("info", {}))


@dataclass
class TrainResult:
    model: EtaModel
    splits: list[Split]
    metrics: dict[str, float]
    test: pd.DataFrame  # the test period's examples: features, targets, predicted remaining hours


def train(frame: pd.DataFrame, policy: EtaPolicy) -> TrainResult:
    """Train on :func:`ml.eta.features.training_examples` (early stopping on the validation
    period); the test period is left for :mod:`ml.eta.evaluate`."""
    if frame.empty:
        raise TrainingError("no delivered shipments to train on")
    import lightgbm as lgb

    splits = time_split(frame, policy.split)
    train_rows, val_rows, test_rows = (s.rows for s in splits)
    # the training rows go straight from the frame to LightGBM's binned dataset: no copy of
    # the frame's training part, and the float matrix is freed once LightGBM has binned it
    # (the peak memory of a 1M-order world's training: docs/eta.md)
    x_train, categories = model_matrix(frame, rows=train_rows)
    target = frame["delay_hours"].to_numpy(dtype=float)
    # built with the training params, as lgb.train would (binning and pre-filtering need them)
    dtrain = lgb.Dataset(
        x_train,
        target[train_rows],
        categorical_feature=list(categories),
        params=dict(policy.params),
    )
    started = time.perf_counter()  # binning and boosting, as when lgb.train built the dataset
    dtrain.construct()
    del x_train
    val = frame.iloc[val_rows]
    dval = lgb.Dataset(
        model_matrix(val, categories)[0],
        target[val_rows],
        reference=dtrain,
        params=dict(policy.params),
    )
    booster = lgb.train(
        policy.params,
        dtrain,
        num_boost_round=policy.num_boost_round,
        valid_sets=[dval],
        valid_names=["validation"],
        callbacks=[lgb.early_stopping(policy.early_stopping_rounds, verbose=False)],
    )
    train_seconds = time.perf_counter() - started
    model = EtaModel(booster, categories)
    val_error = np.abs(model.predict_remaining_hours(val) - val["remaining_hours"].to_numpy())
    test = frame.iloc[test_rows].copy()
    test["predicted_remaining_hours"] = model.predict_remaining_hours(test)
    metrics = {
        "best_iteration": float(booster.best_iteration),
        "train_seconds": train_seconds,
        "validation_mae_hours": float(val_error.mean()),
    }
    for s in splits:
        metrics[f"{s.name}_shipments"] = float(s.shipments)
        metrics[f"{s.name}_examples"] = float(len(s.rows))
    model.info = {
        "splits": {s.name: [str(s.start), str(s.end), s.shipments, len(s.rows)] for s in splits},
        "best_iteration": booster.best_iteration,
        "target": "delay_hours",
    }
    return TrainResult(model, splits, metrics, test)
