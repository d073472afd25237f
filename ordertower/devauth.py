"""Sign-in on a developer's machine and in the tests: a real local OpenID Connect provider.

``make ui`` and the browser tests start ``oidc-provider-mock`` (a real OIDC provider: discovery
document, authorisation-code flow, signed ID tokens) on 127.0.0.1, with the demo identities of
``ordertower/roles.yaml`` listed on its sign-in page, and write the Streamlit secrets that point
``st.login`` at it. The secrets file lives under ``$ORDERTOWER_HOME/secrets/`` (mode 0600), never
in the repository; a deployment writes its own ``.streamlit/secrets.toml`` for its real
identity provider instead (template: ``.streamlit/secrets.toml.example``), and then nothing
here runs.

The local provider signs in whoever clicks a name: it proves the plumbing (tokens, cookies,
roles, audit), not anyone's identity. Never expose it beyond 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ordertower.settings import PROJECT_ROOT, get_settings

#: The demo identities (their roles are in ordertower/roles.yaml).
DEMO_USERS: dict[str, dict[str, object]] = {
    role: {"sub": email, "email": email, "email_verified": True, "name": name}
    for role, email, name in (
        ("viewer", "viewer@demo.ordertower.example", "Vera Viewer"),
        ("operator", "operator@demo.ordertower.example", "Omar Operator"),
        ("risk_reviewer", "reviewer@demo.ordertower.example", "Rita Reviewer"),
        ("steward", "steward@demo.ordertower.example", "Stella Steward"),
        ("admin", "admin@demo.ordertower.example", "Adam Admin"),
    )
}
DEFAULT_PROVIDER_PORT = 9400
#: The secrets a deployment keeps beside the app (git-ignored; the template is committed).
DEPLOYMENT_SECRETS = PROJECT_ROOT / ".streamlit" / "secrets.toml"


class DevAuthError(RuntimeError):
    """The local provider could not be started."""


def local_secrets_path() -> Path:
    return get_settings().home / "secrets" / "streamlit_secrets.toml"


def write_secrets(path: Path, app_url: str, issuer_url: str) -> Path:
    """Streamlit secrets whose ``[auth]`` points ``st.login`` at ``issuer_url``. A new cookie
    secret each time: signing in again is the only cost of a restart."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    text = "\n".join(
        [
            "# Written by ordertower.devauth for the local OpenID Connect provider; not a",
            "# deployment's secrets (see .streamlit/secrets.toml.example).",
            "[auth]",
            f'redirect_uri = "{app_url.rstrip("/")}/oauth2callback"',
            f'cookie_secret = "{secrets.token_urlsafe(32)}"',
            'client_id = "ordertower-dashboards"',
            f'client_secret = "{secrets.token_urlsafe(24)}"',
            f'server_metadata_url = "{issuer_url.rstrip("/")}/.well-known/openid-configuration"',
            "",
        ]
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    return path


def stop_process_group(proc: subprocess.Popen) -> None:
    """Stop a server started with ``start_new_session=True``: SIGTERM, then SIGKILL."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def provider_command(port: int, host: str = "127.0.0.1") -> list[str]:
    command = [sys.executable, "-m", "oidc_provider_mock", "--host", host, "--port", str(port)]
    for claims in DEMO_USERS.values():
        command += ["--user-claims", json.dumps(claims)]
    return command


def wait_until_up(issuer_url: str, proc: subprocess.Popen | None = None, timeout_s: float = 30):
    deadline = time.monotonic() + timeout_s
    url = f"{issuer_url.rstrip('/')}/.well-known/openid-configuration"
    while True:
        if proc is not None and proc.poll() is not None:
            raise DevAuthError(f"the local OpenID Connect provider exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise DevAuthError(f"the local OpenID Connect provider did not answer at {url}")
        time.sleep(0.2)


@contextmanager
def local_provider(port: int | None = None, log: Path | None = None) -> Iterator[str]:
    """Run the local provider on 127.0.0.1 (a free port by default); yields its issuer URL."""
    port = port or free_port()
    issuer = f"http://127.0.0.1:{port}"
    out = log.open("wb") if log else subprocess.DEVNULL
    proc = subprocess.Popen(
        provider_command(port),
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    try:
        wait_until_up(issuer, proc)
        yield issuer
    finally:
        stop_process_group(proc)
        if log:
            out.close()


def sign_in(page, app_url: str, email: str, timeout_ms: int = 60_000) -> None:
    """Sign in through the app's "Sign in" button and the local provider's page, in a
    Playwright page (the tests' and the bench's browser). Ends back on the app, signed in."""
    page.goto(app_url, wait_until="domcontentloaded")
    page.get_by_role("button", name="Sign in").click(timeout=timeout_ms)
    page.wait_for_url("**/oauth2/authorize**", timeout=timeout_ms)
    page.get_by_role("button", name=email, exact=True).click(timeout=timeout_ms)
    page.wait_for_url(f"{app_url.rstrip('/')}/**", timeout=timeout_ms)
    page.locator('[data-testid="stSidebar"]').get_by_text(email, exact=False).first.wait_for(
        timeout=timeout_ms
    )
