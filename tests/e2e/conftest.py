"""The browser the e2e tests drive (Debian's Chromium through Playwright), the pages'
Content-Security-Policy watch, and signing in."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

CHROMIUM = "/usr/bin/chromium"
ARTEFACTS = Path(os.environ.get("E2E_ARTEFACTS", Path(__file__).resolve().parents[2] / "var/e2e"))
PASSWORD = "correct horse battery staple"


@pytest.fixture
def browser():
    if not Path(CHROMIUM).exists():
        if os.environ.get("E2E_REQUIRED"):
            pytest.fail(f"{CHROMIUM} is missing (apt-get install chromium)")
        pytest.skip(f"{CHROMIUM} is not installed")

    # Playwright's sync API runs an event loop in this thread; the ORM calls the test makes
    # between browser steps are synchronous and safe.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield browser
        browser.close()
    del os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"]


# Every page the browser opens is watched for Content-Security-Policy refusals (a script,
# style or request the policy blocked): the test fails on the first one.
CSP_REFUSALS: list[str] = []


@pytest.fixture(autouse=True)
def _no_csp_refusals():
    CSP_REFUSALS.clear()
    yield
    assert CSP_REFUSALS == []


def _watch_csp(message) -> None:
    if "Content Security Policy" in message.text:
        CSP_REFUSALS.append(message.text)


def login(browser, base: str, username: str):
    page = browser.new_context().new_page()
    page.on("console", _watch_csp)
    page.goto(f"{base}/admin/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("#user-tools")
    return page
