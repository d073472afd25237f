"""The public Fraud_Data set through the risk features and training.

The reader is tested on small damaged files written here; everything else reads the real set
beside the checkout and is skipped when it is absent (it is never copied into the repository).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
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
        assert sum(p["orders"] for p in split["periods"].values()) == 30_189
        assert len(split["top_features"]) == 10
    # Bounds from the measured values (seeded, one thread; BENCHMARKS.md) with a margin, each
    # against the rules on the same test period. Random split (the published protocol):
    # measured model 0.780 ROC-AUC / 0.603 PR-AUC, rules 0.670 / 0.391.
    assert random_split["model_roc_auc"] >= 0.75
    assert random_split["model_roc_auc"] >= random_split["rules_roc_auc"] + 0.07
    assert random_split["model_pr_auc"] >= 0.55
    assert random_split["model_pr_auc"] >= random_split["rules_pr_auc"] + 0.15
    # Time-ordered holdout: near chance for both (measured model 0.517, rules 0.511; PR-AUC
    # 0.055 / 0.048 at a 4.7 % fraud rate), the non-stationarity the explanation documents. The
    # model must not lose to the rules, and a figure far above chance would mean a leak.
    assert 0.49 <= time_split["model_roc_auc"] <= 0.60
    assert time_split["model_roc_auc"] >= time_split["rules_roc_auc"] - 0.01
    assert time_split["model_pr_auc"] >= time_split["test_fraud_rate"]
    assert random_split["model_roc_auc"] >= time_split["model_roc_auc"] + 0.2
    assert time_split["periods"]["train"]["to"] < time_split["periods"]["test"]["from"]
    assert report["published_anchors"]["xgboost"] == 0.851
    assert str(time_split["model_roc_auc"]) in report["explanation"]
    assert str(random_split["model_roc_auc"]) in report["explanation"]
    assert report["data_shape"]["instant_purchases"] == 1_531


# ------------------------------------------- an export without IP addresses (a real variant)


def _orders_without_ip(n: int = 600, seed: int = 3) -> list[str]:
    """``n`` purchases over 2015 with an empty ``ip_address``: 10 % fraud, bought within a
    minute of signup on a handful of shared devices; the rest days after signup."""
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2015-01-05")
    rows = []
    for i in range(n):
        bought = start + pd.Timedelta(minutes=int(rng.integers(0, 330 * 24 * 60)))
        fraud = rng.random() < 0.1
        signup = bought - pd.Timedelta(minutes=0 if fraud else int(rng.integers(3, 90) * 1440))
        device = f"RING{rng.integers(0, 6)}" if fraud else f"DEV{i:05d}"
        stamp = "{d.month}/{d.day}/{d.year} {d.hour}:{d.minute:02d}".format
        rows.append(
            f"{1000 + i},{stamp(d=signup)},{stamp(d=bought)},{int(rng.integers(9, 120))},"
            f"{device},{rng.choice(['SEO', 'Ads', 'Direct'])},Chrome,M,{int(rng.integers(18, 70))}"
            f",,{int(fraud)}"
        )
    return rows


def test_an_export_without_ip_addresses_gives_the_report_without_ip_features(tmp_path, capsys):
    """A real export variant has every ``ip_address`` empty: the orders are read (an empty IP is
    a missing value, not damage), their IP features are missing, the report is made with a
    warning on stderr, and it never ends in a traceback (it was a pandas merge of float32 and
    object keys)."""
    from pipelines.cli import main

    folder = _write(tmp_path / "fd", _orders_without_ip(), ["16777216,16777471,Australia"])
    data = fd.load(folder)
    assert len(data.orders.rows) == 600 and data.orders.quarantine.empty
    assert data.orders.rows["ip_address"].isna().all()
    facts, _ = fd.to_facts(data.orders.rows, data.countries.rows)
    assert facts[["ip_key", "ip_network_key", "ip_country_code"]].isna().all().all()

    assert main(["risk", "fraud-data", "--from", str(folder)]) == 0
    out, err = capsys.readouterr()
    report = json.loads(out)
    assert "Traceback" not in err
    assert "warning: ip_address is empty on all 600 orders" in err
    assert report["warnings"] == [
        "ip_address is empty on all 600 orders: the report is made without the IP and "
        "IP-geography features (IP, IP network /24, IP country and their counts are missing "
        "for every order)"
    ]
    assert report["orders"] == 600 and report["orders_without_ip"] == 600
    assert report["orders_with_country"] == 0
    for split in ("time_ordered_holdout", "random_split"):
        top = [f["feature"] for f in report[split]["top_features"] if f["gain"] > 0]
        assert top and not [f for f in top if f.startswith(("ip__", "ip_network__"))]
        # instant purchases on shared devices: the features without IPs still find them
        assert report[split]["model_roc_auc"] >= 0.9


def test_some_orders_without_an_ip_are_not_counted_as_one_shared_ip():
    """Orders with and without an IP in one file: an IP-less order's IP features are missing
    (null keys never join each other), the others are counted as before."""
    import duckdb

    from ml.risk.features import build_features
    from ordertower.lake import NO_AUTO_EXTENSIONS

    rows = pd.DataFrame(
        {
            "line": [2, 3, 4, 5],
            "user_id": [1, 2, 3, 4],
            "signup_time": pd.to_datetime(["2015-01-01 10:00"] * 4, utc=True),
            "purchase_time": pd.to_datetime(
                ["2015-02-01 10:00", "2015-02-01 11:00", "2015-02-01 12:00", "2015-02-01 13:00"],
                utc=True,
            ),
            "purchase_value": [10.0, 20.0, 30.0, 40.0],
            "device_id": ["A", "B", "C", "D"],
            "source": "SEO",
            "browser": "Chrome",
            "age": [30, 31, 32, 33],
            "ip_address": [np.nan, np.nan, 16777300.5, 16777300.9],
            "is_fraud": [False, False, False, True],
        }
    )
    countries = pd.DataFrame(
        {
            "lower_bound_ip_address": [16777216],
            "upper_bound_ip_address": [16777471],
            "country": ["Australia"],
        }
    )
    facts, _ = fd.to_facts(rows, countries)
    assert facts["ip_key"].tolist() == [None, None, "16777300", "16777300"]
    assert facts["ip_country_code"].tolist() == [None, None, "Australia", "Australia"]
    con = duckdb.connect(config=NO_AUTO_EXTENSIONS)
    con.register("facts", facts)
    feats = build_features(con, "facts").set_index("order_id")
    orders = feats["ip__orders__24h"]
    assert orders[["FD-1", "FD-2"]].isna().all()  # not "2 orders on the empty IP"
    assert orders[["FD-3", "FD-4"]].tolist() == [1, 2]


def test_a_file_whose_every_order_is_damaged_is_one_clear_error(tmp_path, capsys):
    from pipelines.cli import main

    bad = [f"{i},2/24/2015 22:55,4/18/2015 2:47,abc,DEV,Ads,IE,F,39,1.5,0" for i in range(5)]
    folder = _write(tmp_path / "fd", bad, ["16777216,16777471,Australia"])
    assert main(["risk", "fraud-data", "--from", str(folder)]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "no order in fraud_data.csv could be read: all 5 data lines were quarantined" in err
    assert "purchase_value 'abc' is not a non-negative number (5 lines)" in err
