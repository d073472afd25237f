"""ml/frames.py: large results as frames with their repeated text as categoricals."""

from __future__ import annotations

import duckdb
import pandas as pd
import pytest

from ml.frames import fetch_frame
from ordertower.lake import NO_AUTO_EXTENSIONS

QUERY = """
select i, 'S-' || i as shipment_id, ['sea', 'road', null, 'air'][i % 4 + 1] as mode,
       cast('2026-08-20' as timestamptz) + to_hours(i) as at, i * 0.5 as km
from range(5000) t(i)
where i >= $low
"""


@pytest.fixture
def con():
    con = duckdb.connect(config=NO_AUTO_EXTENSIONS)
    yield con
    con.close()


def test_named_text_columns_are_categoricals_with_the_values_of_df(con):
    # small batches: each has a dictionary of its own, unified in the frame
    got = fetch_frame(
        con, QUERY, {"low": 0}, categorical=("mode", "no_such_column", "km"), batch_rows=700
    )
    expected = con.execute(QUERY, {"low": 0}).df()
    assert list(got.columns) == list(expected.columns) and len(got) == len(expected) == 5000
    assert isinstance(got["mode"].dtype, pd.CategoricalDtype)
    # in text order, so sorting the column sorts the text
    assert list(got["mode"].cat.categories) == ["air", "road", "sea"]
    assert got["mode"].isna().sum() == expected["mode"].isna().sum() == 1250
    assert got["mode"].astype(object).where(got["mode"].notna(), None).tolist() == (
        expected["mode"].tolist()
    )
    # the rest converts as it would: ids stay text, decimals are doubles (a number named in
    # ``categorical`` is left alone), instants stay the same instants
    assert got["shipment_id"].tolist() == expected["shipment_id"].tolist()
    assert got["km"].dtype.kind == "f" and got["km"].tolist() == expected["km"].tolist()
    assert (got["at"] == expected["at"]).all()
    sorted_got = got.sort_values(["mode", "i"], na_position="last")["i"].tolist()
    sorted_expected = expected.sort_values(["mode", "i"], na_position="last")["i"].tolist()
    assert sorted_got == sorted_expected


def test_an_empty_result_keeps_its_columns(con):
    got = fetch_frame(con, QUERY, {"low": 10**9}, categorical=("mode",))
    assert got.empty and list(got.columns) == ["i", "shipment_id", "mode", "at", "km"]
    assert isinstance(got["mode"].dtype, pd.CategoricalDtype)
