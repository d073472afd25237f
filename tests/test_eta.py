"""The ETA model: point-in-time features, the model against the carrier's plan, the registry's
promotion gate, the live scorer, and the Dagster assets on a simulated world.

The fast tests run on a small synthetic network built here (shipments, legs and carrier events
in the staging views' columns, in an in-memory DuckDB); the slow ones on a world from
``ordertower simulate``, through ``ordertower materialize`` and ``dagster.materialize()``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from ml.eta.config import PolicyError, load_policy
from ml.eta.evaluate import HEADLINE, evaluate, promotion_gate, scan_bucket
from ml.eta.features import (
    FEATURES,
    Sources,
    build_features,
    catalogue_markdown,
    categorical_names,
    feature_names,
    training_examples,
    training_points,
)
from ml.eta.live import ETA_COLUMNS, EtaScorer
from ml.eta.model import EtaModel, time_split, train
from ordertower.lake import NO_AUTO_EXTENSIONS
from ordertower.settings import PROJECT_ROOT
from tests.dashboard_world import module_world

T0 = pd.Timestamp("2026-03-02", tz="UTC")  # a Monday
H = pd.Timedelta(hours=1)
SOURCES = Sources(shipments="ships", legs="legs", events="events")
#: the synthetic network is small: train on shipments a day old, test on 60
POLICY = load_policy(maturity_days=1, min_test_shipments=60)


# ------------------------------------------------------------------------ a synthetic network


def _next_at(t: pd.Timestamp, hour: int) -> pd.Timestamp:
    slot = t.normalize() + pd.Timedelta(hours=hour)
    return slot if slot >= t else slot + pd.Timedelta(days=1)


def make_network(n: int = 900, days: int = 24, seed: int = 1) -> dict[str, pd.DataFrame]:
    """Shipments from one warehouse: half go by road to a hub, then by van; vans leave at
    06:00 and arrive 1.5-10 h later. ``slowvan`` misses its round 70 % of the time (+24 h),
    road legs are sometimes late (and then miss the van), some first attempts fail (+24 h).
    Events arrive with a lag, a few days late, a few twice; a carrier's estimate is no scan."""
    rng = np.random.default_rng(seed)
    ships, legs, events = [], [], []

    def event(ref, carrier, code, at, reason=None, classifier="ACT"):
        late = rng.random() < 0.04
        received = (at + pd.Timedelta(minutes=float(rng.uniform(1, 30)))).round("s")
        received += pd.Timedelta(days=int(rng.integers(1, 3))) if late else pd.Timedelta(0)
        row = {
            "event_id": f"E{len(events):07d}",
            "carrier_id": carrier,
            "tracking_ref": ref,
            "event_code": code,
            "exception_reason": reason,
            "event_at": at,
            "partition_key": received.strftime("%Y-%m-%d"),
            "ingested_at": received,
            "is_actual": classifier == "ACT",
        }
        events.append(row)
        if rng.random() < 0.02:  # re-sent: same id, a later file
            events.append({**row, "partition_key": (received + pd.Timedelta(days=1)).strftime(
                "%Y-%m-%d"), "ingested_at": received + pd.Timedelta(days=1)})  # fmt: skip

    for i in range(n):
        sid = f"SHP-{i:06d}"
        created = (T0 + pd.Timedelta(hours=float(rng.uniform(0, days * 24)))).round("s")
        road = rng.random() < 0.5
        van = str(rng.choice(["fastvan", "slowvan"]))
        ships.append(
            {
                "shipment_id": sid,
                "order_id": f"ORD-{i:06d}",
                "warehouse_id": "WH-A",
                "service_level": "standard",
                "total_weight_kg": float(rng.uniform(0.2, 8)),
                "created_at": created,
                "promised_delivery_date": (created + pd.Timedelta(days=3)).date(),
            }
        )
        ready_plan = ready = created
        leg_no = 0
        if road:
            leg_no += 1
            ref = f"RD{i:06d}"
            dep = _next_at(created + 0.5 * H, 18)
            arr_plan = dep + 8 * H
            late_h = round(float(rng.lognormal(np.log(14), 0.5)), 2) if rng.random() < 0.25 else 0
            arr = arr_plan + late_h * H
            legs.append(_leg(sid, leg_no, "roadco", ref, "road", 500.0, dep, arr_plan))
            event(ref, "roadco", "INFO_RECEIVED", created + 10 * pd.Timedelta(minutes=1))
            event(ref, "roadco", "DEPARTED", dep)
            if late_h:
                event(ref, "roadco", "EXCEPTION", dep + 3 * H, reason="DELAY")
            event(ref, "roadco", "ARRIVED", arr)
            event(ref, "roadco", "DELIVERED", arr + H)
            ready_plan, ready = arr_plan + H, arr + H
        leg_no += 1
        ref = f"VN{i:06d}"
        dep_plan = _next_at(ready_plan + H, 6)
        dep = _next_at(ready + H, 6)
        if rng.random() < (0.7 if van == "slowvan" else 0.05):
            dep += pd.Timedelta(days=1)
        legs.append(_leg(sid, leg_no, van, ref, "last_mile", 30.0, dep_plan, dep_plan + 5.5 * H))
        event(ref, van, "INFO_RECEIVED", created + 12 * pd.Timedelta(minutes=1))
        event(ref, van, "ARRIVED", dep_plan + 9 * H, classifier="EST")  # an estimate, no scan
        event(ref, van, "IN_TRANSIT", dep - 0.75 * H)
        event(ref, van, "OUT_FOR_DELIVERY", dep)
        attempt = (dep + float(rng.uniform(1.5, 10)) * H).round("s")
        if rng.random() < 0.1:
            event(ref, van, "DELIVERY_FAILED", attempt)
            attempt += pd.Timedelta(days=1)
        if rng.random() > 0.01:  # a few are lost: never delivered
            event(ref, van, "DELIVERED", attempt)
    return {
        "ships": pd.DataFrame(ships),
        "legs": pd.DataFrame(legs),
        "events": pd.DataFrame(events).astype({"exception_reason": "string"}),
    }


