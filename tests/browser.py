"""What the browser tests share: Debian's Chromium, the marks that skip without it
(or without the shipped model), and signing in through the login page."""

from pathlib import Path

import pytest
from django.conf import settings

#: Debian's Chromium, which Playwright drives (never a browser it downloads).
CHROMIUM = Path("/usr/bin/chromium")
#: Screenshots for a person to look at (gitignored).
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
SHIPPED = Path(settings.SHIPPED_MODEL_DIR)

needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="Debian's chromium is not installed (apt install chromium)",
)
needs_shipped_model = pytest.mark.skipif(
    not (SHIPPED / "model.json").is_file(),
    reason=f"the shipped model is not in this checkout ({SHIPPED}/model.json)",
)


def sign_in(
    browser, base: str, username: str, password: str, *, width=1400, height=900
):
    """A new page of ``browser`` (width x height) signed in as ``username`` at
    ``base``; uncaught script errors are collected in ``page.js_errors``."""
    page = browser.new_page(viewport={"width": width, "height": height})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.js_errors = errors
    page.goto(f"{base}/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base}/")
    return page
