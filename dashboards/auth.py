"""Sign-in and roles in the dashboards: who is this, and may they.

Sign-in is Streamlit's native OpenID Connect (``st.login`` / ``st.user``, through Authlib),
configured in the ``[auth]`` section of the Streamlit secrets (``.streamlit/secrets.toml`` in
a deployment; ``make ui`` writes one for the local provider it starts, see
:mod:`ordertower.devauth`). The identity's roles come from the roles file
(:mod:`ordertower.access`).

Three places ask, so hiding a page is never the only check:

* :func:`gate` in the entry script: nothing but the sign-in page runs before sign-in, and the
  navigation lists only the pages the roles open;
* :func:`require_page` at the top of every page: a denied user sees who they are, what the page
  needs and whom to ask, and no data; the denial is audited;
* :func:`check` inside :mod:`dashboards.data` before every query (also before a cached
  result is served), and the one write path (:mod:`dashboards.actions`) re-checks in
  the write itself.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from ordertower import access, audit
from ordertower.access import AccessDenied, Identity

_SIGNED_IN = "_ordertower_signed_in"
_DENIED = "_ordertower_denied"


def configured() -> bool:
    """Whether the secrets hold an ``[auth]`` section (an OpenID Connect provider)."""
    try:
        return "auth" in st.secrets
    except Exception:  # noqa: BLE001 - no or a malformed secrets file: sign-in is not configured
        return False


def _claims() -> dict[str, Any] | None:
    """The signed-in user's ID-token claims, or None (anonymous, or outside a script run)."""
    try:
        user = st.user
        if not user.get("is_logged_in", False):
            return None
        return {k: v for k, v in user.to_dict().items() if k != "tokens"}
    except Exception:  # noqa: BLE001 - no script run context (a plain Python call): nobody
        return None


def identity() -> Identity | None:
    """The signed-in identity with its roles (re-read from the roles file when it changes)."""
    claims = _claims()
    if claims is None:
        return None
    return access.resolve(claims)


def check(permission: str, what: str = "") -> Identity:
    """The read path's check: the signed-in identity when it holds ``permission``."""
    return access.require(identity(), permission, what)


def _sign_in_page() -> None:
    st.title("Order Control Tower")
    if not configured():
        st.error(
            "Sign-in is not configured: the Streamlit secrets have no `[auth]` section. "
            "`make ui` starts a local OpenID Connect provider and configures it; a deployment "
            "sets its provider in `.streamlit/secrets.toml` (see "
            "`.streamlit/secrets.toml.example` and docs/security.md).",
            icon=":material/lock:",
        )
        return
    st.write(
        "Orders, customers' data and fraud decisions are shown to signed-in staff only, "
        "according to their roles."
    )
    st.button("Sign in", type="primary", icon=":material/login:", on_click=st.login)


def gate() -> Identity:
    """Stop the run at the sign-in page unless someone is signed in; audit each new session's
    sign-in once. Returns the identity."""
    who = identity()
    if who is None:
        _sign_in_page()
        st.stop()
    if st.session_state.get(_SIGNED_IN) != who.subject:
        st.session_state[_SIGNED_IN] = who.subject
        claims = _claims() or {}
        audit.append(
            who,
            "sign_in",
            target="dashboards",
            outcome="ok" if who.roles else "denied",
            detail=f"issuer {claims.get('iss', '?')}" + ("" if who.roles else "; no role assigned"),
        )
    return who


def sidebar(who: Identity) -> None:
    """Who is signed in, with which roles, and the way out."""
    with st.sidebar:
        st.caption(f"Signed in as **{who.label}** · {who.roles_text}")
        st.button("Sign out", icon=":material/logout:", on_click=st.logout, key="sign_out")


def denied(exc: AccessDenied, target: str) -> None:
    """Show a denial with no data and audit it (once per session and target)."""
    who = identity()
    seen: set[str] = st.session_state.setdefault(_DENIED, set())
    if target not in seen:
        seen.add(target)
        audit.append(who, "access_denied", target=target, outcome="denied", detail=str(exc))
    st.error(str(exc), icon=":material/lock:")


def audit_read(target: str, detail: str = "") -> None:
    """Audit a read of personal data (e.g. quarantined raw text), once per session and
    target."""
    seen: set[str] = st.session_state.setdefault("_ordertower_reads", set())
    if target not in seen:
        seen.add(target)
        audit.append(identity(), "raw_access", target=target, outcome="ok", detail=detail)


def require_page(permission: str, title: str) -> Identity:
    """First line of every page: the identity when it may open the page; otherwise a clear
    message, an audit row and the end of the run."""
    try:
        return check(permission, f"the {title} page")
    except AccessDenied as exc:
        st.title(title)
        denied(exc, f"page:{title}")
        st.stop()
        raise  # unreachable: st.stop() ends the run
