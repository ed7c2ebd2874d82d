"""Which host names and addresses belong to the public internet, shared by the edge's URL rules
(portal/reporting/urls.py) and the centre's hosting trace (portal/assessment/trace.py).

A citizen may only report public addresses, and the trace must never look up, store or show
anything inside a private network: both ask the two questions here.
"""

from __future__ import annotations

import ipaddress

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Names that never lead to a public web site. A host is refused when it is one of these or ends
# with "." and one of these.
# - IANA "Special-Use Domain Names" registry (RFC 6761 and later): localhost (RFC 6761, and
#   localhost.localdomain below), invalid (RFC 6761), local (mDNS, RFC 6762; covers Kubernetes'
#   cluster.local), onion (RFC 7686), alt (RFC 9476), and every name under arpa: home.arpa
#   (RFC 8375), the reverse-lookup trees in-addr.arpa and ip6.arpa, ipv4only.arpa (RFC 8880),
#   resolver.arpa (RFC 9462), service.arpa (RFC 9665) and the rest of arpa, which RFC 3172
#   keeps for infrastructure, never for web hosts.
#   Left out on purpose, although in the same registry: test and example (RFC 6761) and
#   example.com/.net/.org (RFC 2606), the documentation names the tests and the demo use.
# - internal: reserved by the ICANN Board for private use (July 2024).
# - corp, home, mail: ICANN deferred their delegation indefinitely because of name collisions
#   with private networks (board resolution 2018.02.04.12).
# - intranet, private, lan: private namespaces that RFC 6762 (appendix G) found in common use.
# - localdomain: the default domain of many Unix systems (localhost.localdomain).
# - svc: Kubernetes service names (<service>.<namespace>.svc[.cluster.local]).
# - consul: the default domain of HashiCorp Consul's DNS interface (<name>.service.consul).
# None of these is a delegated top-level domain, so refusing them refuses no public host.
INTERNAL_SUFFIXES = frozenset({
    "localhost", "invalid", "local", "onion", "alt", "arpa",
    "internal", "corp", "home", "mail", "intranet", "private", "lan", "localdomain", "svc", "consul",
})


def internal_name(host: str) -> bool:
    """True when the host name is, or lies under, a special-use or private-network name."""
    labels = host.lower().rstrip(".").split(".")
    return any(".".join(labels[start:]) in INTERNAL_SUFFIXES for start in range(len(labels)))


def single_label(host: str) -> bool:
    """True for a name of one label ("intranet", "printer"): it only means something inside a
    network's own search domain."""
    return "." not in host.rstrip(".")


def _networks(*cidrs: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(cidr) for cidr in cidrs)


# Documentation ranges (RFC 5737, RFC 3849, RFC 9637) are accepted on purpose: the tests and the
# demo use them, and no real report will name them.
DOCUMENTATION = _networks("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32",
                          "3fff::/20")
# Not public, although ipaddress's is_global says so on some Python versions. Multicast and the
# reserved ranges are checked with is_multicast and is_reserved as well.
NOT_PUBLIC = _networks(
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
    "192.0.0.0/24",  # IETF protocol assignments, the whole block (is_global spares two anycast /32s)
    "192.168.0.0/16", "198.18.0.0/15", "224.0.0.0/4", "240.0.0.0/4",  # 240/4 includes 255.255.255.255
    "::/96",  # unspecified, loopback and the deprecated IPv4-compatible ::a.b.c.d (RFC 4291)
    "64:ff9b:1::/48",  # local-use NAT64 (RFC 8215): the IPv4 inside depends on the local network
    "100::/64",  # discard-only (RFC 6666)
    "2001::/23",  # IETF protocol assignments, Teredo included (RFC 2928, RFC 4380)
    "fc00::/7", "fe80::/10",
    "fec0::/10",  # site-local, deprecated (RFC 3879)
    "ff00::/8",
)
NAT64_WELL_KNOWN = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for: IPv4-mapped (::ffff:a.b.c.d), the NAT64
    well-known prefix (64:ff9b::a.b.c.d) and 6to4 (2002:aabb:ccdd::/48); else None."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in NAT64_WELL_KNOWN:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address.sixtofour


def is_public_address(address: IpAddress) -> bool:
    """True for a globally reachable unicast address or a documentation one; an IPv6 address
    that carries an IPv4 one is judged by the IPv4 address it carries."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id:  # a zone index (fe80::1%eth0) only means something on one machine
            return False
        inner = embedded_ipv4(address)
        if inner is not None:
            return is_public_address(inner)
    if any(address in network for network in DOCUMENTATION if network.version == address.version):
        return True
    if any(address in network for network in NOT_PUBLIC if network.version == address.version):
        return False
    return address.is_global and not address.is_multicast and not address.is_reserved
