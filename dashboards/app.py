"""Entry script of the Order Control Tower dashboards: page config and navigation only.

Run with ``streamlit run dashboards/app.py`` (``make ui``). Each page is its own module under
``views/`` and reads the lake only through :mod:`dashboards.data` (read-only, cached, governed
marts); the one write, a risk analyst's review decision, goes through
:mod:`dashboards.actions`. Pages are grouped by audience.
"""

from __future__ import annotations

import streamlit as st

st.set_page_config(
    page_title="Order Control Tower",
    layout="wide",
    initial_sidebar_state="expanded",
)

#: Section title -> pages.
PAGES: dict[str, list[st.Page]] = {
    "Operations": [
        st.Page(
            "views/tracking.py",
            title="Order tracking",
            icon="🚚",
            url_path="tracking",
            default=True,
        ),
        st.Page(
            "views/exceptions.py",
            title="Exceptions",
            icon="⚠️",
            url_path="exceptions",
        ),
        st.Page(
            "views/dispatch.py",
            title="Dispatch",
            icon="🧭",
            url_path="dispatch",
        ),
    ],
    "Performance": [
        st.Page("views/kpis.py", title="KPIs", icon="📈", url_path="kpis"),
        st.Page("views/carbon.py", title="Carbon", icon="🌱", url_path="carbon"),
    ],
    "Risk": [
        st.Page(
            "views/risk_review.py",
            title="Risk review",
            icon="🛡️",
            url_path="risk-review",
        ),
    ],
    "Data platform": [
        st.Page(
            "views/data_quality.py",
            title="Data quality",
            icon="✅",
            url_path="data-quality",
        ),
    ],
}

st.navigation(PAGES).run()
