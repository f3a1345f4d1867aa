"""Callback URL safety: no requests into private networks on a user's behalf (SSRF).

A URL must be http(s) with a host. Every address the host resolves to must be public:
loopback, private, link-local (cloud metadata at 169.254.169.254 included), multicast,
reserved and unspecified addresses are refused unless WEBHOOK_ALLOW_PRIVATE_URLS=true.
The check runs at submission and again right before each delivery, and the delivery
connects to the address that was checked (no second DNS answer can slip in).
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from shared.errors import InvalidCallbackUrl

MAX_URL_LENGTH = 2048
_METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata"})


@dataclass(frozen=True)
class CheckedUrl:
    """A callback URL and the address it was checked against."""

    url: str
    scheme: str
    host: str
    port: int
    address: str


# IPv6 prefixes that embed an IPv4 address a gateway may route to (NAT64, 6to4).
_EMBEDDING_IPV4 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("2002::/16"))


def _is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        elif any(address in network for network in _EMBEDDING_IPV4):
            return False
    return address.is_global and not address.is_multicast


def check_callback_url(url: str, *, allow_private: bool) -> CheckedUrl:
    """Validate `url` and pick the address to connect to; InvalidCallbackUrl otherwise."""
    if len(url) > MAX_URL_LENGTH:
        raise InvalidCallbackUrl(f"callback_url is longer than {MAX_URL_LENGTH} characters.")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise InvalidCallbackUrl("callback_url must be an http:// or https:// URL.")
    host = parts.hostname
    if not host:
        raise InvalidCallbackUrl("callback_url has no host name.")
    if parts.username or parts.password:
        raise InvalidCallbackUrl("callback_url must not contain credentials.")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise InvalidCallbackUrl("callback_url has an invalid port.") from None
    if not allow_private and host.lower().rstrip(".") in _METADATA_HOSTS:
        raise InvalidCallbackUrl("callback_url points at a cloud metadata service.")
    addresses = _resolve(host, port)
    if not allow_private:
        for address in addresses:
            if not _is_public(ipaddress.ip_address(address)):
                # The address itself is not echoed: that would let anyone resolve internal names.
                raise InvalidCallbackUrl(
                    "callback_url resolves to a private, loopback, link-local or otherwise "
                    "non-public address; use a public URL."
                )
    return CheckedUrl(url=url, scheme=parts.scheme, host=host, port=port, address=addresses[0])


def _resolve(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise InvalidCallbackUrl(f"callback_url host {host!r} does not resolve.") from None
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not addresses:
        raise InvalidCallbackUrl(f"callback_url host {host!r} does not resolve.")
    return addresses
