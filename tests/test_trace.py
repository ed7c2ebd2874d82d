"""Hosting trace against a real DNS server on 127.0.0.1 and geoip2fast's offline data.

No test sends a packet anywhere but 127.0.0.1: the zone uses reserved names, public addresses are
only given as IP literals, and a guard fails any socket use towards another address.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import json
import secrets
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from portal.assessment.trace import CDN_FILE, HostingTrace, IpDatabase, Resolver, Tracer, load_cdns
from tests.conftest import need

ZONE: dict[str, dict[str, list[str]]] = {
    "host.example.test.": {"A": ["192.0.2.10"], "AAAA": ["2001:db8::10"]},
    "cdn.example.test.": {"A": ["198.51.100.7"]},
    "multi.example.test.": {"A": ["203.0.113.6", "203.0.113.5", "203.0.113.6"]},
    "empty.example.test.": {},
    # Answers inside private networks: the trace must flag them and keep none of them.
    "private.example.test.": {"A": ["10.0.0.5"]},
    "loopback.example.test.": {"A": ["127.0.0.1"]},
    "ula.example.test.": {"AAAA": ["fd00::1"]},
    "mapped.example.test.": {"AAAA": ["::ffff:10.0.0.5"]},
    "nat64.example.test.": {"AAAA": ["64:ff9b::a00:5"]},
    "linklocal.example.test.": {"A": ["169.254.169.254"], "AAAA": ["fe80::1"]},
    "mixed.example.test.": {"A": ["192.0.2.20", "10.0.0.5"], "AAAA": ["fd00::1"]},
    "nat64-public.example.test.": {"AAAA": ["64:ff9b::101:101"]},  # 1.1.1.1 through NAT64
    # Names the URL rules refuse; the server would answer, but must never be asked.
    **{name: {"A": ["10.0.0.5"], "AAAA": ["fd00::1"]} for name in (
        "db.corp.", "kubernetes.default.svc.", "web.service.consul.", "localhost.",
        "printer.local.", "nas.home.arpa.", "vault.internal.", "intranet.")},
}
PRIVATE_ANSWERS = ("10.0.0.5", "127.0.0.1", "fd00::1", "::ffff:10.0.0.5", "::ffff:a00:5",
                   "64:ff9b::a00:5", "169.254.169.254", "fe80::1")
LOOPBACK = "127.0.0.1"


@pytest.fixture(scope="module", autouse=True)
def requirements() -> None:
    for module, package in (("dns", "dnspython"), ("dnslib", "dnslib"), ("geoip2fast", "geoip2fast")):
        need(importlib.util.find_spec(module) is not None, f"{package} is not installed")


class ZoneResolver:
    """dnslib resolver for ZONE: unknown names are NXDOMAIN; it records every question."""

    def __init__(self) -> None:
        self.questions: list[tuple[str, str]] = []

    def resolve(self, request: Any, handler: Any) -> Any:
        from dnslib import AAAA, QTYPE, RCODE, RR, A

        name, qtype = str(request.q.qname).lower(), QTYPE[request.q.qtype]
        self.questions.append((name, qtype))
        reply = request.reply()
        if name not in ZONE:
            reply.header.rcode = RCODE.NXDOMAIN
            return reply
        for value in ZONE[name].get(qtype, []):
            rdata = A(value) if qtype == "A" else AAAA(ipaddress.ip_address(value).exploded)
            reply.add_answer(RR(request.q.qname, getattr(QTYPE, qtype), rdata=rdata, ttl=60))
        return reply


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Block, and fail the test on, any send or connect to an address other than 127.0.0.1.

    The violations are also collected, because dnspython turns a socket error into a resolver error."""
    violations: list[str] = []

    def check(address: Any) -> None:
        if isinstance(address, tuple) and address[0] != LOOPBACK:
            violations.append(str(address[0]))
            raise OSError(f"network use outside loopback: {address[0]}")

    real_sendto, real_connect = socket.socket.sendto, socket.socket.connect

    def sendto(self: socket.socket, data: bytes, *args: Any) -> int:
        check(args[-1])
        return real_sendto(self, data, *args)

    def connect(self: socket.socket, address: Any) -> None:
        check(address)
        real_connect(self, address)

    def getaddrinfo(*args: Any, **kwargs: Any) -> Any:
        violations.append(f"getaddrinfo{args[:2]}")
        raise OSError("name lookup through the system resolver")

    monkeypatch.setattr(socket.socket, "sendto", sendto)
    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    yield
    assert not violations, f"traffic outside loopback attempted: {violations}"


