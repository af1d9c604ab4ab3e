"""The dashboard in a real browser (Debian's chromium driven by Playwright): the page loads with
the queue, the form enqueues an experiment, the plots of a running experiment grow as its rows
arrive, its KPIs show when it is done; names are shown as text, never run as HTML."""
from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path

import pytest

from co2twin.service import Service, ServiceConfig
from co2twin.service.loadtest import running_api

CHROMIUM = os.environ.get("CO2TWIN_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic"]


def _browser_or_fail():
    """Playwright's sync API and chromium, or a failure (CI) / skip (elsewhere)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    if sync_playwright is None or not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        message = ("the browser test needs Playwright for Python (pip install playwright; never "
                   "`playwright install`) and Debian's chromium (apt-get install -y chromium)")
        if os.environ.get("CI") or os.environ.get("CO2TWIN_REQUIRE_SERVERS") == "1":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return sync_playwright


def test_the_dashboard_enqueues_and_plots_live(sqlite_url, tmp_path):
    sync_playwright = _browser_or_fail()
    config = ServiceConfig(flush_s=0.1, poll_s=0.1)
    with Service(sqlite_url, config) as svc, running_api(svc) as base:
        hostile = svc.enqueue({"name": "<img src=x onerror=\"window.pwned=1\">",
                               "overrides": {"duration": 10}})["id"]
        worker = svc.worker()
        thread = threading.Thread(target=worker.run)
        thread.start()
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS,
                                            headless=True)
                page = browser.new_page()
                errors: list[str] = []
                page.on("pageerror", lambda exc: errors.append(str(exc)))
                page.goto(base + "/")
                assert page.title() == "co2twin service"
                page.wait_for_selector(f"#queue tbody tr[data-id='{hostile}']")
                assert page.evaluate("window.pwned") is None
                assert page.locator("#queue tbody img").count() == 0
                # the form: a paced run so that its plot grows while we watch
                page.fill("input[name=name]", "from the browser")
                page.fill("input[name=current]", "4.5")
                page.fill("input[name=duration]", "60")
                page.fill("input[name=record_every]", "1")
                page.select_option("select[name=pace]", "10x")
                page.click("#run")
                page.wait_for_selector("#problems li", timeout=30_000)
                assert "queued as experiment" in page.inner_text("#problems")
                (job,) = [e for e in svc.experiments() if e["name"] == "from the browser"]
                assert job["status"] in ("queued", "running")
                line = page.locator(".plot[data-signal='reactor.cell_voltage'] polyline")
                line.wait_for(timeout=60_000)
                counts = [int(line.get_attribute("data-points") or 0)]
                deadline = time.monotonic() + 60
                while len(set(counts)) < 3 and time.monotonic() < deadline:
                    page.wait_for_timeout(300)
                    counts.append(int(line.get_attribute("data-points") or 0))
                assert len(set(counts)) >= 3 and counts == sorted(counts), counts
                limit = page.locator(".plot[data-signal='reactor.cell_voltage'] line.limit")
                assert limit.count() == 1  # the 4.5 V operating limit
                page.wait_for_selector("#kpis:not([hidden])", timeout=60_000)
                assert "mean_cell_voltage_V" in page.inner_text("#kpis")
                assert int(line.get_attribute("data-points") or 0) == 61
                page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
                assert not errors, errors
                browser.close()
        finally:
            worker.stop()
            thread.join(60)
