"""What a citizen types at the edge: control characters are refused in every field with a
localized message and the input kept, and markup in any field is never sent back as markup,
in every shipped language of the demo portal, with a valid, a missing or a forged CSRF token."""

from __future__ import annotations

import ast

import pytest
from flask_babel import force_locale, gettext
from markupsafe import escape
from sqlalchemy import select

from portal.assessment.models import Report
from portal.db import db
from portal.forwarding.forwarder import forward_once
from portal.forwarding.importer import import_once
from portal.forwarding.models import OutboxEnvelope
from portal.languages import babel_name
from portal.paths import PACKAGE
from portal.reporting.forms import CONTROL_MESSAGE, URL_REASONS
from portal.reporting.urls import parse_urls
from tests.conftest import DEMO_LANGS, csrf_token, submit_report

LANGS = list(DEMO_LANGS)
SESSION_EXPIRED = "Your session has expired. Please check your report and send it again."


def translated(app, lang: str, message) -> str:
    """A message as the page in ``lang`` shows it: translated, then HTML-escaped."""
    with app.test_request_context(), force_locale(babel_name(lang)):
        return str(escape(gettext(message) if isinstance(message, str) else str(message)))


# -- control characters --------------------------------------------------------------------------

REPORT_FIELDS_WITH_NUL = {
    "urls": "http://site.example.test/a\x00b",
    "content_type": "images\x00",
    "where_found": "website\x00",
    "description": "before\x00after",
    "child_in_danger": "y\x00",
    "contact_email": "someone\x00@mail.example",
}
# Where the page shows the value again, as it shows it.
KEPT = {
    "urls": "http://site.example.test/a\x00b</textarea>",
    "description": "before\x00after</textarea>",
    "child_in_danger": 'value="y\x00"',
    "contact_email": 'value="someone\x00@mail.example"',
}


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("field", list(REPORT_FIELDS_WITH_NUL))
def test_a_nul_in_any_report_field_is_refused_with_a_localized_message(app, client, lang, field):
    fields = {"description": "kept description", field: REPORT_FIELDS_WITH_NUL[field]}
    answer = submit_report(client, lang=lang, **fields)
    assert answer.status_code == 400
    html = answer.get_data(as_text=True)
    assert 'id="receipt"' not in html
    summary = html.split('class="error-summary"', 1)[1].split("</div>", 1)[0]
    assert f'<a href="#{field}">' in summary
    assert translated(app, lang, CONTROL_MESSAGE) in summary
    if field in KEPT:
        assert KEPT[field] in html
    if field != "description":
        assert "kept description</textarea>" in html
    assert db.session.query(OutboxEnvelope).count() == 0


@pytest.mark.parametrize("lang", LANGS)
def test_a_nul_in_the_status_form_is_refused_with_a_localized_message(app, client, lang):
    token = csrf_token(client, f"/demo/{lang}/status")
    answer = client.post(f"/demo/{lang}/status", data={"csrf_token": token, "receipt": "1234\x005678"})
    assert answer.status_code == 400
    html = answer.get_data(as_text=True)
    assert translated(app, lang, CONTROL_MESSAGE) in html
    assert 'value="1234\x005678"' in html and 'id="report-status"' not in html
    forged = client.post(f"/demo/{lang}/status", data={"csrf_token": "x\x00y", "receipt": "1234"})
    assert forged.status_code == 400
    assert 'id="report-status"' not in forged.get_data(as_text=True)


@pytest.mark.parametrize(("field", "value"), [
    ("description", "escape \x1b[31m"), ("description", "delete \x7f"),
    ("description", "next line \x85"), ("contact_email", "tab\t@mail.example"),
    ("urls", "site.example.test/a\tsite.example.test/b"), ("urls", "site.example.test/\x0b"),
])
def test_other_control_characters_are_refused_too(app, client, field, value):
    answer = submit_report(client, **{field: value})
    assert answer.status_code == 400
    assert translated(app, "en", CONTROL_MESSAGE) in answer.get_data(as_text=True)


