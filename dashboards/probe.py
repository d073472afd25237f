"""Serve the dashboards with ``streamlit run`` and drive them in headless Chromium.

Shared by the end-to-end browser test (``tests/test_dashboard_pages.py``) and the latency bench
(``make bench``, ``ordertower bench --dashboards``), so both look at the app the same way a user
does: a real server on 127.0.0.1, Debian's Chromium through Playwright, and a page counted as
rendered when Streamlit reports its script run finished (``data-test-script-state`` of the app
root goes back to ``notRunning``) after the action that started it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ordertower import devauth

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "dashboards" / "app.py"
CHROMIUM = Path(os.environ.get("ORDERTOWER_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
#: Every page of the app by URL path (the default page, order tracking, is served at the root).
PAGES = {
    "tracking": "",
    "exceptions": "exceptions",
    "dispatch": "dispatch",
    "kpis": "kpis",
    "carbon": "carbon",
    "risk_review": "risk-review",
    "data_quality": "data-quality",
    "audit_log": "audit-log",
}
#: Records every change of the app's script state with its time, so a render can be timed from
#: the action that caused it even when the run is too quick to be seen "running" by polling.
_STATE_RECORDER = """
(() => {
  window.__runs = [];
  window.__inputs = [];
  for (const kind of ['pointerup', 'keyup']) {
    document.addEventListener(kind, () => window.__inputs.push(performance.now()), true);
  }
  // every message from the server, timed: a run so quick that React renders "running" and
  // "notRunning" in one batch leaves no trace in the DOM, but its messages still arrive
  window.__messages = [];
  const Native = window.WebSocket;
  window.WebSocket = class extends Native {
    constructor(...args) {
      super(...args);
      this.addEventListener('message', () => window.__messages.push(performance.now()));
    }
  };
  // the app root may be re-mounted: watch the whole document, note the root's state changes;
  // states that changed again before the observer ran are read from the records' old values
  let last = null;
  const push = (state) => {
    if (state && state !== last) { window.__runs.push([state, performance.now()]); last = state; }
  };
  const note = (records) => {
    const app = document.querySelector('[data-testid="stApp"]');
    const changes = (records || []).filter((r) => r.type === 'attributes' && r.target === app);
    for (const r of changes.slice(1)) push(r.oldValue);
    push(app && app.getAttribute('data-test-script-state'));
  };
  const watch = () => {
    if (!document.documentElement) { requestAnimationFrame(watch); return; }
    new MutationObserver(note).observe(document.documentElement, {attributes: true,
      attributeOldValue: true, childList: true, subtree: true,
      attributeFilter: ['data-test-script-state']});
    note();
  };
  watch();
})();
"""


#: A run whose "running" state was never rendered counts as finished once the server has
#: answered and then been quiet this long.
QUIET_MS = 3000


class ProbeError(RuntimeError):
    """The app could not be served or did not render in time."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serve(
    env: dict[str, str] | None = None,
    log: Path | None = None,
    timeout_s: float = 90,
    options: tuple[str, ...] = (),
) -> Iterator[str]:
    """``streamlit run dashboards/app.py`` on a free 127.0.0.1 port, signing in through a local
    OpenID Connect provider (:mod:`ordertower.devauth`, also on a free port); yields the app's
    base URL. Sign in with :func:`sign_in`.

    ``env`` is added to this process's environment (e.g. ``ORDERTOWER_HOME``); ``options`` are
    more ``streamlit run`` options. The servers run in their own process groups and are stopped
    (SIGTERM, then SIGKILL) on exit.
    """
    with tempfile.TemporaryDirectory(prefix="ordertower-auth-") as tmp:
        provider_log = log.with_name(log.stem + "_oidc.log") if log else None
        with devauth.local_provider(log=provider_log) as issuer:
            secrets_file = devauth.write_secrets(
                Path(tmp) / "secrets.toml", "http://127.0.0.1:{port}", issuer
            )
            with _serve(
                env, log, timeout_s, (*options, "--secrets.files", str(secrets_file))
            ) as url:
                yield url


def sign_in(page: Any, url: str, role: str = "admin") -> None:
    """Sign the browser page in as the demo identity of ``role`` (ordertower/roles.yaml)."""
    devauth.sign_in(page, url, str(devauth.DEMO_USERS[role]["email"]))