def _leg(sid, leg_no, carrier, ref, mode, km, dep, arr) -> dict:
    return {
        "shipment_id": sid,
        "leg_no": leg_no,
        "carrier_id": carrier,
        "tracking_ref": ref,
        "mode": mode,
        "origin_country_code": "DE",
        "destination_country_code": "DE",
        "distance_km": km,
        "is_cross_border": False,
        "planned_departure_at": dep,
        "planned_arrival_at": arr,
    }


def connect_network(network: dict[str, pd.DataFrame]) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(config=NO_AUTO_EXTENSIONS)
    con.execute("set TimeZone = 'UTC'")
    for name, frame in network.items():
        con.register(f"{name}_df", frame)
        con.execute(f"create table {name} as select * from {name}_df")
        con.unregister(f"{name}_df")
    return con


@pytest.fixture(scope="module")
def network() -> dict[str, pd.DataFrame]:
    return make_network()


@pytest.fixture(scope="module")
def examples(network) -> pd.DataFrame:
    con = connect_network(network)
    clock = network["events"]["event_at"].max()
    return training_examples(con, clock, POLICY, sources=SOURCES)


@pytest.fixture(scope="module")
def trained(examples):
    return train(examples, POLICY)


# ----------------------------------------------------------------------------------- policy


def test_policy_loads_and_refuses_nonsense(tmp_path: Path):
    policy = load_policy()
    assert policy.split == (0.7, 0.15, 0.15) and policy.within_hours == (2.0, 24.0)
    assert policy.params["objective"] == "l1" and policy.promotion_metric == "mae_hours"
    bad = tmp_path / "policy.yaml"
    bad.write_text("split: {train: 0.9, validation: 0.2, test: 0.1}\n")
    with pytest.raises(PolicyError, match="sum to 1"):
        load_policy(bad)
    bad.write_text("evaluation: {scan_buckets: [2, 1]}\n")
    with pytest.raises(PolicyError, match="scan_buckets"):
        load_policy(bad)


def test_feature_catalogue_is_documented():
    assert len(set(feature_names())) == len(FEATURES) >= 40
    assert {"route_modes", "last_event_code", "service_level"} <= set(categorical_names())
    page = (PROJECT_ROOT / "docs" / "eta.md").read_text()
    assert catalogue_markdown() in page, "docs/eta.md: paste ml.eta.features.catalogue_markdown()"


