"""A small world with every mart the dashboards read, for their AppTests and browser test.

simulate -> materialise the lake -> risk scores -> the last day's carrier events through the
stream's landing code with its live hook (alerts, CRM outbox) -> dispatch plans and van rounds
of the last three waves -> the risk, dispatch, ETA and tracking marts. A 21-day world has no matured fraud labels, so the risk model that scores it is trained
(the real features, LightGBM, calibration and SHAP reasons) on the synthetic labelled facts of
``tests/risk_factory.py``; the scores, decisions and reasons are then the model's own.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import pytest

from ml.risk import store
from ml.risk.config import load_policy
from ml.risk.features import build_features
from ml.risk.model import matured_labels, train
from ml.risk.pipeline import score_window
from tests.risk_factory import make_facts
from tests.shared_worlds import at_home, copy_home, shared_home

WORLD = ["--orders", "3000", "--days", "21", "--seed", "5"]
FACTORY_POLICY = dict(
    maturity_days=5, num_boost_round=300, early_stopping_rounds=30, min_test_frauds=5
)


def factory_model():
    """A risk model trained on labelled synthetic facts (same feature set as the lake's)."""
    import duckdb

    from ordertower.lake import NO_AUTO_EXTENSIONS

    policy = load_policy(**FACTORY_POLICY)
    facts, verdicts, _ = make_facts(n=6000, days=60, seed=11)
    con = duckdb.connect(config=NO_AUTO_EXTENSIONS)
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


#: The models of the ML assets the world builds its own way (risk scored after the lake, three
#: dispatch waves): left out of the first materialisation, built after their inputs.
DISPATCH_MARTS = (
    'key:"marts/fct_dispatch*" or key:"marts/fct_route*" '
    'or key:"staging/stg_ml__dispatch*" or key:"staging/stg_ml__route*"'
)
RISK_MARTS = (
    "key:staging/stg_ml__order_risk_scores or key:marts/fct_order_risk "
    "or key:marts/fct_risk_review_queue"
)
#: the ETA model is left out too: a 21-day world has too few delivered shipments for a champion
LAKE = (
    f"not group:dispatch and not group:risk and not group:eta "
    f"and not ({DISPATCH_MARTS}) and not ({RISK_MARTS})"
)
#: Waves planned (the last days of the world): enough for the dispatch page, a minute less of CI.
DISPATCH_DAYS = 3


def stream_last_day(con) -> int:
    """The world's last day of carrier events through the stream's own landing code, in
    micro-batches, with its live hook (ETAs when a champion exists, alerts, CRM outbox): what
    ``ordertower stream`` commits, without a broker in between (tests/test_stream*.py cover the
    broker). Returns the events landed."""
    from datetime import UTC, datetime

    from ordertower.settings import get_settings
    from pipelines.stream.land import Delivery, StreamLander
    from pipelines.stream.live import LiveHook
    from pipelines.stream.publish import landed_days, read_messages

    landing = get_settings().landing_dir
    last = landed_days(landing)[-1]
    messages = read_messages(landing, last, last)
    lander = StreamLander(con, "dashboard-world", [LiveHook(con)])
    landed = 0
    for i in range(0, len(messages), 500):
        now = datetime.now(UTC)
        batch = [Delivery(m.body, m.carrier_id, m.feed_format, now) for m in messages[i : i + 500]]
        landed += lander.land(batch).landed
    return landed


def build_lake() -> None:
    """Simulate the world and materialise its lake (ingestion and dbt, no ML) in the current
    ``ORDERTOWER_HOME``."""
    from pipelines.cli import main

    assert main(["simulate", *WORLD]) == 0
    # the dbt data tests run in tests/test_marts.py; here they would only add minutes to CI
    assert main(["materialize", "--select", LAKE, "--no-dbt-tests"]) == 0


def finish_world() -> None:
    """On the lake of :func:`build_lake`: risk scores, the last day through the stream, the
    last waves' dispatch plans, and the marts on them (see module doc)."""
    from ordertower.lake import connect
    from pipelines.cli import main
    from pipelines.defs.stream.automation import TRACKING_MARTS

    con = connect()
    try:
        days = [
            r[0]
            for r in con.execute(
                "select distinct partition_key from ops.ingest_status "
                "where partition_key <> '__all__' order by 1"
            ).fetchall()
        ]
        score_world(con)
        assert stream_last_day(con) > 0
    finally:
        con.close()
    window = f"{days[-DISPATCH_DAYS]}...{days[-1]}"
    assert (
        main(["materialize", "--select", "group:dispatch", "--partition", window, "--no-dbt-tests"])
        == 0
    )
    tracking = " or ".join(f"key:{k.to_user_string()}" for k in TRACKING_MARTS)
    marts = f"{DISPATCH_MARTS} or {RISK_MARTS} or {tracking}"
    assert main(["materialize", "--select", marts, "--no-dbt-tests"]) == 0


def build_world() -> None:
    """Simulate and materialise the whole world in the current ``ORDERTOWER_HOME``."""
    build_lake()
    finish_world()


#: what the console showed while the run's lake was built (beside its home)
BUILD_OUTPUT = "materialize.out"


def shared_lake(factory: pytest.TempPathFactory) -> Path:
    """The run's lake (:func:`build_lake`), built once per run by whichever test asks first
    (tests/shared_worlds.py), with its console output in :data:`BUILD_OUTPUT` beside it. Read
    it, never change it: a test that writes takes :func:`lake_copy`."""

    def build(home: Path) -> None:
        out = io.StringIO()
        with at_home(home), contextlib.redirect_stdout(out):
            build_lake()
        (home.parent / BUILD_OUTPUT).write_text(out.getvalue())

    return shared_home(factory, "dashboard_lake", build)


def lake_copy(factory: pytest.TempPathFactory, name: str) -> Path:
    """A private copy of the run's lake (:func:`shared_lake`)."""
    return copy_home(shared_lake(factory), factory.mktemp(name) / "home")


def module_world(
    factory: pytest.TempPathFactory, name: str, finish: Callable[[], None] | None = None
) -> Iterator[Path]:
    """A module's own world, with ``ORDERTOWER_HOME`` pointed at it while the module runs: a
    copy of the run's lake (:func:`build_lake`, built once per run: tests/shared_worlds.py),
    then ``finish()`` in it.

    ``ORDERTOWER_TEST_DASHBOARD_WORLD=<home>`` uses a world built by :func:`build_world`
    instead (a developer's shortcut; tests then write to it)."""
    reuse = os.environ.get("ORDERTOWER_TEST_DASHBOARD_WORLD")
    if reuse:
        with at_home(Path(reuse)):
            yield Path(reuse)
        return

    home = lake_copy(factory, name)
    with at_home(home):
        if finish is not None:
            finish()
        yield home
