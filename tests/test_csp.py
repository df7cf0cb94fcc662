"""Content-Security-Policy: every page the portal builds carries a strict policy (its
own scripts and styles only, no inline script, no frames, no plugins), and the pages
still work under it in a real browser.

The browser tests sign in as each role through the login page and open the role's
pages: the worklist, the study viewer (slices, heatmap and its opacity), the PDF
report, an upload with its progress bar, the API docs (Swagger UI), the feedback
dashboard's and a retraining job's Plotly charts, the users, the audit trail with its
refusals warning and the Django admin site. Any `securitypolicyviolation` event,
console CSP message or script error fails them. Drives Debian's Chromium through
Playwright.
"""

import re
from pathlib import Path

import pytest
from django.urls import reverse

from accounts.tests.factories import PASSWORD, UserFactory
from diagnosis import services as study_services
from diagnosis.tasks import study_process_task
from diagnosis.tests.conftest import (  # noqa: F401 - fixtures used by these tests
    active_model,
    series_dir,
    stub_analysis,
    uploads_of,
)
from feedback.models import DatasetStatus, JobStatus, RetrainingJob, TrainingDataset

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"


def directives(header: str) -> dict[str, list[str]]:
    parts = (d.split() for d in header.split(";") if d.strip())
    return {p[0]: p[1:] for p in parts}


# --- The header -----------------------------------------------------------------------
@pytest.mark.parametrize(
    "url_name, args",
    [("home", []), ("diagnosis:study-list", []), ("accounts:audit-list", [])],
)
def test_every_page_has_a_strict_policy(as_admin, url_name, args):
    response = as_admin.get(reverse(url_name, args=args))
    assert response.status_code == 200
    policy = directives(response["Content-Security-Policy"])
    assert policy["default-src"] == ["'self'"]
    assert policy["script-src"] == ["'self'"]
    assert policy["style-src"] == ["'self'"]
    # Only style= attributes are allowed inline (see settings.CONTENT_SECURITY_POLICY)
    assert policy["style-src-attr"] == ["'unsafe-inline'"]
    assert policy["object-src"] == ["'none'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["base-uri"] == ["'self'"]
    assert policy["form-action"] == ["'self'"]
    assert "'unsafe-eval'" not in response["Content-Security-Policy"]


def test_login_error_pages_and_the_api_have_it_too(client, as_outsider, db):
    assert "Content-Security-Policy" in client.get(reverse("accounts:login"))
    assert "Content-Security-Policy" in as_outsider.get("/no-such-page/")
    assert "Content-Security-Policy" in as_outsider.get(reverse("accounts:user-list"))
    assert "Content-Security-Policy" in as_outsider.get(reverse("api:me"))


def test_the_api_docs_page_allows_only_its_own_inline_style(as_clinician):
    response = as_clinician.get(reverse("api-docs"))
    assert response.status_code == 200
    html = response.content.decode()
    assert "<script>" not in html  # its setup script is a separate same-origin file
    policy = directives(response["Content-Security-Policy"])
    assert policy["script-src"] == ["'self'"]
    assert "'unsafe-inline'" not in policy["style-src"]
    assert any(s.startswith("'sha256-") for s in policy["style-src"])
    script = re.search(r'<script src="([^"]*\?script=[^"]*)"', html).group(1)
    setup = as_clinician.get(script.replace("&amp;", "&"))
    assert setup.status_code == 200
    assert "SwaggerUIBundle" in setup.content.decode()
    schema = as_clinician.get(reverse("schema"), HTTP_ACCEPT="application/json")
    assert "/api/docs/" not in schema.json()["paths"]


# --- In the browser -------------------------------------------------------------------
in_browser = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="Debian's chromium is not installed (apt install chromium)",
)

