"""The dashboards served by a real ``streamlit run`` and looked at by headless Chromium.

AppTest cannot see what only a browser sees: the page failing to load its front-end, a chart
that throws in JavaScript, an exception box rendered after the script finished. This test
serves the app on a seeded temporary lake, signs in as a steward through the local OpenID
Connect provider, opens the page and fails on any Streamlit error element.
A full-page screenshot is written to ``tests/artifacts/`` for a human to look at.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from dashboards import probe

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
CHROMIUM = probe.CHROMIUM
CHROMIUM_ARGS = probe.CHROMIUM_ARGS
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


@pytest.fixture
def served_app(seeded_lake, tmp_path: Path) -> Iterator[str]:
    """``streamlit run dashboards/app.py`` on a free port over the seeded lake; yields its URL."""
    _require_chromium()
    with probe.serve(
        {"ORDERTOWER_HOME": str(seeded_lake.home)}, log=tmp_path / "streamlit.log"
    ) as url:
        yield url


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
            probe.sign_in(page, served_app, "steward")  # the data-quality page is the stewards'
            page.goto(f"{served_app}/data-quality", wait_until="domcontentloaded")

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
