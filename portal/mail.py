"""Outgoing mail: one small interface (``send(message) -> message_id``) chosen by configuration.

``make_mailer(url, sender)`` picks the implementation from a URL:

- ``smtp://[user:password@]host[:port][?starttls=1&timeout=10]`` — plain SMTP (port 25 by default),
  optionally upgraded with STARTTLS; the password is percent-decoded, so ``%40`` stands for ``@``.
- ``smtps://[user:password@]host[:port]`` — SMTP over TLS from the first byte (port 465 by default).
- ``memory://`` — keeps the messages in a list, for development, the demo and tests.

Every message is plain UTF-8 text, marked ``Auto-Submitted: auto-generated`` so that well-behaved
servers send no out-of-office replies back. A delivery that fails raises :class:`MailError`, whose
reason never contains the SMTP password.
"""

from __future__ import annotations

import email.policy
import logging
import math
import smtplib
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from urllib.parse import parse_qsl, unquote, urlsplit

log = logging.getLogger(__name__)

TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off", "")
MAX_SUBJECT = 250
# The body is encoded with 78-column lines, 7-bit clean (quoted-printable or base64 for UTF-8),
# so any server relays it unchanged. Headers are then written with lines up to RFC 5322's hard
# limit of 998: the standard library's folding at 78 columns can drop a space next to an encoded
# word or start a subject with a space (Python 3.11), and our subjects are short anyway.
BODY_POLICY = email.policy.SMTP.clone(cte_type="7bit")
MAIL_POLICY = BODY_POLICY.clone(max_line_length=998)


