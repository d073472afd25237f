"""The risk model end to end on a simulated world, through Dagster as `make demo` runs it.

simulate -> ingest -> dbt -> features -> train -> evaluate (blocking check) -> promote -> score
-> risk marts; then an analyst's decision, a re-scored day and a retraining that must not
replace the champion with an equal model.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ordertower import lake
from pipelines.cli import main

pytestmark = pytest.mark.slow

# 90 days so that 30 days of orders have matured labels (60 days) when the world ends; 30k
# orders (half the demo's) still leave 36 known frauds in the test period (the gate needs 20)
WORLD = ["--orders", "30000", "--days", "90", "--seed", "11"]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    home = tmp_path_factory.mktemp("risk_world")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ORDERTOWER_HOME", str(home))
        for var in (
            "ORDERTOWER_CATALOG",
            "ORDERTOWER_CATALOG_DSN",
            "ORDERTOWER_DATA_PATH",
            "DAGSTER_HOME",
            "MLFLOW_TRACKING_URI",
        ):
            mp.delenv(var, raising=False)
        assert main(["simulate", *WORLD]) == 0
        # the risk assets, everything upstream of them and of the risk marts, and the marts:
        # not the dispatch plans, the ETA model, the inventory, timeline, exception and KPI
        # marts (tests/test_marts.py runs the whole graph, tests/test_eta.py the ETA model;
        # on 90 days here they would add minutes to CI and nothing to what this module tests),
        # and without the dbt data tests (tests/test_marts.py runs them)
        select = "+group:risk+ or +key:marts/fct_order_risk or +key:marts/fct_risk_review_queue"
        assert main(["materialize", "--select", select, "--no-dbt-tests"]) == 0
        yield home


def _q(sql: str, params: list | None = None) -> pd.DataFrame:
    con = lake.connect(read_only=True)
    try:
        return con.execute(sql, params or []).df()
    finally:
        con.close()


def _champion_report() -> dict:
    from ml.risk import registry

    c = registry.client()
    version = c.get_model_version_by_alias("order_risk", "champion")
    path = c.download_artifacts(version.run_id, "evaluation/report.json")
    return json.loads(Path(path).read_text())


def test_a_champion_is_trained_registered_and_promoted(world):
    from ml.risk import registry

    c = registry.client()
    champion = c.get_model_version_by_alias("order_risk", "champion")
    assert champion.tags["promotion_decision"] == "promoted"
    assert champion.tags["lake_snapshot_id"].isdigit()
    run = c.get_run(champion.run_id)
    assert int(run.data.params["feature_count"]) >= 300
    artifacts = {a.path for a in c.list_artifacts(champion.run_id)}
    assert {
        "plots",
        "plots_pr",
        "plots_calibration",
        "plots_shap",
        "features",
        "evaluation",
    } <= artifacts


def test_model_beats_the_rules_on_every_metric_and_holds_fewer_good_orders(world):
    report = _champion_report()["model_vs_rules"]
    assert report["frauds"] >= 20
    assert all(report["model_beats_rules"].values()), report["model_beats_rules"]
    assert report["at_equal_recall"]["a_fewer_legit_intercepted"] >= 0.41


def test_every_order_is_scored_and_the_review_queue_has_readable_reasons(world):
    counts = _q(
        "select (select count(*) from staging.stg_oms__orders) as orders, "
        "(select count(*) from marts.fct_order_risk) as scored, "
        "(select count(distinct order_id) from marts.fct_order_risk) as distinct_scored"
    ).iloc[0]
    assert counts["scored"] == counts["orders"] == counts["distinct_scored"]
    queue = _q("select * from marts.fct_risk_review_queue order by queue_position")
    assert len(queue) > 0
    assert queue["expected_loss"].is_monotonic_decreasing
    _assert_reasons_are_the_top_shap_contributions(queue["order_id"].head(200).tolist())


def _assert_reasons_are_the_top_shap_contributions(order_ids: list[str]) -> None:
    """The queue's reasons are the champion's three largest positive TreeSHAP contributions of
    each order, in order and distinct, recomputed here from the stored features with LightGBM's
    ``pred_contrib`` (not through RiskModel.score)."""
    from ml.risk import registry, store
    from ml.risk.features import feature_names
    from ml.risk.model import reason_text

    _, model = registry.champion()
    scores = _q(
        "select s.*, q.reason_1 as queue_reason_1, q.reason_2 as queue_reason_2, "
        "q.reason_3 as queue_reason_3 from ml.order_risk_scores s "
        "join marts.fct_risk_review_queue q using (order_id) "
        "where order_id in (select unnest(?::varchar[])) order by order_id",
        [order_ids],
    )
    assert len(scores) == len(order_ids)
    con = lake.connect(read_only=True)
    try:
        feats = con.execute(
            f"select * from {store.FEATURES} where order_id in (select unnest(?::varchar[])) "
            "order by order_id",
            [order_ids],
        ).df()
    finally:
        con.close()
    assert feats["order_id"].tolist() == scores["order_id"].tolist()
    contrib = model.booster.predict(
        model.matrix(feats), num_iteration=model.booster.best_iteration, pred_contrib=True
    )[:, :-1]
    names = feature_names()
    for row in range(len(feats)):
        order = np.argsort(-contrib[row], kind="stable")[:3]
        assert contrib[row, order[2]] > 0  # a held order has three features that raised it
        expected = [names[i] for i in order]
        shown = [scores.at[row, f"reason_{k}_feature"] for k in (1, 2, 3)]
        assert shown == expected and len(set(shown)) == 3
        for k, i in enumerate(order, start=1):
            text = reason_text(names[i], feats.at[row, names[i]])
            assert scores.at[row, f"reason_{k}"] == scores.at[row, f"queue_reason_{k}"] == text
            assert scores.at[row, f"reason_{k}_contribution"] == pytest.approx(contrib[row, i])


def test_an_analyst_decision_is_recorded_and_becomes_a_label(world, capsys):
    order_id = _q("select order_id from marts.fct_risk_review_queue limit 1").iloc[0, 0]
    reviewer = "reviewer@demo.ordertower.example"
    assert main(["risk", "decide", order_id, "reject", "--as", reviewer, "--note", "ring"]) == 0
    assert main(["risk", "decide", "ORD-NOPE", "approve", "--as", reviewer]) == 1
    assert "has no risk score" in capsys.readouterr().err
    assert main(["risk", "decide", order_id, "reject", "--as", "  "]) == 1
    assert main(["risk", "decide", order_id, "approve", "--as", reviewer]) == 1  # decided once
    assert "already decided" in capsys.readouterr().err
    # what the decision changes, with the data tests on it (buildable: not those on models
    # this world did not build, like a relationship to dim_customer)
    decided = ["-s", "stg_ops__risk_review_decisions+", "--indirect-selection", "buildable"]
    assert main(["dbt", "build", *decided]) == 0
    row = _q("select * from marts.fct_order_risk where order_id = ?", [order_id]).iloc[0]
    assert row["review_status"] == "rejected" and row["reviewed_by"] == reviewer
    assert row["final_decision"] == "reject" and pd.notna(row["reviewed_at"])
    label = _q("select * from intermediate.int_order_fraud_labels where order_id = ?", [order_id])
    assert label.iloc[0]["is_fraud"] and label.iloc[0]["label_source"] in (
        "analyst_reject", "confirmed_fraud", "fraud_chargeback"
    )  # fmt: skip
    assert order_id not in set(_q("select order_id from marts.fct_risk_review_queue")["order_id"])


def test_rescoring_a_day_replaces_it(world):
    day = _q("select max(partition_key) as d from ml.order_risk_scores").iloc[0, 0]
    before = _q("select count(*) as n from ml.order_risk_scores").iloc[0, 0]
    assert main(["materialize", "--select", "key:ml/order_risk_scores", "--partition", day]) == 0
    after = _q(
        "select count(*) as n, count(distinct order_id) as d from ml.order_risk_scores"
    ).iloc[0]
    assert after["n"] == before == after["d"]


def test_features_stored_in_chunks_equal_one_pass(world):
    """The asset stores the features in FEATURE_CHUNK_DAYS windows (bounded memory); each
    window reads its own history, so the stored features are those of one pass over the days
    (here: the ten days across the first chunk boundary of the backfill)."""
    from ml.risk import store
    from ml.risk.features import build_features

    con = lake.connect(read_only=True)
    try:
        first = pd.Timestamp(
            con.execute(f"select min(ordered_at) from {store.FEATURES}").fetchone()[0]
        )
        start = first.normalize() + pd.Timedelta(days=store.FEATURE_CHUNK_DAYS - 5)
        end = start + pd.Timedelta(days=10)  # across the first chunk boundary
        one_pass = build_features(con, store.FACTS, store.VERDICTS, start=start, end=end)
        stored = store.read_features(con, start, end)
    finally:
        con.close()
    assert len(one_pass) > 1000
    columns = list(one_pass.columns)
    pd.testing.assert_frame_equal(
        stored[columns].sort_values("order_id").reset_index(drop=True),
        one_pass.sort_values("order_id").reset_index(drop=True),
        check_dtype=False,
    )


def test_retraining_on_the_same_data_does_not_replace_the_champion(world):
    from ml.risk import registry

    before = registry.alias_version("champion")
    assert main(["materialize", "--select", "key:ml/risk_model_candidate+"]) == 0
    challenger = registry.alias_version("challenger")
    assert challenger != before
    assert registry.alias_version("champion") == before
    tags = registry.client().get_model_version("order_risk", challenger).tags
    assert tags["promotion_decision"] == "rejected"
    assert "does not beat" in tags["promotion_reason"]
