"""Public edge: pages, report form, validation, receipt, status check."""

from __future__ import annotations

from flask import Flask

from portal.forwarding.keyring import KeyringError
from portal.keys import derive_key
from portal.reporting.captcha import make_captchas
from portal.reporting.pages import PageCache
from portal.reporting.services import SealingKey
from portal.settings import Settings, SettingsError


def configure_reporting(app: Flask, settings: Settings, receipt_key: bytes) -> None:
    from portal.reporting.views import bp

    try:
        sealing_key = SealingKey(settings.keys_path)
    except KeyringError as exc:
        raise SettingsError([f"edge role: {exc}"]) from exc
    app.extensions["portal.reporting"] = {
        "sealing_key": sealing_key,
        "receipt_key": receipt_key,
        "captchas": make_captchas(settings, derive_key(settings.secret_key, "altcha")),
        "default_captcha": settings.captcha,
        # Public pages rendered once per process, completed per request (pages.py).
        "pages": PageCache(),
    }
    tenancy = app.extensions["portal.tenancy"]
    for portal in tenancy.portals.values():
        if portal.captcha == "hcaptcha" and "hcaptcha" not in app.extensions["portal.reporting"][
            "captchas"
        ]:
            raise SettingsError(
                [f"themes/{portal.slug}/portal.toml: captcha: hcaptcha needs "
                 "PORTAL_HCAPTCHA_SITEKEY and PORTAL_HCAPTCHA_SECRET"]
            )
    app.register_blueprint(bp)