def _free_udp_port() -> int:
    """A port below the Linux ephemeral range that a plain UDP bind finds free right now."""
    for _ in range(50):
        port = 20000 + secrets.randbelow(12768)
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            probe.bind((LOOPBACK, port))
        except OSError:
            continue
        finally:
            probe.close()
        return port
    raise RuntimeError("no free UDP port found")


@pytest.fixture(scope="module")
def dns_server(requirements: None) -> Iterator[tuple[int, ZoneResolver]]:
    from dnslib.server import DNSLogger, DNSServer

    zone, port = ZoneResolver(), _free_udp_port()
    quiet = DNSLogger("-request,-reply", logf=lambda _: None)
    server = DNSServer(zone, address=LOOPBACK, port=port, logger=quiet)
    server.start_thread()
    try:
        yield port, zone
    finally:
        server.stop()
        server.server.server_close()


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A bound UDP port that never answers, so queries to it time out (no ICMP refusal)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((LOOPBACK, 0))
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()


@pytest.fixture
def tracer(dns_server: tuple[int, ZoneResolver]) -> Tracer:
    return Tracer(Resolver([LOOPBACK], port=dns_server[0], timeout=2.0), IpDatabase())


class FixedIpDatabase(IpDatabase):
    """Stand-in giving an AS number, which geoip2fast's data does not carry."""

    def lookup(self, address: str) -> tuple[str, str, str]:
        return ("NL", "AS64500", "EXAMPLE-EDGE") if address == "198.51.100.7" else ("", "", "")


def test_addresses_come_from_the_loopback_server(tracer: Tracer, dns_server: tuple[int, ZoneResolver]):
    trace = tracer.trace("https://Host.Example.Test/some/path?q=1")
    assert trace == HostingTrace(host="host.example.test", addresses=("192.0.2.10", "2001:db8::10"))
    assert ("host.example.test.", "A") in dns_server[1].questions
    assert ("host.example.test.", "AAAA") in dns_server[1].questions


def test_addresses_are_sorted_and_deduplicated(tracer: Tracer):
    assert tracer.trace("http://multi.example.test:8080/").addresses == ("203.0.113.5", "203.0.113.6")
    assert tracer.trace("cdn.example.test/no-scheme").addresses == ("198.51.100.7",)


def test_nxdomain_and_no_address(tracer: Tracer):
    assert tracer.trace("https://missing.example.test/").error == "nxdomain"
    empty = tracer.trace("https://empty.example.test/")
    assert (empty.addresses, empty.error) == ((), "no_address")


def test_a_silent_server_times_out(silent_port: int):
    tracer = Tracer(Resolver([LOOPBACK], port=silent_port, timeout=0.5), IpDatabase())
    started = time.monotonic()
    trace = tracer.trace("https://host.example.test/")
    assert (trace.addresses, trace.error) == ((), "timeout")
    assert time.monotonic() - started < 2.0


def test_ip_literals_skip_dns(tracer: Tracer, dns_server: tuple[int, ZoneResolver]):
    before = len(dns_server[1].questions)
    assert tracer.trace("http://192.0.2.44/x").addresses == ("192.0.2.44",)
    assert tracer.trace("http://[2001:DB8::1]:8443/x").addresses == ("2001:db8::1",)
    assert tracer.trace("http://3221226027/").addresses == ("192.0.2.43",)  # numeric form browsers accept
    assert Resolver([LOOPBACK], port=dns_server[0]).resolve("[2001:db8::2]") == (["2001:db8::2"], "")
    assert len(dns_server[1].questions) == before


def test_documentation_addresses_have_no_location(tracer: Tracer):
    trace = tracer.trace("https://host.example.test/")
    assert (trace.country, trace.asn, trace.network, trace.cdn, trace.error) == ("", "", "", "", "")
    for address in ("198.51.100.7", "203.0.113.5", "2001:db8::10", "10.0.0.1", "::1"):
        assert IpDatabase().lookup(address) == ("", "", ""), address


def test_public_address_gets_country_and_network_offline(tracer: Tracer):
    trace = tracer.trace("https://1.1.1.1/")
    assert trace.network == "CLOUDFLARENET"
    assert len(trace.country) == 2 and trace.country.isupper()  # anycast: the data's country may change
    # geoip2fast's data has AS organisation names but no AS numbers; AS13335 if a later one adds them.
    assert trace.asn in {"", "AS13335"}