@contextmanager
def _serve(
    env: dict[str, str] | None,
    log: Path | None,
    timeout_s: float,
    options: tuple[str, ...],
) -> Iterator[str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    out = log.open("wb") if log else subprocess.DEVNULL
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            str(APP),
            "--server.headless",
            "true",
            "--server.port",
            str(port),
            "--server.address",
            "127.0.0.1",
            "--server.fileWatcherType",
            "none",
            "--browser.gatherUsageStats",
            "false",
            *options,
        ],
        cwd=ROOT,  # .streamlit/config.toml (static serving of the offline map style)
        env={**os.environ, **(env or {})},
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if proc.poll() is not None:
                raise ProbeError(f"streamlit exited with {proc.returncode}: {_tail(log)}")
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise ProbeError(
                    f"streamlit did not serve {url} in {timeout_s:.0f} s: {_tail(log)}"
                )
            time.sleep(0.3)
        yield url
    finally:
        devauth.stop_process_group(proc)
        if log:
            out.close()


def _tail(log: Path | None, lines: int = 30) -> str:
    if not log or not log.exists():
        return "(no log)"
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


@contextmanager
def browser(viewport: tuple[int, int] = (1440, 1000)) -> Iterator[Any]:
    """A headless Debian Chromium page (Playwright cannot download browsers here)."""
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.exists():
        raise ProbeError(f"{CHROMIUM} is missing (apt-get install chromium)")
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = chromium.new_page(viewport={"width": viewport[0], "height": viewport[1]})
            page.add_init_script(_STATE_RECORDER)
            yield page
        finally:
            chromium.close()


@dataclass
class Probe:
    """One Chromium page on the served app: open pages, act, time renders, collect errors."""

    page: Any
    base_url: str
    timeout_ms: int = 60_000
    page_errors: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.page.on("pageerror", lambda exc: self.page_errors.append(str(exc)))

    def open(self, path: str) -> float:
        """Navigate to ``path`` (a URL path and query) and return seconds until rendered."""
        started = time.perf_counter()
        self.page.goto(f"{self.base_url}/{path}", wait_until="commit")
        self._wait_for_run(0.0)
        return time.perf_counter() - started

    def act(self, action: Callable[[Any], None]) -> float:
        """Perform ``action(page)`` (a click, a typed search...) and return the seconds from the
        user's last input (the click or key that committed the change) until the script run it
        caused has finished: what the user waits for, without the robot's typing time."""
        since = self.page.evaluate("() => performance.now()")
        action(self.page)
        self._wait_for_run(since)
        return self.page.evaluate(
            """(since) => {
                const runs = window.__runs;
                const i = runs.findIndex(([s, t]) => t >= since && s === 'running');
                let started, done;
                if (i >= 0) {
                    started = runs[i][1];
                    done = runs.slice(i).find(([s]) => s === 'notRunning')[1];
                } else {  // a run never seen "running" (see _STATE_RECORDER): its last message
                    const messages = window.__messages.filter((t) => t >= since);
                    started = messages[0];
                    done = messages[messages.length - 1];
                }
                const inputs = window.__inputs.filter((t) => t >= since && t <= started);
                const from = inputs.length ? inputs[inputs.length - 1] : since;
                return (done - from) / 1000;
            }""",
            since,
        )

    def _wait_for_run(self, since_ms: float) -> None:
        """Until a run started after ``since_ms`` (page clock) has finished; on a timeout the
        error names the page and the script states seen."""
        from playwright.sync_api import TimeoutError as PlaywrightTimeout

        try:
            self._wait_for_function(since_ms)
        except PlaywrightTimeout as exc:
            runs = self.page.evaluate("() => (window.__runs || []).slice(-6)")
            raise ProbeError(
                f"{self.page.url}: no finished script run after the action within "
                f"{self.timeout_ms / 1000:.0f} s (states: {runs}; visible errors: {self.errors()})"
            ) from exc

    def _wait_for_function(self, since_ms: float) -> None:
        self.page.wait_for_function(
            """([since, quietMs]) => {
                const runs = window.__runs || [];
                const started = runs.findIndex(([s, t]) => t >= since && s === 'running');
                if (started >= 0) return runs.slice(started).some(([s]) => s === 'notRunning');
                // never seen "running": the server answered, the app is idle and stays quiet
                const messages = (window.__messages || []).filter((t) => t >= since);
                const idle = runs.length && runs[runs.length - 1][0] === 'notRunning';
                return idle && messages.length > 0
                    && performance.now() - messages[messages.length - 1] > quietMs;
            }""",
            arg=[since_ms, QUIET_MS],
            timeout=self.timeout_ms,
        )

    def navigate(self, title: str) -> float:
        """Click the sidebar link ``title`` (in-app navigation: no page reload) and return
        seconds until the page has rendered."""
        link = self.page.locator('[data-testid="stSidebarNav"] a').filter(has_text=title).first
        if link.get_attribute("aria-current") == "page":
            raise ProbeError(f"already on {title!r}: a click on the current page starts no run")
        return self.act(lambda page: link.click())

    def last_run_seconds(self) -> float:
        """Server-side script time of the latest run, as the browser saw it."""
        runs = self.page.evaluate("() => window.__runs")
        start = max(i for i, (s, _) in enumerate(runs) if s == "running")
        end = next(t for s, t in runs[start:] if s == "notRunning")
        return (end - runs[start][1]) / 1000

    def settle(self, ms: int = 1200) -> None:
        """Let canvases (dataframes, charts, maps) paint before a screenshot."""
        self.page.wait_for_timeout(ms)

    def errors(self) -> list[str]:
        """What a user would see as broken: exception boxes, error alerts, dialogs (e.g. "Page
        not found") and uncaught JavaScript errors."""
        found = [
            f"exception: {t}"
            for t in self.page.locator('[data-testid="stException"]').all_inner_texts()
        ]
        for alert in self.page.locator('[data-testid="stAlert"]').all():
            if alert.locator('[data-testid="stAlertContentError"]').count():
                found.append(f"error: {alert.inner_text()}")
        found += [
            f"dialog: {t}" for t in self.page.locator('[data-testid="stDialog"]').all_inner_texts()
        ]
        found += [f"javascript: {e}" for e in self.page_errors]
        return found

    def screenshot(self, path: Path, max_height: int = 6000) -> None:
        """The whole page: Streamlit scrolls inside its main container, so grow the viewport to
        the content's height, shoot, and restore it."""
        size = self.page.viewport_size
        height = self.page.evaluate(
            "() => document.querySelector('[data-testid=\"stMain\"]').scrollHeight"
        )
        self.page.set_viewport_size(
            {"width": size["width"], "height": min(int(height) + 40, max_height)}
        )
        self.settle(800)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(path), full_page=True)
        self.page.set_viewport_size(size)


