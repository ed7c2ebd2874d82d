"""Sealing, outbox, transports (local spool, S3 + SQS), forwarder and importer."""

from __future__ import annotations

import logging

from flask import Flask

from portal.forwarding.keyring import KeyringError, read_private
from portal.forwarding.status_verifier import NO_VERIFY_KEY, StatusVerifyKeys
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
        # Imported here only: an edge process never loads the signing code.
        from portal.forwarding.status_signer import StatusSigner, ensure_signing_keys

        try:
            app.extensions["portal.private_keys"] = read_private(settings.keys_path)
            app.extensions["portal.status_signer"] = StatusSigner(
                ensure_signing_keys(settings.keys_path))
        except KeyringError as exc:
            raise SettingsError([f"central role: {exc}"]) from exc
        app.extensions["portal.contact_key"] = derive_key(settings.secret_key, "contact-email")
    if settings.has_edge:
        verify_keys = StatusVerifyKeys(settings.keys_path)
        app.extensions["portal.status_verify_keys"] = verify_keys
        try:
            if not verify_keys.get():
                logging.getLogger(__name__).error(NO_VERIFY_KEY)
        except KeyringError:
            pass  # no public key file at all: the edge role stops at start-up with that reason


def status_update_warnings(app: Flask) -> list[str]:
    """What /readyz reports about signed status updates: an edge without a verify key still
    takes reports (so it stays ready) but drops every status update."""
    verify_keys = app.extensions.get("portal.status_verify_keys")
    try:
        if verify_keys is not None and not verify_keys.get():
            return ["no status verify key: status updates from the centre are dropped"]
    except KeyringError:
        return []  # reported as a missing sealing key already
    return []
