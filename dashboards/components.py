"""Formatting and small UI pieces shared by the dashboard pages.

Kept apart from the pages so every page formats numbers, rates, durations and status badges the
same way, and so the pure helpers (no Streamlit calls) can be unit-tested without a browser.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import pandas as pd
import streamlit as st

from ordertower.pii import withhold

#: Colours used for status cells and flagged rows (light backgrounds stay readable in both
#: the light and the dark theme because the text colour is set with them).
BAD_CSS = "background-color: #fde2e1; color: #9b1c1c"
GOOD_CSS = "background-color: #def7ec; color: #03543f"
NEUTRAL_CSS = "color: #6b7280"
#: Plotly colours matching the CSS above.
COLOR_OK = "#4c78a8"
COLOR_BAD = "#d62728"
MASK = "***"
#: A quarantined record whose fields cannot be told apart, shown in place of its text.
UNPARSABLE = "[withheld: unparsable record]"


def show_unavailable(message: str) -> None:
    """Tell the user why there is nothing to show and what to run, instead of a traceback.
    A damaged lake file (:class:`dashboards.data.DataDamaged`) is an error, not a hint."""
    from dashboards.data import DAMAGED

    if message.startswith(DAMAGED):
        st.error(message, icon=":material/error:")
    else:
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
    if text in {"LATE", "FAIL", "FAILED", "BROKEN", "MISSING"}:
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


def mask_pii(
    raw: Any,
    pii_columns: Iterable[str],
    columns: Sequence[str] | None = None,
    delimiter: str = ",",
) -> Any:
    """Mask the PII fields of a quarantined record before it is shown or downloaded.

    JSON objects: contracts name nested fields flattened (``billing_address_street`` for
    ``{"billing_address": {"street": ...}}``), so a key is masked when its own name or its
    underscore-joined path is a PII column. CSV lines: masked field by field by their header,
    ``columns`` (the dataset contract's column order, in which landing CSVs are written:
    ``ops.datasets.columns``). Anything that cannot be told apart is withheld whole
    (:data:`UNPARSABLE`), never passed through: JSON that does not parse or is not an object, a
    line without a header or whose field count differs from it. In the fields that remain,
    whatever looks like personal data (e-mail, phone, IPv4, street address: ``ordertower.pii``)
    is withheld too, in case a source typed it into the wrong field. Datasets without PII
    columns are shown as delivered.
    """
    pii = set(pii_columns)
    if not pii or not isinstance(raw, str) or not raw.strip():
        return raw
    if raw.lstrip().startswith(("{", "[")):
        try:
            record = json.loads(raw)
        except ValueError:
            return UNPARSABLE
        if not isinstance(record, dict):
            return UNPARSABLE

        def walk(node: Any, path: str) -> Any:
            if isinstance(node, dict):
                masked = {}
                for key, value in node.items():
                    full = f"{path}_{key}" if path else str(key)
                    masked[key] = MASK if (key in pii or full in pii) else walk(value, full)
                return masked
            if isinstance(node, list):
                return [walk(item, path) for item in node]
            return withhold(node) if isinstance(node, str) else node

        return json.dumps(walk(record, ""), ensure_ascii=False)
    if not columns:
        return UNPARSABLE
    try:
        rows = list(csv.reader(io.StringIO(raw, newline=""), delimiter=delimiter))
    except csv.Error:
        return UNPARSABLE
    if len(rows) != 1 or len(rows[0]) != len(columns):
        return UNPARSABLE
    fields = [
        MASK if name in pii else withhold(value)
        for name, value in zip(columns, rows[0], strict=True)
    ]
    out = io.StringIO()
    csv.writer(out, delimiter=delimiter, lineterminator="").writerow(fields)
    return out.getvalue()


# -- shared widgets of the control-tower pages -------------------------------------------------

#: Default window of the mart pages: the latest four weeks of orders.
DEFAULT_WINDOW_DAYS = 28
SEVERITY_ORDER = ["critical", "high", "medium", "low"]
SEVERITY_COLORS = {"critical": "#7f1d1d", "high": "#d62728", "medium": "#ff7f0e", "low": "#9ca3af"}
MODE_COLORS = {
    "road": "#4c78a8",
    "rail": "#54a24b",
    "air": "#e45756",
    "sea": "#72b7b2",
    "last_mile": "#f58518",
    "van": "#f58518",
}


def fmt_money(value: Any, currency: str = "EUR") -> str:
    """An amount with two decimals and its currency ('—' when unknown)."""
    return "—" if _missing(value) else f"{float(value):,.2f} {currency}"


def fmt_money_short(value: Any, currency: str = "EUR") -> str:
    """An amount for a metric card: thousands as k, millions as M ('—' when unknown)."""
    if _missing(value):
        return "—"
    amount = float(value)
    for limit, suffix in ((1e6, " M"), (1e3, " k")):
        if abs(amount) >= limit:
            return f"{amount / limit:,.2f}{suffix} {currency}"
    return f"{amount:,.2f} {currency}"


def fmt_kg(value: Any) -> str:
    """A mass of CO2e: kg below a tonne, tonnes above."""
    if _missing(value):
        return "—"
    kg = float(value)
    return f"{kg / 1000:,.2f} t" if abs(kg) >= 1000 else f"{kg:,.2f} kg"


def mart_filters(
    prefix: str,
    *,
    warehouses: bool = True,
    carriers: bool = True,
    channels: bool = True,
    window_days: int = DEFAULT_WINDOW_DAYS,
):
    """The sidebar filters of a mart page: order days, warehouse, carrier, channel.

    Returns a :class:`dashboards.data.Filters`. Widget keys are ``<prefix>_dates`` etc., so a
    page's choices survive its reruns. The default window is the latest ``window_days`` days of
    orders, which keeps the first render fast on a large lake.
    """
    from dashboards import data  # local: components stays importable without a lake

    options = data.filter_options()
    first, last = options["first_date"], options["last_date"]
    with st.sidebar:
        st.header("Filters")
        start = end = None
        if first is not None and last is not None:
            default_start = max(first, last - dt.timedelta(days=window_days - 1))
            picked = st.date_input(
                "Order dates",
                value=(default_start, last),
                min_value=first,
                max_value=last,
                key=f"{prefix}_dates",
                help="Days the orders were placed (the lake's clock, UTC).",
            )
            dates = tuple(picked) if isinstance(picked, list | tuple) else (picked,)
            if dates:
                start, end = dates[0], dates[-1]
        chosen_wh: list[str] = []
        chosen_carriers: list[str] = []
        chosen_channels: list[str] = []
        if warehouses:
            names = dict(options["warehouses"][["warehouse_id", "warehouse_name"]].values)
            chosen_wh = st.multiselect(
                "Warehouses",
                list(names),
                format_func=lambda w: f"{w} · {names.get(w) or ''}",
                key=f"{prefix}_warehouses",
                placeholder="All warehouses",
            )
        if carriers:
            names = dict(options["carriers"][["carrier_id", "carrier_name"]].values)
            chosen_carriers = st.multiselect(
                "Carriers",
                list(names),
                format_func=lambda c: f"{c} · {names.get(c) or ''}",
                key=f"{prefix}_carriers",
                placeholder="All carriers",
            )
        if channels:
            chosen_channels = st.multiselect(
                "Channels",
                options["channels"],
                key=f"{prefix}_channels",
                placeholder="All channels",
            )
        st.caption(f"Figures are cached for {data.CACHE_TTL_SECONDS} s.")
    return data.Filters.of(
        start, end, tuple(chosen_wh), tuple(chosen_carriers), tuple(chosen_channels)
    )


def parse_alternatives(raw: Any) -> pd.DataFrame:
    """An alert's priced options (JSON from ml/alerts/alternatives.py) as a table, best first.

    Columns: action, warehouse_id, modes, cost_eur, kg_co2e, delivery_date, meets_promise,
    score. Empty when there are none or the JSON is unreadable (never an exception on a page).
    """
    columns = [
        "action",
        "warehouse_id",
        "modes",
        "cost_eur",
        "kg_co2e",
        "delivery_date",
        "meets_promise",
        "score",
    ]
    if not isinstance(raw, str) or not raw.strip():
        return pd.DataFrame(columns=columns)
    try:
        options = json.loads(raw)
    except ValueError:
        return pd.DataFrame(columns=columns)
    if isinstance(options, dict):
        options = options.get("options", [])
    if not isinstance(options, list):
        return pd.DataFrame(columns=columns)
    frame = pd.DataFrame([o for o in options if isinstance(o, dict)])
    return frame.reindex(columns=columns)


#: fct_order_exceptions.exception_type -> the CRM template reason it would be written with
EXCEPTION_REASONS = {
    "late_vs_promise": "predicted_late",
    "carrier_exception": "carrier_exception",
    "delivery_failed": "delivery_failed",
    "customs_hold": "customs_hold",
    "stuck": "stuck",
}


def message_preview(row: Any) -> tuple[str, str]:
    """(subject, body) of the customer message an alert or exception would send, rendered by
    the CRM templates in the customer's language and tier. The first name is shown as a
    placeholder: the dashboards never read names."""
    from ml.alerts.messages import load_templates, render

    alert = dict(row)
    if "reason" not in alert or _missing(alert.get("reason")):
        alert["reason"] = EXCEPTION_REASONS.get(str(alert.get("exception_type")), "stuck")
        reason = alert.get("exception_reason")
        alert["sub_reason"] = reason if reason not in (None, "*") else None
    customer = {
        "first_name": "[first name]",
        "language": alert.get("language"),
        "tier": alert.get("tier"),
    }
    message = render(alert, customer, _templates(load_templates))
    return message["subject"], message["body"]


_TEMPLATES: dict[str, Any] = {}


def _templates(loader: Callable[[], Any]) -> Any:
    if "t" not in _TEMPLATES:
        _TEMPLATES["t"] = loader()
    return _TEMPLATES["t"]


def _mercator_y(lat: pd.Series) -> pd.Series:
    rad = lat.clip(-85, 85).map(math.radians)
    return rad.map(lambda r: math.degrees(math.log(math.tan(math.pi / 4 + r / 2))))


def view_state(
    lats: Iterable[float], lons: Iterable[float], width_px: int = 600, height_px: int = 380
):
    """A pydeck view fitting the points in a ``width_px`` x ``height_px`` map (Web Mercator),
    ignoring the outer 2 % when there are many (a few long-haul outliers must not shrink
    Europe to a dot). Europe when there are no points."""
    import pydeck as pdk

    lat = pd.Series(list(lats), dtype=float)
    lon = pd.Series(list(lons), dtype=float)
    keep = lat.notna() & lon.notna()
    lat, lon = lat[keep], lon[keep]
    if lat.empty:
        return pdk.ViewState(latitude=50.0, longitude=10.0, zoom=3.2)
    low, high = (0.02, 0.98) if len(lat) > 50 else (0.0, 1.0)
    y = _mercator_y(lat)
    y0, y1 = y.quantile(low), y.quantile(high)
    x0, x1 = lon.quantile(low), lon.quantile(high)
    pad = 1.35  # room for labels and arcs' bulge
    zoom_x = math.log2(360 * width_px / 512 / max((x1 - x0) * pad, 0.02))
    zoom_y = math.log2(360 * height_px / 512 / max((y1 - y0) * pad, 0.02))
    centre_y = math.radians((y0 + y1) / 2)
    return pdk.ViewState(
        latitude=math.degrees(2 * math.atan(math.exp(centre_y)) - math.pi / 2),
        longitude=float((x0 + x1) / 2),
        zoom=max(1.0, min(12.0, min(zoom_x, zoom_y))),
    )


def hex_to_rgb(color: str, alpha: int = 200) -> list[int]:
    color = color.lstrip("#")
    return [int(color[i : i + 2], 16) for i in (0, 2, 4)] + [alpha]


#: A map style with a plain background and no source, served by Streamlit's static serving
#: (``.streamlit/config.toml``): the platform runs offline, so no tile server is asked (Streamlit
#: would otherwise fetch a Carto basemap); the layers carry the geography (labelled warehouses,
#: hubs and destinations).
OFFLINE_MAP_STYLE = "/app/static/map_style.json"


def deck(layers: list[Any], view: Any, tooltip: dict[str, Any] | None = None):
    """A pydeck map drawn without a tile server (see :data:`OFFLINE_MAP_STYLE`)."""
    import pydeck as pdk

    return pdk.Deck(
        layers=layers,
        initial_view_state=view,
        map_style=OFFLINE_MAP_STYLE,
        map_provider="mapbox",  # a style URL of our own (no Carto, no Mapbox token needed)
        tooltip=tooltip,
    )
