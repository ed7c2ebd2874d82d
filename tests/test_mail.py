"""Outgoing mail through a real SMTP server on loopback, and the texts the centre sends."""

from __future__ import annotations

import email
import email.policy
import re
from pathlib import Path

import pytest

from portal.assessment.hotlines import HOTLINES_PATH, Hotline, hotline_for, load_hotlines
from portal.assessment.notices import (
    compose_hotline_referral,
    compose_notice,
    compose_reporter_feedback,
    defang,
)
from portal.mail import MailError, MemoryMailer, Message, SmtpMailer, make_mailer
from portal.paths import TRANSLATIONS
from portal.statuses import ALL
from tests.ports import free_port

SENDER = "notices@team.example"
PASSWORD = "s3cret-Pa55word"
URL_RE = re.compile(r"(?i)(hxxps?|https?|ftp)://|www\.|\[\.\]|\.example\b")


def a_notice(renotice: bool = False, url: str = "https://files.host.example/a/b.jpg") -> tuple[str, str]:
    return compose_notice(
        url_defanged=defang(url),
        host="files.host.example",
        addresses=["192.0.2.10", "2001:db8::10"],
        network="AS64500 Example Hosting",
        country="XA",
        outcome_label="Child sexual abuse material",
        reference="NTD-2024-000042",
        team_name="Équipe d'évaluation — Example",
        team_email=SENDER,
        renotice=renotice,
    )


# --- delivery over a real SMTP server -------------------------------------------------


def test_a_notice_is_delivered_with_recipients_subject_utf8_body_and_headers(smtp_server):
    controller, handler = smtp_server
    subject, body = a_notice()
    mailer = SmtpMailer("127.0.0.1", controller.port, sender=SENDER, timeout=5)
    to = ("abuse@host.example", "noc@host.example")
    message_id = mailer.send(Message(to=to, subject=subject, body=body, reply_to="desk@team.example"))

    assert len(handler.envelopes) == 1
    envelope = handler.envelopes[0]
    assert envelope.mail_from == SENDER
    assert envelope.rcpt_tos == list(to)
    received = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
    assert received["Subject"] == subject
    assert received["From"] == SENDER
    assert received["To"] == ", ".join(to)
    assert received["Reply-To"] == "desk@team.example"
    assert received["Message-ID"] == message_id
    assert re.fullmatch(r"<[^<>@\s]+@team\.example>", message_id)
    assert received["Auto-Submitted"] == "auto-generated"
    assert received["Date"] is not None and received["Date"].datetime.tzinfo is not None
    assert received.get_content_type() == "text/plain"
    assert received.get_content_charset() == "utf-8"
    assert received.get_content().replace("\r\n", "\n") == body
    assert "Équipe d'évaluation — Example" in received.get_content()


def test_long_utf8_subjects_and_bodies_arrive_intact(smtp_server):
    controller, handler = smtp_server
    mailer = SmtpMailer("127.0.0.1", controller.port, sender=SENDER, timeout=5)
    subject = "Le statut de votre signalement a changé, voilà — « En cours d'examen » et ainsi de suite"
    body = "Équipe — تم تغيير حالة البلاغ\n" * 40
    mailer.send(Message(to=("abuse@host.example",), subject=subject, body=body))
    raw = handler.envelopes[0].original_content
    assert raw.isascii() and max(len(line) for line in raw.split(b"\r\n")) <= 998
    received = email.message_from_bytes(raw, policy=email.policy.default)
    assert received["Subject"] == subject
    assert received.get_content().replace("\r\n", "\n") == body


def test_each_message_gets_its_own_message_id(smtp_server):
    controller, handler = smtp_server
    mailer = SmtpMailer("127.0.0.1", controller.port, sender=SENDER, timeout=5)
    message = Message(to=("abuse@host.example",), subject="Test", body="Body")
    first, second = mailer.send(message), mailer.send(message)
    assert first != second and len(handler.envelopes) == 2


def test_mail_error_on_a_closed_port_never_shows_the_password():
    mailer = SmtpMailer("127.0.0.1", free_port(), sender=SENDER, username="team",
                        password=PASSWORD, timeout=2)
    with pytest.raises(MailError) as caught:
        mailer.send(Message(to=("abuse@host.example",), subject="Test", body="Body"))
    assert "127.0.0.1" in caught.value.reason
    assert PASSWORD not in str(caught.value) and PASSWORD not in caught.value.reason
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    assert PASSWORD not in repr(mailer) and "team" in repr(mailer)


def test_mail_error_when_the_server_refuses_to_log_in_never_shows_the_password(smtp_server):
    controller, handler = smtp_server  # the loopback server offers no AUTH at all
    mailer = SmtpMailer("127.0.0.1", controller.port, sender=SENDER, username="team",
                        password=PASSWORD, timeout=5)
    with pytest.raises(MailError) as caught:
        mailer.send(Message(to=("abuse@host.example",), subject="Test", body="Body"))
    assert "AUTH" in caught.value.reason
    assert PASSWORD not in caught.value.reason
    assert handler.envelopes == []


