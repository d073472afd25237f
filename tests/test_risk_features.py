"""Risk features: point-in-time correctness (no leakage), windowed builds, the catalogue."""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd

from ml.risk import features as F
from ml.risk.features import build_features, catalogue, catalogue_markdown, feature_names
from ordertower.lake import NO_AUTO_EXTENSIONS
from ordertower.settings import PROJECT_ROOT
from tests.risk_factory import make_facts


def _con(facts: pd.DataFrame, verdicts: pd.DataFrame) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(config=NO_AUTO_EXTENSIONS)
    con.register("facts_df", facts)
    con.register("verdicts_df", verdicts)
    con.execute("create table facts as select * from facts_df")
    con.execute("create table verdicts as select * from verdicts_df")
    return con


def _assert_same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    a = a.set_index("order_id").sort_index()
    b = b.set_index("order_id").loc[a.index]
    for col in feature_names():
        x, y = a[col], b[col]
        if F.describe([col])[col].categorical:
            assert x.fillna("<na>").tolist() == y.fillna("<na>").tolist(), col
        else:
            np.testing.assert_allclose(
                x.to_numpy(dtype=float),
                y.to_numpy(dtype=float),
                rtol=1e-6,
                equal_nan=True,
                err_msg=col,
            )


def test_catalogue_has_at_least_300_unique_documented_features():
    cat = catalogue()
    names = [f.name for f in cat]
    assert len(names) >= 300
    assert len(set(names)) == len(names)
    assert all(f.definition and f.family for f in cat)
    windows = {f.window for f in cat if f.entity != "order"}
    assert {"1h", "24h", "7d", "30d"} <= windows
    assert {f.entity for f in cat} >= {"customer", "device", "ip", "card", "ship_address", "order"}


def test_feature_catalogue_page_is_generated_from_the_code():
    page = PROJECT_ROOT / "docs" / "risk_features.md"
    assert page.read_text() == catalogue_markdown(), (
        "docs/risk_features.md is stale: run `ordertower risk catalogue`"
    )


def test_no_leakage_changing_the_future_does_not_change_past_features():
    facts, verdicts, _ = make_facts(n=2500, days=30, seed=3)
    before = build_features(_con(facts, verdicts), "facts", "verdicts")
    cut = facts["ordered_at"].quantile(0.5)

    future = facts["ordered_at"] > cut
    changed = facts.copy()
    rng = np.random.default_rng(9)
    # later orders: other amounts, re-used devices / cards / customers of earlier orders
    changed.loc[future, "order_total"] = changed.loc[future, "order_total"] * 3 + 100
    donors = changed.loc[~future].sample(future.sum(), replace=True, random_state=1)
    for col in ("customer_key", "device_key", "card_key", "ip_key", "ship_address_key"):
        changed.loc[future, col] = donors[col].to_numpy()
    # extra orders after the cut-off, and some later ones deleted
    extra = changed.loc[~future].sample(300, random_state=2).copy()
    extra["order_id"] = [f"NEW-{i}" for i in range(len(extra))]
    extra["ordered_at"] = cut + pd.to_timedelta(rng.uniform(1, 86400 * 5, len(extra)), unit="s")
    changed = pd.concat([changed, extra]).drop(changed.index[future][::7])
    # fraud verdicts that arrive after the cut-off, about earlier orders too
    late = pd.DataFrame(
        {
            "order_id": changed.loc[changed["ordered_at"] <= cut, "order_id"].sample(
                200, random_state=3
            ),
            "is_fraud": True,
            "fraud_known_at": cut + pd.Timedelta(seconds=1),
        }
    )
    changed_verdicts = pd.concat(
        [verdicts[verdicts["fraud_known_at"] <= cut], late], ignore_index=True
    ).drop_duplicates("order_id")

    after = build_features(_con(changed, changed_verdicts), "facts", "verdicts")
    past = before[before["ordered_at"] <= cut]
    assert len(past) > 1000
    _assert_same(past, after[after["order_id"].isin(past["order_id"])])

    # and the test can see a change: features after the cut-off did move
    later = before[before["ordered_at"] > cut]["order_id"]
    b = before.set_index("order_id").loc[later.iloc[:200]]
    a = after.set_index("order_id").reindex(later.iloc[:200])
    assert not np.allclose(
        b["customer__amount_sum__30d"].to_numpy(dtype=float),
        a["customer__amount_sum__30d"].to_numpy(dtype=float),
        equal_nan=True,
    )