# -- interactions the e2e test and the bench share --------------------------------------------


def search(term: str) -> Callable[[Any], None]:
    """Type ``term`` into the order search box and submit it."""

    def run(page: Any) -> None:
        box = page.get_by_label("Order id, tracking reference or customer id")
        box.fill(term)
        box.press("Enter")

    return run


def pick(label: str, option: str) -> Callable[[Any], None]:
    """Add ``option`` to the multiselect labelled ``label`` (sidebar filters)."""

    def run(page: Any) -> None:
        widget = page.locator('[data-testid="stMultiSelect"]').filter(has_text=label)
        widget.locator("input").click()
        widget.locator("input").fill(option)
        page.get_by_role("option").filter(has_text=option).first.click()
        page.keyboard.press("Escape")

    return run


def select(label: str, option: str) -> Callable[[Any], None]:
    """Choose ``option`` in the selectbox labelled ``label``."""

    def run(page: Any) -> None:
        widget = page.locator('[data-testid="stSelectbox"]').filter(has_text=label)
        widget.locator("input").click()
        page.get_by_role("option").filter(has_text=option).first.click()

    return run


def clear(label: str) -> Callable[[Any], None]:
    """Remove every choice of the multiselect labelled ``label``."""

    def run(page: Any) -> None:
        widget = page.locator('[data-testid="stMultiSelect"]').filter(has_text=label)
        box = widget.locator("input")
        box.click()
        for _ in range(widget.locator("[data-tag]:visible").count()):
            box.press("Backspace")
        page.keyboard.press("Escape")

    return run


def click_button(name: str) -> Callable[[Any], None]:
    """Click the button (or segmented-control / radio option) named ``name``."""

    def run(page: Any) -> None:
        page.locator('[data-testid="stMain"]').locator("button").filter(
            has=page.get_by_text(name, exact=True)
        ).first.click()

    return run


def choose_radio(name: str) -> Callable[[Any], None]:
    """Pick the radio option ``name``."""

    def run(page: Any) -> None:
        page.get_by_role("radiogroup").get_by_text(name, exact=True).first.click()

    return run
