"""One typed, frozen settings object, built from ``PORTAL_*`` environment variables.

Every setting has an embedded default so that ``portal demo`` runs on a laptop with nothing
configured. :func:`load_settings` validates everything at start-up and raises
:class:`SettingsError` listing each mistake, so a bad value never fails later at request time.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import secrets
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from portal import paths

ROLES = ("edge", "central", "sponsors")
TRANSPORTS = ("local", "s3")
CAPTCHAS = ("none", "hcaptcha", "altcha")
MIN_REPORT_RETENTION_DAYS = 400
# Who may read /metrics and /healthz/details (portal/app.py): this host only, by default.
DEFAULT_MONITORING_NETWORKS = "127.0.0.0/8,::1/128"
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
# Loopback names, so that `portal demo` and a test client work with nothing configured.
DEFAULT_TRUSTED_HOSTS = ("localhost", "127.0.0.1")
_LABEL = r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"
TRUSTED_HOST_RE = re.compile(rf"^\.?(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*$")


class SettingsError(Exception):
    """Raised when the configuration cannot be used; the message names every problem."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("invalid configuration:\n" + "\n".join(f"  - {p}" for p in problems))


@dataclass(frozen=True)
class Settings:
    instance_path: Path
    database_url: str
    secret_key: str
    keys_path: Path
    spool_path: Path
    themes_path: Path
    translations_path: Path
    roles: frozenset[str] = frozenset(ROLES)
    transport: str = "local"
    s3_bucket: str = ""
    sqs_queue_url: str = ""
    sqs_status_queue_url: str = ""
    kms_key_id: str = ""
    sqs_wait_seconds: int = 10
    outbox_stuck_seconds: int = 900
    smtp_url: str = "memory://"
    mail_from: str = "hotline@portal.example"
    team_name: str = "Portal central assessment team"
    dns_resolver: str = ""
    hotlines_path: Path | None = None
    target_hours: int = 24
    urgent_target_hours: int = 2
    renotice_hours: int = 48
    welfare_break_minutes: int = 60
    welfare_daily_minutes: int = 300
    severity_categories: tuple[str, ...] = ("A", "B", "C")
    staff_idle_minutes: int = 30
    staff_session_hours: int = 12
    login_limit: str = "10 per minute; 50 per hour"
    sponsor_min_count: int = 5
    auto_migrate: bool = True
    report_retention_days: int = 730
    contact_retention_days: int = 30
    figures_settle_months: int = 13
    captcha: str = "none"
    hcaptcha_sitekey: str = ""
    hcaptcha_secret: str = ""
    hcaptcha_verify_url: str = "https://api.hcaptcha.com/siteverify"
    hcaptcha_timeout: float = 5.0
    altcha_hmac_key: str = ""
    ratelimit_storage_uri: str = "memory://"
    ratelimit_report: str = "5 per minute; 30 per hour"
    ratelimit_status: str = "10 per minute; 60 per hour"
    ratelimit_enabled: bool = True
    max_request_bytes: int = 64 * 1024
    proxy_hops: int = 0
    cookie_secure: bool = True
    monitoring_networks: tuple[Network, ...] = tuple(
        ipaddress.ip_network(n) for n in DEFAULT_MONITORING_NETWORKS.split(","))
    # Host names served (besides the portals' own, from their manifests); see portal/inbound.py.
    trusted_hosts: tuple[str, ...] = DEFAULT_TRUSTED_HOSTS
    # Extra values for tests and embedding: merged into Flask's config last.
    extra: Mapping[str, object] = field(default_factory=dict)

    @property
    def has_edge(self) -> bool:
        return "edge" in self.roles

    @property
    def has_central(self) -> bool:
        return "central" in self.roles

    def with_changes(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]


def _bool(value: str, name: str, problems: list[str]) -> bool:
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    problems.append(f"{name}: expected true or false, got {value!r}")
    return False


