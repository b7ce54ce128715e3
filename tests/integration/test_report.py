"""The HTML report in a real browser (Debian's headless chromium): it renders, its charts are
drawn, and the page logs no error. No lab: the workspace is recorded straight into the store."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from phoenix.report import build, write_html
from tests.unit.reports import EVIL, FLEETS, NOW, recorded

pytestmark = pytest.mark.integration

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")


def _missing() -> list[str]:
    return [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]


@pytest.fixture
def driver(tmp_path: Path) -> Iterator[object]:
    missing = _missing()
    if missing:
        reason = f"{', '.join(missing)} missing: apt-get install chromium chromium-driver"
        if os.geteuid() == 0:  # root can install them: a missing browser is a failure there
            pytest.fail(reason)
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}",
    ):  # fmt: skip
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    browser = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    browser.set_page_load_timeout(30)
    try:
        yield browser
    finally:
        browser.quit()
        shutil.rmtree(tmp_path / "profile", ignore_errors=True)


def test_the_report_renders_with_its_charts_and_no_console_error(
    tmp_path: Path, driver: object
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.remote.webdriver import WebDriver

    assert isinstance(driver, WebDriver)
    page = tmp_path / "report.html"
    write_html(page, build(recorded(tmp_path / "ws"), now=NOW))
    driver.get(page.as_uri())
    assert driver.title.startswith("phoenix report 2026-03-01")
    assert len(driver.find_elements(By.CSS_SELECTOR, "table.servers")) == len(FLEETS)
    assert len(driver.find_elements(By.CSS_SELECTOR, "svg.chart")) == len(FLEETS)
    boxes = driver.execute_script(
        "return Array.from(document.querySelectorAll('svg.chart rect')).map(r => {"
        " const b = r.getBoundingClientRect(); return [b.width, b.height]; })"
    )
    assert len(boxes) == 32  # an age bar per server, web-g1-2's high and low findings
    assert all(width > 0 and height > 0 for width, height in boxes), boxes
    lines = driver.execute_script(
        "return Array.from(document.querySelectorAll('svg.chart line.max-age'))"
        ".map(l => l.getBoundingClientRect().height)"
    )
    assert len(lines) == 2 and all(height > 0 for height in lines)
    cells = [c.text for c in driver.find_elements(By.CSS_SELECTOR, "table.servers td")]
    assert EVIL in cells  # shown as text, never run
    assert driver.execute_script("return document.querySelectorAll('body script').length") == 0
    severe = [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
    assert severe == []
