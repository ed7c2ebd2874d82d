"""The texts the centre sends: takedown notices, hotline referrals and feedback to reporters.

Notices to hosting providers and referrals to hotlines are international, so they are in
English and not translated. Feedback to a citizen is in the language of their report and goes
through Flask-Babel (the caller provides an app context).

Every address of reported content is written *defanged* (see :func:`defang`) so that no mail
client turns it into a link that someone opens by accident. Nothing about the person who made
the report ever appears in a notice or a referral.
"""

from __future__ import annotations

import contextlib
import re
import textwrap

import idna
from babel import Locale, UnknownLocaleError
from flask_babel import force_locale
from flask_babel import gettext as _

from portal.i18n import use_domain
from portal.statuses import ACTION_TAKEN, ALL, CLOSED, IN_ASSESSMENT, NO_ACTION, RECEIVED

_BARE_DOT = re.compile(r"(?<!\[)\.(?!\])")
_NESTED_SCHEME = re.compile(r"(?i)\bhttp(s?)://")
_PORT = re.compile(r":\d*$")
NOT_KNOWN = "not known"


def _defang_host(host: str) -> str:
    """Punycode for a Unicode name (unambiguous, no look-alike letters), then ``.`` -> ``[.]``."""
    if not host.isascii() and not host.startswith("["):
        with contextlib.suppress(idna.IDNAError):  # if not, keep the name; it is still defanged
            host = idna.encode(host, uts46=True).decode("ascii")
    return _BARE_DOT.sub("[.]", host)


