import itertools
import random

import idna
import pytest

from portal.reporting.urls import PLAIN_HOST_RE, normalise, parse_urls


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("site.example.test/page", "http://site.example.test/page"),
        ("  https://Site.Example.TEST/a?b=1#c  ", "https://site.example.test/a?b=1#c"),
        ("<http://site.example.test/x>", "http://site.example.test/x"),
        ('"site.example.test"', "http://site.example.test/"),
        ("(www.example.test/page).", "http://www.example.test/page"),
        ("//cdn.example.test/a", "http://cdn.example.test/a"),
        ("bücher.example.test/ü", "http://xn--bcher-kva.example.test/ü"),
        ("HTTP://EXAMPLE.TEST:8080/Path", "http://example.test:8080/Path"),
        ("example.test:8080/x", "http://example.test:8080/x"),
        ("http://192.0.2.10/img", "http://192.0.2.10/img"),
        ("http://[2001:db8::1]/a", "http://[2001:db8::1]/a"),
        ("https://example.test./", "https://example.test/"),
    ],
)
def test_normalise_accepts_and_cleans(typed, expected):
    assert normalise(typed) == (expected, None)


@pytest.mark.parametrize(
    ("typed", "reason"),
    [
        ("javascript:alert(1)", "scheme"),
        ("file:///etc/passwd", "scheme"),
        ("ftp://files.example.test/", "scheme"),
        ("data:text/html,hello", "scheme"),
        ("http://", "no_host"),
        ("http:///path-only", "no_host"),
        ("intranet/page", "no_host"),
        ("http://localhost:8000/", "no_host"),
        ("http://printer.local/", "private"),
        ("http://127.0.0.1/", "private"),
        ("http://10.1.2.3/", "private"),
        ("http://172.16.0.1/", "private"),
        ("http://192.168.1.1/", "private"),
        ("http://169.254.169.254/latest/meta-data", "private"),
        ("http://[::1]/", "private"),
        ("http://[fe80::1]/", "private"),
        ("http://[::ffff:127.0.0.1]/", "private"),
        ("http://0.0.0.0/", "private"),
        ("http://exa mple.test/", "invalid"),
        ("http://-bad-.example.test/", "invalid"),
        ("http://example.test:99999/", "invalid"),
        ("http://example.123/", "invalid"),
        ("http://example.test/" + "a" * 2048, "too_long"),
    ],
)
def test_normalise_rejects_with_reason(typed, reason):
    assert normalise(typed) == (None, reason)


def test_parse_removes_duplicates_after_normalising_and_keeps_order():
    raw = "b.example.test\nhttp://a.example.test/\n\n  B.EXAMPLE.TEST/ \nc.example.test d.example.test"
    urls, problems = parse_urls(raw)
    assert problems == []
    assert urls == [
        "http://b.example.test/",
        "http://a.example.test/",
        "http://c.example.test/",
        "http://d.example.test/",
    ]


def test_parse_reports_each_bad_line_with_its_number():
    urls, problems = parse_urls("ok.example.test\njavascript:alert(1)\nhttp://10.0.0.1/")
    assert urls == ["http://ok.example.test/"]
    assert [(p.line, p.reason) for p in problems] == [(2, "scheme"), (3, "private")]


def test_plain_host_shortcut_matches_idna():
    """Every host the shortcut lets past IDNA is one IDNA accepts and returns unchanged: all
    strings of up to 5 characters from an alphabet that makes hyphen and punycode cases, random
    longer ones, and the length limits."""
    alphabet = "ax-n.0"
    hosts = {"".join(chars) for n in range(1, 6) for chars in itertools.product(alphabet, repeat=n)}
    generator = random.Random(20261123)  # noqa: S311 - test data, not secrets
    hosts |= {"".join(generator.choice(alphabet) for _ in range(generator.randint(6, 12)))
              for _ in range(20000)}
    hosts |= {"a" * 63 + ".test", "a" * 64 + ".test", ".".join(["a" * 63] * 4),
              "x" * 249 + ".test", "x" * 250 + ".test", "ab--cd.test", "xn--bcher-kva.test"}
    shortcut = [host for host in hosts if PLAIN_HOST_RE.match(host)]
    assert 1000 < len(shortcut) < len(hosts)
    for host in shortcut:
        assert idna.encode(host, uts46=True).decode("ascii") == host, host
    for host in ("ab--cd.test", "xn--bcher-kva.test", "a" * 64 + ".test", "x" * 250 + ".test",
                 "-a.test", "a-.test", "a..test", "A.test", "a_b.test"):
        assert not PLAIN_HOST_RE.match(host), host
