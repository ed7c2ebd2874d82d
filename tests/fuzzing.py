"""A request fuzzer over every route of the app, for tests/test_fuzz.py and
tests/benchmarks/bench_fuzz.py.

The routes come from ``app.url_map``, the parameter names from the code (every WTForms field of
every form class, every ``args.get("...")`` / ``form.get("...")`` and every ``name="..."`` of a
template) and from the pages: before the run each role follows the links of the pages it can
reach, and keeps per rule the names and values of their forms and links and the values each
part of a path had (real ids, slugs, choices). So a new route, form field or query parameter
is fuzzed without a change here.

Each case is one request through Flask's test client, signed in as one of the roles or
anonymous, to one of the hosts served or not: a path from the route's rule (a value seen, or an
``int`` given huge, negative and small numbers, any other part words or junk), a query string
and, for a method with a body, an urlencoded form (real field names, real words and junk, with
a valid CSRF token in a third of the cases so that validation code runs) or now and then a
JSON, multipart or plain-text body. Junk holds NUL and other control characters, lone
surrogates (sent as the bytes a client could send), markup, and very long strings.
"""

from __future__ import annotations

import io
import json
import re
import traceback
from collections import Counter, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from html import unescape
from pathlib import Path
from urllib.parse import parse_qsl, quote

from flask import Flask, request, request_started
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir
from werkzeug.exceptions import HTTPException
from wtforms.fields.core import UnboundField

from portal.accounts.models import User
from portal.db import db
from portal.paths import PACKAGE, THEMES
from portal.security import PortalForm
from portal.statuses import ALL as STATUSES
from tests.staff import StaffUser, make_user, sign_in, token

ROLES = ("anonymous", "analyst", "lead", "admin", "sponsor")
# A page every signed-in role may open, to see whether a session still holds.
SIGNED_IN_PAGE = "/staff/account/password"
OTHER_METHODS = ("PUT", "PATCH", "DELETE")
BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
RULE_PART_RE = re.compile(r"<(?:(\w+)(?:\([^)]*\))?:)?(\w+)>")
SOURCE_NAME_RE = re.compile(r"""\b(?:args|form|values)(?:\.get(?:list)?\(|\[)\s*["']([^"']+)["']""")
TEMPLATE_NAME_RE = re.compile(r'\bname="([A-Za-z_][\w-]*)"')
NUMBER_RE = re.compile(r"[0-9]+")
# Values the app understands that no form declares as a choice.
EXTRA_WORDS = ("", "me", "none", "open", "all", "on", "y", "true", "1", "0", "last-month",
               "last-quarter", "last-year", "portal.css", "_default", "logo.svg")


@dataclass(frozen=True)
class Route:
    rule: str
    methods: tuple[str, ...]
    # (converter, argument) for each variable part of the rule, in order.
    parts: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Case:
    role: str
    method: str
    host: str
    path: str
    query: str
    body: str = "none"  # none, form, json, multipart or text
    fields: tuple[tuple[str, str], ...] = ()
    csrf: bool = False
    rule: str = ""  # the rule the path was made from

    def describe(self) -> str:
        return (f"{self.role} {self.method} {self.path}?{self.query} Host: {self.host} "
                f"body={self.body} csrf={self.csrf} fields={self.fields!r}"[:2000])


def routes(app: Flask) -> list[Route]:
    found = []
    for rule in app.url_map.iter_rules():
        methods = tuple(sorted(rule.methods - {"HEAD", "OPTIONS"}))
        parts = tuple((conv or "default", name) for conv, name in RULE_PART_RE.findall(rule.rule))
        found.append(Route(rule.rule, methods, parts))
    return sorted(found, key=lambda r: (r.rule, r.methods))


def _form_classes(cls: type = PortalForm) -> list[type]:
    classes = []
    for sub in cls.__subclasses__():
        classes += [sub, *_form_classes(sub)]
    return classes


