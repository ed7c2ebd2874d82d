"""Public pages rendered once per process (portal/reporting/pages.py) and the other per-process
caches of the request path: every kept page is byte for byte the page the templates render for
the same request values, in every language, for every captcha, for each portal."""

from __future__ import annotations

import os
import shutil
import time

import pytest
from flask import g, render_template_string, request, session
from flask.sessions import SecureCookieSessionInterface
from flask_wtf.csrf import generate_csrf, validate_csrf
from itsdangerous import BadSignature

from portal.app import create_app
from portal.i18n import compile_catalogues, wtforms_translations
from portal.languages import catalogue_tags
from portal.paths import TRANSLATIONS
from portal.reporting.captcha import Widget
from portal.reporting.pages import PageCache
from portal.security import check_csrf, csrf_token
from portal.signing import PortalSessionInterface
from tests.conftest import CSRF_RE, DEMO_LANGS, copy_portal, make_settings, receipt_of, submit_report

LANGS = DEMO_LANGS
# Values with every character HTML escaping changes, and a plain one.
TOKENS = ("IjAxMjM0NTY3ODki.aBcDeF.0123456789abcdef-_", "<b>&amp;\"quoted\"&'apostrophe'</b>")


def pages(app) -> PageCache:
    return app.extensions["portal.reporting"]["pages"]


def render(app, path: str, token: str, *, cached: bool) -> bytes:
    """The GET view's page for ``path`` in one request whose CSRF token is ``token``."""
    pages(app).enabled = cached
    try:
        with app.test_request_context(path):
            app.preprocess_request()
            g.csrf_token = token
            response = app.make_response(app.view_functions[request.endpoint]())
            return response.get_data()
    finally:
        pages(app).enabled = True


# ---------------------------------------------------------------- the cache itself


def test_a_kept_page_is_the_rendered_page_with_the_values_escaped(app):
    cache = PageCache()
    source = '<p title="{{ v }}">{{ v }}</p><i>{{ w }}</i>'
    with app.test_request_context("/"):
        def build(values):
            return render_template_string(source, **values)

        for v, w in [("a", "b"), ('<&">', "'"), ("", "x y")]:
            expected = build({"v": v, "w": w})
            assert cache.render("key", build, {"v": v, "w": w}) == expected
        assert cache.is_kept("key")


@pytest.mark.parametrize("source", [
    "{{ v|safe }}",                    # not escaped
    "{{ v|forceescape|forceescape }}",  # escaped twice
    "{{ v|upper }}",                   # transformed
    "{{ v|length }}",                  # depends on the value, shows no trace of it
    "{{ v[:8] }}",                     # cut
    "{% if v|length > 40 %}long{% endif %}{{ v }}",
    "{{ url_for('healthz', x=v) }}",   # URL-quoted
])
def test_a_page_using_a_value_in_any_other_way_is_rendered_every_time(app, source):
    cache = PageCache()
    with app.test_request_context("/"):
        def build(values):
            return render_template_string(source, **values)

        for v in ("short", "<&\"'>" * 20):
            assert cache.render("key", build, {"v": v}) == build({"v": v})
        assert not cache.is_kept("key")


def test_the_cache_is_bounded(app):
    cache = PageCache(max_pages=3)
    with app.test_request_context("/"):
        for n in range(10):
            assert cache.render(("page", n), lambda values, n=n: f"<p>{n}</p>", {}) == f"<p>{n}</p>"
    assert len(cache) == 3


# ---------------------------------------------------------------- the public pages


@pytest.mark.parametrize("lang", LANGS)
def test_report_form_is_the_uncached_page_in_every_language(app, lang):
    path = f"/demo/{lang}/report"
    for token in TOKENS:
        uncached = render(app, path, token, cached=False)
        assert render(app, path, token, cached=True) == uncached  # fills in the page it keeps
        assert render(app, path, token, cached=True) == uncached  # from the kept page
        assert f'value="{token}"'.encode() in uncached or b"&lt;b&gt;&amp;amp;" in uncached
    assert pages(app).is_kept(("_default/report.html", "demo", lang, "", "reporting.report",
                               "none", ""))


