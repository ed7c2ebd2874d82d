"""Captcha providers (a real HTTP verify endpoint on loopback) and rate limits."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import altcha
import pytest

from portal.app import create_app
from portal.reporting.captcha import Altcha, HCaptcha
from tests.conftest import csrf_token, make_settings, submit_report


class VerifyHandler(BaseHTTPRequestHandler):
    seen: list = []  # noqa: RUF012

    def do_POST(self):
        form = parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode())
        VerifyHandler.seen.append(form)
        if form["response"][0] == "slow":
            time.sleep(1.5)
        body = json.dumps({"success": form["response"][0] == "good-token"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def verify_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), VerifyHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    VerifyHandler.seen = []
    yield f"http://127.0.0.1:{server.server_address[1]}/siteverify"
    server.shutdown()
    server.server_close()


def test_hcaptcha_client_talks_to_the_verify_endpoint(verify_server):
    client = HCaptcha("site-key", "secret-value", verify_server, timeout=0.5)
    assert client.verify({"h-captcha-response": "good-token"}) is True
    assert VerifyHandler.seen[-1] == {
        "secret": ["secret-value"], "response": ["good-token"], "sitekey": ["site-key"]
    }
    assert client.verify({"h-captcha-response": "bad-token"}) is False
    assert client.verify({}) is False
    assert client.verify({"h-captcha-response": "slow"}) is False  # timed out: fail closed
    assert "secret-value" not in repr(client)


def test_hcaptcha_unreachable_fails_closed():
    client = HCaptcha("k", "s", "http://127.0.0.1:9/siteverify", timeout=0.5)
    assert client.verify({"h-captcha-response": "good-token"}) is False


def test_hcaptcha_portal_form_and_csp(instance, verify_server):
    env = {"PORTAL_CAPTCHA": "hcaptcha", "PORTAL_HCAPTCHA_SITEKEY": "site-key",
           "PORTAL_HCAPTCHA_SECRET": "secret-value", "PORTAL_HCAPTCHA_VERIFY_URL": verify_server}
    app = create_app(make_settings(instance, env=env))
    client = app.test_client()
    page = client.get("/demo/en/report")
    html = page.get_data(as_text=True)
    assert 'class="h-captcha" data-sitekey="site-key"' in html
    assert "https://hcaptcha.com" in page.headers["Content-Security-Policy"]
    refused = submit_report(client)
    assert refused.status_code == 400
    assert "anti-abuse check did not succeed" in refused.get_data(as_text=True)
    accepted = submit_report(client, **{"h-captcha-response": "good-token"})
    assert accepted.status_code == 200 and 'id="receipt"' in accepted.get_data(as_text=True)
    # Other pages load nothing from hCaptcha.
    assert "hcaptcha" not in client.get("/demo/en/").headers["Content-Security-Policy"]


def test_altcha_proof_of_work(instance):
    app = create_app(make_settings(instance, env={"PORTAL_CAPTCHA": "altcha"}))
    client = app.test_client()
    html = client.get("/demo/en/report").get_data(as_text=True)
    assert 'id="pow" data-challenge="' in html and "/_static/demo/pow.js" in html
    captcha: Altcha = app.extensions["portal.reporting"]["captchas"]["altcha"]
    challenge = altcha.ChallengeV1(**{
        "algorithm": "SHA-256", **{k: v for k, v in json.loads(captcha.widget().challenge).items()
                                   if k in ("challenge", "salt", "signature")},
        "max_number": Altcha.MAX_NUMBER,
    })
    solution = altcha.solve_challenge_v1(challenge.challenge, challenge.salt, "SHA-256",
                                         Altcha.MAX_NUMBER)
    payload = altcha.PayloadV1("SHA-256", challenge.challenge, solution.number, challenge.salt,
                               challenge.signature).to_base64()
    assert submit_report(client).status_code == 400
    assert submit_report(client, altcha=payload).status_code == 200
    # A solved challenge is good once.
    again = submit_report(client, altcha=payload)
    assert again.status_code == 400


def test_portal_can_turn_captcha_off_while_the_deployment_default_is_on(themes_copy, instance):
    manifest = themes_copy / "demo" / "portal.toml"
    manifest.write_text(manifest.read_text().replace('captcha = "inherit"', 'captcha = "none"'))
    app = create_app(make_settings(instance, themes_path=themes_copy,
                                   env={"PORTAL_CAPTCHA": "altcha"}))
    client = app.test_client()
    assert "pow.js" not in client.get("/demo/en/report").get_data(as_text=True)
    assert submit_report(client).status_code == 200


def test_rate_limits_on_reports_and_status(instance):
    env = {"PORTAL_RATELIMIT_ENABLED": "true", "PORTAL_RATELIMIT_REPORT": "2 per minute",
           "PORTAL_RATELIMIT_STATUS": "3 per minute"}
    app = create_app(make_settings(instance, env=env))
    client = app.test_client()
    assert submit_report(client).status_code == 200
    assert submit_report(client).status_code == 200
    limited = submit_report(client, lang="fr")
    assert limited.status_code == 429
    assert 'lang="fr"' in limited.get_data(as_text=True)
    # Reading pages is not limited.
    assert client.get("/demo/en/report").status_code == 200
    token = csrf_token(client, "/demo/en/status")
    codes = [client.post("/demo/en/status", data={"csrf_token": token, "receipt": "1" * 16}).status_code
             for _ in range(4)]
    assert codes == [200, 200, 200, 429]


def test_rate_limit_store_never_sees_an_address(instance):
    env = {"PORTAL_RATELIMIT_ENABLED": "true"}
    app = create_app(make_settings(instance, env=env))
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = "192.0.2.55"
    submit_report(client)
    from portal.security import limiter

    storage = limiter.storage
    keys = " ".join(str(k) for k in getattr(storage, "events", {}))
    assert keys and "192.0.2.55" not in keys