def test_cdn_detected_for_cloudflare_addresses(tracer: Tracer):
    for url in ("https://1.1.1.1/", "https://[2606:4700:4700::1111]/"):
        trace = tracer.trace(url)
        assert (trace.cdn, trace.behind_cdn, trace.error) == ("Cloudflare", True, ""), url
    assert not tracer.trace("https://9.9.9.9/").behind_cdn


def test_extra_cdn_entry_matches_by_as_number(dns_server: tuple[int, ZoneResolver]):
    extra = [{"name": "Example Edge", "asns": [64500]}]
    tracer = Tracer(Resolver([LOOPBACK], port=dns_server[0]), FixedIpDatabase(), extra_cdns=extra)
    trace = tracer.trace("https://cdn.example.test/")
    assert (trace.country, trace.asn, trace.network, trace.cdn) == ("NL", "AS64500", "EXAMPLE-EDGE",
                                                                     "Example Edge")
    assert not tracer.trace("https://host.example.test/").behind_cdn


def test_cdn_file_is_valid_and_checked(tmp_path: Path):
    names = {cdn.name for cdn in load_cdns(CDN_FILE)}
    assert {"Cloudflare", "Akamai", "Fastly"} <= names
    bad = tmp_path / "cdn.toml"
    bad.write_text('[[network]]\nname = "X"\nasns = ["13335"]\n')
    with pytest.raises(ValueError, match="asns"):
        load_cdns(bad)
    with pytest.raises(ValueError, match="name"):
        Tracer(Resolver([LOOPBACK]), IpDatabase(), extra_cdns=[{"asns": [1]}])


def test_to_dict_is_json(tracer: Tracer):
    data = json.loads(json.dumps(tracer.trace("https://1.1.1.1/").to_dict()))
    assert data["addresses"] == ["1.1.1.1"] and data["behind_cdn"] is True
    assert json.loads(json.dumps(tracer.trace("not a url://").to_dict()))["error"] == "invalid_url"


# -- private answers and internal names ------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kept"),
    [
        ("private.example.test", ()),
        ("loopback.example.test", ()),
        ("ula.example.test", ()),
        ("mapped.example.test", ()),
        ("nat64.example.test", ()),
        ("linklocal.example.test", ()),
        ("mixed.example.test", ("192.0.2.20",)),
    ],
)
def test_private_answers_are_flagged_and_dropped(tracer: Tracer, dns_server: tuple[int, ZoneResolver],
                                                 name: str, kept: tuple[str, ...]):
    trace = tracer.trace(f"https://{name}/page")
    assert (f"{name}.", "A") in dns_server[1].questions  # it was asked; the answer is what is refused
    assert (trace.addresses, trace.error) == (kept, "private_address")
    assert (trace.country, trace.asn, trace.network, trace.cdn) == ("", "", "", "")
    assert not any(address in json.dumps(trace.to_dict()) for address in PRIVATE_ANSWERS)


def test_nat64_answer_of_a_public_address_is_kept_and_located(tracer: Tracer):
    trace = tracer.trace("https://nat64-public.example.test/")
    assert (trace.addresses, trace.error) == (("64:ff9b::101:101",), "")
    assert (trace.network, trace.cdn) == ("CLOUDFLARENET", "Cloudflare")  # located as 1.1.1.1


@pytest.mark.parametrize("name", ["db.corp", "kubernetes.default.svc", "web.service.consul", "localhost",
                                  "printer.local", "nas.home.arpa", "vault.internal", "intranet",
                                  "DB.Corp.", "ｌｏｃａｌｈｏｓｔ"])
def test_names_the_url_rules_refuse_are_never_looked_up(tracer: Tracer,
                                                        dns_server: tuple[int, ZoneResolver], name: str):
    before = list(dns_server[1].questions)
    trace = tracer.trace(f"http://{name}/admin")
    assert (trace.addresses, trace.error) == ((), "refused_name")
    assert dns_server[1].questions == before


@pytest.mark.parametrize("url", ["http://10.0.0.5/", "http://127.0.0.1:8080/", "http://2130706433/",
                                 "http://0x7f.0.0.1/", "http://[::1]/", "http://[fd00::1]/",
                                 "http://[::ffff:127.0.0.1]/", "http://[::ffff:7f00:1]/",
                                 "http://[::127.0.0.1]/", "http://[64:ff9b::a00:1]/",
                                 "http://[fe80::1%25eth0]/"])
def test_private_address_literals_are_flagged_without_dns(tracer: Tracer,
                                                          dns_server: tuple[int, ZoneResolver], url: str):
    before = len(dns_server[1].questions)
    trace = tracer.trace(url)
    assert (trace.addresses, trace.error) == ((), "private_address")
    assert len(dns_server[1].questions) == before