# ------------------------------------------------------------------------- point in time


def test_examples_are_taken_before_the_delivery_and_labelled_with_it(network, examples):
    assert set(examples["point_kind"]) == {"dispatch", "scan", "between_scans"}
    per = examples.groupby("shipment_id")
    assert (per["point_kind"].apply(lambda k: (k == "dispatch").sum()) == 1).all()
    dispatch = examples[examples["point_kind"] == "dispatch"]
    assert (dispatch["as_of"] == dispatch["created_at"]).all()
    assert (dispatch["scans"] == 0).all() and (dispatch["last_event_code"] == "NONE").all()
    assert (examples["as_of"] < examples["actual_delivered_at"]).all()
    assert (examples["remaining_hours"] > 0).all()
    assert examples["known_delivered_at"].isna().all()
    # lost shipments (never delivered) do not train
    delivered = set(network["events"].loc[network["events"]["event_code"] == "DELIVERED"]
                    ["tracking_ref"].str[2:])  # fmt: skip
    assert {s[4:] for s in examples["shipment_id"]} <= delivered
    # scans so far never go down along a shipment's points
    ordered = examples.sort_values(["shipment_id", "as_of"])
    assert (ordered.groupby("shipment_id")["scans"].diff().dropna() >= 0).all()
    # an estimate is not a scan, a re-sent event counts once
    one = ordered[ordered["shipment_id"] == ordered["shipment_id"].iloc[0]]
    refs = network["legs"].loc[network["legs"]["shipment_id"] == one["shipment_id"].iloc[0]]
    ev = network["events"]
    actual = ev[ev["tracking_ref"].isin(refs["tracking_ref"]) & ev["is_actual"]]
    before = actual[actual["event_at"] < one["actual_delivered_at"].iloc[0]]
    assert one["scans"].max() <= before["event_id"].nunique()


def _points_before(examples: pd.DataFrame, cut: pd.Timestamp) -> pd.DataFrame:
    return examples.loc[examples["as_of"] <= cut, ["shipment_id", "as_of", "point_kind"]]


def test_no_leakage_changing_the_future_does_not_change_past_features(network, examples):
    cut = examples["as_of"].quantile(0.5)
    points = _points_before(examples, cut)
    query = "select shipment_id, as_of, point_kind from points_df"

    def features(net: dict[str, pd.DataFrame], pts: pd.DataFrame) -> pd.DataFrame:
        con = connect_network(net)
        con.register("points_df", pts)
        out = build_features(con, query, passthrough=("point_kind",), sources=SOURCES)
        return out.sort_values(["shipment_id", "as_of", "point_kind"]).reset_index(drop=True)

    before = features(network, points)
    assert len(before) > 3000

    rng = np.random.default_rng(5)
    ev = network["events"].copy()
    received = pd.to_datetime(ev["partition_key"]).dt.tz_localize("UTC")
    unknown = (ev["event_at"] > cut) | (received > cut.normalize())
    # what was not known at the cut-off: other codes and times, some gone, new ones added
    changed = ev.copy()
    changed.loc[unknown, "event_code"] = rng.choice(
        ["EXCEPTION", "DELIVERY_FAILED", "CUSTOMS_HOLD", "DELIVERED"], unknown.sum()
    )
    changed.loc[unknown, "event_at"] = changed.loc[unknown, "event_at"] + pd.to_timedelta(
        rng.uniform(0, 30, unknown.sum()), unit="h"
    )
    changed = changed.drop(changed.index[unknown][::5])
    extra = ev[~unknown].sample(300, random_state=1).copy()
    extra["event_id"] = [f"NEW{i}" for i in range(len(extra))]
    extra["event_at"] = cut + pd.to_timedelta(rng.uniform(0.01, 40, len(extra)), unit="h")
    extra["partition_key"] = extra["event_at"].dt.strftime("%Y-%m-%d")
    extra["event_code"] = "DELIVERED"
    # shipments created after the cut-off: another plan; and new ones
    ships, legs = network["ships"].copy(), network["legs"].copy()
    later = ships.loc[ships["created_at"] > cut, "shipment_id"]
    moved = legs["shipment_id"].isin(later)
    legs.loc[moved, "planned_arrival_at"] += pd.Timedelta(hours=7)
    new_ships = ships.head(50).assign(
        shipment_id=lambda f: "NEW-" + f["shipment_id"], created_at=cut + H
    )
    changed_net = {
        "ships": pd.concat([ships, new_ships], ignore_index=True),
        "legs": legs,
        "events": pd.concat([changed, extra], ignore_index=True),
    }
    after = features(changed_net, points)

    pd.testing.assert_frame_equal(before, after)

    # and the test can see a change: points after the cut-off do move
    later_points = examples.loc[examples["as_of"] > cut, ["shipment_id", "as_of", "point_kind"]]
    moved_before = features(network, later_points.head(2000))
    moved_after = features(changed_net, later_points.head(2000))
    assert not moved_before[["scans", "last_event_code"]].equals(
        moved_after[["scans", "last_event_code"]]
    )


