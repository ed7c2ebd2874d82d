"""Operations (issue 14, item 8): the public /healthz says only ok or not ok, its details and
/metrics are for monitoring clients only, the session cookie is Secure unless told otherwise,
and processes starting at once on a new instance folder share one secret key."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from portal.app import create_app
from portal.db import db
from portal.forwarding.models import OutboxEnvelope
from portal.settings import SettingsError, load_settings
from tests.conftest import ON_POSTGRESQL, ROOT, make_settings, submit_report

MONITORED = ("/healthz/details", "/metrics")


def answer(client, path: str, address: str, **headers: str):
    response = client.get(path, environ_base={"REMOTE_ADDR": address}, headers=headers)
    response.close()
    return response


def test_the_public_gets_only_ok_or_not_ok_and_no_figures(client):
    outsider = "192.0.2.7"
    health = answer(client, "/healthz", outsider)
    assert (health.status_code, health.get_json()) == (200, {"status": "ok"})
    for path in MONITORED:
        refused = answer(client, path, outsider)
        assert refused.status_code == 403, path
        assert b"outbox" not in refused.data and b"portal_" not in refused.data
        # Without PORTAL_PROXY_HOPS nobody's X-Forwarded-For is believed.
        assert answer(client, path, outsider, **{"X-Forwarded-For": "127.0.0.1"}) \
            .status_code == 403
    # This host reads them, in each form of its address.
    for address in ("127.0.0.1", "::1", "::ffff:127.0.0.1"):
        for path in MONITORED:
            assert answer(client, path, address).status_code == 200, (address, path)

    submit_report(client, description="HEALTH-MARKER")
    stale = db.session.scalars(select(OutboxEnvelope)).one()
    stale.created_at -= timedelta(hours=2)
    db.session.commit()
    stuck = answer(client, "/healthz", outsider)
    assert (stuck.status_code, stuck.get_json()) == (503, {"status": "not ok"})
    details = answer(client, "/healthz/details", "127.0.0.1")
    assert details.status_code == 503
    assert details.get_json()["outbox_envelopes"] == 1


def test_readiness_reasons_are_for_monitoring_only(client, instance):
    (instance / "keys" / "public.json").unlink()  # the edge can no longer seal: not ready
    outsider = answer(client, "/readyz", "192.0.2.7")
    assert (outsider.status_code, outsider.get_json()) == (503, {"status": "not ready"})
    inside = answer(client, "/readyz", "127.0.0.1")
    assert inside.status_code == 503
    assert any("sealing key" in problem for problem in inside.get_json()["problems"])


def test_monitoring_networks_are_a_setting_and_mean_the_client_behind_the_proxy(instance):
    settings = make_settings(instance, env={
        "PORTAL_MONITORING_NETWORKS": "198.51.100.0/24, 2001:db8::/32",
        "PORTAL_PROXY_HOPS": "1"})
    app = create_app(settings)
    client = app.test_client()
    proxy = "127.0.0.1"
    for forwarded, status in (("198.51.100.9", 200), ("2001:db8::5", 200),
                              ("192.0.2.7", 403), ("127.0.0.1", 403)):
        for path in MONITORED:
            got = answer(client, path, proxy, **{"X-Forwarded-For": forwarded}).status_code
            assert got == status, (forwarded, path)
    # The proxy itself, asking without a forwarded address, is not in the networks either.
    assert answer(client, "/metrics", proxy).status_code == 403
    assert answer(client, "/healthz", proxy, **{"X-Forwarded-For": "192.0.2.7"}) \
        .get_json() == {"status": "ok"}

    closed = create_app(make_settings(instance, env={"PORTAL_MONITORING_NETWORKS": ""}))
    assert answer(closed.test_client(), "/metrics", "127.0.0.1").status_code == 403


def test_monitoring_networks_are_checked_at_start(tmp_path: Path):
    default = load_settings({"PORTAL_INSTANCE_PATH": str(tmp_path)})
    assert [str(n) for n in default.monitoring_networks] == ["127.0.0.0/8", "::1/128"]
    with pytest.raises(SettingsError) as caught:
        load_settings({"PORTAL_INSTANCE_PATH": str(tmp_path),
                       "PORTAL_MONITORING_NETWORKS": "10.0.0.0/8,intranet,2001:db8::/129"})
    assert "PORTAL_MONITORING_NETWORKS: 'intranet' is not an IP address or network" \
        in str(caught.value)
    assert "'2001:db8::/129'" in str(caught.value)


@contextlib.contextmanager
def database_unreachable(app):
    """The app's database refuses every new connection until the block ends."""
    db.session.remove()
    db.engine.dispose()
    url = db.engine.url
    if ON_POSTGRESQL:
        import psycopg

        admin = url.set(drivername="postgresql", database="postgres")
        with psycopg.connect(admin.render_as_string(hide_password=False),
                             autocommit=True) as connection:
            connection.execute(f'ALTER DATABASE "{url.database}" ALLOW_CONNECTIONS false')
            try:
                yield
            finally:
                db.engine.dispose()
                connection.execute(f'ALTER DATABASE "{url.database}" ALLOW_CONNECTIONS true')
        return
    # SQLite: a folder where the file was cannot be opened.
    database = Path(url.database)
    away = database.with_name(database.name + ".away")
    database.rename(away)
    database.mkdir()
    try:
        yield
    finally:
        db.engine.dispose()
        database.rmdir()
        away.rename(database)


