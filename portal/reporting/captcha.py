"""Pluggable anti-abuse checks for the report form: none, hCaptcha, or ALTCHA proof of work.

Chosen per deployment (``PORTAL_CAPTCHA``) and overridable per portal (``captcha`` in its
manifest). hCaptcha is reached through its documented ``siteverify`` HTTP API with a
timeout; nothing is logged about the secret or the token. ALTCHA runs on our own server:
a signed challenge is embedded in the form and our small script finds the answer.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import altcha

log = logging.getLogger(__name__)
HCAPTCHA_ORIGINS = ("https://hcaptcha.com", "https://*.hcaptcha.com")


@dataclass(frozen=True)
class Widget:
    kind: str
    sitekey: str = ""
    challenge: str = ""


class NoCaptcha:
    kind = "none"
    csp: dict[str, tuple[str, ...]] = {}  # noqa: RUF012 - read-only by convention

    def widget(self) -> Widget:
        return Widget("none")

    def verify(self, form: dict[str, str]) -> bool:
        return True


class HCaptcha:
    kind = "hcaptcha"
    csp = {  # noqa: RUF012
        "script-src": ("https://hcaptcha.com", "https://*.hcaptcha.com"),
        "frame-src": HCAPTCHA_ORIGINS,
        "connect-src": HCAPTCHA_ORIGINS,
        "style-src": HCAPTCHA_ORIGINS,
    }

    def __init__(self, sitekey: str, secret: str, verify_url: str, timeout: float):
        self.sitekey = sitekey
        self._secret = secret
        self.verify_url = verify_url
        self.timeout = timeout

    def __repr__(self) -> str:  # never show the secret, even in a traceback
        return f"HCaptcha(sitekey={self.sitekey!r}, verify_url={self.verify_url!r})"

    def widget(self) -> Widget:
        return Widget("hcaptcha", sitekey=self.sitekey)

    def verify(self, form: dict[str, str]) -> bool:
        token = form.get("h-captcha-response", "")
        if not token or len(token) > 8192:
            return False
        body = urllib.parse.urlencode(
            {"secret": self._secret, "response": token, "sitekey": self.sitekey}
        ).encode()
        request = urllib.request.Request(  # noqa: S310 - the URL is configuration, https by default
            self.verify_url, data=body, method="POST",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                answer = json.loads(response.read(65536))
        except (urllib.error.URLError, TimeoutError, ValueError, OSError) as exc:
            log.warning("hCaptcha verification unavailable: %s", type(exc).__name__)
            return False
        return answer.get("success") is True


class Altcha:
    kind = "altcha"
    csp: dict[str, tuple[str, ...]] = {}  # noqa: RUF012 - our own script, served from 'self'
    MAX_NUMBER = 100_000
    LIFETIME = timedelta(minutes=30)

    def __init__(self, hmac_key: bytes):
        self._key = hmac_key
        self._used: dict[str, float] = {}
        self._lock = threading.Lock()

    def widget(self) -> Widget:
        challenge = altcha.create_challenge_v1(
            hmac_key=self._key, max_number=self.MAX_NUMBER,
            expires=datetime.now(UTC) + self.LIFETIME,
        )
        return Widget("altcha", challenge=json.dumps(challenge.to_dict()))

    def verify(self, form: dict[str, str]) -> bool:
        payload = form.get("altcha", "")
        if not payload or len(payload) > 2048:
            return False
        ok, _error = altcha.verify_solution_v1(payload, self._key, check_expires=True)
        if not ok:
            return False
        # Each solved challenge is good for one report only (per worker process).
        now = time.time()
        with self._lock:
            for seen, expiry in list(self._used.items()):
                if expiry < now:
                    del self._used[seen]
            if payload in self._used:
                return False
            self._used[payload] = now + self.LIFETIME.total_seconds()
        return True


def make_captchas(settings, altcha_key: bytes) -> dict[str, object]:
    captchas: dict[str, object] = {"none": NoCaptcha(), "altcha": Altcha(altcha_key)}
    if settings.hcaptcha_sitekey and settings.hcaptcha_secret:
        captchas["hcaptcha"] = HCaptcha(
            settings.hcaptcha_sitekey, settings.hcaptcha_secret,
            settings.hcaptcha_verify_url, settings.hcaptcha_timeout,
        )
    return captchas
