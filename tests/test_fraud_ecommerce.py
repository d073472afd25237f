"""The public Fraud_Data set through the risk features and training.

The reader is tested on small damaged files written here; everything else reads the real set
beside the checkout and is skipped when it is absent (it is never copied into the repository).
"""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
import pytest

from ml.risk import fraud_ecommerce as fd
from ml.risk.features import FACT_COLUMNS

HEADER = ",".join(fd.ORDER_COLUMNS)
GOOD = "22058,2/24/2015 22:55,4/18/2015 2:47,34,QVPSPJUOCKZAR,SEO,Chrome,M,39,732758368.8,0"


def _write(folder: Path, orders: list[str], countries: list[str], end: str = "\r\n") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    body = "\r\n".join([HEADER, *orders]) + end
    (folder / fd.ORDERS_FILE).write_bytes("\ufeff".encode() + body.encode())
    head = ",".join(fd.COUNTRY_COLUMNS)
    (folder / fd.COUNTRIES_FILE).write_text("\ufeff" + "\n".join([head, *countries]) + "\n")
    return folder


@pytest.fixture(scope="module")
def data() -> fd.FraudData:
    if not (fd.DEFAULT_DIR / fd.ORDERS_FILE).is_file():
        pytest.skip(f"Fraud_Data is not at {fd.DEFAULT_DIR} (a fresh clone has no ../shared)")
    return fd.load()


# ----------------------------------------------------------- the reader, on small damaged files


def test_reader_quarantines_damaged_rows_with_line_text_and_reason(tmp_path):
    folder = _write(
        tmp_path / "fd",
        [
            GOOD,
            "2,2/24/2015 22:55,13/45/2015 2:47,34,DEV,Ads,IE,F,39,1.5,1",  # no such date
            "3,2/24/2015 22:55,4/18/2015 2:47,34,DEV,Ads,IE,F,39,1.5",  # a field short
            "4,2/24/2015 22:55,4/18/2015 2:47,abc,DEV,Ads,IE,F,39,1.5,2",  # value and class
            "22058,2/24/2015 22:55,4/18/2015 2:47,34,DEV,Ads,IE,F,39,1.5,0",  # user repeats
            "5,2/24/2015 22:55,4/18/2015 2:47,34,DEV,Ads,IE,,39,1.5,0",  # no sex: fine
            "393385,8/11/2015 19:00,,,,,,,,,",  # the real file's cut-off last line
        ],
        ["16777216,16777471,Australia", "1.02E+09,1024032767,Philippines"],
        end="",  # and no final line break
    )
    data = fd.load(folder)
    orders = data.orders
    assert orders.lines_read == 7
    assert orders.rows["user_id"].tolist() == [22058, 5]
    assert "sex" not in orders.rows.columns
    q = orders.quarantine.set_index("line")
    assert list(q.index) == [3, 4, 5, 6, 8]
    assert "purchase_time '13/45/2015 2:47'" in q.at[3, "reason"]
    assert "10 fields, expected 11" in q.at[4, "reason"]
    assert "purchase_value 'abc'" in q.at[5, "reason"] and "class '2'" in q.at[5, "reason"]
    assert "repeats line 2" in q.at[6, "reason"]
    assert q.at[8, "reason"].startswith("empty purchase_time, purchase_value")
    assert "last line" in q.at[8, "reason"]
    assert q.at[8, "text"] == "393385,8/11/2015 19:00,,,,,,,,,"
    row = orders.rows.iloc[0]
    assert row["purchase_time"] == pd.Timestamp("2015-04-18 02:47", tz="UTC")
    assert row["signup_time"] == pd.Timestamp("2015-02-24 22:55", tz="UTC")
    assert len(data.countries.rows) == 1
    assert "scientific notation" in data.countries.quarantine.iloc[0]["reason"]