def _number(value: str, name: str, problems: list[str], kind: type = int) -> float:
    try:
        number = kind(value)
    except ValueError:
        problems.append(f"{name}: expected a number, got {value!r}")
        return 0
    if number < 0:
        problems.append(f"{name}: must not be negative")
    return number


def _hosts(value: str, name: str, problems: list[str]) -> tuple[str, ...]:
    """A comma list of host names or IPv4 addresses; ``.example.org`` also means its subdomains."""
    hosts = tuple(h.strip().lower() for h in value.split(",") if h.strip())
    for host in hosts:
        if not TRUSTED_HOST_RE.match(host):
            problems.append(f"{name}: {host!r} is not a host name (no port, scheme or IPv6 literal)")
    if not hosts:
        problems.append(f"{name}: name at least one host")
    return hosts


def _networks(value: str, name: str, problems: list[str]) -> tuple[Network, ...]:
    """A comma list of addresses or networks (``10.0.0.0/8``, ``2001:db8::/32``); empty: none."""
    networks = []
    for part in (p.strip() for p in value.split(",")):
        if part:
            try:
                networks.append(ipaddress.ip_network(part, strict=False))
            except ValueError:
                problems.append(f"{name}: {part!r} is not an IP address or network")
    return tuple(networks)


def _secret_key(instance_path: Path) -> str:
    """The embedded default: a random key kept in the instance folder, made on first start."""
    key_file = instance_path / "secret_key"
    if not key_file.exists():
        # Written whole under a name of its own, then linked into place: processes starting
        # at once on a new folder (gunicorn workers) all read the one complete key that was
        # linked first, never a half-written or empty file.
        instance_path.mkdir(parents=True, exist_ok=True)
        fd, draft = tempfile.mkstemp(prefix=".secret_key.", dir=instance_path)  # mode 0600
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_urlsafe(48) + "\n")
            with contextlib.suppress(FileExistsError):
                os.link(draft, key_file)
        finally:
            os.unlink(draft)
    return key_file.read_text().strip()


