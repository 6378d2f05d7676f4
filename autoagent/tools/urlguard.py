"""Which URLs the agent may fetch: http(s) only, and never internal addresses.

A URL is checked by the addresses its host resolves to, so every spelling of an address
(`2130706433`, `0x7f.1`, `[::ffff:127.0.0.1]`, a DNS name pointing at 10.0.0.1) is caught.
Cloud metadata endpoints are refused even when private addresses are allowed.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from ..base.errors import CommandError, RefusedError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

ALLOWED_SCHEMES = frozenset({"http", "https"})

# Instance metadata services hand out cloud credentials: never reachable, whatever the settings.
METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata.goog", "metadata"})
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean...
        "169.254.170.2",  # AWS ECS task metadata
        "169.254.169.253",  # AWS DNS resolver
        "fd00:ec2::254",  # AWS IPv6 metadata
        "100.100.100.200",  # Alibaba Cloud
    )
)

_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def check_url(url: str, *, allow_private: bool) -> str:
    """Return `url` if it may be fetched; raise RefusedError saying why not.

    Only http and https; no credentials in the URL; the host must resolve to public
    addresses unless `allow_private` (metadata endpoints are refused regardless).
    """
    url = url.strip()
    if not url:
        raise RefusedError("Refused an empty URL.")
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        raise RefusedError(f"Refused {url!r}: a URL cannot contain spaces or control characters.")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise RefusedError(f"Refused {url!r}: it is not a valid URL ({exc}).") from None
    scheme = parts.scheme.lower()
    if scheme not in ALLOWED_SCHEMES:
        shown = f"{scheme}:" if scheme else "a URL without a scheme"
        raise RefusedError(
            f"Refused {url!r}: only http:// and https:// URLs can be fetched, not {shown}."
        )
    if parts.username is not None or parts.password is not None:
        raise RefusedError(f"Refused {url!r}: URLs with a user name or password are not fetched.")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise RefusedError(f"Refused {url!r}: it has no host name.")
    if host in METADATA_HOSTS:
        raise RefusedError(f"Refused {url!r}: {host} is a cloud metadata endpoint.")
    for address in resolve(host, port or (443 if scheme == "https" else 80)):
        problem = address_problem(address, allow_private=allow_private)
        if problem:
            where = f"{host} is" if host == str(address) else f"{host} resolves to {address},"
            raise RefusedError(f"Refused {url!r}: {where} {problem}.")
    return url


def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address `host` resolves to; CommandError if it does not resolve."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise CommandError(
            f"Could not resolve host {host!r}: {exc} (is the name right, and is there an "
            "internet connection?)"
        ) from None
    addresses: list[IPAddress] = []
    for *_, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    return addresses


def address_problem(address: IPAddress, *, allow_private: bool) -> str | None:
    """Why connecting to `address` is refused, or None if it is allowed."""
    for candidate in _embedded_ipv4(address):
        if candidate in METADATA_ADDRESSES:
            return "a cloud metadata address"
        if allow_private:
            continue
        if candidate.is_loopback:
            return "a loopback address"
        if candidate.is_unspecified:
            return "an unspecified address"
        if candidate.is_link_local:
            return "a link-local address"
        if candidate.is_multicast:
            return "a multicast address"
        if candidate.is_reserved:
            return "a reserved address"
        if candidate.is_private:
            return "a private address"
        if not candidate.is_global:
            return "a non-public address"
    return None


def _embedded_ipv4(address: IPAddress) -> list[IPAddress]:
    """Any IPv4 address an IPv6 address carries (mapped, 6to4, NAT64...), then the address."""
    found: list[IPAddress] = []
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            found.append(address.ipv4_mapped)
        if address.sixtofour is not None:
            found.append(address.sixtofour)
        if address.teredo is not None:
            found.extend(address.teredo)
        if address in _NAT64:
            found.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return [*found, address]