def defang(url: str) -> str:
    """Write an address so that it cannot be clicked or opened by accident.

    - the scheme ``http``/``https`` (any case) becomes ``hxxp``/``hxxps``; ``://`` stays;
    - every ``.`` in the host becomes ``[.]`` (IPv4 addresses too); a Unicode host name is
      first written in punycode (``xn--``), the form that names exactly one DNS host;
    - the ``@`` that ends a userinfo (``user:pass@``) becomes ``[@]``;
    - the port, path, query and fragment stay as they are, except that an address nested in
      them (``?next=http://...``) also gets ``hxxp``, so the result holds no ``http://`` at all.

    Already defanged text is left as it is, so defanging twice changes nothing. An address
    without a scheme (``example.com/x``) is treated as starting with its host.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    elif scheme.lower() in ("http", "https"):
        scheme = "hxxp" + scheme[4:].lower()
    end = next((i for i, char in enumerate(rest) if char in "/?#"), len(rest))
    authority, tail = rest[:end], rest[end:]
    authority = authority.replace("[@]", "@").replace("[.]", ".")  # so that defanging twice is a no-op
    userinfo, at, hostport = authority.rpartition("@")
    port_match = _PORT.search(hostport) if not hostport.endswith("]") else None
    host, port = (hostport[: port_match.start()], port_match.group()) if port_match else (hostport, "")
    authority = (userinfo + "[@]" if at else "") + _defang_host(host) + port
    tail = _NESTED_SCHEME.sub(r"hxxp\1://", tail)
    return f"{scheme}{sep}{authority}{tail}"


def _or_not_known(value: str) -> str:
    return value.strip() or NOT_KNOWN


def _details(*, url_defanged: str, host: str | None, addresses: list[str], network: str, country: str,
             outcome_label: str, reference: str) -> str:
    rows = [("Address", url_defanged)]
    if host is not None:
        rows.append(("Host name", _defang_host(host) if host.strip() else NOT_KNOWN))
    rows += [
        ("IP addresses", ", ".join(addresses) or NOT_KNOWN),
        ("Network", _or_not_known(network)),
        ("Country", _or_not_known(country)),
        ("Assessment", _or_not_known(outcome_label)),
        ("Reference", reference),
    ]
    return "\n".join(f"  {label + ':':<14}{value}" for label, value in rows)


_HOW_TO_READ = (
    'The address is written in a disabled form ("hxxp", "[.]") so that it cannot be opened by '
    'accident. To restore it, replace "hxxp" with "http" and "[.]" with ".".'
)
WIDTH = 72


class _Pre(str):
    """A block kept as written (the details table, a list); other blocks are wrapped."""


def _text(*blocks: str) -> str:
    """Blocks separated by a blank line; prose wrapped at 72 columns, never inside a word or address."""
    out = []
    for block in blocks:
        if isinstance(block, _Pre):
            out.append(str(block))
        else:
            out.append(textwrap.fill(block, WIDTH, break_long_words=False, break_on_hyphens=False))
    return "\n\n".join(out) + "\n"


def compose_notice(
    *,
    url_defanged: str,
    host: str,
    addresses: list[str],
    network: str,
    country: str,
    outcome_label: str,
    reference: str,
    team_name: str,
    team_email: str,
    renotice: bool,
) -> tuple[str, str]:
    """A notice-and-takedown request to a hosting provider, as (subject, body), in English."""
    url_defanged = defang(url_defanged)  # a no-op for a defanged address; a safety net otherwise
    details = _details(url_defanged=url_defanged, host=host, addresses=addresses, network=network,
                       country=country, outcome_label=outcome_label, reference=reference)
    if renotice:
        subject = f"[{reference}] Repeated notice: child sexual abuse material still reachable"
        opening = (
            "We sent you a notice about the content below earlier, under the same reference. "
            "At the time of our re-check, the content was still reachable. We therefore repeat "
            "our request."
        )
    else:
        subject = f"[{reference}] Notice and takedown request: child sexual abuse material"
        opening = f"This is a notice and takedown request from {team_name}."
    requests = _Pre(
        "We ask you to:\n"
        "\n"
        "  - remove the content, or disable access to it, expeditiously;\n"
        "  - preserve the content and the related records (such as account,\n"
        "    upload and access records) where the law that applies to you\n"
        "    requires it, so that the competent authorities can request them;\n"
        "  - NOT forward this notice to the customer or user who uploaded the\n"
        "    content, and not tell them about it: this could alert the people\n"
        "    responsible and harm an investigation."
    )
    body = _text(
        "Dear abuse team,",
        opening,
        "Content at the address below has been assessed by trained analysts as child sexual "
        "abuse material. According to our checks, it is hosted on your network.",
        _Pre(details),
        _HOW_TO_READ,
        requests,
        "Please do not open, download or share the content except as your law requires for "
        "its removal or preservation.",
        f"Please reply to {team_email}, keeping the reference {reference} in the subject, to "
        f"confirm the removal or to ask any question.",
        "Thank you for your help in protecting children.",
        _Pre(f"{team_name}\n{team_email}"),
    )
    return subject, body


def compose_hotline_referral(
    *,
    hotline_name: str,
    url_defanged: str,
    country: str,
    addresses: list[str],
    network: str,
    outcome_label: str,
    reference: str,
    team_name: str,
) -> tuple[str, str]:
    """A referral of an assessed item to the hotline of its hosting country, as (subject, body)."""
    url_defanged = defang(url_defanged)
    details = _details(url_defanged=url_defanged, host=None, addresses=addresses, network=network,
                       country=country, outcome_label=outcome_label, reference=reference)
    subject = f"[{reference}] Referral: child sexual abuse material hosted in {_or_not_known(country)}"
    body = _text(
        f"Dear colleagues at {hotline_name},",
        f"{team_name} refers the item below to you because, according to our checks, it is "
        f"hosted in your country. Our trained analysts assessed the content as child sexual "
        f"abuse material.",
        _Pre(details),
        _HOW_TO_READ,
        "Please handle the item according to your procedures and national law. When you "
        f"reply, please keep the reference {reference} in the subject.",
        "Thank you for your cooperation.",
        _Pre(team_name),
    )
    return subject, body


def _status_labels() -> dict[str, str]:
    # Called inside force_locale: the same words as the public status page, so they share entries.
    return {
        RECEIVED: _("Received"),
        IN_ASSESSMENT: _("Being assessed"),
        ACTION_TAKEN: _("Action taken"),
        NO_ACTION: _("No action needed"),
        CLOSED: _("Closed"),
    }


def _locale_name(lang: str) -> str:
    try:
        return str(Locale.parse((lang or "en").replace("-", "_")))
    except (UnknownLocaleError, ValueError, TypeError):
        return "en"


def compose_reporter_feedback(status: str, lang: str) -> tuple[str, str]:
    """A short message to a reporter who left an email: only the new status of their report.

    It says nothing about the content, its address or what the analysts found, and it is in
    the language of the report (English where that language has no catalogue).
    """
    if status not in ALL:
        raise ValueError(f"unknown report status {status!r}")
    with force_locale(_locale_name(lang)), use_domain("public"):
        subject = _("The status of your report has changed")
        paragraphs = [
            _("Hello,"),
            _("The status of the report you made has changed. Its new status is: %(status)s.",
              status=_status_labels()[status]),
            _("You can check the status at any time on the portal with the receipt number you "
              "were given."),
            _("Please remember: never download, keep or share child sexual abuse material, not "
              "even to report it. Reporting the address is enough."),
            _("You receive this message because you left your email address with your report. "
              "This is an automatic message; please do not reply to it."),
        ]
    return subject, "\n\n".join(paragraphs) + "\n"
