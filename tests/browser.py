"""What the browser tests share: signing in through the login page as a person does."""

from pathlib import Path

#: Screenshots for a person to look at (gitignored).
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"


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
