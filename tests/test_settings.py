from pathlib import Path

import pytest

from portal.settings import SettingsError, load_settings
from tests.conftest import make_settings


def test_embedded_defaults(tmp_path: Path):
    settings = load_settings({"PORTAL_INSTANCE_PATH": str(tmp_path / "i")})
    assert settings.database_url == f"sqlite:///{tmp_path / 'i' / 'portal.db'}"
    assert settings.roles == {"edge", "central", "sponsors"}
    assert settings.transport == "local" and settings.captcha == "none"
    assert settings.keys_path == tmp_path / "i" / "keys"
    # The secret key is made once and kept, readable only by its owner.
    key_file = tmp_path / "i" / "secret_key"
    assert key_file.stat().st_mode & 0o077 == 0
    again = load_settings({"PORTAL_INSTANCE_PATH": str(tmp_path / "i")})
    assert again.secret_key == settings.secret_key and len(settings.secret_key) >= 32


def test_every_mistake_is_reported_at_once(tmp_path: Path):
    with pytest.raises(SettingsError) as caught:
        load_settings({
            "PORTAL_INSTANCE_PATH": str(tmp_path),
            "PORTAL_ROLES": "edge,backoffice",
            "PORTAL_TRANSPORT": "carrier-pigeon",
            "PORTAL_CAPTCHA": "hcaptcha",
            "PORTAL_SECRET_KEY": "short",
            "PORTAL_HCAPTCHA_TIMEOUT": "soon",
            "PORTAL_RATELIMIT_ENABLED": "perhaps",
        })
    text = str(caught.value)
    for expected in (
        "PORTAL_ROLES: unknown role 'backoffice'",
        "PORTAL_TRANSPORT: 'carrier-pigeon' is not one of local, s3",
        "PORTAL_SECRET_KEY: use at least 32 characters",
        "PORTAL_HCAPTCHA_TIMEOUT: expected a number",
        "PORTAL_RATELIMIT_ENABLED: expected true or false",
        "PORTAL_CAPTCHA=hcaptcha needs PORTAL_HCAPTCHA_SITEKEY and PORTAL_HCAPTCHA_SECRET",
    ):
        assert expected in text


def test_s3_transport_needs_bucket_and_queues(tmp_path: Path):
    with pytest.raises(SettingsError, match="PORTAL_SQS_STATUS_QUEUE_URL: required when PORTAL_TRANSPORT=s3"):
        make_settings(tmp_path, env={"PORTAL_TRANSPORT": "s3"})


def test_retention_settings(tmp_path: Path):
    settings = load_settings({"PORTAL_INSTANCE_PATH": str(tmp_path)})
    assert (settings.report_retention_days, settings.contact_retention_days) == (730, 30)
    with pytest.raises(SettingsError) as caught:
        load_settings({"PORTAL_INSTANCE_PATH": str(tmp_path), "PORTAL_REPORT_RETENTION_DAYS": "90",
                       "PORTAL_CONTACT_RETENTION_DAYS": "-1"})
    assert "PORTAL_REPORT_RETENTION_DAYS: at least 400 days" in str(caught.value)
    assert "PORTAL_CONTACT_RETENTION_DAYS: must not be negative" in str(caught.value)