def test_a_message_with_a_line_break_in_a_header_is_never_sent(smtp_server):
    controller, handler = smtp_server
    mailer = SmtpMailer("127.0.0.1", controller.port, sender=SENDER, timeout=5)
    for bad in (
        Message(to=("abuse@host.example",), subject="Hi\r\nBcc: victim@else.example", body="x"),
        Message(to=("abuse@host.example\nBcc: victim@else.example",), subject="Hi", body="x"),
        Message(to=(), subject="Hi", body="x"),
        Message(to=("abuse@host.example, victim@else.example",), subject="Hi", body="x"),
    ):
        with pytest.raises(ValueError):
            mailer.send(bad)
        with pytest.raises(ValueError):
            MemoryMailer(SENDER).send(bad)
    assert handler.envelopes == []


def test_memory_mailer_keeps_what_it_sends():
    mailer = MemoryMailer(SENDER)
    message = Message(to=("abuse@host.example",), subject="Test", body="Body")
    message_id = mailer.send(message)
    assert mailer.sent == [message]
    assert mailer.message_ids == [message_id] and message_id.endswith("@team.example>")


# --- make_mailer ------------------------------------------------------------------------


def test_make_mailer_reads_an_smtp_url_with_starttls_and_credentials():
    mailer = make_mailer("smtp://team%40example:p%40ss%3Aword@mail.example:587?starttls=1&timeout=4",
                         SENDER)
    assert isinstance(mailer, SmtpMailer)
    assert (mailer.host, mailer.port, mailer.sender) == ("mail.example", 587, SENDER)
    assert (mailer.username, mailer._password) == ("team@example", "p@ss:word")
    assert mailer.starttls and not mailer.use_ssl and mailer.timeout == 4.0
    assert "p@ss" not in repr(mailer)


def test_make_mailer_defaults_ports_by_scheme():
    plain = make_mailer("smtp://localhost", SENDER)
    tls = make_mailer("smtps://mail.example", SENDER)
    assert isinstance(plain, SmtpMailer) and (plain.port, plain.starttls, plain.use_ssl) == (25, False, False)
    assert isinstance(tls, SmtpMailer) and (tls.port, tls.use_ssl, tls.username) == (465, True, "")
    explicit = make_mailer("smtps://mail.example:2465", SENDER)
    assert explicit.port == 2465


def test_make_mailer_memory():
    mailer = make_mailer("memory://", SENDER)
    assert isinstance(mailer, MemoryMailer) and mailer.sender == SENDER


@pytest.mark.parametrize("url", [
    "ftp://mail.example",
    "mail.example:25",
    "smtp://",
    "smtp://user:hunter2-secret@mail.example:notaport",
    "smtp://user:hunter2-secret@mail.example:70000",
    "smtps://user:hunter2-secret@mail.example?starttls=1",
    "smtp://user:hunter2-secret@mail.example?starttls=maybe",
    "smtp://user:hunter2-secret@mail.example?tls=1",
    "smtp://user:hunter2-secret@mail.example?timeout=soon",
    "smtp://user:hunter2-secret@mail.example/path",
])
def test_make_mailer_rejects_bad_urls_without_quoting_the_password(url):
    with pytest.raises(ValueError) as caught:
        make_mailer(url, SENDER)
    assert "hunter2" not in str(caught.value)


def test_an_smtp_mailer_needs_a_sender_address():
    with pytest.raises(ValueError):
        make_mailer("smtp://mail.example", "")


# --- defanging --------------------------------------------------------------------------


@pytest.mark.parametrize(("url", "expected"), [
    ("http://example.com/", "hxxp://example[.]com/"),
    ("https://example.com/a/b.jpg", "hxxps://example[.]com/a/b.jpg"),
    ("HTTPS://Example.com/", "hxxps://Example[.]com/"),
    ("https://cdn.img.files.example.co.uk/x", "hxxps://cdn[.]img[.]files[.]example[.]co[.]uk/x"),
    ("http://example.com:8080/p.html?q=1.2#top.x", "hxxp://example[.]com:8080/p.html?q=1.2#top.x"),
    ("http://192.0.2.7:81/", "hxxp://192[.]0[.]2[.]7:81/"),
    ("http://[2001:db8::7]:8080/a.b", "hxxp://[2001:db8::7]:8080/a.b"),
    ("https://xn--bcher-kva.example/", "hxxps://xn--bcher-kva[.]example/"),
    ("https://bücher.example/", "hxxps://xn--bcher-kva[.]example/"),
    ("http://user:pw@host.example/", "hxxp://user:pw[@]host[.]example/"),
    ("http://user@host.example:8000/x", "hxxp://user[@]host[.]example:8000/x"),
    ("https://host.example/go?to=http://other.example/", "hxxps://host[.]example/go?to=hxxp://other.example/"),
    ("host.example/x.png", "host[.]example/x.png"),
])
def test_defang(url, expected):
    assert defang(url) == expected
    assert defang(expected) == expected  # defanging twice changes nothing


# --- notices, referrals and feedback ------------------------------------------------------


