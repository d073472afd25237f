"""The dashboards served by a real ``streamlit run`` and looked at by headless Chromium.

AppTest cannot see what only a browser sees: the page failing to load its front-end, a chart
that throws in JavaScript, an exception box rendered after the script finished. This test
serves the app on a seeded temporary lake, opens it and fails on any Streamlit error element.
A full-page screenshot is written to ``tests/artifacts/`` for a human to look at.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SERVE_TIMEOUT_S = 60
RENDER_TIMEOUT_MS = 60_000

pytestmark = pytest.mark.browser


def _require_chromium() -> None:
    """Skip without a browser on a workstation, but never let CI pass by skipping."""
    if CHROMIUM.exists():
        return
    reason = f"{CHROMIUM} is missing (apt-get install chromium)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason}; browser tests must run in CI")
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_until_serving(proc: subprocess.Popen, url: str, log: Path) -> None:
    deadline = time.monotonic() + SERVE_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"streamlit exited with {proc.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    pytest.fail(f"streamlit did not serve {url} within {SERVE_TIMEOUT_S} s:\n{log.read_text()}")


@pytest.fixture
def served_app(seeded_lake, tmp_path: Path) -> Iterator[str]:
    """``streamlit run dashboards/app.py`` on a free port over the seeded lake; yields its URL."""
    _require_chromium()
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "streamlit.log"
    env = {
        **os.environ,
        "ORDERTOWER_HOME": str(seeded_lake.home),
        "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false",
    }
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "streamlit",
                "run",
                str(ROOT / "dashboards" / "app.py"),
                "--server.headless",
                "true",
                "--server.port",
                str(port),
                "--server.address",
                "127.0.0.1",
                "--server.fileWatcherType",
                "none",
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so teardown kills all of it
        )
    try:
        _wait_until_serving(proc, url, log)
        yield url
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=10)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def test_data_quality_page_renders_in_chromium(served_app: str) -> None:
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 1000})
            page_errors: list[str] = []
            page.on("pageerror", lambda exc: page_errors.append(str(exc)))
            # The data-quality page is the default page, served at the root.
            page.goto(served_app, wait_until="domcontentloaded")

            # Rendered: the headline metrics, the chart and the drill-down table are there
            # and the script has stopped running.
            expect(page.get_by_role("heading", name="Data quality")).to_be_visible(
                timeout=RENDER_TIMEOUT_MS
            )
            metrics = page.locator('[data-testid="stMetric"]')
            expect(metrics).to_have_count(4, timeout=RENDER_TIMEOUT_MS)
            expect(page.locator('[data-testid="stPlotlyChart"]')).to_be_visible(
                timeout=RENDER_TIMEOUT_MS
            )
            expect(page.get_by_text("Quarantined records", exact=True)).to_be_visible()
            page.wait_for_function(
                "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')",
                timeout=RENDER_TIMEOUT_MS,
            )
            page.wait_for_timeout(1500)  # let canvases (dataframes, plotly) paint

            # Streamlit scrolls inside its main container, so a "full page" screenshot only
            # shows the viewport: grow the viewport to the content's height instead.
            height = page.evaluate(
                "() => document.querySelector('[data-testid=\"stMain\"]').scrollHeight"
            )
            page.set_viewport_size({"width": 1440, "height": min(int(height) + 40, 6000)})
            page.wait_for_timeout(1000)
            page.screenshot(path=str(ARTIFACTS / "data_quality.png"), full_page=True)

            dialogs = page.locator('[data-testid="stDialog"]')  # e.g. "Page not found"
            assert dialogs.count() == 0, dialogs.all_inner_texts()

            exceptions = page.locator('[data-testid="stException"]')
            assert exceptions.count() == 0, exceptions.all_inner_texts()
            errors = [
                alert.inner_text()
                for alert in page.locator('[data-testid="stAlert"]').all()
                if alert.locator('[data-testid="stAlertContentError"]').count()
            ]
            assert not errors, errors
            assert not page_errors, page_errors

            metric_text = " ".join(metrics.all_inner_texts())
            for label in (
                "Datasets",
                "Records received",
                "Quarantine rate",
                "Datasets breaching SLA",
            ):
                assert label in metric_text
            expect(page.get_by_text("Received vs quarantined per day")).to_be_visible()
            expect(page.get_by_text("carrier_events").first).to_be_attached()
        finally:
            browser.close()
