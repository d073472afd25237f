"""The public Fraud_Data set through the risk pipeline (skipped when the data is not beside the
checkout: it is never copied into the repository)."""

from __future__ import annotations

import pytest

from ml.risk import fraud_ecommerce as fd
from ml.risk.features import FACT_COLUMNS

pytestmark = pytest.mark.skipif(
    not (fd.DEFAULT_DIR / fd.ORDERS_FILE).is_file(),
    reason=f"Fraud_Data is not at {fd.DEFAULT_DIR} (a fresh clone has no ../shared/datasets)",
)


@pytest.fixture(scope="module")
def loaded():
    return fd.load()


def test_damaged_last_lines_are_quarantined_with_a_reason(loaded):
    orders, countries = loaded
    assert len(orders.rows) == 30_189  # every complete order
    assert len(orders.quarantine) == 1
    assert "missing purchase_time" in orders.quarantine.iloc[0]["reason"]
    assert len(countries.quarantine) == 1
    assert "truncated country name 'Can'" in countries.quarantine.iloc[0]["reason"]
    assert len(countries.rows) + len(countries.quarantine) == 103_895


def test_orders_map_into_the_order_facts(loaded):
    orders, countries = loaded
    facts, verdicts = fd.to_facts(orders.rows, countries.rows)
    assert list(facts.columns[: len(FACT_COLUMNS)]) == list(FACT_COLUMNS)
    assert facts["order_id"].is_unique
    assert 22_000 < facts["ip_country_code"].notna().sum() < 24_000  # the IP table stops early
    assert len(verdicts) == orders.rows["is_fraud"].sum()
    assert (
        verdicts["fraud_known_at"]
        > facts.set_index("order_id").loc[verdicts["order_id"], "ordered_at"].to_numpy()
    ).all()
    assert "sex" not in " ".join(map(str, facts.columns))


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(fd.FraudDataError, match="no Fraud_Data folder"):
        fd.load(tmp_path / "nope")


@pytest.mark.slow
def test_report_has_both_splits_and_explains_the_gap():
    report = fd.run_report()
    time_auc = report["time_ordered_holdout"]["model_roc_auc"]
    random_auc = report["random_split"]["model_roc_auc"]
    assert 0.4 < time_auc <= 1 and 0.4 < random_auc <= 1
    assert random_auc > time_auc
    assert str(time_auc) in report["explanation"]
    assert report["published_full_data"]["xgboost"] == 0.851