class MailError(Exception):
    """A message could not be handed to the mail server; ``reason`` says why (never a password)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Message:
    to: tuple[str, ...]
    subject: str
    body: str  # plain text
    reply_to: str = ""
    # (file name, MIME type such as "application/pdf", bytes)
    attachments: tuple[tuple[str, str, bytes], ...] = ()


def _check_header(name: str, value: str) -> None:
    if "\r" in value or "\n" in value:
        raise ValueError(f"mail header {name} contains a line break")


def _check_address(name: str, value: str) -> None:
    _check_header(name, value)
    local, at, domain = value.rpartition("@")
    if not at or not local or not domain or any(c.isspace() for c in value) or "," in value:
        raise ValueError(f"mail header {name}: {value!r} is not one email address")


def check_message(message: Message) -> None:
    """Raise ValueError for a message that no server should get (no recipient, header injection)."""
    if not isinstance(message.to, tuple) or not message.to:
        raise ValueError("a message needs at least one recipient, as a tuple")
    for address in message.to:
        _check_address("To", address)
    if message.reply_to:
        _check_address("Reply-To", message.reply_to)
    _check_header("Subject", message.subject)
    if not message.subject.strip() or len(message.subject) > MAX_SUBJECT:
        raise ValueError(f"a subject must have 1 to {MAX_SUBJECT} characters")


def _domain_of(sender: str) -> str:
    domain = sender.rpartition("@")[2].strip().rstrip(">").lower()
    try:
        return domain.encode("idna").decode("ascii")
    except UnicodeError:
        return domain


def _new_message_id(sender: str) -> str:
    return make_msgid(domain=_domain_of(sender) or None)


class SmtpMailer:
    """Hands each message to one SMTP server, over a new connection that is always closed."""

    def __init__(
        self,
        host: str,
        port: int = 25,
        sender: str = "",
        username: str = "",
        password: str = "",
        starttls: bool = False,
        use_ssl: bool = False,
        timeout: float = 10.0,
    ):
        if not host:
            raise ValueError("an SMTP mailer needs a host")
        if starttls and use_ssl:
            raise ValueError("choose STARTTLS or SMTPS (use_ssl), not both")
        if password and not username:
            raise ValueError("an SMTP password needs a username")
        if not 0 < port < 65536:
            raise ValueError(f"SMTP port {port} is out of range")
        if not (math.isfinite(timeout) and timeout > 0):
            raise ValueError("the SMTP timeout must be a positive number of seconds")
        _check_address("From", sender)
        self.host = host
        self.port = port
        self.sender = sender
        self.username = username
        self._password = password
        self.starttls = starttls
        self.use_ssl = use_ssl
        self.timeout = timeout

    def __repr__(self) -> str:  # never show the password, even in a traceback
        return (
            f"SmtpMailer(host={self.host!r}, port={self.port}, sender={self.sender!r}, "
            f"username={self.username!r}, starttls={self.starttls}, use_ssl={self.use_ssl}, "
            f"timeout={self.timeout})"
        )

    def build(self, message: Message, message_id: str) -> EmailMessage:
        check_message(message)
        mime = EmailMessage(policy=BODY_POLICY)
        mime["From"] = self.sender
        mime["To"] = ", ".join(message.to)
        if message.reply_to:
            mime["Reply-To"] = message.reply_to
        mime["Subject"] = message.subject
        mime["Date"] = format_datetime(datetime.now(UTC))
        mime["Message-ID"] = message_id
        mime["Auto-Submitted"] = "auto-generated"
        # Asks Exchange not to answer with out-of-office or similar automatic replies.
        mime["X-Auto-Response-Suppress"] = "All"
        mime.set_content(message.body, charset="utf-8")
        for filename, mimetype, data in message.attachments:
            _check_header("attachment", filename)
            maintype, _, subtype = mimetype.partition("/")
            mime.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
        mime.policy = MAIL_POLICY  # the policy the message is written out with (see above)
        return mime

    def _connect(self) -> smtplib.SMTP:
        if self.use_ssl:
            return smtplib.SMTP_SSL(
                self.host, self.port, timeout=self.timeout, context=ssl.create_default_context()
            )
        return smtplib.SMTP(self.host, self.port, timeout=self.timeout)

    def _reason(self, exc: BaseException) -> str:
        text = f"{type(exc).__name__}: {exc}"
        if self._password:
            text = text.replace(self._password, "***")
        return f"could not send mail through {self.host}:{self.port}: {text}"

    def send(self, message: Message) -> str:
        """Deliver ``message`` to the server and return the Message-ID it carries."""
        message_id = _new_message_id(self.sender)
        mime = self.build(message, message_id)
        try:
            with self._connect() as smtp:
                if self.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if self.username:
                    smtp.login(self.username, self._password)
                refused = smtp.send_message(mime, from_addr=self.sender, to_addrs=list(message.to))
        except (smtplib.SMTPException, OSError) as exc:
            # "from None": the original exception may quote the server's answer to AUTH.
            raise MailError(self._reason(exc)) from None
        if refused:
            # Some recipients were accepted, so the message is out; resending would duplicate it.
            log.warning("mail %s refused for %d of %d recipients: %s", message_id, len(refused),
                        len(message.to), ", ".join(sorted(refused)))
        return message_id


class MemoryMailer:
    """Keeps every message it is given in ``sent``; sends nothing anywhere."""

    def __init__(self, sender: str = "portal@localhost"):
        self.sender = sender
        self.sent: list[Message] = []
        self.message_ids: list[str] = []

    def __repr__(self) -> str:
        return f"MemoryMailer(sender={self.sender!r}, sent={len(self.sent)})"

    def send(self, message: Message) -> str:
        check_message(message)
        message_id = _new_message_id(self.sender)
        self.sent.append(message)
        self.message_ids.append(message_id)
        return message_id


def _flag(name: str, value: str) -> bool:
    word = value.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ValueError(f"mail URL option {name} must be 1/0, true/false, yes/no or on/off")


def make_mailer(url: str, sender: str) -> SmtpMailer | MemoryMailer:
    """A mailer for ``url`` (see the module's docstring); ValueError messages never quote the URL."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        raise ValueError("the mail URL cannot be parsed (check the port)") from None
    scheme = parts.scheme.lower()
    if scheme == "memory":
        return MemoryMailer(sender) if sender else MemoryMailer()
    if scheme not in ("smtp", "smtps"):
        raise ValueError("the mail URL must start with smtp://, smtps:// or memory://")
    if not parts.hostname:
        raise ValueError("the mail URL has no host")
    if parts.path not in ("", "/") or parts.fragment:
        raise ValueError("the mail URL must not have a path or a fragment")
    options = {"starttls": "0", "timeout": "10"}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key not in options:
            raise ValueError(f"unknown mail URL option {key!r} (known: starttls, timeout)")
        options[key] = value
    starttls = _flag("starttls", options["starttls"])
    try:
        timeout = float(options["timeout"])
    except ValueError:
        raise ValueError("mail URL option timeout must be a number of seconds") from None
    use_ssl = scheme == "smtps"
    if use_ssl and starttls:
        raise ValueError("smtps:// is already encrypted: drop starttls=1, or use smtp:// with starttls=1")
    return SmtpMailer(
        host=parts.hostname,
        port=port if port is not None else (465 if use_ssl else 25),
        sender=sender,
        username=unquote(parts.username or ""),
        password=unquote(parts.password or ""),
        starttls=starttls,
        use_ssl=use_ssl,
        timeout=timeout,
    )
