"""docker-compose.yml is valid and describes the services the README promises."""

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def compose_available() -> bool:
    if shutil.which("docker") is None:
        return False
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True)
    return probe.returncode == 0


@pytest.mark.skipif(
    not compose_available(),
    reason="no docker client with the compose plugin on this machine",
)
def test_docker_compose_config_is_valid():
    result = subprocess.run(
        ["docker", "compose", "config", "-q"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


def test_compose_file_has_the_promised_services():
    yaml = pytest.importorskip("yaml")
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"web", "worker", "inference", "beat", "db", "redis"} <= set(services)
    inference = " ".join(services["inference"]["command"])
    assert "--queues inference" in inference
    assert "--concurrency 1" in inference and "--prefetch-multiplier 1" in inference
    web = services["web"]["command"]
    assert "gunicorn" in web
    # A 2 GB upload must not be cut by gunicorn's default 30 s worker timeout.
    assert int(web[web.index("--timeout") + 1]) >= 300
    assert {"postgres-data", "portal-files"} <= set(compose["volumes"])


def test_compose_serves_the_portal_only_through_its_proxy():
    """Only nginx is published: a client reaching gunicorn's sync workers directly
    could pin them with slow bodies (tests/test_proxy.py shows both sides)."""
    yaml = pytest.importorskip("yaml")
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert "ports" not in services["web"]
    proxy = services["proxy"]
    assert proxy["ports"] == ["${PORTAL_PORT:-8000}:80"]
    mounted = {volume.split(":")[0] for volume in proxy["volumes"]}
    assert "./deploy/nginx/portal.conf" in mounted
    assert compose["x-portal"]["environment"]["TRUSTED_PROXY_COUNT"].startswith(
        "${TRUSTED_PROXY_COUNT:-1}"
    )


def test_compose_activates_the_shipped_model_and_the_image_holds_no_secrets():
    yaml = pytest.importorskip("yaml")
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    setup = " ".join(compose["services"]["migrate"]["command"])
    assert "migrate" in setup and "model_ensure" in setup
    ignored = (ROOT / ".dockerignore").read_text().split()
    # the secret key, the development database and uploads, the local venv
    assert {".env", "var/", ".venv/"} <= set(ignored)
