"""Entry script of the Order Control Tower dashboards: page config and navigation only.

Run with ``streamlit run dashboards/app.py`` (``make ui``). Each page is its own module under
``views/`` and reads the lake only through :mod:`dashboards.data` (read-only, cached, governed
marts); the one write, a risk analyst's review decision, goes through
:mod:`dashboards.actions`. Pages are grouped by audience.

Nothing runs before sign-in (:func:`dashboards.auth.gate`, OpenID Connect through
``st.login``); the navigation lists the pages the signed-in identity's roles open.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from dashboards import auth, data
from ordertower import access
from ordertower.access import Identity

#: A local favicon: without one, Streamlit fetches the page's Material icon from Google's CDN,
#: and the control tower runs offline.
FAVICON = Path(__file__).resolve().parent / "static" / "favicon.png"

#: Section title -> (script, title, icon, url path, the permission that opens it). Each page
#: also declares its permission itself (``auth.require_page``) and every query checks it again.
PAGES: dict[str, list[tuple[str, str, str, str, str]]] = {
    "Operations": [
        (
            "views/tracking.py",
            "Order tracking",
            ":material/local_shipping:",
            "tracking",
            "tracking",
        ),
        ("views/exceptions.py", "Exceptions", ":material/warning:", "exceptions", "exceptions"),
        ("views/dispatch.py", "Dispatch", ":material/route:", "dispatch", "dispatch"),
    ],
    "Performance": [
        ("views/kpis.py", "KPIs", ":material/monitoring:", "kpis", "kpis"),
        ("views/carbon.py", "Carbon", ":material/eco:", "carbon", "carbon"),
    ],
    "Risk": [
        ("views/risk_review.py", "Risk review", ":material/gpp_maybe:", "risk-review", "risk.read"),
    ],
    "Data platform": [
        (
            "views/data_quality.py",
            "Data quality",
            ":material/fact_check:",
            "data-quality",
            "quality",
        ),
        ("views/audit_log.py", "Audit log", ":material/policy:", "audit-log", "audit.read"),
    ],
}


#: The page served at ``/`` (deep links ``/?order=<id>`` open an order there).
DEFAULT_PAGE = "views/tracking.py"


def navigation(who: Identity) -> tuple[dict[str, list[st.Page]], st.Page | None]:
    """The pages by section, and the first page the identity's roles open. Pages the roles do
    not open stay reachable by URL but hidden, so a link to one shows why it is closed instead
    of "page not found". Every page keeps its URL whoever signs in: order tracking is always
    the default (``/``), and an identity that may not open it is sent on to its first page."""
    out: dict[str, list[st.Page]] = {}
    first: st.Page | None = None
    for section, specs in PAGES.items():
        out[section] = []
        for script, title, icon, url, permission in specs:
            page = st.Page(
                script,
                title=title,
                icon=icon,
                url_path=url,
                default=script == DEFAULT_PAGE,
                visibility="visible" if who.may(permission) else "hidden",
            )
            out[section].append(page)
            if first is None and who.may(permission):
                first = page
    return out, first


def main() -> None:
    """One script run: sign-in gate, navigation by role, the page."""
    st.set_page_config(
        page_title="Order Control Tower",
        page_icon=str(FAVICON),
        layout="wide",
        initial_sidebar_state="expanded",
    )
    who = auth.gate()  # nothing below runs before sign-in
    auth.sidebar(who)
    if not who.permissions:
        st.title("Order Control Tower")
        auth.denied(
            access.AccessDenied(
                f"{who.label} is signed in but holds no role in the control tower. Ask an admin to "
                "assign one in the roles file."
            ),
            "app",
        )
        st.stop()
    data.drop_stale_results()  # cached query results live until the lake has a new snapshot
    sections, first_page = navigation(who)
    current = st.navigation(sections)
    if current.url_path == "" and not who.may("tracking") and first_page is not None:
        st.switch_page(first_page)  # "/" for someone who may not track orders: their first page
    try:
        current.run()
    except data.DataUnavailable as exc:
        # a query after the one a page guards (the lake changed, or a data file is damaged,
        # between two of its queries): the same message the page would show, no traceback
        from dashboards.components import show_unavailable

        show_unavailable(str(exc))


# Streamlit (and AppTest) run this file as ``__main__``. Anything else that executes it, e.g.
# multiprocessing's spawn re-running a parent's main module as ``__mp_main__`` after an AppTest
# in the same process, must not start a page.
if __name__ == "__main__":
    main()