def _form_fields() -> dict[str, set[str]]:
    """Every field name of every form class, with the values of its static choices."""
    fields: dict[str, set[str]] = {"csrf_token": set()}
    for form in _form_classes():
        for name in dir(form):
            unbound = getattr(form, name, None)
            if isinstance(unbound, UnboundField):
                values = fields.setdefault(name, set())
                for choice in unbound.kwargs.get("choices") or ():
                    value = choice[0] if isinstance(choice, tuple) else getattr(choice, "value",
                                                                                 choice)
                    values.add(str(value))
    return fields


def parameter_names() -> tuple[list[str], dict[str, set[str]]]:
    """Names the code reads from a query string or a form, and the form fields' choices."""
    fields = _form_fields()
    names = set(fields)
    for source in PACKAGE.rglob("*.py"):
        names.update(SOURCE_NAME_RE.findall(source.read_text(encoding="utf-8")))
    for template in [*PACKAGE.rglob("*.html"), *THEMES.rglob("*.html")]:
        names.update(TEMPLATE_NAME_RE.findall(template.read_text(encoding="utf-8")))
    return sorted(names), fields


def vocabulary(app: Flask, fields: dict[str, set[str]]) -> list[str]:
    settings = app.extensions["portal.settings"]
    words = {*app.extensions["portal.tenancy"].portals, *app.extensions["portal.languages"],
             *STATUSES, *settings.severity_categories, *ROLES, *EXTRA_WORDS}
    for values in fields.values():
        words.update(values)
    return sorted(words)


# -- junk ------------------------------------------------------------------------------------------

SURROGATES = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF, exclude_categories=())
CONTROLS = st.characters(max_codepoint=0x1F, exclude_categories=()) | st.just("\x7f")
SPECIAL = st.sampled_from(list("\x00<>&\"'%/.?#=;-:+ \t\n\r\\\u202e\ufeff\u0663"))
CHARS = st.one_of(st.characters(), SURROGATES, CONTROLS, SPECIAL)
NUMBERS = st.one_of(
    st.integers(-10, 40),
    st.integers(2**31 - 3, 2**31 + 3),
    st.integers(2**63 - 3, 2**63 + 3),
    st.integers(-(10**40), 10**40),
)
JUNK = st.one_of(
    st.text(CHARS, max_size=24),
    NUMBERS.map(str),
    # Shapes of cursors, periods and dates, with numbers of any size.
    st.lists(NUMBERS.map(lambda n: str(abs(n))), min_size=1, max_size=4).map("-".join),
    st.tuples(st.integers(0, 99999), st.integers(0, 99)).map(lambda t: f"{t[0]:04d}-{t[1]:02d}"),
    st.tuples(st.integers(0, 99999), st.integers(0, 9)).map(lambda t: f"{t[0]:04d}-Q{t[1]}"),
    st.tuples(st.integers(0, 99999), st.integers(0, 99999)).map(
        lambda t: f"{t[0]:04d}-01-01..{t[1]:04d}-12-31"),
    # Very long strings, made cheaply: past every bound of the forms, and some past the
    # request size limit once percent-encoded.
    st.tuples(st.text(CHARS, min_size=1, max_size=3), st.integers(100, 4000)).map(
        lambda t: t[0] * t[1]),
)
INTS = st.one_of(st.integers(0, 12), NUMBERS)


@contextmanager
def hypothesis_home(folder: Path) -> Iterator[None]:
    """Hypothesis keeps a cache of the code's constants in its home folder, ``.hypothesis`` in
    the working directory by default: keep it in ``folder`` instead, outside the checkout."""
    set_hypothesis_home_dir(folder)
    try:
        yield
    finally:
        set_hypothesis_home_dir(None)


def encode(text: str) -> str:
    """Percent-encoded UTF-8; a lone surrogate becomes the bytes a client could send for it."""
    return quote(text.encode("utf-8", "surrogatepass"), safe="")


# -- what the pages themselves show -------------------------------------------------------------

FORM_RE = re.compile(r"<form\b([^>]*)>(.*?)</form>", re.S)
ACTION_RE = re.compile(r'\baction="([^"]*)"')
METHOD_RE = re.compile(r'\bmethod="([^"]*)"')
FIELD_NAME_RE = re.compile(r'\bname="([^"]+)"')
FIELD_VALUE_RE = re.compile(r'\bvalue="([^"]*)"')
HREF_RE = re.compile(r'\bhref="(/[^"]*)"')
NOT_PAGES = (".pdf", ".csv", ".css", ".svg", ".png", ".js")


