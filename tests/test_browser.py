"""A real browser: each demo user signs in and sees their role's navigation.

Drives Debian's Chromium through Playwright (never a downloaded browser). Screenshots
land in test-artifacts/ for a person to look at.
"""

import re
from io import StringIO

import pytest
from django.core.management import call_command

from tests.browser import ARTIFACTS, needs_chromium

pytestmark = [
    pytest.mark.browser,
    needs_chromium,
]

# What each role must see in its navigation, and what it must not.
EXPECTED_NAV = {
    "demo-admin": (
        {"Home", "Worklist", "Upload", "Users", "Audit trail"},
        {"My studies"},
    ),
    "demo-radiologist": (
        {"Home", "Worklist", "Upload"},
        {"Users", "Audit trail", "My studies"},
    ),
    "demo-clinician": (
        {"Home", "My studies", "Upload"},
        {"Worklist", "Users", "Audit trail"},
    ),
}


@pytest.fixture
def demo_passwords(transactional_db, settings, tmp_path):
    settings.DATA_DIR = tmp_path
    out = StringIO()
    call_command("demo_users", stdout=out)
    return dict(re.findall(r"(demo-\w+)\s+(\w{16})", out.getvalue()))


@pytest.mark.parametrize("username", list(EXPECTED_NAV))
def test_demo_user_signs_in_and_sees_their_navigation(
    username, browser, live_server, demo_passwords
):
    ARTIFACTS.mkdir(exist_ok=True)
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.goto(f"{live_server.url}/")
    assert "/accounts/login/" in page.url
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(demo_passwords[username])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{live_server.url}/")

    nav = page.get_by_test_id("role-nav").get_by_role("link").all_inner_texts()
    shown = {n.strip() for n in nav}
    required, forbidden = EXPECTED_NAV[username]
    assert required <= shown, f"{username} misses {required - shown}"
    assert not shown & forbidden, f"{username} sees {shown & forbidden}"
    role = username.removeprefix("demo-")
    assert role in page.get_by_test_id("role-intro").inner_text()
    page.screenshot(path=ARTIFACTS / f"home-{role}.png", full_page=True)

    if role == "admin":
        page.get_by_role("link", name="Users").first.click()
        page.wait_for_url("**/accounts/users/")
        assert page.get_by_role("link", name="demo-clinician").is_visible()
        page.screenshot(path=ARTIFACTS / "users-admin.png", full_page=True)
    else:
        response = page.goto(f"{live_server.url}/accounts/users/")
        assert response.status == 403
        assert page.get_by_text("You do not have access to this page").is_visible()
    page.close()


def test_lockout_message_in_the_browser(browser, live_server, demo_passwords):
    ARTIFACTS.mkdir(exist_ok=True)
    page = browser.new_page()
    for _ in range(5):
        page.goto(f"{live_server.url}/accounts/login/")
        page.get_by_label("Username").fill("demo-clinician")
        page.get_by_label("Password").fill("wrong-password")
        page.get_by_role("button", name="Sign in").click()
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("Username").fill("demo-clinician")
    page.get_by_label("Password").fill(demo_passwords["demo-clinician"])
    page.get_by_role("button", name="Sign in").click()
    assert page.get_by_test_id("lockout").is_visible()
    page.screenshot(path=ARTIFACTS / "login-locked.png", full_page=True)
    page.close()
