"""Sealing, outbox, transports (local spool, S3 + SQS), forwarder and importer."""

from __future__ import annotations

from flask import Flask

from portal.forwarding.keyring import KeyringError, read_private
from portal.forwarding.transport import make_transport
from portal.keys import derive_key
from portal.settings import Settings, SettingsError


def configure_forwarding(app: Flask, settings: Settings) -> None:
    transport = make_transport(settings)
    problems = transport.check() if hasattr(transport, "check") else []
    if problems:
        raise SettingsError([f"transport: {p}" for p in problems])
    app.extensions["portal.transport"] = transport
    if settings.has_central:
        try:
            app.extensions["portal.private_keys"] = read_private(settings.keys_path)
        except KeyringError as exc:
            raise SettingsError([f"central role: {exc}"]) from exc
        app.extensions["portal.contact_key"] = derive_key(settings.secret_key, "contact-email")
