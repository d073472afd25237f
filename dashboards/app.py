"""Entry script of the Order Control Tower dashboards: page config and navigation only.

Run with ``streamlit run dashboards/app.py``. Each page is its own module under ``pages/`` and
reads the lake only through :mod:`dashboards.data`. Pages are grouped by audience so the
sidebar stays navigable as pages are added (order tracking, exceptions, carbon, KPIs, risk
review, dispatch join the sections below).
"""

from __future__ import annotations

import streamlit as st

st.set_page_config(
    page_title="Order Control Tower",
    page_icon=":material/cell_tower:",
    layout="wide",
    initial_sidebar_state="expanded",
)

#: Section title -> pages. Later pages slot into "Operations", "Performance" and "Risk".
PAGES: dict[str, list[st.Page]] = {
    "Data platform": [
        st.Page(
            "pages/data_quality.py",
            title="Data quality",
            icon=":material/fact_check:",
            url_path="data-quality",
            default=True,
        ),
    ],
}

st.navigation(PAGES).run()
