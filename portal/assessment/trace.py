"""Hosting trace: where a reported URL is hosted, from DNS and an offline IP database only.

Nothing here fetches the URL or opens a connection to the host: the only traffic is the DNS
queries sent to the configured resolver. Country and network come from geoip2fast's bundled data.
A name the URL rules refuse is never looked up, and an answer that is not a public address is
dropped and flagged, never kept: nothing about a private network reaches the database or a page.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import tomllib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import dns.exception
import dns.resolver

from portal import public_hosts
from portal.reporting.urls import normalise

CDN_FILE = Path(__file__).with_name("data") / "cdn_networks.toml"
# The geoip2fast file with country + AS organisation for IPv4 and IPv6. Its data keeps the AS
# organisation name but not the AS number, so HostingTrace.asn stays "" with it.
GEOIP_FILE = "geoip2fast-asn-ipv6.dat.gz"
_NO_NETWORK = {"", "<unknown>", "IANA.ORG"}

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class HostingTrace:
    """What DNS and the IP database say about one URL's host, public addresses only.

    error is "" or a reason code: invalid_url, refused_name (a name the URL rules refuse, not
    looked up), private_address (DNS gave a non-public address, left out of addresses), nxdomain,
    timeout, resolver_error, no_address."""

    host: str
    addresses: tuple[str, ...] = ()
    country: str = ""
    asn: str = ""
    network: str = ""
    cdn: str = ""
    error: str = ""

    @property
    def behind_cdn(self) -> bool:
        """True when an address belongs to a content-delivery or reverse-proxy network."""
        return bool(self.cdn)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form, with behind_cdn spelled out."""
        data = asdict(self)
        data["addresses"] = list(self.addresses)
        data["behind_cdn"] = self.behind_cdn
        return data


def ip_literal(host: str) -> IpAddress | None:
    """The address when host is an IP literal: IPv4, IPv6 (bracketed or not) or a numeric IPv4 form
    that browsers accept (http://3221225994/, http://0xc0.0.2.10/), else None."""
    host = host.strip().removeprefix("[").removesuffix("]").removesuffix(".")
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    last = host.rsplit(".", 1)[-1].lower()
    if last and (last.isdigit() or (last.startswith("0x") and all(c in "0123456789abcdefx" for c in last))):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def _sorted_unique(addresses: list[str]) -> list[str]:
    parsed = {ipaddress.ip_address(a) for a in addresses}
    return [str(a) for a in sorted(parsed, key=lambda a: (a.version, int(a)))]


class Resolver:
    """A and AAAA lookups through dnspython; the system configuration unless nameservers are given."""

    def __init__(self, nameservers: list[str] | None = None, port: int = 53, timeout: float = 3.0) -> None:
        if nameservers:
            self._resolver = dns.resolver.Resolver(configure=False)
            self._resolver.nameservers = list(nameservers)
        else:
            self._resolver = dns.resolver.Resolver()
        self._resolver.port = port
        self._resolver.timeout = timeout
        self._resolver.lifetime = timeout

    def resolve(self, host: str) -> tuple[list[str], str]:
        """(addresses, error code). An IP literal comes back as is, without any DNS query.

        A timeout or resolver failure on one record type still returns what the other gave."""
        literal = ip_literal(host)
        if literal is not None:
            return [str(literal)], ""
        found: list[str] = []
        error = ""
        for rdtype in ("A", "AAAA"):
            try:
                answer = self._resolver.resolve(host, rdtype, raise_on_no_answer=False, search=False)
            except dns.resolver.NXDOMAIN:
                return [], "nxdomain"
            except dns.exception.Timeout:
                error = "timeout"
                if not found:
                    break  # the server did not answer A, so do not wait a second time for AAAA
                continue
            except (dns.exception.DNSException, ValueError):  # ValueError: a name IDNA cannot encode
                error = error or "resolver_error"
                continue
            if answer.rrset is not None:
                found.extend(record.address for record in answer.rrset)
        if found:
            return _sorted_unique(found), error
        return [], error or "no_address"