def test_tabs_and_line_breaks_are_kept_where_text_allows_them(app, client):
    answer = submit_report(client, urls="site.example.test/one\r\nsite.example.test/two\r\n",
                           description="first line\r\n\tindented line")
    assert answer.status_code == 200 and 'id="receipt"' in answer.get_data(as_text=True)
    ext = app.extensions
    forward_once(ext["portal.transport"])
    result = import_once(ext["portal.transport"], ext["portal.private_keys"], ext["portal.contact_key"])
    assert result.imported == 1
    report = db.session.scalars(select(Report)).one()
    assert report.description == "first line\r\n\tindented line"
    assert [u.url for u in report.urls] == ["http://site.example.test/one",
                                           "http://site.example.test/two"]


# (\x1c-\x1f and \x85 separate addresses, like spaces: the form refuses them as a whole.)
@pytest.mark.parametrize("character", ["\x00", "\x01", "\x08", "\x1b", "\x7f", "\x9f"])
def test_the_url_rules_refuse_control_characters_with_their_own_reason(character):
    urls, problems = parse_urls(f"site.example.test/ok\nsite.example.test/a{character}b")
    assert urls == ["http://site.example.test/ok"]
    assert [(p.line, p.reason) for p in problems] == [(2, "control")]
    assert "control" in URL_REASONS


# -- markup ------------------------------------------------------------------------------------

MARKUP = [
    '<meta http-equiv="refresh" content="0;url=http://evil.example.test/">',
    # the same without spaces, so that the URL rules take it as one address and quote it whole
    '<meta/http-equiv="refresh"/content="0;url=http://evil.example.test/">',
    "<b>x</b>",
    '"><img src=x>',
]
RAW = ("<meta http-equiv", "<meta/", "<b>x", "<img src=x")


def assert_no_markup_from_input(html: str, markup: str) -> None:
    assert markup not in html
    for raw in RAW:
        assert raw not in html, raw


@pytest.mark.parametrize("token", ["valid", "missing", "forged"])
@pytest.mark.parametrize("lang", LANGS)
def test_markup_in_every_report_field_comes_back_escaped(app, client, lang, token):
    url = f"/demo/{lang}/report"
    for markup in MARKUP:
        data = {name: markup for name in ("urls", "content_type", "where_found", "description",
                                          "child_in_danger", "contact_email")}
        if token == "valid":
            data["csrf_token"] = csrf_token(client, url)
        elif token == "forged":
            data["csrf_token"] = markup
        answer = client.post(url, data=data)
        assert answer.status_code == 400
        html = answer.get_data(as_text=True)
        assert_no_markup_from_input(html, markup)
        escaped = str(escape(markup))
        assert f"{escaped}</textarea>" in html  # the addresses and the description, kept
        assert html.count(f"{escaped}</textarea>") == 2
        assert f'value="{escaped}"' in html  # the email address and the checkbox
        errors = html.split('id="urls-error"', 1)[1].split("</ul>", 1)[0]
        first_piece = markup.split()[0]
        assert str(escape(first_piece)) in errors  # the bad address quoted, escaped
        if token != "valid":
            assert translated(app, lang, SESSION_EXPIRED) in html
        assert 'id="receipt"' not in html
    assert db.session.query(OutboxEnvelope).count() == 0


@pytest.mark.parametrize("token", ["valid", "missing", "forged"])
@pytest.mark.parametrize("lang", LANGS)
def test_markup_in_the_status_form_comes_back_escaped(client, lang, token):
    url = f"/demo/{lang}/status"
    for markup in MARKUP:
        data = {"receipt": markup}
        if token == "valid":
            data["csrf_token"] = csrf_token(client, url)
        elif token == "forged":
            data["csrf_token"] = markup
        answer = client.post(url, data=data)
        assert answer.status_code in (200, 400)
        html = answer.get_data(as_text=True)
        assert_no_markup_from_input(html, markup)
        assert f'value="{escape(markup)}"' in html
        assert 'id="report-status"' not in html


def test_no_lazy_string_quotes_anything():
    """A lazy string hands its text to Jinja as markup (its __html__), so one built with
    variables would put them into a page unescaped: messages with variables are made with
    gettext when they are needed."""
    lazy = {"_l", "lazy_gettext", "lazy_ngettext", "lazy_pgettext", "lazy_npgettext"}
    found = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and node.keywords:
                name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
                if name in lazy:
                    found.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    assert found == []