def test_a_day_built_alone_equals_the_full_build():
    facts, verdicts, _ = make_facts(n=2500, days=30, seed=4)
    con = _con(facts, verdicts)
    full = build_features(con, "facts", "verdicts")
    day = pd.Timestamp("2026-03-20", tz="UTC")
    alone = build_features(con, "facts", "verdicts", start=day, end=day + pd.Timedelta(days=1))
    assert len(alone) > 50
    assert alone["ordered_at"].between(day, day + pd.Timedelta(days=1)).all()
    _assert_same(alone, full[full["order_id"].isin(alone["order_id"])])


def test_fraud_known_later_is_not_counted_until_it_is_known():
    facts, _, _ = make_facts(n=400, days=10, seed=5)
    facts = facts.sort_values("ordered_at", ignore_index=True)
    first = facts.iloc[0]
    # the first order's device is used again an hour later (constructed, not left to the seed)
    again = facts.iloc[1:].loc[
        lambda f: f["ordered_at"] > first["ordered_at"] + pd.Timedelta(hours=1)
    ]
    facts.loc[again.index[0], "device_key"] = first["device_key"]
    same_device = facts[facts["device_key"] == first["device_key"]].sort_values("ordered_at")
    assert len(same_device) >= 2
    known_at = same_device["ordered_at"].iloc[1]
    verdicts = pd.DataFrame(
        {"order_id": [first["order_id"]], "is_fraud": [True], "fraud_known_at": [known_at]}
    )
    feats = build_features(_con(facts, verdicts), "facts", "verdicts").set_index("order_id")
    counts = feats.loc[same_device["order_id"], "device__known_fraud__90d"].to_numpy()
    assert counts[0] == 0  # the fraud was not known when the first order was placed
    assert counts[1] == 1  # known at the second order's instant


def test_no_orders_give_an_empty_frame_with_typed_keys():
    """No facts: an empty frame whose keys keep their types, so it merges with labels on
    ``order_id`` (it once had float32 keys, and the merge with text ids raised)."""
    facts, verdicts, _ = make_facts(n=50, days=2, seed=1)
    feats = build_features(_con(facts.head(0), verdicts.head(0)), "facts", "verdicts")
    assert feats.empty and list(feats.columns) == ["order_id", "ordered_at", *feature_names()]
    assert feats["order_id"].dtype == object and str(feats["ordered_at"].dtype).endswith("UTC]")
    labels = pd.DataFrame({"order_id": ["ORD-1"], "label": [1]})
    assert feats.merge(labels, on="order_id", validate="one_to_one").empty


def test_the_linear_build_equals_the_reference_pairs():
    """The window computation (ml/risk/windows.py) gives every feature of the reference
    definition (each order joined to its entity's orders of 90 days), on a world with the cases
    where they could part: a hub entity, orders at the same instant, orders exactly one window
    apart, missing keys and amounts, identical amounts (no spread), a partial build."""
    facts, verdicts, _ = make_facts(n=2500, days=60, seed=8)
    facts = facts.sort_values("ordered_at", ignore_index=True)
    rng = np.random.default_rng(8)
    hub = rng.choice(len(facts), 400, replace=False)
    facts.loc[hub, "ip_network_key"] = "hub-network"  # a network shared by 400 orders
    facts.loc[hub[:150], "device_key"] = "hub-device"
    twins = facts.sample(60, random_state=1).copy()  # the same instant, the same customer
    twins["order_id"] = [f"TWIN-{i}" for i in range(len(twins))]
    edges = facts.sample(80, random_state=2).copy()  # exactly 1 h / 24 h / 7 d / 30 d later
    edges["order_id"] = [f"EDGE-{i}" for i in range(len(edges))]
    edges["ordered_at"] += pd.to_timedelta(
        rng.choice(["1h", "24h", "7D", "30D"], len(edges)).tolist()
    )
    same = facts.sample(40, random_state=3).copy()  # one card, one amount: no spread
    same["order_id"] = [f"SAME-{i}" for i in range(len(same))]
    same["card_key"], same["order_total"] = "same-card", 42.5
    facts = pd.concat([facts, twins, edges, same], ignore_index=True)
    facts.loc[facts.sample(100, random_state=4).index, "card_key"] = None
    facts.loc[facts.sample(50, random_state=5).index, "order_total"] = None
    con = _con(facts, verdicts)
    _assert_same(
        build_features(con, "facts", "verdicts"),
        build_features(con, "facts", "verdicts", pairs=True),
    )
    day = pd.Timestamp(facts["ordered_at"].quantile(0.7)).normalize()
    part = {"start": day, "end": day + pd.Timedelta(days=3)}
    _assert_same(
        build_features(con, "facts", "verdicts", **part),
        build_features(con, "facts", "verdicts", pairs=True, **part),
    )