@pytest.mark.parametrize("path", ["/demo/{lang}/", "/demo/{lang}/privacy", "/demo/{lang}/status"])
def test_other_pages_are_the_uncached_pages(app, path):
    for lang in LANGS:
        for token in TOKENS:
            uncached = render(app, path.format(lang=lang), token, cached=False)
            assert render(app, path.format(lang=lang), token, cached=True) == uncached
            assert render(app, path.format(lang=lang), token, cached=True) == uncached


@pytest.mark.parametrize("kind", ["altcha", "hcaptcha"])
def test_report_form_with_a_captcha(instance, kind):
    env = {"PORTAL_CAPTCHA": kind}
    if kind == "hcaptcha":
        env |= {"PORTAL_HCAPTCHA_SITEKEY": "10000000-ffff-ffff-ffff-000000000001",
                "PORTAL_HCAPTCHA_SECRET": "0x0000000000000000000000000000000000000000"}
    app = create_app(make_settings(instance, env=env))
    with app.app_context():
        captcha = app.extensions["portal.reporting"]["captchas"][kind]
        for challenge in ('{"algorithm":"SHA-256","salt":"a&b<c>"}', '{"x":"\'quoted\'"}'):
            if kind == "altcha":
                captcha.widget = lambda challenge=challenge: Widget("altcha", challenge=challenge)
            for token in TOKENS:
                uncached = render(app, "/demo/fr/report", token, cached=False)
                assert render(app, "/demo/fr/report", token, cached=True) == uncached
                assert render(app, "/demo/fr/report", token, cached=True) == uncached
        assert (b"data-challenge" in uncached) == (kind == "altcha")
        assert (b"h-captcha" in uncached) == (kind == "hcaptcha")
        assert any(key[-2] == kind for key in pages(app)._pages)


@pytest.mark.parametrize("urgent", [False, True])
def test_receipt_page_is_the_uncached_page(client, app, urgent):
    urls = "http://a.example.test/1\nhttp://b.example.test/2"
    kept = submit_report(client, lang="pt", urls=urls, child_in_danger="y" if urgent else False)
    pages(app).enabled = False
    rendered = submit_report(client, lang="pt", urls=urls, child_in_danger="y" if urgent else False)
    assert kept.status_code == rendered.status_code == 200
    one, two = receipt_of(kept), receipt_of(rendered)
    assert one != two
    grouped = " ".join(two[i:i + 4] for i in range(0, 16, 4))
    assert kept.get_data().replace(
        " ".join(one[i:i + 4] for i in range(0, 16, 4)).encode(), grouped.encode()
    ) == rendered.get_data()
    assert any(key[0] == "_default/receipt.html" and key[-2:] == (urgent, 2)
               for key in pages(app)._pages)


def test_each_request_gets_its_own_token_and_each_token_works(app):
    tokens = set()
    for _ in range(3):
        client = app.test_client()
        page = client.get("/demo/en/report")
        token = CSRF_RE.search(page.get_data(as_text=True)).group(1)
        tokens.add(token)
        receipt_of(client.post("/demo/en/report", data={
            "urls": "http://site.example.test/page", "content_type": "images",
            "where_found": "website", "csrf_token": token}))
    assert len(tokens) == 3
    assert pages(app).is_kept(("_default/report.html", "demo", "en", "", "reporting.report",
                               "none", ""))


def test_a_rejected_report_shows_a_fresh_working_token(client):
    page = submit_report(client, urls="")
    assert page.status_code == 400
    token = CSRF_RE.search(page.get_data(as_text=True)).group(1)
    assert receipt_of(client.post("/demo/en/report", data={
        "urls": "http://site.example.test/page", "content_type": "images",
        "where_found": "website", "csrf_token": token}))


def test_head_request_answers_like_get(client):
    head, get = client.head("/demo/en/report"), client.get("/demo/en/report")
    assert head.status_code == get.status_code == 200
    assert head.headers["Content-Length"] == get.headers["Content-Length"]


