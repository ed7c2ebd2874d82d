import ipaddress
import itertools
import random

import idna
import pytest

from portal import public_hosts
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
        ("intranet/page", "private"),
        ("printer/page", "no_host"),
        ("http://localhost:8000/", "private"),
        ("http://router:8080/", "no_host"),
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


# -- special-use and internal names, non-public addresses (issue 14) ------------------------------


@pytest.mark.parametrize("host", [
    # IANA special-use domain names
    "localhost", "www.localhost", "LocalHost.", "localhost.localdomain", "printer.local",
    "api.svc.cluster.local", "hidden.onion", "site.invalid", "name.alt", "router.home.arpa",
    "1.2.0.192.in-addr.arpa", "1.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa", "ipv4only.arpa",
    "ｌｏｃａｌｈｏｓｔ",  # full-width letters that IDNA maps to "localhost"
    # names used inside networks
    "db.corp", "files.home", "nas.lan", "wiki.intranet", "git.private", "host.docker.internal",
    "vault.internal", "kubernetes.default.svc", "web.service.consul", "smtp.mail", "box.localdomain",
    # single labels that are such names
    "intranet", "corp",
])
def test_special_use_and_internal_names_are_private(host):
    assert normalise(f"http://{host}/page") == (None, "private"), host
    assert normalise(f"{host}/page") == (None, "private"), host


@pytest.mark.parametrize("host", ["printer", "router", "fileserver01", "test", "example"])
def test_single_label_names_have_no_website_name(host):
    assert normalise(f"http://{host}/x") == (None, "no_host")


@pytest.mark.parametrize("host", [
    # the documentation names stay accepted: tests and the demo use them
    "example.test", "site.example.test", "a.example", "report.demo.example", "example.com",
    "www.example.net", "example.org",
    # a refused word as an inner label, or inside a label, is not a refused suffix
    "localhost.example.test", "corp.example.test", "local.example", "svc.example.com",
    "consul.example.test", "mylocal.example", "intranetx.example.test", "home.example.org",
])
def test_documentation_and_look_alike_names_are_accepted(host):
    assert normalise(f"https://{host}/") == (f"https://{host}/", None)


@pytest.mark.parametrize("host", [
    # IPv4 ranges that are not public
    "0.1.2.3", "100.64.0.1", "100.127.255.254", "192.0.0.9", "192.0.0.170", "198.18.0.1",
    "198.19.255.255", "224.0.0.251", "239.255.255.250", "240.0.0.1", "255.255.255.255",
    # IPv6: loopback, unspecified, link-local, unique-local, site-local, discard, multicast, Teredo
    "[::1]", "[::]", "[fe80::1]", "[fe80::1%25eth0]", "[fd00::1]", "[fc00::1]", "[fec0::1]",
    "[100::1]", "[ff02::1]", "[2001::1]",
    # IPv6 forms that carry a private IPv4 address
    "[::ffff:127.0.0.1]", "[::ffff:7f00:1]", "[::ffff:10.0.0.5]", "[::ffff:a9fe:a9fe]",
    "[::127.0.0.1]", "[::7f00:1]", "[::192.0.2.1]",  # IPv4-compatible: deprecated, all refused
    "[64:ff9b::a00:1]", "[64:ff9b::7f00:1]", "[64:ff9b::10.0.0.1]",
    "[64:ff9b:1::a00:1]", "[64:ff9b:1::c000:201]",  # local-use NAT64: refused whatever it carries
    "[2002:7f00:1::1]", "[2002:a00:1::]",  # 6to4 of private IPv4 addresses
])
def test_non_public_address_forms_are_private(host):
    assert normalise(f"http://{host}/x") == (None, "private"), host


@pytest.mark.parametrize(("typed", "expected"), [
    ("http://192.0.2.10/", "http://192.0.2.10/"),
    ("http://198.51.100.7/", "http://198.51.100.7/"),
    ("http://203.0.113.255/", "http://203.0.113.255/"),
    ("http://[2001:db8::1]/", "http://[2001:db8::1]/"),
    ("http://[3fff::10]/", "http://[3fff::10]/"),
    ("http://[::ffff:192.0.2.10]/", "http://[::ffff:c000:20a]/"),  # carries a documentation address
    ("http://[64:ff9b::198.51.100.7]/", "http://[64:ff9b::c633:6407]/"),
    ("http://[2002:cb00:7105::1]/", "http://[2002:cb00:7105::1]/"),  # 6to4 of 203.0.113.5
])
def test_documentation_addresses_in_every_form_are_accepted(typed, expected):
    assert normalise(typed) == (expected, None)


def test_every_blocked_range_is_refused_in_each_ipv6_form():
    """Random addresses from each non-public IPv4 range, as written plainly, IPv4-mapped, through
    NAT64 and 6to4, and from each non-public IPv6 range: all are "private"."""
    generator = random.Random(20261214)  # noqa: S311 - test data, not secrets
    checked = 0
    for network in public_hosts.NOT_PUBLIC:
        for _ in range(20):
            address = network[generator.randrange(network.num_addresses)]
            if network.version == 4:
                value = int(address)
                forms = [str(address), f"[::ffff:{address}]", f"[64:ff9b::{address}]",
                         f"[{ipaddress.IPv6Address((0x2002 << 112) | (value << 80))}]"]
            else:
                forms = [f"[{address}]"]
            for form in forms:
                assert normalise(f"http://{form}/") == (None, "private"), form
                checked += 1
    assert checked > 500


def test_parse_reports_internal_names_and_address_forms_by_line():
    urls, problems = parse_urls("ok.example.test\ndb.corp/admin\nhttp://[::ffff:127.0.0.1]/x\nrouter\n"
                                "http://[64:ff9b::a00:1]/\nsite.example")
    assert urls == ["http://ok.example.test/", "http://site.example/"]
    assert [(p.line, p.reason) for p in problems] == [(2, "private"), (3, "private"), (4, "no_host"),
                                                      (5, "private")]
