"""Formatting and small UI pieces shared by the dashboard pages.

Kept apart from the pages so every page formats numbers, rates, durations and status badges the
same way, and so the pure helpers (no Streamlit calls) can be unit-tested without a browser.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from typing import Any

import pandas as pd
import streamlit as st

#: Colours used for status cells and flagged rows (light backgrounds stay readable in both
#: the light and the dark theme because the text colour is set with them).
BAD_CSS = "background-color: #fde2e1; color: #9b1c1c"
GOOD_CSS = "background-color: #def7ec; color: #03543f"
NEUTRAL_CSS = "color: #6b7280"
#: Plotly colours matching the CSS above.
COLOR_OK = "#4c78a8"
COLOR_BAD = "#d62728"
MASK = "***"


def show_unavailable(message: str) -> None:
    """Tell the user why there is nothing to show and what to run, instead of a traceback."""
    st.info(message, icon=":material/info:")


def _missing(value: Any) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float) and math.isnan(value)


def fmt_count(value: Any) -> str:
    """A record count with thousands separators ('—' when unknown)."""
    return "—" if _missing(value) else f"{int(value):,}"


def fmt_rate(value: Any, digits: int = 2) -> str:
    """A share as a percentage ('—' when undefined, e.g. nothing received)."""
    return "—" if _missing(value) else f"{float(value):.{digits}%}"


def fmt_hours(value: Any) -> str:
    """An age in hours, switching to days past two days so large lags stay readable."""
    if _missing(value):
        return "—"
    hours = float(value)
    return f"{hours / 24:.1f} d" if abs(hours) >= 48 else f"{hours:.1f} h"


def status_css(status: Any) -> str:
    """Cell style of a status word: red when something needs action, green when fine."""
    text = str(status).upper()
    if text in {"LATE", "FAIL", "FAILED", "BROKEN"}:
        return BAD_CSS
    if text in {"OK", "PASS", "PASSED"}:
        return GOOD_CSS
    return NEUTRAL_CSS


def row_styles(flags: pd.Series, css: str = BAD_CSS) -> Callable[[pd.DataFrame], pd.DataFrame]:
    """A ``Styler.apply(axis=None)`` function painting every cell of the flagged rows.

    Whole rows, not one cell, because a broken row must catch the eye in a long table.
    """

    def style(frame: pd.DataFrame) -> pd.DataFrame:
        styles = pd.DataFrame("", index=frame.index, columns=frame.columns)
        styles.loc[flags.reindex(frame.index).fillna(False).astype(bool)] = css
        return styles

    return style


def mask_pii(raw: Any, pii_columns: Iterable[str]) -> Any:
    """Mask the PII fields of a quarantined JSON record before it is shown or downloaded.

    Contracts name nested fields flattened (``billing_address_street`` for
    ``{"billing_address": {"street": ...}}``), so a key is masked when its own name or its
    underscore-joined path is a PII column. Records that are not JSON objects (CSV lines) are
    returned unchanged: without their header the columns cannot be told apart.
    """
    pii = set(pii_columns)
    if not pii or not isinstance(raw, str):
        return raw
    try:
        record = json.loads(raw)
    except ValueError:
        return raw
    if not isinstance(record, dict):
        return raw

    def walk(node: Any, path: str) -> Any:
        if isinstance(node, dict):
            masked = {}
            for key, value in node.items():
                full = f"{path}_{key}" if path else str(key)
                masked[key] = MASK if (key in pii or full in pii) else walk(value, full)
            return masked
        if isinstance(node, list):
            return [walk(item, path) for item in node]
        return node

    return json.dumps(walk(record, ""), ensure_ascii=False)