def test_healthz_is_not_ok_while_the_database_is_unreachable(client, app):
    assert client.get("/healthz").status_code == 200
    with database_unreachable(app):
        down = client.get("/healthz")
        assert (down.status_code, down.get_json()) == (503, {"status": "not ok"})
        details = client.get("/healthz/details")
        assert details.status_code == 503
        assert details.get_json()["status"] == "database unavailable"
    assert client.get("/healthz").get_json() == {"status": "ok"}


def session_cookie(client) -> str:
    response = client.get("/demo/en/report")  # the form's CSRF token starts a session
    cookies = [c for c in response.headers.getlist("Set-Cookie")
               if c.startswith("portal_session=")]
    assert len(cookies) == 1, response.headers
    return cookies[0]


def test_the_session_cookie_is_secure_unless_told_otherwise(tmp_path: Path, instance):
    assert load_settings({"PORTAL_INSTANCE_PATH": str(tmp_path)}).cookie_secure is True
    secure = create_app(make_settings(instance)).test_client()
    assert "; Secure" in session_cookie(secure)
    plain = create_app(make_settings(instance, env={"PORTAL_COOKIE_SECURE": "false"}))
    assert "Secure" not in session_cookie(plain.test_client())


# Imports first, then waits for the go (its standard input closing), so that every process
# reaches the secret key at about the same moment.
KEY_READER = """
import sys
from portal.settings import load_settings
sys.stdin.read()
print(load_settings({"PORTAL_INSTANCE_PATH": sys.argv[1]}).secret_key)
"""


def test_processes_starting_at_once_share_one_complete_secret_key(tmp_path: Path):
    folder = tmp_path / "fresh"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PORTAL_")}
    readers = [subprocess.Popen([sys.executable, "-c", KEY_READER, str(folder)], cwd=ROOT,
                                env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for _ in range(8)]
    for reader in readers:
        reader.stdin.close()
    results = [(reader.wait(timeout=60), reader.stdout.read().strip(), reader.stderr.read())
               for reader in readers]
    for reader in readers:
        reader.stdout.close()
        reader.stderr.close()
    assert all(code == 0 for code, _, _ in results), results
    keys = {key for _, key, _ in results}
    key_file = folder / "secret_key"
    assert keys == {key_file.read_text().strip()}
    assert len(keys.pop()) >= 32
    assert key_file.stat().st_mode & 0o077 == 0
    assert sorted(p.name for p in folder.iterdir()) == ["secret_key"]  # no draft left behind
