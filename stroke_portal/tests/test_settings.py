"""Production settings pass Django's deployment checks; HTTPS turns on secure cookies
and HSTS; every setting is documented in .env.example."""

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_manage(*args, env_overrides):
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "DATABASE_URL", "TEST_"))
    }
    env.update(env_overrides)
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


PRODUCTION = {
    "DJANGO_SETTINGS_MODULE": "stroke_portal.settings",
    "DJANGO_SECRET_KEY": "k" * 30 + "-production-like-secret-" + "q" * 30,
    "DJANGO_ALLOWED_HOSTS": "stroke.hospital.example",
    "DJANGO_HTTPS": "1",
}


def test_check_deploy_is_clean_under_production_settings(tmp_path):
    result = run_manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        env_overrides={**PRODUCTION, "DATA_DIR": str(tmp_path)},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_without_https_deploy_check_warns(tmp_path):
    env = {**PRODUCTION, "DJANGO_HTTPS": "0", "DATA_DIR": str(tmp_path)}
    result = run_manage(
        "check", "--deploy", "--fail-level", "WARNING", env_overrides=env
    )
    assert result.returncode != 0
    assert "SECURE_HSTS_SECONDS" in result.stdout + result.stderr


def test_missing_secret_key_is_a_clear_error(tmp_path):
    # An empty variable wins over a developer's .env (it is read without overwriting).
    env = {
        "DJANGO_SETTINGS_MODULE": "stroke_portal.settings",
        "DJANGO_SECRET_KEY": "",
        "DATA_DIR": str(tmp_path),
    }
    result = run_manage("check", env_overrides=env)
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY is not set" in result.stderr


def test_every_setting_read_from_the_environment_is_documented():
    settings_source = (ROOT / "stroke_portal" / "settings.py").read_text()
    read = set(
        re.findall(r'env(?:\.\w+|_text|_path)?\(\s*"([A-Z_]+)"', settings_source)
    )
    documented = set(
        re.findall(
            r"^#?\s*([A-Z_]+)=", (ROOT / ".env.example").read_text(), re.MULTILINE
        )
    )
    assert read, "no settings found: the pattern above needs updating"
    assert read <= documented, f"missing from .env.example: {sorted(read - documented)}"


def test_a_copy_of_env_example_with_a_key_runs(tmp_path):
    """An admin who copies .env.example and fills in only the secret key gets a
    working portal: empty values count as unset."""
    values = dict(
        line.split("=", 1)
        for line in (ROOT / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    )
    values.update(
        DJANGO_SECRET_KEY="x" * 50,
        DATA_DIR=str(tmp_path),
        DJANGO_SETTINGS_MODULE="stroke_portal.settings",
    )
    result = run_manage(
        "shell",
        "--verbosity",
        "0",
        "-c",
        "from django.conf import settings as s; "
        "print(s.DATABASES['default']['ENGINE'], s.CELERY_BROKER_URL)",
        env_overrides=values,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["django.db.backends.sqlite3", "filesystem://"]