@dataclass
class Harvest:
    """The forms and links of the pages each role can reach: per rule, the field or query
    names its forms and links use, and every value they hold (choices, ids, cursors)."""

    names: dict[str, set[str]] = field(default_factory=dict)
    values: set[str] = field(default_factory=set)
    # The values each variable part of a rule had in the paths seen: (rule, part) -> values.
    parts: dict[tuple[str, str], set[str]] = field(default_factory=dict)
    pages: int = 0

    def add_parts(self, rule: str, arguments: dict) -> None:
        for name, value in arguments.items():
            self.parts.setdefault((rule, name), set()).add(str(value))

    def add(self, rule: str, pairs) -> None:
        names = self.names.setdefault(rule, set())
        for name, value in pairs:
            if name != "csrf_token":
                names.add(name)
                self.values.add(value)


def harvest(app: Flask, clients: dict, limit: int = 60) -> Harvest:
    """Follow the links of every page from the routes without variable parts and each
    portal's root, as each role, up to ``limit`` pages a role."""
    adapter = app.url_map.bind("localhost")
    found = Harvest()
    starts = [r.rule for r in routes(app) if "GET" in r.methods and not r.parts]
    starts += [f"/{slug}/" for slug in app.extensions["portal.tenancy"].portals]

    def rule_of(path: str, method: str) -> str | None:
        try:
            rule, arguments = adapter.match(path, method=method, return_rule=True)
        except HTTPException:
            return None
        found.add_parts(rule.rule, arguments)
        return rule.rule

    for client in clients.values():
        queue, seen = deque(starts), set()
        while queue and len(seen) < limit:
            url = queue.popleft()
            path, _, query = url.partition("?")
            rule = rule_of(path, "GET")
            if url in seen or rule is None or path.endswith(NOT_PAGES):
                continue
            seen.add(url)
            found.add(rule, parse_qsl(query, keep_blank_values=True))
            with app.app_context():
                response = client.get(url)
            if response.mimetype != "text/html":
                continue
            page = response.get_data(as_text=True)
            for attrs, inner in FORM_RE.findall(page):
                action = ACTION_RE.search(attrs)
                method = METHOD_RE.search(attrs)
                target = rule_of(unescape(action.group(1)).partition("?")[0] if action else path,
                                 (method.group(1) if method else "get").upper())
                if target:
                    names = FIELD_NAME_RE.findall(inner)
                    found.add(target, [(n, "") for n in names])
                    found.values.update(unescape(v) for v in FIELD_VALUE_RE.findall(inner))
            queue.extend(unescape(href) for href in HREF_RE.findall(page))
        found.pages += len(seen)
    found.values.discard("")
    return found


# -- the cases -------------------------------------------------------------------------------------


