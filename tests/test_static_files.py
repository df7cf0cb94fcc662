"""Static files as `make run` serves them: `manage.py static_ensure` collects them
with the production storage (hashed names, gzip and brotli copies), the Swagger UI
page and the Plotly charts load every file they name from STATIC_ROOT alone, and a
second start collects nothing unless a file changed."""

import io
import json
import re

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from stroke_portal import settings as production

STATIC_URL = re.compile(r'(?:src|href)="(/static/[^"]+)"')


def static_ensure() -> str:
    out = io.StringIO()
    call_command("static_ensure", stdout=out)
    return out.getvalue()


@pytest.fixture
def production_static(settings, tmp_path):
    """The production storage, and whitenoise serving STATIC_ROOT only (the test
    settings otherwise serve straight from the source folders)."""
    settings.STATIC_ROOT = tmp_path / "staticfiles"
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": production.STORAGES["staticfiles"],
    }
    settings.WHITENOISE_USE_FINDERS = False
    settings.WHITENOISE_AUTOREFRESH = False
    return settings.STATIC_ROOT


def fetch_static(client: Client, page_html: str) -> dict[str, str]:
    """GET every /static/ file a page names, asking for brotli; {url: encoding}."""
    encodings = {}
    for url in STATIC_URL.findall(page_html):
        response = client.get(url, HTTP_ACCEPT_ENCODING="gzip, br")
        assert response.status_code == 200, url
        encodings[url] = response.get("Content-Encoding", "")
    return encodings


@pytest.mark.slow
def test_swagger_ui_and_plotly_load_from_the_collected_files(production_static, admin):
    assert "Collecting static files" in static_ensure()
    client = Client()
    client.force_login(admin)

    docs = client.get(reverse("api-docs"))
    assert docs.status_code == 200
    swagger = fetch_static(client, docs.content.decode())
    names = {url.rsplit("/", 1)[1].split(".")[0] for url in swagger}
    assert {"swagger-ui", "swagger-ui-bundle", "swagger-ui-standalone-preset"} <= names
    bundle = next(url for url in swagger if "/swagger-ui-bundle." in url)
    assert swagger[bundle] == "br"

    dashboard = client.get(reverse("feedback:dashboard"))
    assert dashboard.status_code == 200
    charts = fetch_static(client, dashboard.content.decode())
    plotly = [url for url in charts if url.startswith("/static/plotly/plotly.min.")]
    assert len(plotly) == 1
    assert charts[plotly[0]] == "br"
    # Only the file the charts use is taken from plotly's package data (the widget
    # bundle and sample data beside it are not collected).
    collected = [p.name for p in (production_static / "plotly").iterdir()]
    assert collected and all(name.startswith("plotly.min.") for name in collected)

    manifest = production_static / "staticfiles.json"
    collected_at = manifest.stat().st_mtime_ns
    assert "up to date" in static_ensure()
    assert manifest.stat().st_mtime_ns == collected_at


def test_a_changed_or_deleted_static_file_is_collected_again(settings, tmp_path):
    source = tmp_path / "static"
    source.mkdir()
    (source / "site.css").write_text("body { color: black; }\n")
    settings.STATICFILES_DIRS = [source]
    settings.STATICFILES_FINDERS = [
        "django.contrib.staticfiles.finders.FileSystemFinder"
    ]
    settings.STATIC_ROOT = tmp_path / "staticfiles"
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": production.STORAGES["staticfiles"],
    }
    static_ensure()
    assert "up to date" in static_ensure()

    (source / "site.css").write_text("body { color: navy; }\n")
    assert "Collecting" in static_ensure()
    manifest = json.loads((settings.STATIC_ROOT / "staticfiles.json").read_text())
    served = settings.STATIC_ROOT / manifest["paths"]["site.css"]
    assert served.read_text() == "body { color: navy; }\n"

    for path in settings.STATIC_ROOT.iterdir():
        path.unlink()
    assert "Collecting" in static_ensure()
    assert (settings.STATIC_ROOT / "staticfiles.json").is_file()


def test_plotly_js_is_served_from_the_package_and_nothing_else_of_it(client):
    # The test settings serve through the finders, as a developer's machine does.
    assert client.get("/static/plotly/plotly.min.js").status_code == 200
    assert client.get("/static/plotly/widgetbundle.js").status_code == 404
    assert client.get("/static/plotly/datasets/iris.csv.gz").status_code == 404