def test_an_event_that_arrived_days_late_is_unknown_until_it_arrived(network):
    ev = network["events"]
    late = ev[
        ev["is_actual"]
        & (
            pd.to_datetime(ev["partition_key"]).dt.tz_localize("UTC")
            > ev["event_at"].dt.normalize()
        )
        & (pd.to_datetime(ev["partition_key"]).dt.date > (ev["event_at"] + 2 * H).dt.date)
    ].iloc[0]
    sid = network["legs"].set_index("tracking_ref").loc[late["tracking_ref"], "shipment_id"]
    con = connect_network(network)
    points = "select ?::varchar as shipment_id, ?::timestamptz as as_of"
    at = late["event_at"] + H
    query = points.replace("?::varchar", f"'{sid}'::varchar").replace(
        "?::timestamptz", f"'{at.isoformat()}'::timestamptz"
    )
    strict = build_features(con, query, sources=SOURCES)
    live = build_features(con, query, sources=SOURCES, respect_receipt=False)
    assert live["scans"].iloc[0] == strict["scans"].iloc[0] + 1


def test_training_points_query_has_its_parameters():
    sql = training_points()
    for p in ("$cutoff", "$start", "$end", "$maturity_days", "$step_hours", "$max_steps", "$keep"):
        assert p in sql
    assert "staging.stg_carriers__carrier_events" in sql