def test_each_portal_keeps_its_own_pages(themes_copy, instance):
    """A second portal with its own name, colours and an overriding template: neither portal's
    kept pages show anything of the other's, whichever is asked for first."""
    copy_portal(themes_copy, "second", {
        'hosts = ["report.demo.example"]': 'hosts = ["report.second.example"]',
        "Demoland": "Secondland", 'brand = "#1d4e89"': 'brand = "#5a1d89"'})
    templates = themes_copy / "second" / "templates"
    templates.mkdir()
    (templates / "report.html").write_text(
        '{% extends "_default/report.html" %}'
        '{% block content %}<p id="second-note">{{ _("Home") }}</p>{{ super() }}{% endblock %}')
    app = create_app(make_settings(instance, themes_path=themes_copy))
    with app.app_context():
        client = app.test_client()
        for _ in range(2):
            for slug, name, other in (("second", "Secondland", "Demoland"),
                                      ("demo", "Demoland", "Secondland")):
                for path in (f"/{slug}/en/report", f"/{slug}/en/", f"/{slug}/en/status"):
                    html = client.get(path).get_data(as_text=True)
                    assert name in html and other not in html, path
                    assert ('id="second-note"' in html) == (path == "/second/en/report"), path
                    assert f"/_static/{slug}/portal.css" in html
        for slug in ("demo", "second"):
            uncached = render(app, f"/{slug}/en/report", TOKENS[1], cached=False)
            assert render(app, f"/{slug}/en/report", TOKENS[1], cached=True) == uncached
        assert pages(app).is_kept(("second/report.html", "second", "en", "", "reporting.report",
                                   "none", ""))


# ---------------------------------------------------------------- the other per-process caches


def test_csrf_token_is_flask_wtfs_token(app):
    with app.test_request_context("/demo/en/report"):
        app.preprocess_request()
        token = csrf_token()
        assert token == generate_csrf() == csrf_token()
        validate_csrf(token)
    with app.test_request_context("/demo/en/report"):
        app.preprocess_request()
        token = generate_csrf()  # made by Flask-WTF first: the same one is returned
        assert csrf_token() == token
        session["csrf_token"] = "0123456789abcdef0123456789abcdef01234567"
        del g.csrf_token
        validate_csrf(csrf_token())


def test_check_csrf_agrees_with_flask_wtf(app):
    """check_csrf accepts and refuses exactly what Flask-WTF's validate_csrf does, with the
    same message, whoever made the token."""
    from itsdangerous import TimestampSigner, URLSafeTimedSerializer
    from wtforms.validators import ValidationError

    def outcome(check, data, time_limit=None):
        try:
            check(data, time_limit)
        except ValidationError as exc:
            return exc.args[0]
        return "ok"

    def flask_wtf(data, time_limit):
        validate_csrf(data, time_limit=time_limit)

    def ours(data, time_limit):
        check_csrf(data, app.secret_key, time_limit, "csrf_token")

    with app.test_request_context("/demo/en/report"):
        app.preprocess_request()
        good = csrf_token()
        other_key = URLSafeTimedSerializer("another key", salt="wtf-csrf-token").dumps(
            session["csrf_token"])
        other_raw = URLSafeTimedSerializer(app.secret_key, salt="wtf-csrf-token").dumps("f" * 40)
        class TwoHoursAgo(TimestampSigner):
            def get_timestamp(self) -> int:
                return int(time.time()) - 7200

        expired = URLSafeTimedSerializer(app.secret_key, salt="wtf-csrf-token",
                                         signer=TwoHoursAgo).dumps(session["csrf_token"])
        cases = [(good, None), (generate_csrf(), None), ("", None), (None, None),
                 (good[:-2], None), (other_key, None), (other_raw, None), (expired, 3600),
                 (expired, None)]
        results = [(outcome(flask_wtf, *case), outcome(ours, *case)) for case in cases]
        assert all(a == b for a, b in results), results
        assert [a for a, _ in results] == [
            "ok", "ok", "The CSRF token is missing.", "The CSRF token is missing.",
            "The CSRF token is invalid.", "The CSRF token is invalid.",
            "The CSRF tokens do not match.", "The CSRF token has expired.", "ok"]
        session.pop("csrf_token")
        assert outcome(flask_wtf, good) == outcome(ours, good) == "The CSRF session token is missing."