def test_a_notice_never_holds_a_clickable_address():
    subject, body = a_notice(url="https://files.host.example/a/b.jpg?next=https://else.example/")
    text = subject + body
    assert "http://" not in text.lower() and "https://" not in text.lower()
    assert "files.host.example" not in text
    assert "hxxps://files[.]host[.]example/a/b.jpg" in body
    assert "files[.]host[.]example" in body and "192.0.2.10" in body and "AS64500" in body


def test_a_notice_asks_for_removal_preservation_and_discretion_with_the_reference():
    subject, body = a_notice()
    assert "NTD-2024-000042" in subject and "NTD-2024-000042" in body
    flat = " ".join(body.split())
    assert "trained analysts" in flat and "child sexual abuse material" in flat
    assert "expeditiously" in flat and "preserve" in flat
    assert "NOT forward this notice" in flat
    assert SENDER in body
    assert "reporter" not in flat.lower() and "reported by" not in flat.lower()


def test_a_renotice_says_the_content_was_still_reachable():
    first_subject, first_body = a_notice()
    again_subject, again_body = a_notice(renotice=True)
    assert first_subject != again_subject and first_body != again_body
    assert "still reachable" in " ".join(again_body.split())
    assert "still reachable" not in " ".join(first_body.split())
    assert "NOT forward this notice" in " ".join(again_body.split())
    assert "NTD-2024-000042" in again_subject


def test_a_hotline_referral():
    subject, body = compose_hotline_referral(
        hotline_name="Example Hotline A",
        url_defanged="https://files.host.example/a/b.jpg",
        country="XA",
        addresses=["192.0.2.10"],
        network="",
        outcome_label="Child sexual abuse material",
        reference="REF-7",
        team_name="Example Assessment Team",
    )
    assert "REF-7" in subject and "XA" in subject
    assert "Example Hotline A" in body and "REF-7" in body and "192.0.2.10" in body
    assert "hxxps://files[.]host[.]example/a/b.jpg" in body
    assert "http://" not in body and "https://" not in body
    assert "not known" in body  # the network was not given


def test_reporter_feedback_in_english_names_only_the_new_status(app):
    subject, body = compose_reporter_feedback("in_assessment", "en")
    assert "Being assessed" in body
    assert "download" in body
    assert not URL_RE.search(subject + body)
    labels = {compose_reporter_feedback(status, "en")[1] for status in ALL}
    assert len(labels) == len(ALL)
    with pytest.raises(ValueError):
        compose_reporter_feedback("deleted", "en")


def french_for(msgid: str) -> str:
    catalogue = (TRANSLATIONS / "fr" / "LC_MESSAGES" / "public.po").read_text("utf-8")
    match = re.search(rf'^msgid "{re.escape(msgid)}"\nmsgstr "(.+)"$', catalogue, re.MULTILINE)
    assert match, f"no French entry for {msgid!r}"
    return match.group(1)


def test_reporter_feedback_in_french_uses_the_catalogue_status_word(app):
    subject, body = compose_reporter_feedback("in_assessment", "fr")
    assert french_for("Being assessed") == "En cours d'examen"
    assert "En cours d'examen" in body
    assert "Being assessed" not in body
    assert not URL_RE.search(subject + body)


def test_reporter_feedback_in_an_unknown_language_falls_back_to_english(app):
    assert "Being assessed" in compose_reporter_feedback("in_assessment", "xx-not-a-locale")[1]


# --- hotlines -----------------------------------------------------------------------------


def test_the_shipped_hotlines_are_fictional_examples_only():
    hotlines = load_hotlines(HOTLINES_PATH)
    assert set(hotlines) == {"XA", "XB"}
    for hotline in hotlines.values():
        assert hotline.email.endswith(".example") and ".example/" in hotline.url
    found = hotline_for(" xa ", hotlines)
    assert isinstance(found, Hotline) and found.email == "report@hotline.xa.example"
    assert hotline_for("DE", hotlines) is None and hotline_for("", hotlines) is None


def test_hotline_errors_name_the_file_and_every_key(tmp_path: Path):
    path = tmp_path / "hotlines.toml"
    path.write_text(
        '[XA]\nname = ""\nurl = "https://hotline.xa.example/"\nemail = "report@hotline.xa.example"\n'
        '[XB]\nname = "B"\nurl = "http://hotline.xb.example/"\nemail = "not an email"\n'
        '[XC]\nname = "C"\nurl = "https://hotline.xc.example/"\nemial = "x@hotline.xc.example"\n'
        '[xd]\nname = "D"\n'
    )
    with pytest.raises(ValueError) as caught:
        load_hotlines(path)
    message = str(caught.value)
    assert str(path) in message
    assert "[XA]: name is required" in message
    assert "[XB]: email" in message and "[XB]: url" in message
    assert "[XC]: unknown field 'emial'" in message and "[XC]: email" in message
    assert "[xd]" in message


def test_hotline_file_that_is_not_toml_names_the_file(tmp_path: Path):
    path = tmp_path / "broken.toml"
    path.write_text("[XA\nname = 1\n")
    with pytest.raises(ValueError, match=re.escape(str(path))):
        load_hotlines(path)
    with pytest.raises(ValueError, match=r"missing\.toml"):
        load_hotlines(tmp_path / "missing.toml")
