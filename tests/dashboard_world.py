"""A small world with every mart the dashboards read, for their AppTests and browser test.

simulate -> materialise everything (lake, ETA model, dispatch plans and van rounds) -> the live
path's tables from the real stream code (carrier events through :class:`StreamLander` with the
ETA scorer, the alert detector and the CRM outbox) -> risk scores -> the risk, ETA and tracking
marts. A 21-day world has no matured fraud labels, so the risk model that scores it is trained
(the real features, LightGBM, calibration and SHAP reasons) on the synthetic labelled facts of
``tests/risk_factory.py``; the scores, decisions and reasons are then the model's own.
"""

from __future__ import annotations

import pandas as pd

from ml.risk import store
from ml.risk.config import load_policy
from ml.risk.features import build_features
from ml.risk.model import matured_labels, train
from ml.risk.pipeline import score_window
from tests.risk_factory import make_facts

WORLD = ["--orders", "3000", "--days", "21", "--seed", "5"]
FACTORY_POLICY = dict(
    maturity_days=5, num_boost_round=300, early_stopping_rounds=30, min_test_frauds=5
)


def factory_model():
    """A risk model trained on labelled synthetic facts (same feature set as the lake's)."""
    import duckdb

    policy = load_policy(**FACTORY_POLICY)
    facts, verdicts, _ = make_facts(n=6000, days=60, seed=11)
    con = duckdb.connect()
    con.register("facts", facts)
    con.register("verdicts", verdicts)
    feats = build_features(con, "facts", "verdicts")
    labels = matured_labels(feats, verdicts, facts["ordered_at"].max(), policy.maturity_days)
    con.close()
    return train(feats.merge(labels[["order_id", "label"]], on="order_id"), policy).model


def score_world(con) -> pd.DataFrame:
    """Features of every order in the lake, scored by :func:`factory_model` into
    ml.order_risk_scores (what the order_risk_scores asset writes)."""
    clock = store.lake_clock(con)
    first = pd.Timestamp(con.execute(f"select min(ordered_at) from {store.FACTS}").fetchone()[0])
    end = clock + pd.Timedelta(seconds=1)
    store.write_features(con, first, end)
    return score_window(con, factory_model(), "factory-1", first, end)


#: What is rebuilt after scoring: the risk marts with their staging view (the view was the empty
#: placeholder while ml.order_risk_scores did not exist).
RISK_MARTS = (
    "key:staging/stg_ml__order_risk_scores or key:marts/fct_order_risk "
    "or key:marts/fct_risk_review_queue"
)


def build_world() -> None:
    """Simulate and materialise the world in the current ``ORDERTOWER_HOME`` (see module doc)."""
    from ordertower.lake import connect
    from pipelines.cli import main

    assert main(["simulate", *WORLD]) == 0
    assert main(["materialize"]) == 0
    # the live path when a broker is reachable (CI has one): events, ETAs, alerts, CRM messages
    assert main(["live-demo", "--if-broker", "--rate", "2000"]) == 0
    con = connect()
    try:
        score_world(con)
    finally:
        con.close()
    assert main(["materialize", "--select", RISK_MARTS]) == 0