class IpDatabase:
    """Offline country and AS organisation lookups with geoip2fast.

    geoip2fast keeps its data in module globals, so one copy is loaded per process, on first use,
    shared by every IpDatabase."""

    _lock = threading.Lock()
    _geoip: Any = None

    @classmethod
    def _loaded(cls) -> Any:
        if cls._geoip is None:
            with cls._lock:
                if cls._geoip is None:
                    from geoip2fast import GeoIP2Fast

                    cls._geoip = GeoIP2Fast(verbose=False, geoip2fast_data_file=GEOIP_FILE)
        return cls._geoip

    def lookup(self, address: str) -> tuple[str, str, str]:
        """(country, asn, network); ("", "", "") for private, reserved, documentation or unknown."""
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return "", "", ""
        if isinstance(ip, ipaddress.IPv6Address):
            ip = public_hosts.embedded_ipv4(ip) or ip
        if not ip.is_global or ip.is_multicast or ip.is_reserved:
            return "", "", ""
        detail = self._loaded().lookup(str(ip))
        if detail.is_private:
            return "", "", ""
        code = detail.country_code
        country = code.upper() if len(code) == 2 and code.isalpha() else ""
        network = "" if detail.asn_name in _NO_NETWORK else detail.asn_name
        return country, "", network


@dataclass(frozen=True)
class CdnNetwork:
    """One content-delivery or reverse-proxy operator, matched by AS number or organisation name."""

    name: str
    asns: frozenset[int]
    org_keywords: tuple[str, ...]

    @classmethod
    def from_dict(cls, entry: dict[str, Any]) -> CdnNetwork:
        """Checked construction from a [[network]] table or a test entry; ValueError if malformed."""
        name, asns, keywords = entry.get("name"), entry.get("asns", []), entry.get("org_keywords", [])
        if not isinstance(name, str) or not name.strip():
            raise ValueError("CDN entry without a name")
        if not isinstance(asns, list) or not all(type(a) is int and a > 0 for a in asns):
            raise ValueError(f"CDN entry {name!r}: asns must be a list of positive integers")
        if not isinstance(keywords, list) or not all(isinstance(k, str) and k.strip() for k in keywords):
            raise ValueError(f"CDN entry {name!r}: org_keywords must be a list of non-empty strings")
        return cls(name.strip(), frozenset(asns), tuple(k.strip().lower() for k in keywords))

    def matches(self, asn: str, network: str) -> bool:
        """True when the AS number ("AS13335") or the organisation name belongs to this operator."""
        number = asn.upper().removeprefix("AS")
        if number.isdigit() and int(number) in self.asns:
            return True
        org = network.lower()
        return bool(org) and any(keyword in org for keyword in self.org_keywords)


def load_cdns(path: Path = CDN_FILE) -> list[CdnNetwork]:
    """The [[network]] tables of a CDN file."""
    with path.open("rb") as handle:
        data = tomllib.load(handle)
    tables = data.get("network", [])
    if not isinstance(tables, list):
        raise ValueError(f"{path.name}: [[network]] must be a list of tables")
    return [CdnNetwork.from_dict(table) for table in tables]


class Tracer:
    """Host of a URL -> addresses -> country, network and CDN, without contacting the host."""

    def __init__(self, resolver: Resolver, ipdb: IpDatabase, cdn_file: Path | None = None,
                 extra_cdns: list[dict[str, Any]] | None = None) -> None:
        self.resolver = resolver
        self.ipdb = ipdb
        self.cdns = load_cdns(cdn_file or CDN_FILE) + [CdnNetwork.from_dict(e) for e in extra_cdns or []]

    def cdn_of(self, asn: str, network: str) -> str:
        """Name of the first CDN entry matching this AS number or organisation, else ""."""
        return next((cdn.name for cdn in self.cdns if cdn.matches(asn, network)), "")

    def trace(self, url: str) -> HostingTrace:
        """Trace one URL; DNS problems and unusable URLs end up in error, never raised."""
        host = _host_of(url)
        if not host:
            return HostingTrace(host="", error="invalid_url")
        if ip_literal(host) is None and normalise(host)[1] is not None:
            return HostingTrace(host=host, error="refused_name")  # an item stored under older rules
        addresses, error = self.resolver.resolve(host)
        public = [a for a in addresses if public_hosts.is_public_address(ipaddress.ip_address(a))]
        if len(public) < len(addresses):
            addresses, error = public, "private_address"
        country = asn = network = cdn = ""
        for address in addresses:
            found = self.ipdb.lookup(address)
            if any(found) and not (country or asn or network):
                country, asn, network = found
            cdn = cdn or self.cdn_of(found[1], found[2])
        return HostingTrace(host=host, addresses=tuple(addresses), country=country, asn=asn,
                            network=network, cdn=cdn, error=error)


def _host_of(url: str) -> str:
    """The URL's host, lower case, IPv6 without brackets; a URL without a scheme is accepted."""
    text = url.strip()
    if "://" not in text and not text.startswith("//"):
        text = "//" + text
    try:
        host = urlsplit(text).hostname or ""
    except ValueError:
        return ""
    return host.removesuffix(".")
