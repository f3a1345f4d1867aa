"""Callback URL safety: no requests into private networks on a user's behalf (SSRF).

A URL is parsed once, by the same parser (`httpx.URL`) whose reading the delivery uses, so
what was checked is what gets requested: no control characters or spaces, http(s), a host,
no credentials, a port in 1..65535. Every address the host resolves to must be public:
loopback, private, link-local (cloud metadata at 169.254.169.254 included), multicast,
reserved and unspecified addresses are refused, and so are the IPv6 forms that embed an
IPv4 address a gateway may route to (NAT64, 6to4, Teredo, IPv4-compatible, SIIT), unless
WEBHOOK_ALLOW_PRIVATE_URLS=true. IPv4-mapped addresses (`::ffff:a.b.c.d`) are judged by the
IPv4 address they map to, which is where a socket connects.

The check runs at submission and again right before each delivery, and the delivery
connects to the addresses that were checked (no second DNS answer can slip in). The DNS
lookup runs under a timeout: libc's resolver has none of its own that a caller controls.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import unicodedata
from dataclasses import dataclass

import httpx

from shared.errors import InvalidCallbackUrl

MAX_URL_LENGTH = 2048
RESOLVE_TIMEOUT_S = 10.0
_METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata"})
_DEFAULT_PORTS = {"http": 80, "https": 443}

# IPv6 prefixes that embed an IPv4 address a gateway may route to.
_EMBEDDING_IPV4 = tuple(
    ipaddress.IPv6Network(prefix)
    for prefix in (
        "64:ff9b::/96",  # NAT64, well-known prefix (RFC 6052)
        "64:ff9b:1::/48",  # NAT64, local-use prefix (RFC 8215)
        "2002::/16",  # 6to4 (RFC 3056)
        "2001::/32",  # Teredo (RFC 4380)
        "::/96",  # IPv4-compatible (RFC 4291, deprecated)
        "::ffff:0:0:0/96",  # SIIT, IPv4-translated (RFC 2765)
    )
)
_NOT_PUBLIC = (
    "callback_url resolves to a private, loopback, link-local, IPv4-embedding IPv6 or "
    "otherwise non-public address; use a public URL."
)


class ResolveTimeout(InvalidCallbackUrl):
    """The host name did not resolve in time (the delivery counts this as no answer)."""


@dataclass(frozen=True)
class CheckedUrl:
    """A callback URL as it will be requested, and the addresses it was checked against."""

    url: str
    scheme: str
    host: str  # an ASCII (IDNA) name or an IP literal without brackets
    port: int
    target: str  # the path and query to request, percent-encoded
    addresses: tuple[str, ...] = ()

    @property
    def host_header(self) -> str:
        """The `Host` header: IPv6 literals in brackets, the port unless it is the default."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == _DEFAULT_PORTS[self.scheme] else f"{host}:{self.port}"


def parse_callback_url(url: str) -> CheckedUrl:
    """Check the URL's form (no DNS); the result has no addresses yet."""
    if len(url) > MAX_URL_LENGTH:
        raise InvalidCallbackUrl(f"callback_url is longer than {MAX_URL_LENGTH} characters.")
    for position, char in enumerate(url):
        if char.isspace() or unicodedata.category(char) == "Cc":
            raise InvalidCallbackUrl(
                "callback_url must not contain spaces or control characters "
                f"(U+{ord(char):04X} at position {position}); percent-encode them."
            )
    try:
        parsed = httpx.URL(url)
        host = parsed.raw_host.decode("ascii")
    except (httpx.InvalidURL, ValueError) as error:
        raise InvalidCallbackUrl(f"callback_url is not a valid URL: {error}.") from None
    if parsed.scheme not in _DEFAULT_PORTS:
        raise InvalidCallbackUrl("callback_url must be an http:// or https:// URL.")
    if not host:
        raise InvalidCallbackUrl("callback_url has no host name.")
    if parsed.userinfo:
        raise InvalidCallbackUrl("callback_url must not contain credentials.")
    if "%" in host:
        raise InvalidCallbackUrl("callback_url's host must not contain '%' (no zone ids).")
    port = _DEFAULT_PORTS[parsed.scheme] if parsed.port is None else parsed.port
    if not 1 <= port <= 65535:
        raise InvalidCallbackUrl("callback_url has an invalid port; use 1 to 65535.")
    return CheckedUrl(
        url=url,
        scheme=parsed.scheme,
        host=host,
        port=port,
        target=parsed.raw_path.decode("ascii"),
    )


def check_callback_url(
    url: str, *, allow_private: bool, timeout_s: float = RESOLVE_TIMEOUT_S
) -> CheckedUrl:
    """Validate `url` and resolve the addresses to connect to; InvalidCallbackUrl otherwise."""
    checked = parse_callback_url(url)
    if not allow_private and checked.host.lower().rstrip(".") in _METADATA_HOSTS:
        raise InvalidCallbackUrl("callback_url points at a cloud metadata service.")
    addresses = _resolve(checked.host, checked.port, timeout_s)
    if not allow_private:
        for address in addresses:
            if not is_public(ipaddress.ip_address(address)):
                # The address itself is not echoed: that would let anyone resolve internal names.
                raise InvalidCallbackUrl(_NOT_PUBLIC)
    return CheckedUrl(
        url=checked.url,
        scheme=checked.scheme,
        host=checked.host,
        port=checked.port,
        target=checked.target,
        addresses=addresses,
    )


def is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Whether a webhook may be sent to `address` when private URLs are not allowed."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        elif any(address in network for network in _EMBEDDING_IPV4):
            return False
    return address.is_global and not address.is_multicast


def _resolve(host: str, port: int, timeout_s: float) -> tuple[str, ...]:
    try:
        return (str(ipaddress.ip_address(host)),)
    except ValueError:
        pass  # a name, not a literal
    addresses = _lookup_within(host, port, timeout_s)
    if not addresses:
        raise InvalidCallbackUrl(f"callback_url host {host!r} does not resolve.")
    return addresses


def _lookup_within(host: str, port: int, timeout_s: float) -> tuple[str, ...]:
    """The host's addresses in the resolver's order, or ResolveTimeout after `timeout_s`.

    The lookup runs in a daemon thread; one that outlives the timeout ends when the resolver
    gives up on its own (its retries are bounded by resolv.conf).
    """
    found: list[str] = []
    done = threading.Event()

    def lookup() -> None:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            found.extend(dict.fromkeys(str(info[4][0]) for info in infos))
        except (OSError, UnicodeError):
            pass  # no addresses: "does not resolve"
        finally:
            done.set()

    threading.Thread(target=lookup, name="callback-dns", daemon=True).start()
    if not done.wait(max(timeout_s, 0.0)):
        raise ResolveTimeout(f"callback_url host {host!r} did not resolve within {timeout_s:g} s.")
    return tuple(found)