def load_settings(environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
    """Build and validate :class:`Settings` from ``environ`` (default: ``os.environ``)."""
    env = dict(os.environ if environ is None else environ)
    problems: list[str] = []

    def get(name: str, default: str = "") -> str:
        return env.get(name, default).strip()

    instance_path = Path(get("PORTAL_INSTANCE_PATH") or Path.cwd() / "instance").resolve()
    roles_raw = get("PORTAL_ROLES", ",".join(ROLES))
    roles = frozenset(r.strip() for r in roles_raw.split(",") if r.strip())
    for role in sorted(roles - set(ROLES)):
        problems.append(f"PORTAL_ROLES: unknown role {role!r} (choose from {', '.join(ROLES)})")
    if not roles:
        problems.append("PORTAL_ROLES: name at least one role")

    transport = get("PORTAL_TRANSPORT", "local")
    if transport not in TRANSPORTS:
        problems.append(f"PORTAL_TRANSPORT: {transport!r} is not one of {', '.join(TRANSPORTS)}")
    elif transport == "s3":
        for name in ("PORTAL_S3_BUCKET", "PORTAL_SQS_QUEUE_URL", "PORTAL_SQS_STATUS_QUEUE_URL"):
            if not get(name):
                problems.append(f"{name}: required when PORTAL_TRANSPORT=s3")

    captcha = get("PORTAL_CAPTCHA", "none")
    if captcha not in CAPTCHAS:
        problems.append(f"PORTAL_CAPTCHA: {captcha!r} is not one of {', '.join(CAPTCHAS)}")

    secret_key = get("PORTAL_SECRET_KEY")
    if secret_key and len(secret_key) < 32:
        problems.append("PORTAL_SECRET_KEY: use at least 32 characters")

    settings = Settings(
        instance_path=instance_path,
        database_url=get("PORTAL_DATABASE_URL") or f"sqlite:///{instance_path / 'portal.db'}",
        secret_key=secret_key,
        keys_path=Path(get("PORTAL_KEYS_PATH") or instance_path / "keys").resolve(),
        spool_path=Path(get("PORTAL_SPOOL_PATH") or instance_path / "spool").resolve(),
        themes_path=Path(get("PORTAL_THEMES_PATH") or paths.THEMES).resolve(),
        translations_path=Path(get("PORTAL_TRANSLATIONS_PATH") or paths.TRANSLATIONS).resolve(),
        roles=roles,
        transport=transport,
        s3_bucket=get("PORTAL_S3_BUCKET"),
        sqs_queue_url=get("PORTAL_SQS_QUEUE_URL"),
        sqs_status_queue_url=get("PORTAL_SQS_STATUS_QUEUE_URL"),
        kms_key_id=get("PORTAL_KMS_KEY_ID"),
        sqs_wait_seconds=int(
            _number(get("PORTAL_SQS_WAIT_SECONDS", "10"), "PORTAL_SQS_WAIT_SECONDS", problems)
        ),
        outbox_stuck_seconds=int(
            _number(get("PORTAL_OUTBOX_STUCK_SECONDS", "900"), "PORTAL_OUTBOX_STUCK_SECONDS",
                    problems)
        ),
        captcha=captcha,
        hcaptcha_sitekey=get("PORTAL_HCAPTCHA_SITEKEY"),
        hcaptcha_secret=get("PORTAL_HCAPTCHA_SECRET"),
        hcaptcha_verify_url=get(
            "PORTAL_HCAPTCHA_VERIFY_URL", "https://api.hcaptcha.com/siteverify"
        ),
        hcaptcha_timeout=float(
            _number(get("PORTAL_HCAPTCHA_TIMEOUT", "5"), "PORTAL_HCAPTCHA_TIMEOUT", problems, float)
        ),
        altcha_hmac_key=get("PORTAL_ALTCHA_HMAC_KEY"),
        ratelimit_storage_uri=get("PORTAL_RATELIMIT_STORAGE_URI", "memory://"),
        ratelimit_report=get("PORTAL_RATELIMIT_REPORT", "5 per minute; 30 per hour"),
        ratelimit_status=get("PORTAL_RATELIMIT_STATUS", "10 per minute; 60 per hour"),
        ratelimit_enabled=_bool(
            get("PORTAL_RATELIMIT_ENABLED", "true"), "PORTAL_RATELIMIT_ENABLED", problems
        ),
        max_request_bytes=int(
            _number(get("PORTAL_MAX_REQUEST_BYTES", str(64 * 1024)), "PORTAL_MAX_REQUEST_BYTES",
                    problems)
        ),
        proxy_hops=int(_number(get("PORTAL_PROXY_HOPS", "0"), "PORTAL_PROXY_HOPS", problems)),
        cookie_secure=_bool(get("PORTAL_COOKIE_SECURE", "true"), "PORTAL_COOKIE_SECURE",
                            problems),
        monitoring_networks=_networks(get("PORTAL_MONITORING_NETWORKS",
                                          DEFAULT_MONITORING_NETWORKS),
                                      "PORTAL_MONITORING_NETWORKS", problems),
    )
    def minutes(name: str, default: int) -> int:
        value = int(_number(get(name, str(default)), name, problems))
        if value <= 0:
            problems.append(f"{name}: must be a positive number")
        return value

    resolver = get("PORTAL_DNS_RESOLVER")
    if resolver and not all(part.strip() for part in resolver.split(",")):
        problems.append("PORTAL_DNS_RESOLVER: expected addresses like 127.0.0.1 or 127.0.0.1:5353")
    categories = tuple(c.strip() for c in get("PORTAL_SEVERITY_CATEGORIES", "A,B,C").split(",")
                       if c.strip())
    if not categories or any(len(c) > 20 for c in categories):
        problems.append("PORTAL_SEVERITY_CATEGORIES: a comma list of short names, e.g. A,B,C")
    settings = replace(
        settings,
        smtp_url=get("PORTAL_SMTP_URL", "memory://"),
        mail_from=get("PORTAL_MAIL_FROM", "hotline@portal.example"),
        team_name=get("PORTAL_TEAM_NAME", "Portal central assessment team"),
        dns_resolver=resolver,
        hotlines_path=Path(get("PORTAL_HOTLINES_PATH") or paths.PACKAGE / "assessment" / "data"
                           / "hotlines.toml"),
        target_hours=minutes("PORTAL_TARGET_HOURS", 24),
        urgent_target_hours=minutes("PORTAL_URGENT_TARGET_HOURS", 2),
        renotice_hours=minutes("PORTAL_RENOTICE_HOURS", 48),
        welfare_break_minutes=minutes("PORTAL_WELFARE_BREAK_MINUTES", 60),
        welfare_daily_minutes=minutes("PORTAL_WELFARE_DAILY_MINUTES", 300),
        severity_categories=categories,
        staff_idle_minutes=minutes("PORTAL_STAFF_IDLE_MINUTES", 30),
        staff_session_hours=minutes("PORTAL_STAFF_SESSION_HOURS", 12),
        login_limit=get("PORTAL_RATELIMIT_LOGIN", "10 per minute; 50 per hour"),
        sponsor_min_count=minutes("PORTAL_SPONSOR_MIN_COUNT", 5),
        auto_migrate=_bool(get("PORTAL_AUTO_MIGRATE", "true"), "PORTAL_AUTO_MIGRATE", problems),
        report_retention_days=int(_number(get("PORTAL_REPORT_RETENTION_DAYS", "730"),
                                          "PORTAL_REPORT_RETENTION_DAYS", problems)),
        contact_retention_days=int(_number(get("PORTAL_CONTACT_RETENTION_DAYS", "30"),
                                           "PORTAL_CONTACT_RETENTION_DAYS", problems)),
        figures_settle_months=minutes("PORTAL_FIGURES_SETTLE_MONTHS", 13),
        trusted_hosts=_hosts(get("PORTAL_TRUSTED_HOSTS", ",".join(DEFAULT_TRUSTED_HOSTS)),
                             "PORTAL_TRUSTED_HOSTS", problems),
    )
    if overrides:
        settings = replace(settings, **overrides)  # type: ignore[arg-type]

    if settings.captcha == "hcaptcha" and not (
        settings.hcaptcha_sitekey and settings.hcaptcha_secret
    ):
        problems.append(
            "PORTAL_CAPTCHA=hcaptcha needs PORTAL_HCAPTCHA_SITEKEY and PORTAL_HCAPTCHA_SECRET"
        )
    if not settings.themes_path.is_dir():
        problems.append(f"PORTAL_THEMES_PATH: {settings.themes_path} is not a folder")
    if not settings.translations_path.is_dir():
        problems.append(f"PORTAL_TRANSLATIONS_PATH: {settings.translations_path} is not a folder")
    if settings.sqs_wait_seconds > 20:
        problems.append("PORTAL_SQS_WAIT_SECONDS: SQS long polling waits at most 20 seconds")
    if settings.report_retention_days < MIN_REPORT_RETENTION_DAYS:
        # Shorter would delete reports of a year that has not ended, whose sponsor figures
        # could then never be completed (see portal/retention.py).
        problems.append(f"PORTAL_REPORT_RETENTION_DAYS: at least {MIN_REPORT_RETENTION_DAYS} days")
    if settings.max_request_bytes < 4096:
        problems.append("PORTAL_MAX_REQUEST_BYTES: at least 4096 bytes are needed for the form")
    if problems:
        raise SettingsError(problems)

    if not settings.secret_key:
        settings = replace(settings, secret_key=_secret_key(settings.instance_path))
    return settings