@dataclass
class Plan:
    routes: list[Route]
    names: list[str]  # every name the code reads
    harvest: Harvest
    words: list[str]
    hosts: list[str]

    @classmethod
    def of(cls, app: Flask, clients: dict) -> Plan:
        names, fields = parameter_names()
        found = harvest(app, clients)
        portal_hosts = sorted(app.extensions["portal.tenancy"].hosts)
        # Mostly the test client's own host; also the portals' hosts and hosts not served.
        hosts = ["localhost"] * 16 + portal_hosts + [
            "127.0.0.1:5000", "evil.example.test", "LOCALHOST", "localhost.evil.example.test"]
        words = sorted({*vocabulary(app, fields), *found.values})
        return cls(routes(app), names, found, words, hosts)

    def cases(self) -> st.SearchStrategy[Case]:
        """A pair of a name and a value is one draw where it can be (hypothesis' cost is per
        draw). A name is the route's own (from its pages) or any the code reads, junk one time
        in eight. A value is a word the app or its pages use; or such a word with a number in
        it made extreme (a real cursor, period or id pushed out of range); or, about one time
        in two, junk."""
        words = self.words
        numbered = [word for word in words if NUMBER_RE.search(word)]
        span = 2 * len(words) + len(numbered)
        keys = {route.rule: [*sorted(self.harvest.names.get(route.rule, ())) * 3, *self.names]
                for route in self.routes}
        key_junk = max(1, len(max(keys.values(), key=len)) // 7)
        seen_parts = {(route.rule, name): sorted(self.harvest.parts.get((route.rule, name), ()))
                      for route in self.routes for _converter, name in route.parts}

        def value(draw, index: int) -> str:
            if index < len(words):
                return words[index]
            if index - len(words) < len(numbered):
                word = numbered[index - len(words)]
                return NUMBER_RE.sub(str(abs(draw(NUMBERS))), word, count=1)
            return draw(JUNK)

        def any_value(draw) -> str:
            return value(draw, draw(st.integers(0, span - 1)))

        def pairs(draw, rule: str, most: int) -> list[tuple[str, str]]:
            names = keys[rule]
            width = len(names) + key_junk
            found = []
            for _ in range(draw(st.integers(0, most))):
                index = draw(st.integers(0, width * span - 1))
                key, rest = index % width, index // width
                found.append((names[key] if key < len(names) else draw(JUNK), value(draw, rest)))
            return found

        @st.composite
        def case(draw) -> Case:
            route = draw(st.sampled_from(self.routes))
            method = draw(st.sampled_from([*route.methods * 27, *OTHER_METHODS]))
            texts = []
            for converter, name in route.parts:
                seen = seen_parts[(route.rule, name)]
                if seen and draw(st.integers(0, 2)):  # two times in three, a value seen
                    texts.append("/".join(encode(p) for p in draw(st.sampled_from(seen)).split("/")))
                elif converter == "int":
                    texts.append(str(draw(INTS)))
                elif converter == "path":
                    segments = [any_value(draw) for _ in range(draw(st.integers(1, 3)))]
                    texts.append("/".join(encode(segment) for segment in segments))
                else:
                    texts.append(encode(any_value(draw)))
            parts = iter(texts)
            path = RULE_PART_RE.sub(lambda _match: next(parts), route.rule)
            if path.endswith("/") and len(path) > 2 and not draw(st.integers(0, 7)):
                path = path[:-1]  # the strict-slash redirect
            if path.startswith("//"):
                # The same path to the app (servers decode %2F in the path), but not read by
                # the test client as "//host/path".
                path = "/%2F" + path[2:]
            query = "&".join(f"{encode(k)}={encode(v)}" for k, v in pairs(draw, route.rule, 3))
            body, fields, csrf = "none", (), False
            if method in BODY_METHODS:
                body = draw(st.sampled_from(("form",) * 7 + ("json", "multipart", "text", "none")))
                fields = tuple(pairs(draw, route.rule, 7))
                csrf = draw(st.integers(0, 2)) == 0
            return Case(draw(st.sampled_from(ROLES)), method, draw(st.sampled_from(self.hosts)),
                        path, query, body, fields, csrf, route.rule)

        return case()


# -- running them ----------------------------------------------------------------------------------


class Sessions:
    """A test client per role, signed in through the real forms, and its CSRF token. A session
    that a case ended (sign-out, an administrator disabling or resetting the account) is
    signed in again: with a recovery code while the account has them, else as a new account."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.clients: dict[str, object] = {}
        self.tokens: dict[str, str] = {}
        self.staff: dict[str, StaffUser] = {}
        self.accounts = 0
        self.renewals = 0
        for role in ROLES:
            self._start(role)

    def _start(self, role: str) -> None:
        client = self.clients.get(role) or self.app.test_client()
        self.clients[role] = client
        if role == "anonymous":
            self.tokens[role] = token(client, "/staff/login")
            return
        self.accounts += 1
        staff = make_user(role, f"{role}-{self.accounts}@fuzz.example")
        sign_in(client, staff)
        self.staff[role] = staff
        self.tokens[role] = token(client, SIGNED_IN_PAGE)

    def _recovery_sign_in(self, role: str) -> bool:
        client, staff = self.clients[role], self.staff[role]
        user = db.session.get(User, staff.user_id)
        db.session.refresh(user)
        usable = user.totp_enrolled and not (user.disabled or user.must_change_password)
        db.session.rollback()
        if not (usable and staff.recovery_codes):  # disabled or reset by an administrator
            return False
        login = client.post("/staff/login", data={
            "csrf_token": token(client, "/staff/login"), "email": staff.email,
            "password": staff.password})
        if login.status_code != 302 or not login.headers["Location"].startswith("/staff/login/code"):
            return False
        done = client.post("/staff/login/code", data={
            "csrf_token": token(client, "/staff/login/code"), "code": staff.recovery_codes.pop()})
        return done.status_code == 302 and client.get(SIGNED_IN_PAGE).status_code == 200

    def after(self, role: str, response) -> None:
        """Sign in again if the response says this role's session has ended."""
        if role == "anonymous" or response.status_code not in (302, 303):
            return
        if not response.headers.get("Location", "").startswith("/staff/login"):
            return
        client = self.clients[role]
        if client.get(SIGNED_IN_PAGE).status_code == 200:
            return
        self.renewals += 1
        if self._recovery_sign_in(role):
            self.tokens[role] = token(client, SIGNED_IN_PAGE)
        else:
            self._start(role)


@dataclass
class Results:
    cases: int = 0
    statuses: Counter = field(default_factory=Counter)
    server_errors: list[tuple[str, str]] = field(default_factory=list)
    reached: set[tuple[str, str]] = field(default_factory=set)


class Fuzzer:
    """Runs cases against the app; each in an app context of its own, as in production."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.sessions = Sessions(app)
        self.plan = Plan.of(app, self.sessions.clients)
        self.results = Results()
        request_started.connect(self._started, app)

    def _started(self, sender, **extra) -> None:
        if request.url_rule is not None:
            self.results.reached.add((request.url_rule.rule, request.method))

    def close(self) -> None:
        request_started.disconnect(self._started, self.app)

    def request_kwargs(self, case: Case) -> dict:
        kwargs: dict = {"method": case.method, "headers": {"Host": case.host}}
        fields = list(case.fields)
        if case.csrf:
            fields.insert(0, ("csrf_token", self.sessions.tokens[case.role]))
        if case.body == "form":
            kwargs["data"] = "&".join(f"{encode(k)}={encode(v)}" for k, v in fields)
            kwargs["content_type"] = "application/x-www-form-urlencoded"
        elif case.body == "json":
            nested = {k: {"a": [v, {"b": v}]} if len(v) % 2 else v for k, v in fields}
            deep = "[" * 5000 + "]" * 5000
            text = json.dumps(nested, ensure_ascii=True) if fields else deep
            kwargs["data"], kwargs["content_type"] = text, "application/json"
        elif case.body == "multipart":
            data: dict = {encode(k): encode(v) for k, v in fields}
            data["urls"] = (io.BytesIO(b"http://site.example.test/\n"), "urls.txt")
            kwargs["data"] = data
        elif case.body == "text":
            kwargs["data"] = "\n".join(f"{k}={v}" for k, v in fields).encode("utf-8", "surrogatepass")
            kwargs["content_type"] = "text/plain"
        return kwargs

    def run(self, case: Case, on_error: Callable[[Case, str], None] | None = None) -> int:
        """One case; a 5xx or an exception is recorded and passed to ``on_error``."""
        client = self.sessions.clients[case.role]
        url = case.path + (f"?{case.query}" if case.query else "")
        self.results.cases += 1
        try:
            with self.app.app_context():
                response = client.open(url, **self.request_kwargs(case))
                status = response.status_code
                response.close()
        except Exception:  # TESTING propagates a view's exception: a 500
            status, problem = 500, traceback.format_exc(limit=-6)[-3000:]
        else:
            problem = f"status {status}"
        self.results.statuses[status] += 1
        if status >= 500:
            self.results.server_errors.append((case.describe(), problem))
            if on_error:
                on_error(case, problem)
            return status
        self.sessions.after(case.role, response)
        return status