def test_training_takes_a_steady_sample_when_the_history_is_larger_than_the_cap(network, examples):
    """Over ``max_training_shipments`` the examples are those of a sample of the shipments
    (every example of each shipment kept, the same sample on every run, spread over the whole
    history); under it, all of them."""
    con = connect_network(network)
    clock = network["events"]["event_at"].max()
    everything = examples["shipment_id"].nunique()
    assert examples.attrs["sampled_share"] == 1.0
    capped = load_policy(maturity_days=1, max_training_shipments=everything // 3)
    sample = training_examples(con, clock, capped, sources=SOURCES)
    again = training_examples(con, clock, capped, sources=SOURCES)
    kept = set(sample["shipment_id"])
    assert 0.15 * everything < len(kept) < 0.55 * everything
    assert kept <= set(examples["shipment_id"]) and kept == set(again["shipment_id"])
    assert 0 < sample.attrs["sampled_share"] < 0.5
    full = examples[examples["shipment_id"].isin(kept)].reset_index(drop=True)
    assert len(sample) == len(full)  # a kept shipment keeps every one of its points
    # spread over the history: each half of the creation period keeps a share of its own
    middle = examples["created_at"].median()
    for half in (examples["created_at"] <= middle, examples["created_at"] > middle):
        ids = set(examples.loc[half, "shipment_id"])
        assert 0.1 < len(ids & kept) / len(ids) < 0.6


# ------------------------------------------------------------------------------ the model


def test_split_is_by_shipment_creation(examples):
    splits = time_split(examples, POLICY.split)
    assert [s.name for s in splits] == ["train", "validation", "test"]
    ids = [set(examples["shipment_id"].iloc[s.rows]) for s in splits]
    assert not ids[0] & ids[1] and not ids[1] & ids[2] and not ids[0] & ids[2]
    assert sum(len(s.rows) for s in splits) == len(examples)
    assert splits[0].end < splits[1].start and splits[1].end < splits[2].start


def test_the_model_beats_the_carriers_plan(trained):
    test = trained.test
    ev = evaluate(test, {"model": test["predicted_remaining_hours"].to_numpy()}, POLICY)
    head = ev.segments[HEADLINE]
    assert head["model"]["mae_hours"] < 0.8 * head["baseline"]["mae_hours"], head
    assert head["model"]["within_24h"] > head["baseline"]["within_24h"]
    assert {"dispatch", "scan_1", "scan_2", "scans", "between_scans", "all"} <= set(ev.segments)
    for seg in ev.segments.values():
        assert {"model", "baseline", "baseline_not_before_now"} <= set(seg)
        assert 0 <= seg["model"]["within_2h"] <= seg["model"]["within_24h"] <= 1
    assert (test["predicted_remaining_hours"] >= 0).all()


def test_scan_buckets_and_accuracy_are_what_they_say():
    labels = scan_bucket(pd.Series([0, 1, 2, 3, 4, 5, 6, 8, 9, 30]), (1, 2, 3, 4, 6, 9))
    assert labels.tolist() == [
        "scan_0", "scan_1", "scan_2", "scan_3", "scan_4-5", "scan_4-5", "scan_6-8", "scan_6-8",
        "scan_9+", "scan_9+",
    ]  # fmt: skip
    test = pd.DataFrame(
        {
            "shipment_id": ["a", "a", "b"],
            "created_at": pd.to_datetime(["2026-01-01"] * 3, utc=True),
            "point_kind": ["dispatch", "scan", "dispatch"],
            "scans": [0, 1, 0],
            "remaining_hours": [10.0, 5.0, 30.0],
            "planned_remaining_hours": [7.0, -1.0, 30.0],
        }
    )
    ev = evaluate(test, {"model": np.array([11.0, 4.0, 60.0])}, POLICY)
    disp = ev.segments["dispatch"]
    assert disp["model"]["mae_hours"] == pytest.approx(15.5)
    assert disp["model"]["within_2h"] == 0.5 and disp["model"]["within_24h"] == 0.5
    assert disp["baseline"]["mae_hours"] == pytest.approx(1.5)
    # the plan that is already overdue, moved to "now"
    assert ev.segments["scan_1"]["baseline"]["mae_hours"] == 6.0
    assert ev.segments["scan_1"]["baseline_not_before_now"]["mae_hours"] == 5.0


def test_the_gate_promotes_only_a_clear_improvement():
    policy = load_policy(min_improvement_hours=0.1, min_test_shipments=10)
    assert promotion_gate(5.0, None, 50, policy).promote
    assert promotion_gate(5.0, 5.2, 50, policy).promote
    keep = promotion_gate(5.0, 5.05, 50, policy)
    assert not keep.promote and "does not beat" in keep.reason
    assert not promotion_gate(4.0, 9.0, 5, policy).promote  # too few shipments to tell
    assert not promotion_gate(float("nan"), None, 50, policy).promote
    assert promotion_gate(5.0, None, 50, policy, champion_error="other features").promote


def test_a_saved_model_predicts_the_same(trained, tmp_path: Path):
    path = trained.model.save(tmp_path / "eta_model")
    again = EtaModel.load(path)
    head = trained.test.head(500)
    np.testing.assert_allclose(
        again.predict_remaining_hours(head), trained.model.predict_remaining_hours(head)
    )


# ------------------------------------------------------------------------------- live scorer


def _last_leg_delivered(network: dict[str, pd.DataFrame]) -> pd.Series:
    """Per shipment: whether its last leg has a DELIVERED event."""
    legs, ev = network["legs"], network["events"]
    last = legs.sort_values("leg_no").groupby("shipment_id")["tracking_ref"].last()
    delivered = set(ev.loc[ev["event_code"] == "DELIVERED", "tracking_ref"])
    return last.isin(delivered)


def test_live_scorer_returns_one_row_per_shipment(network, trained):
    con = connect_network(network)
    scorer = EtaScorer(trained.model, "7", sources=SOURCES)
    legs = network["legs"]
    delivered = _last_leg_delivered(network)
    two_legs = legs.groupby("shipment_id").filter(lambda f: len(f) == 2)["shipment_id"]
    # a two-leg shipment that was delivered (the network also has lost ones, tested below)
    two_leg = next(s for s in two_legs if delivered[s])
    refs = legs.loc[legs["shipment_id"] == two_leg, "tracking_ref"].tolist()  # both legs
    refs += legs["tracking_ref"].sample(8, random_state=3).tolist() + ["NO-SUCH-REF"]
    out = scorer.predict(con, refs)
    assert list(out.columns) == list(ETA_COLUMNS)
    owners = set(legs.loc[legs["tracking_ref"].isin(refs), "shipment_id"])
    assert sorted(out["shipment_id"]) == sorted(owners) and out["shipment_id"].is_unique
    assert out.loc[out["shipment_id"] == two_leg, "tracking_ref"].item() == refs[1]  # last leg
    delivered = out["remaining_hours"] == 0  # its ETA is its delivery, maybe before as_of
    assert (out["predicted_delivery_at"] >= out["as_of"])[~delivered].all()
    assert (out["remaining_hours"] >= 0).all() and (out["model_version"] == "7").all()
    assert str(out["as_of"].dt.tz) == "UTC" and str(out["predicted_delivery_at"].dt.tz) == "UTC"
    assert scorer.predict(con, []).empty

    # at a given moment only the events up to it count; once delivered the ETA is the delivery
    ev = network["events"]
    ref = legs.loc[legs["shipment_id"] == two_leg, "tracking_ref"].iloc[-1]
    delivery = ev.loc[(ev["tracking_ref"] == ref) & (ev["event_code"] == "DELIVERED"), "event_at"]
    created = network["ships"].set_index("shipment_id").loc[two_leg, "created_at"]
    early = scorer.predict(con, [ref], as_of=created + pd.Timedelta(minutes=1))
    assert early["as_of"].item() == created + pd.Timedelta(minutes=1)
    latest = scorer.predict(con, [ref])
    assert (
        latest["as_of"].item()
        == ev.loc[ev["tracking_ref"].isin(refs[:2]) & ev["is_actual"], "event_at"].max()
    )
    assert len(delivery) == 1  # chosen delivered: its ETA is the delivery, nothing remains
    assert latest["predicted_delivery_at"].item() == delivery.min()
    assert latest["remaining_hours"].item() == 0


def test_live_scorer_predicts_a_shipment_that_was_never_delivered(network, trained):
    """A lost shipment (no DELIVERED scan on its last leg) gets a prediction from its latest
    scan, never a delivery time it does not have."""
    con = connect_network(network)
    scorer = EtaScorer(trained.model, "7", sources=SOURCES)
    delivered = _last_leg_delivered(network)
    lost = delivered.index[~delivered]
    assert len(lost) >= 3  # make_network loses about 1 % of 900 shipments
    legs, ev = network["legs"], network["events"]
    for shipment in lost[:3]:
        refs = legs.loc[legs["shipment_id"] == shipment, "tracking_ref"].tolist()
        out = scorer.predict(con, refs)
        assert out["shipment_id"].tolist() == [shipment]
        scans = ev.loc[ev["tracking_ref"].isin(refs) & ev["is_actual"], "event_at"]
        assert out["as_of"].item() == scans.max()
        assert out["remaining_hours"].item() > 0
        assert out["predicted_delivery_at"].item() > out["as_of"].item()


# ------------------------------------------------------------------------ a simulated world

# the world's 21 days from 2026-08-20: the model trains on shipments five days old
TRAIN = {"maturity_days": 5}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A copy of the run's 21-day lake (tests/dashboard_world.py): the shipments, the carrier
    events and their staging views are what the ETA reads."""
    yield from module_world(tmp_path_factory, "eta_world")


def _materialize_eta(selection: list[str] | None = None, config: dict | None = None):
    """The ETA domain's assets in-process, as ``ordertower materialize`` runs them."""
    import dagster as dg

    from pipelines.defs.eta import definitions as eta
    from pipelines.defs.resources import LakeResource
    from pipelines.materialize import instance

    trains = selection is None or "ml/eta_model_candidate" in selection
    return dg.materialize(
        [*eta.defs.assets, *eta.defs.asset_checks],
        selection=selection,
        resources={"lake": LakeResource()},
        instance=instance(),
        run_config={"ops": {"ml__eta_model_candidate": {"config": config or TRAIN}}}
        if trains
        else {},
    )


@pytest.fixture(scope="module")
def eta_champion(world):
    """The ETA assets materialised once on the world (trained, evaluated, promoted, every open
    shipment's ETA written). A test that needs a champion takes this fixture, never what an
    earlier test happened to leave behind, so each slow test runs alone and in any order."""
    result = _materialize_eta()
    assert result.success
    return result


def _q(sql: str) -> pd.DataFrame:
    from ordertower import lake

    con = lake.connect(read_only=True)
    try:
        return con.execute(sql).df()
    finally:
        con.close()


@pytest.mark.slow
def test_a_young_lake_trains_nothing_and_that_is_not_a_failure(world, tmp_path, monkeypatch):
    """A cut-off two days into the world: nothing matured, so nothing is trained, registered or
    written. Its own empty MLflow store, so that no other test's champion is in the way."""
    from ml.eta import registry

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'young_mlflow.db'}")
    assert EtaScorer.load() is None  # no champion in this store
    young = _materialize_eta(config={"cutoff": "2026-08-22T00:00:00+00:00", "maturity_days": 1})
    assert young.success and not young.get_asset_materialization_events()
    assert registry.alias_version("challenger") is None
    assert registry.alias_version("champion") is None


