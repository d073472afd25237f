"""Signing AppTests in as the demo identities of ordertower/roles.yaml."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

from ordertower.devauth import DEMO_USERS

APP = Path(__file__).resolve().parent.parent / "dashboards" / "app.py"


def claims(role: str) -> dict[str, object]:
    """The ID-token claims ``st.user`` shows for the demo identity of ``role``."""
    return {**DEMO_USERS[role], "is_logged_in": True, "iss": "http://127.0.0.1:9400"}


def app_as(role: str | None, timeout: float = 60) -> AppTest:
    """The app, signed in as ``role``'s demo identity (``None``: anonymous)."""
    at = AppTest.from_file(str(APP), default_timeout=timeout)
    at.user = claims(role) if role else {"is_logged_in": False}
    return at


def open_page(at: AppTest, script: str) -> AppTest:
    """Run the app, then switch to ``views/<script>.py`` (st.navigation registers the pages'
    URLs on the first run)."""
    at.run()
    at.switch_page(f"views/{script}.py")
    at.run()
    return at
