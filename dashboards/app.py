"""Entry script of the Order Control Tower dashboards: page config and navigation only.

Run with ``streamlit run dashboards/app.py`` (``make ui``). Each page is its own module under
``pages/`` and reads the lake only through :mod:`dashboards.data` (read-only, cached, governed
marts); the one write, a risk analyst's review decision, goes through
:mod:`dashboards.actions`. Pages are grouped by audience.
"""

from __future__ import annotations

import streamlit as st

st.set_page_config(
    page_title="Order Control Tower",
    page_icon=":material/cell_tower:",
    layout="wide",
    initial_sidebar_state="expanded",
)

#: Section title -> pages.
PAGES: dict[str, list[st.Page]] = {
    "Operations": [
        st.Page(
            "pages/tracking.py",
            title="Order tracking",
            icon=":material/local_shipping:",
            url_path="tracking",
            default=True,
        ),
        st.Page(
            "pages/exceptions.py",
            title="Exceptions",
            icon=":material/warning:",
            url_path="exceptions",
        ),
        st.Page(
            "pages/dispatch.py",
            title="Dispatch",
            icon=":material/route:",
            url_path="dispatch",
        ),
    ],
    "Performance": [
        st.Page("pages/kpis.py", title="KPIs", icon=":material/monitoring:", url_path="kpis"),
        st.Page("pages/carbon.py", title="Carbon", icon=":material/eco:", url_path="carbon"),
    ],
    "Risk": [
        st.Page(
            "pages/risk_review.py",
            title="Risk review",
            icon=":material/gpp_maybe:",
            url_path="risk-review",
        ),
    ],
    "Data platform": [
        st.Page(
            "pages/data_quality.py",
            title="Data quality",
            icon=":material/fact_check:",
            url_path="data-quality",
        ),
    ],
}

st.navigation(PAGES).run()
