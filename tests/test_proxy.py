"""The front door docker-compose builds: nginx (deploy/nginx/portal.conf) in front of
gunicorn as the compose file runs it. Attacked as it was in issue 13: anonymous
clients that send part of a login body and then stall."""

import http.cookiejar
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NGINX = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/sbin")
SLOW_CLIENTS = 3

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        NGINX is None, reason="nginx is not installed (Debian package nginx)"
    ),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except (OSError, urllib.error.URLError):
            time.sleep(0.3)
    raise AssertionError(f"{url} did not answer within {timeout:.0f} s")


def healthz_answers(base: str, timeout: float = 5.0) -> bool:
    try:
        with urllib.request.urlopen(f"{base}/healthz", timeout=timeout) as response:
            return response.status == 200
    except (OSError, urllib.error.URLError):
        return False


def gunicorn_command(port: int) -> list[str]:
    """The web service's own command line from docker-compose.yml, bound locally."""
    yaml = pytest.importorskip("yaml")
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    command = list(compose["services"]["web"]["command"])
    command[command.index("--bind") + 1] = f"127.0.0.1:{port}"
    return [sys.executable, "-m", *command]


@pytest.fixture(scope="module")
def site_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("front-door")


@pytest.fixture(scope="module")
def gunicorn(site_dir):
    tmp_path = site_dir
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")},
        "DJANGO_SETTINGS_MODULE": "stroke_portal.settings",
        "DJANGO_SECRET_KEY": "proxy-test-" + "k" * 40,
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "DATA_DIR": str(tmp_path / "data"),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "REDIS_URL": "",
        "CELERY_BROKER_URL": "memory://",
        "TRUSTED_PROXY_COUNT": "1",
    }
    for step in (["migrate", "--noinput", "-v", "0"], ["static_ensure"]):
        subprocess.run(
            [sys.executable, "manage.py", *step],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
        )
    with open(tmp_path / "gunicorn.log", "w") as log:
        process = subprocess.Popen(
            gunicorn_command(port), cwd=ROOT, env=env, stdout=log, stderr=log
        )
        try:
            wait_for(f"http://127.0.0.1:{port}/healthz")
            yield port
        finally:
            process.terminate()
            process.wait(timeout=30)


@pytest.fixture(scope="module")
def nginx(site_dir, gunicorn):
    """nginx with the shipped server block; only the upstream address, the listen
    port and the paths a non-packaged nginx needs differ from docker-compose."""
    tmp_path = site_dir
    port = free_port()
    site = (ROOT / "deploy/nginx/portal.conf").read_text()
    assert "server web:8000;" in site and "listen 80;" in site
    site = site.replace("server web:8000;", f"server 127.0.0.1:{gunicorn};")
    site = site.replace("listen 80;", f"listen 127.0.0.1:{port};")
    (tmp_path / "portal.conf").write_text(site)
    temp = {
        name: tmp_path / name for name in ("body", "proxy", "fcgi", "uwsgi", "scgi")
    }
    for folder in temp.values():
        folder.mkdir()
    user = "user root;\n" if os.geteuid() == 0 else ""
    (tmp_path / "nginx.conf").write_text(
        f"{user}worker_processes 1;\ndaemon off;\npid {tmp_path / 'nginx.pid'};\n"
        f"error_log {tmp_path / 'error.log'} warn;\n"
        "events { worker_connections 256; }\n"
        "http {\n"
        f"  access_log {tmp_path / 'access.log'};\n"
        f"  client_body_temp_path {temp['body']};\n"
        f"  proxy_temp_path {temp['proxy']};\n"
        f"  fastcgi_temp_path {temp['fcgi']};\n"
        f"  uwsgi_temp_path {temp['uwsgi']};\n"
        f"  scgi_temp_path {temp['scgi']};\n"
        f"  include {tmp_path / 'portal.conf'};\n"
        "}\n"
    )
    command = [NGINX, "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")]
    with open(tmp_path / "nginx.log", "w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=log)
        try:
            wait_for(f"http://127.0.0.1:{port}/proxy-healthz")
            yield port
        finally:
            process.terminate()
            process.wait(timeout=30)


def start_slow_login_bodies(port: int) -> list[socket.socket]:
    """Anonymous clients that promise a 200 kB login form, send half and stall."""
    clients = []
    for _ in range(SLOW_CLIENTS):
        client = socket.create_connection(("127.0.0.1", port), timeout=5)
        client.sendall(
            b"POST /accounts/login/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\n"
            # A CSRF cookie, so that Django reads the body to find the form's token
            # (without one it refuses the request before reading it).
            b"Cookie: csrftoken=" + b"c" * 32 + b"\r\n"
            b"Content-Length: 200000\r\n\r\n" + b"a" * 100_000
        )
        clients.append(client)
    time.sleep(1.0)  # let the server take them in
    return clients


def test_slow_bodies_pin_gunicorn_alone_but_not_behind_the_proxy(gunicorn, nginx):
    direct = f"http://127.0.0.1:{gunicorn}"
    proxied = f"http://127.0.0.1:{nginx}"

    # Without the proxy the attack works: every sync worker waits for a body.
    clients = start_slow_login_bodies(gunicorn)
    try:
        assert not healthz_answers(direct, timeout=3)
    finally:
        for client in clients:
            client.close()
    wait_for(f"{direct}/healthz")

    # Through the proxy, the same clients hold nginx, and the portal keeps answering.
    clients = start_slow_login_bodies(nginx)
    try:
        started = time.monotonic()
        assert healthz_answers(proxied, timeout=5)
        assert time.monotonic() - started < 5
        login = urllib.request.urlopen(f"{proxied}/accounts/login/", timeout=5)
        assert login.status == 200
    finally:
        for client in clients:
            client.close()


def test_proxy_refuses_a_body_over_the_upload_limit_before_reading_it(nginx):
    with socket.create_connection(("127.0.0.1", nginx), timeout=5) as client:
        client.sendall(
            b"POST /api/v1/studies/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/octet-stream\r\n"
            b"Content-Length: 5000000000\r\n\r\n"
        )
        status_line = client.recv(200).split(b"\r\n", 1)[0]
    assert b" 413 " in status_line


def test_behind_the_proxy_the_audit_has_the_clients_address_not_a_claimed_one(
    nginx, site_dir
):
    """Sign-in throttling and the audit trail key on the client's address; nginx
    appends it to X-Forwarded-For, and what the client wrote there itself is not
    believed."""
    base = f"http://127.0.0.1:{nginx}"
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    opener.open(f"{base}/accounts/login/", timeout=10).read()
    token = next(c.value for c in jar if c.name == "csrftoken")
    form = urllib.parse.urlencode(
        {"username": "nobody-here", "password": "wrong", "csrfmiddlewaretoken": token}
    ).encode()
    request = urllib.request.Request(
        f"{base}/accounts/login/",
        data=form,
        headers={"X-Forwarded-For": "203.0.113.9", "Referer": f"{base}/"},
    )
    opener.open(request, timeout=10).read()
    with sqlite3.connect(site_dir / "db.sqlite3") as db:
        addresses = db.execute(
            "SELECT ip_address FROM accounts_auditentry WHERE action = ?",
            ("auth.login_failed",),
        ).fetchall()
    assert addresses == [("127.0.0.1",)]