@pytest.mark.slow
def test_the_assets_train_evaluate_promote_and_write_every_open_shipments_eta(eta_champion):
    from ml.eta import registry

    result = eta_champion
    checks = {e.asset_check_key.name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks == {"eta_evaluation_is_sound": True, "every_open_shipment_has_one_eta": True}
    champion = registry.client().get_model_version_by_alias("shipment_eta", "champion")
    assert champion.tags["promotion_decision"] == "promoted"
    assert champion.tags["lake_snapshot_id"].isdigit()
    etas = _q("select * from ml.shipment_etas")
    assert len(etas) > 50 and etas["shipment_id"].is_unique
    assert (etas["predicted_delivery_at"] >= etas["as_of"]).all()
    assert (etas["model_version"] == str(champion.version)).all()
    # re-running replaces the table, it never duplicates it
    assert _materialize_eta(["ml/shipment_etas"]).success
    again = _q("select count(*) as n, count(distinct shipment_id) as d from ml.shipment_etas")
    assert again["n"].item() == again["d"].item() == len(etas)


@pytest.mark.slow
def test_retraining_on_the_same_data_keeps_the_champion(eta_champion):
    from ml.eta import registry

    before = registry.alias_version("champion")
    assert before is not None
    assert _materialize_eta(
        ["ml/eta_model_candidate", "ml/eta_model_evaluation", "ml/eta_model_champion"]
    ).success
    challenger = registry.alias_version("challenger")
    assert challenger != before and registry.alias_version("champion") == before
    tags = registry.client().get_model_version("shipment_eta", challenger).tags
    assert tags["promotion_decision"] == "rejected" and "does not beat" in tags["promotion_reason"]


@pytest.mark.slow
def test_the_live_scorer_reads_the_lakes_staging_views(eta_champion):
    from ordertower import lake

    scorer = EtaScorer.load()
    assert scorer is not None
    con = lake.connect(read_only=True)
    try:
        refs = (
            con.execute(
                "select tracking_ref from staging.stg_tms__shipment_legs order by tracking_ref "
                "limit 40"
            )
            .df()["tracking_ref"]
            .tolist()
        )
        out = scorer.predict(con, refs)
        owners = con.execute(
            "select count(distinct shipment_id) from staging.stg_tms__shipment_legs "
            "where tracking_ref in (select unnest(?::varchar[]))",
            [refs],
        ).fetchone()[0]
    finally:
        con.close()
    assert len(out) == owners and out["shipment_id"].is_unique
    assert (out["remaining_hours"] >= 0).all()
    assert (out["predicted_delivery_at"] >= out["as_of"]).all()
    assert out["planned_delivery_at"].notna().all()
