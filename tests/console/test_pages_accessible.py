"""Every console page under axe-core (the npm package, fetched and pinned by ./bootstrap test)
at desktop and phone width, and the page's CSP blocking nothing the console itself does."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.console.conftest import UI_TIMEOUT_MS, sign_in

pytestmark = pytest.mark.browser

AXE = Path(__file__).resolve().parents[2] / ".cache" / "axe-core" / "4.14.1" / "axe.min.js"
PAGES = ("#/owner", "#/owner/new", "#/client", "#/detect", "#/auditor", "#/admin")
SCREENSHOTS = os.environ.get("CLONEGATE_CONSOLE_SCREENSHOTS")  # a folder: save each page there (docs/console.md)


def test_every_page_passes_axe_fits_a_phone_and_keeps_its_policy(browser, gateway):
    """No serious or critical axe-core violation (WCAG 2.1 A/AA and best practice), no
    horizontal scrolling at phone width, and nothing the page's CSP had to block."""
    if not AXE.is_file():
        pytest.fail(f"no axe-core at {AXE}: ./bootstrap test fetches it")
    axe = AXE.read_text()
    blocked: list[str] = []
    for width, height in ((1100, 900), (375, 800)):
        context = browser.new_context(base_url=gateway.base_url, viewport={"width": width, "height": height})
        context.set_default_timeout(UI_TIMEOUT_MS)
        page = context.new_page()
        page.on("console", lambda message: "Content Security Policy" in message.text and blocked.append(message.text))
        page.goto("/console/#/signin")
        page.wait_for_selector("body[data-ready=true]")
        check_page(page, axe, "#/signin", width)
        sign_in(
            page, subject="everyone", name="Every Role", roles=("owner", "client", "auditor", "admin"), tenant="acme"
        )
        for path in PAGES:
            page.goto(f"/console/{path}")
            page.locator("main h1").wait_for()
            page.wait_for_load_state("networkidle")
            if path == "#/owner/new":
                page.get_by_role("button", name="Get my statement").click()
                page.locator("#statement-preview").wait_for()
            check_page(page, axe, path, width)
        context.close()
    assert not blocked, blocked


def check_page(page, axe: str, path: str, width: int) -> None:
    page.evaluate(axe)  # evaluated by the test driver: the page's CSP rightly refuses injected scripts
    results = page.evaluate(
        "axe.run(document, {runOnly: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice']})"
    )
    serious = [
        f"{v['id']}: {v['help']} ({len(v['nodes'])} node(s), e.g. {v['nodes'][0]['target']})"
        for v in results["violations"]
        if v["impact"] in ("serious", "critical")
    ]
    assert not serious, f"{path} at {width}px: {serious}"
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 1, f"{path} scrolls sideways by {overflow}px at {width}px"
    if SCREENSHOTS:
        name = path.strip("#/").replace("/", "-")
        page.screenshot(path=str(Path(SCREENSHOTS) / f"{name}-{width}.png"), full_page=width < 600)