def test_wrong_header_and_missing_files_are_clear_errors(tmp_path):
    with pytest.raises(fd.FraudDataError, match="no Fraud_Data folder at .*nope"):
        fd.load(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(fd.FraudDataError, match=f"no {fd.ORDERS_FILE} at"):
        fd.load(tmp_path / "empty")
    folder = _write(tmp_path / "fd", [GOOD], ["1,2,X"])
    (folder / fd.ORDERS_FILE).write_text("a,b\n1,2\n")
    with pytest.raises(fd.FraudDataError, match="header"):
        fd.load(folder)


def test_ip_maps_to_the_range_it_falls_in():
    countries = pd.DataFrame(
        {
            "lower_bound_ip_address": [100, 300],
            "upper_bound_ip_address": [200, 400],
            "country": ["A", "B"],
        }
    )
    ips = pd.Series([99.9, 100.0, 200.7, 250.0, 300.2, 400.0, 401.0])
    assert fd.ip_countries(ips, countries).tolist() == [None, "A", "A", None, "B", "B", None]


# ------------------------------------------------------------------------------ the real set


def test_real_files_last_lines_are_quarantined_and_everything_else_parses(data):
    orders, countries = data.orders, data.countries
    assert orders.lines_read == 30_190
    assert len(orders.rows) == 30_189  # every complete order (the README's count)
    assert len(orders.quarantine) == 1
    bad = orders.quarantine.iloc[0]
    assert bad["line"] == 30_191 and "last line" in bad["reason"]
    assert bad["text"].startswith("393385,8/11/2015 19:00,")
    assert round(orders.rows["is_fraud"].mean(), 4) == 0.095  # README: 9.50 %
    # the ranges: the cut-off last line, and eight lower bounds saved as "1.02E+09"
    assert countries.lines_read == 103_895
    reasons = countries.quarantine.set_index("line")["reason"]
    assert "country 'Can' looks cut off" in reasons[103_896]
    assert sum("scientific notation" in r for r in reasons) == 8
    assert len(countries.rows) + len(countries.quarantine) == 103_895


def test_facts_have_exactly_the_fact_columns_and_verdicts_for_fraud(data):
    facts, verdicts = fd.to_facts(data.orders.rows, data.countries.rows)
    assert list(facts.columns) == [*FACT_COLUMNS, "partition_key"]
    assert len(facts) == 30_189 and facts["order_id"].is_unique
    assert 22_000 < facts["ip_country_code"].notna().sum() < 24_000  # the IP table stops early
    assert set(facts["acquisition_source"]) == {"SEO", "Ads", "Direct"}
    assert facts["card_key"].isna().all() and facts["ship_address_key"].isna().all()
    assert (facts["local_dow"].between(1, 7)).all()
    assert len(verdicts) == int(data.orders.rows["is_fraud"].sum()) == 2_867
    at = facts.set_index("order_id").loc[verdicts["order_id"], "ordered_at"].to_numpy()
    assert ((verdicts["fraud_known_at"].to_numpy() - at) == pd.Timedelta(days=30)).all()


def test_sex_is_not_used(data):
    rows = data.orders.rows
    assert "sex" not in rows.columns
    facts, _ = fd.to_facts(rows, data.countries.rows)
    # even a frame that carries it gives the same facts
    flipped, _ = fd.to_facts(rows.assign(sex="F"), data.countries.rows)
    pd.testing.assert_frame_equal(facts, flipped)
    assert not any("sex" in c for c in facts.columns)


def test_report_has_both_splits_and_explains_the_gap(data):
    started = time.perf_counter()
    report = fd.run_report()  # about 12 s on 2 cores
    assert time.perf_counter() - started < 120
    assert report["rows_read"] == 30_190 and report["rows_quarantined"] == 1
    assert report["ip_ranges_quarantined"] == 9
    time_split, random_split = report["time_ordered_holdout"], report["random_split"]
    for split in (time_split, random_split):
        assert 0.4 < split["model_roc_auc"] <= 1
        assert 0 <= split["rules_roc_auc"] <= 1
        assert sum(p["orders"] for p in split["periods"].values()) == 30_189
        assert len(split["top_features"]) == 10
    assert random_split["model_roc_auc"] >= time_split["model_roc_auc"]
    assert time_split["periods"]["train"]["to"] < time_split["periods"]["test"]["from"]
    assert report["published_anchors"]["xgboost"] == 0.851
    assert str(time_split["model_roc_auc"]) in report["explanation"]
    assert str(random_split["model_roc_auc"]) in report["explanation"]
    assert report["data_shape"]["instant_purchases"] == 1_531