WATCH_CSP = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => {
  const where = `${e.sourceFile}:${e.lineNumber}`;
  window.__csp.push(`${e.violatedDirective} ${e.blockedURI} ${where}`);
});
"""


@pytest.fixture
def portal(transactional_db, settings, tmp_path, monkeypatch, request):
    """Three users and one ready study with a heatmap (the model stubbed)."""
    settings.FILES_ROOT = tmp_path / "files"
    request.getfixturevalue("active_model")
    request.getfixturevalue("stub_analysis")
    monkeypatch.setattr("diagnosis.tasks.study_process_task.delay", lambda pk: None)
    users = {
        role: UserFactory(username=f"csp-{role}", role=role)
        for role in ("clinician", "radiologist", "admin")
    }
    series = request.getfixturevalue("series_dir")
    study = study_services.study_create(
        user=users["clinician"], files=uploads_of(series), clinical={}
    ).study
    study_process_task.apply(args=[study.pk])
    study.refresh_from_db()
    assert study.status == "ready", study.error_message
    dataset = TrainingDataset.objects.create(
        name="phantoms",
        root="/nonexistent",
        status=DatasetStatus.READY,
        created_by=users["admin"],
    )
    job = RetrainingJob.objects.create(
        dataset=dataset,
        status=JobStatus.SUCCEEDED,
        epochs=2,
        epoch=2,
        history=[
            {"epoch": 1, "loss": 0.6, "val_auc": 0.7},
            {"epoch": 2, "loss": 0.4, "val_auc": 0.8},
        ],
        log="epoch 1\nepoch 2\n",
    )
    return {
        "users": users,
        "study": study,
        "series": series,
        "job": job,
        "model": request.getfixturevalue("active_model"),
    }


class Watched:
    """A signed-in page that records CSP violations and script errors."""

    def __init__(self, browser, base, username):
        self.base = base
        self.page = browser.new_page(viewport={"width": 1400, "height": 900})
        self.console = []
        self.errors = []
        self.page.add_init_script(WATCH_CSP)
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.page.goto(f"{base}/accounts/register/")
        self.check("registration page")
        self.page.goto(f"{base}/accounts/login/")
        self.check("login page")
        self.page.get_by_label("Username").fill(username)
        self.page.get_by_label("Password").fill(PASSWORD)
        self.page.get_by_role("button", name="Sign in").click()
        self.page.wait_for_url(f"{base}/")
        self.check("home")

    def _console(self, message):
        if "Content Security Policy" in message.text:
            self.console.append(message.text)

    def open(self, path: str):
        response = self.page.goto(self.base + path)
        assert response.status == 200, (path, response.status)
        return self.page

    def check(self, where: str) -> None:
        self.page.wait_for_load_state("networkidle")
        violations = self.page.evaluate("window.__csp || []")
        assert violations == [], f"{where}: {violations}"
        assert self.console == [], f"{where}: {self.console}"
        assert self.errors == [], f"{where}: {self.errors}"


@pytest.mark.browser
@in_browser
def test_clinician_pages_work_under_the_policy(browser, live_server, portal):
    ARTIFACTS.mkdir(exist_ok=True)
    study = portal["study"]
    user = Watched(browser, live_server.url, "csp-clinician")
    page = user.open(reverse("diagnosis:study-list"))
    assert page.get_by_test_id("study-table").locator("tbody tr").count() == 1
    user.check("my studies")

    page = user.open(reverse("diagnosis:study-detail", args=[study.pk]))
    page.locator("#viewer[data-current]").wait_for()
    assert page.locator("#heatmap-img").is_visible()
    user.check("study page")

    # The report opens in the browser's PDF viewer under the policy.
    response = page.goto(
        live_server.url + reverse("reports:study-pdf", args=[study.pk]) + "?view=1"
    )
    assert response.headers["content-type"] == "application/pdf"
    assert "Content-Security-Policy".lower() in response.headers
    page.wait_for_timeout(1500)
    assert any(f.url.startswith("chrome-extension://") for f in page.frames)
    page.screenshot(path=ARTIFACTS / "csp-report-pdf.png")

    # An upload through the page's script, with its progress bar.
    page = user.open(reverse("diagnosis:study-upload"))
    files = [str(p) for p in sorted(portal["series"].iterdir())]
    page.set_input_files("#id_files", files[:4])
    page.get_by_label("Patient ID / MRN").fill("CSP-UPLOAD")
    page.get_by_role("button", name="Upload and analyse").click()
    page.wait_for_url(re.compile(r"/studies/\d+/$"))
    user.check("upload")
    page.screenshot(path=ARTIFACTS / "csp-clinician-upload.png", full_page=True)

    response = user.page.goto(live_server.url + "/studies/987654/")
    assert response.status == 404
    user.check("404 page")
    user.open(reverse("accounts:password-change"))
    user.check("password change")

    page = user.open(reverse("api-docs"))
    page.locator(".swagger-ui .info .title").wait_for(timeout=15000)
    assert "Stroke portal API" in page.locator(".swagger-ui .info .title").inner_text()
    page.locator(".opblock").first.wait_for()
    user.check("API docs")
    page.screenshot(path=ARTIFACTS / "csp-api-docs.png")


@pytest.mark.browser
@in_browser
def test_radiologist_viewer_works_under_the_policy(browser, live_server, portal):
    ARTIFACTS.mkdir(exist_ok=True)
    study = portal["study"]
    user = Watched(browser, live_server.url, "csp-radiologist")
    page = user.open(reverse("diagnosis:study-list"))
    page.get_by_test_id("study-table").locator("tbody tr").first.get_by_role(
        "link"
    ).click()
    viewer = page.locator("#viewer")
    page.locator("#viewer[data-current]").wait_for()
    assert viewer.get_attribute("data-current") == "5"
    page.locator(".viewer-stage").focus()
    page.keyboard.press("ArrowDown")
    assert viewer.get_attribute("data-current") == "6"
    page.keyboard.press("ArrowUp")
    heatmap = page.locator("#heatmap-img")
    assert heatmap.is_visible()
    page.locator("#heatmap-opacity").fill("80")
    assert heatmap.evaluate("img => getComputedStyle(img).opacity") == "0.8"
    # The probability strip's bars take their height from a style attribute.
    bar = page.locator(".prob-bar").nth(5)
    assert bar.evaluate("b => getComputedStyle(b).getPropertyValue('--p').trim()")
    user.check("viewer")
    page.screenshot(path=ARTIFACTS / "csp-viewer.png", full_page=True)
    assert study.pk


@pytest.mark.browser
@in_browser
def test_admin_pages_work_under_the_policy(browser, live_server, portal, settings):
    ARTIFACTS.mkdir(exist_ok=True)
    settings.REFUSED_READS_ALERT_THRESHOLD = 2
    user = Watched(browser, live_server.url, "csp-admin")
    for pk in (987654, 987655):  # probing ids: the audit trail page warns
        assert user.page.goto(f"{live_server.url}/studies/{pk}/").status == 404
    page = user.open(reverse("accounts:audit-list"))
    assert page.get_by_test_id("refused-reads-alert").is_visible()
    user.check("audit trail")
    page.screenshot(path=ARTIFACTS / "csp-audit-refusals.png")
    page = user.open(reverse("feedback:dashboard"))
    chart = page.locator("#studies-chart")
    chart.locator(".main-svg").first.wait_for(timeout=15000)
    chart.hover()  # the mode bar appears, styled on hover by plotly.js
    assert chart.locator(".modebar").count() == 1
    user.check("dashboard")
    page.screenshot(path=ARTIFACTS / "csp-dashboard.png", full_page=True)

    for name in (
        "accounts:user-list",
        "accounts:audit-list",
        "feedback:model-list",
        "feedback:case-list",
        "feedback:job-list",
        "admin:index",
        "admin:accounts_user_changelist",
    ):
        user.open(reverse(name))
        user.check(name)
    page = user.open(reverse("feedback:job-detail", args=[portal["job"].pk]))
    page.locator("#training-chart .main-svg").first.wait_for(timeout=15000)
    assert page.locator("#job-progress").evaluate("b => b.style.width") == "100%"
    user.check("retraining job")
    page = user.open(reverse("feedback:model-detail", args=[portal["model"].pk]))
    user.check("model page")

    page = user.open(
        reverse("accounts:user-detail", args=[portal["users"]["clinician"].pk])
    )
    user.check("user page")
    # Bootstrap's script still runs: the user menu opens.
    page.get_by_test_id("user-menu").click()
    assert page.get_by_role("button", name="Sign out").is_visible()
    user.check("user menu")


# --- Plotly under the policy ----------------------------------------------------------
def _plotly_js() -> str:
    from django.conf import settings

    [(_, path)] = [f for f in settings.STATICFILES_PACKAGE_FILES if f[0] == "plotly"]
    return path.read_text()


def test_plotlys_style_file_is_for_the_installed_plotly():
    """plotly.js injects a <style> for its rules and one for its map library unless
    an element with that element's id is on the page (base.html carries both): a new
    plotly.js may rename them or change its rules, and then this file must be
    written again (see its header)."""
    from django.conf import settings

    plotly_js = _plotly_js()
    version = re.search(r"plotly\.js v(\S+)", plotly_js[:300]).group(1)
    css = (Path(settings.BASE_DIR) / "static/vendor/plotly/plotly.css").read_text()
    assert css.startswith(f"/* plotly.js {version}:"), "regenerate plotly.css"
    base = (Path(settings.BASE_DIR) / "templates/base.html").read_text()
    injected = re.findall(r'document\.getElementById\("([0-9a-f]{64})"\)', plotly_js)
    for style_id in ["plotly.js-style-global", *injected]:
        assert f'id="{style_id}"' in base, style_id
    assert 'matches(".no-inline-styles")' in plotly_js


@pytest.mark.browser
@in_browser
def test_plotlys_style_file_holds_the_rules_plotly_would_inject(browser):
    from django.conf import settings

    page = browser.new_page()
    page.set_content("<html><head></head><body><div id='g'></div></body></html>")
    page.add_script_tag(content=_plotly_js())
    injected = page.evaluate(
        "Array.from(document.getElementById('plotly.js-style-global').sheet.cssRules)"
        ".map((r) => r.cssText).reverse()"
    )
    css = (Path(settings.BASE_DIR) / "static/vendor/plotly/plotly.css").read_text()
    rules = css.split("*/", 1)[1].strip().splitlines()
    page.close()
    assert rules == injected
