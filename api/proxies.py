"""Which address a request came from: `X-Forwarded-For` counts only from FORWARDED_ALLOW_IPS.

Per-client limits (`/auth/setup`, wrong API-key secrets) need the client's address. Behind
a reverse proxy every request arrives from the proxy, which names the client in
`X-Forwarded-For`; anyone else can write that header too. So the app reads it only when the
connection comes from a proxy listed in FORWARDED_ALLOW_IPS (default: none), and takes the
rightmost address that is not itself a trusted proxy (each proxy appends the address it saw;
only the entries our own proxies appended can be believed).

uvicorn does the same rewriting before the app sees the request, from the same variable in
the process environment, but it trusts 127.0.0.1 and ::1 when the variable is absent there
(or names something else in `UVICORN_FORWARDED_ALLOW_IPS`). A rewrite by uvicorn cannot be
undone: the proxy's address is gone. So `check_uvicorn_agrees()` refuses to start the app
under uvicorn when uvicorn would trust a peer the app does not; when uvicorn trusts a subset
of ours (or nothing), our middleware computes the same answer again, so it is harmless.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping

from starlette.types import ASGIApp, Receive, Scope, Send

from shared.config import ConfigError

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
# What uvicorn trusts when neither its option nor FORWARDED_ALLOW_IPS is given.
UVICORN_DEFAULT = "127.0.0.1,::1"
_FALSE = {"0", "false", "f", "no", "n", "off"}  # how click reads a boolean variable


def _address(text: str) -> Address | None:
    try:
        return ipaddress.ip_address(text.strip().strip("[]"))
    except ValueError:
        return None


class TrustedProxies:
    """A parsed FORWARDED_ALLOW_IPS: addresses, networks (CIDR), `*` for all, or nothing."""

    def __init__(self, raw: str) -> None:
        entries = [entry.strip() for entry in raw.split(",") if entry.strip()]
        self.raw = raw
        self.everyone = "*" in entries
        self.networks: list[Network] = []
        self.others: list[str] = []  # not an address (uvicorn accepts e.g. socket paths)
        for entry in entries:
            if entry == "*":
                continue
            try:
                self.networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                self.others.append(entry)

    def __contains__(self, host: str | None) -> bool:
        if not host:
            return False
        if self.everyone:
            return True
        address = _address(host)
        if address is None:
            return host in self.others
        return any(address in network for network in self.networks)

    def __bool__(self) -> bool:
        return self.everyone or bool(self.networks or self.others)

    def covers(self, other: TrustedProxies) -> bool:
        """Whether every peer `other` trusts is trusted here too."""
        if self.everyone:
            return True
        if other.everyone:
            return False
        networks_covered = all(
            any(
                mine.version == theirs.version and theirs.subnet_of(mine)  # type: ignore[arg-type]
                for mine in self.networks
            )
            for theirs in other.networks
        )
        return networks_covered and all(entry in self.others for entry in other.others)


def _split_host_port(entry: str) -> tuple[str, int]:
    """`1.2.3.4`, `1.2.3.4:5678`, `[::1]:5678` or `::1` → (host, port or 0)."""
    if entry.startswith("["):
        host, _, rest = entry[1:].partition("]")
        port = rest.removeprefix(":")
        return host, int(port) if port.isdigit() else 0
    if entry.count(":") == 1:
        host, _, port = entry.partition(":")
        return host, int(port) if port.isdigit() else 0
    return entry, 0


def forwarded_client(peer: str, forwarded_for: list[str], trusted: TrustedProxies) -> str | None:
    """The client's `host[:port]` entry named by trusted proxies, or None to keep the peer.

    Walks the header from the right while the entries are trusted proxies themselves; the
    first that is not is the client. When every entry is trusted, the leftmost is."""
    if peer not in trusted:
        return None
    entries = [e.strip() for value in forwarded_for for e in value.split(",") if e.strip()]
    for entry in reversed(entries):
        if _split_host_port(entry)[0] not in trusted:
            return entry
    return entries[0] if entries else None


class ForwardedClientMiddleware:
    """Set the ASGI `client` to the address trusted proxies forwarded (pure ASGI)."""

    def __init__(self, app: ASGIApp, *, trusted: TrustedProxies) -> None:
        self.app = app
        self.trusted = trusted

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = scope.get("client")
        if self.trusted and scope["type"] in ("http", "websocket") and client:
            values = [v.decode("latin-1") for k, v in scope["headers"] if k == b"x-forwarded-for"]
            entry = forwarded_client(client[0], values, self.trusted) if values else None
            if entry is not None:
                scope["client"] = _split_host_port(entry)
        await self.app(scope, receive, send)


def uvicorn_trust(environ: Mapping[str, str]) -> TrustedProxies:
    """What `uvicorn api.main:app` trusts with proxy headers, from the environment it read
    (its CLI reads `UVICORN_*` variables; its config falls back on FORWARDED_ALLOW_IPS)."""
    if environ.get("UVICORN_PROXY_HEADERS", "").strip().lower() in _FALSE:
        return TrustedProxies("")
    raw = environ.get("UVICORN_FORWARDED_ALLOW_IPS")
    if raw is None:
        raw = environ.get("FORWARDED_ALLOW_IPS", UVICORN_DEFAULT)
    return TrustedProxies(raw)


def check_uvicorn_agrees(trusted: TrustedProxies, environ: Mapping[str, str] | None = None) -> None:
    """Refuse to start when uvicorn would rewrite the client for a peer the app distrusts."""
    server = uvicorn_trust(os.environ if environ is None else environ)
    if trusted.covers(server):
        return
    mine = trusted.raw.strip() or "none"
    raise ConfigError(
        f"Configuration error: uvicorn trusts X-Forwarded-For from {server.raw.strip()} but "
        f"FORWARDED_ALLOW_IPS trusts {mine}; set FORWARDED_ALLOW_IPS in the process "
        "environment (uvicorn reads it there, not from .env; empty trusts no proxy) and leave "
        "UVICORN_FORWARDED_ALLOW_IPS unset, so that both agree."
    )
