"""/readyz tells a load balancer or a monitor when the portal cannot do its work:
the database or the broker unreachable (a study uploaded then would wait), and the
cache down (reported, but pages work without it). /healthz stays the liveness probe."""

import shutil

import pytest
from django.db import OperationalError
from django.urls import reverse

from stroke_portal.celery import app
from tests.servers import RedisServer

READYZ = reverse("readyz")

needs_redis_server = pytest.mark.skipif(
    shutil.which("redis-server") is None, reason="redis-server is not installed"
)


@pytest.fixture
def redis_server(tmp_path):
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def broker_at(monkeypatch):
    def point_to(url: str) -> None:
        # broker_read_url first: read after broker_url changed, it would be saved
        # (and restored) as the new URL.
        monkeypatch.setattr(app.conf, "broker_read_url", url)
        monkeypatch.setattr(app.conf, "broker_url", url)

    return point_to


def redis_cache_at(url: str) -> dict:
    return {
        "default": {
            "BACKEND": "stroke_portal.cache.ResilientRedisCache",
            "LOCATION": url,
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    }


def test_readyz_is_ok_when_database_broker_and_cache_answer(client, db):
    response = client.get(READYZ)
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "database": "ok",
        "broker": "ok",
        "cache": "ok",
    }


@needs_redis_server
def test_readyz_says_503_when_the_broker_stops_and_ok_again_when_it_is_back(
    client, db, redis_server, broker_at
):
    broker_at(redis_server.url)
    assert client.get(READYZ).json()["broker"] == "ok"

    redis_server.stop()
    response = client.get(READYZ)
    assert response.status_code == 503
    assert response.json()["status"] == "error"
    assert response.json()["broker"] == "unreachable"
    # Liveness is the web process and its database: it must not flap with Redis.
    assert client.get(reverse("healthz")).status_code == 200

    redis_server.start()
    assert client.get(READYZ).status_code == 200


@needs_redis_server
def test_readyz_reports_a_cache_that_is_down_without_failing(
    client, db, redis_server, settings
):
    settings.CACHES = redis_cache_at(redis_server.url)
    assert client.get(READYZ).json()["cache"] == "ok"

    redis_server.stop()
    response = client.get(READYZ)
    assert response.status_code == 200
    assert response.json()["cache"] == "unreachable"


def test_readyz_says_503_when_the_database_is_unreachable(client, db, monkeypatch):
    from django.db import connection

    def refuse(*args, **kwargs):
        raise OperationalError("could not connect to server")

    with monkeypatch.context() as patched:
        patched.setattr(connection, "cursor", refuse)
        response = client.get(READYZ)
    assert response.status_code == 503
    assert response.json()["database"] == "unreachable"
    assert "could not connect" not in response.content.decode()
