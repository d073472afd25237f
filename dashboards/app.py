"""Entry script of the Order Control Tower dashboards: page config and navigation only.

Run with ``streamlit run dashboards/app.py`` (``make ui``). Each page is its own module under
``views/`` and reads the lake only through :mod:`dashboards.data` (read-only, cached, governed
marts); the one write, a risk analyst's review decision, goes through
:mod:`dashboards.actions`. Pages are grouped by audience.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from dashboards import data

#: A local favicon: without one, Streamlit fetches the page's Material icon from Google's CDN,
#: and the control tower runs offline.
FAVICON = Path(__file__).resolve().parent / "static" / "favicon.png"

st.set_page_config(
    page_title="Order Control Tower",
    page_icon=str(FAVICON),
    layout="wide",
    initial_sidebar_state="expanded",
)

#: Section title -> pages.
PAGES: dict[str, list[st.Page]] = {
    "Operations": [
        st.Page(
            "views/tracking.py",
            title="Order tracking",
            icon=":material/local_shipping:",
            url_path="tracking",
            default=True,
        ),
        st.Page(
            "views/exceptions.py",
            title="Exceptions",
            icon=":material/warning:",
            url_path="exceptions",
        ),
        st.Page(
            "views/dispatch.py",
            title="Dispatch",
            icon=":material/route:",
            url_path="dispatch",
        ),
    ],
    "Performance": [
        st.Page("views/kpis.py", title="KPIs", icon=":material/monitoring:", url_path="kpis"),
        st.Page("views/carbon.py", title="Carbon", icon=":material/eco:", url_path="carbon"),
    ],
    "Risk": [
        st.Page(
            "views/risk_review.py",
            title="Risk review",
            icon=":material/gpp_maybe:",
            url_path="risk-review",
        ),
    ],
    "Data platform": [
        st.Page(
            "views/data_quality.py",
            title="Data quality",
            icon=":material/fact_check:",
            url_path="data-quality",
        ),
    ],
}

data.drop_stale_results()  # cached query results live until the lake has a new snapshot
st.navigation(PAGES).run()