def test_session_cookies_are_flasks_own(app):
    """The cheaper serializer reads Flask's cookies and Flask reads its own; a session that
    zlib cannot shorten gives the very same cookie (tests/test_fast_paths.py covers the rest)."""
    ours = PortalSessionInterface().get_signing_serializer(app)
    flasks = SecureCookieSessionInterface().get_signing_serializer(app)
    data = {"csrf_token": "0123456789abcdef0123456789abcdef01234567", "n": [1, 2]}
    now = int(time.time())
    ours_cookie = ours.dumps(data)
    flasks_cookie = flasks.dumps(data)
    if int(time.time()) == now:  # the same second: the same timestamp, so the same cookie
        assert ours_cookie == flasks_cookie
    assert flasks.loads(ours_cookie) == ours.loads(flasks_cookie) == data
    assert isinstance(app.session_interface, PortalSessionInterface)
    # After a key rotation, a cookie signed with the old key (now a fallback) is still read,
    # and one signed with an unknown key is not, although signers keep their derived keys.
    old_key = app.secret_key
    app.config.update(SECRET_KEY="rotated " + old_key, SECRET_KEY_FALLBACKS=[old_key])
    try:
        rotated = PortalSessionInterface().get_signing_serializer(app)
        assert rotated.loads(ours_cookie) == data
        with pytest.raises(BadSignature):  # made with the new key: the old one cannot read it
            flasks.loads(rotated.dumps(data))
        stranger = PortalSessionInterface()
        app.config.update(SECRET_KEY="unrelated", SECRET_KEY_FALLBACKS=[])
        with pytest.raises(BadSignature):
            stranger.get_signing_serializer(app).loads(ours_cookie)
    finally:
        app.config.update(SECRET_KEY=old_key, SECRET_KEY_FALLBACKS=[])


def test_wtforms_messages_are_loaded_once_per_language(app):
    loaded = []
    for lang in ("fr", "fr", "en"):
        with app.test_request_context(f"/demo/{lang}/report"):
            app.preprocess_request()
            wtforms_translations.gettext("Not a valid choice.")
            loaded.append(wtforms_translations._catalogue())
    assert loaded[0] is loaded[1] and loaded[0] is not loaded[2]
    with app.test_request_context("/demo/fr/report"):
        app.preprocess_request()
        assert wtforms_translations.gettext("Invalid CSRF Token.") != "Invalid CSRF Token."


def test_every_form_uses_the_kept_catalogue_and_check_csrf(app):
    """The back office's forms, like the public ones, take WTForms' messages from the per-process
    catalogue and check their CSRF token with check_csrf: a stale token is refused with
    Flask-WTF's own message, a fresh one accepted."""
    from werkzeug.datastructures import MultiDict

    from portal.accounts.forms import LoginForm
    from portal.assessment.forms import AssessForm
    from portal.reporting.forms import ReportForm
    from portal.security import PortalCSRF

    with app.test_request_context("/staff/login", method="POST",
                                  data={"csrf_token": "stale", "email": "a@b.example",
                                        "password": "x"}):
        app.preprocess_request()
        csrf_token()
        for form_class in (LoginForm, AssessForm, ReportForm):
            form = form_class()
            assert form.meta.get_translations(form) is wtforms_translations, form_class
            assert isinstance(form.meta.build_csrf(form), PortalCSRF), form_class
        login = LoginForm()
        assert not login.validate() and login.csrf_token.errors == ["The CSRF token is invalid."]
        fresh = LoginForm(formdata=MultiDict({"csrf_token": csrf_token(), "email": "a@b.example",
                                              "password": "x"}))
        assert fresh.validate() and not fresh.csrf_token.errors


def test_catalogues_are_compiled_only_when_their_source_changed(tmp_path):
    source = tmp_path / "translations"
    shutil.copytree(TRANSLATIONS, source)
    target = tmp_path / "compiled"
    assert compile_catalogues(source, target) == [t for t in catalogue_tags(source) if t != "en"]
    mo = target / "fr" / "LC_MESSAGES" / "public.mo"
    first = mo.stat().st_mtime_ns
    os.utime(mo, ns=(first - 10**9, first - 10**9))
    compile_catalogues(source, target)
    assert mo.stat().st_mtime_ns == first - 10**9  # the same source: left as it was
    po = source / "fr" / "LC_MESSAGES" / "public.po"
    po.write_text(po.read_text().replace('msgstr "Accueil"', 'msgstr "Page d\'accueil"', 1))
    compile_catalogues(source, target)
    assert mo.stat().st_mtime_ns != first - 10**9
    assert b"Page d'accueil" in mo.read_bytes()
    mo.write_bytes(b"")  # a stamp that does not name this source: compiled again
    (target / "fr" / "LC_MESSAGES" / "public.mo.source").write_text("stale\n")
    compile_catalogues(source, target)
    assert b"Page d'accueil" in mo.read_bytes()
