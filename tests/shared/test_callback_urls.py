"""The callback URL check (shared.webhooks.urls): what is refused, what is kept, and the
request it describes. Only IP literals and `localhost`: no test depends on outside DNS."""

from __future__ import annotations

import pytest

from shared.errors import InvalidCallbackUrl
from shared.webhooks.urls import check_callback_url

IPV4_EMBEDDING = {
    "NAT64": "http://[64:ff9b::808:808]/hook",
    "NAT64 local-use": "http://[64:ff9b:1::808:808]/hook",
    "6to4": "http://[2002:808:808::1]/hook",
    "Teredo": "http://[2001:0:4136:e378:8000:63bf:f7f7:f7f7]/hook",
    "IPv4-compatible": "http://[::8.8.8.8]/hook",
    "SIIT": "http://[::ffff:0:8.8.8.8]/hook",
}


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/ho\nok",
        "http://127.0.0.1:9/hook\r\nX-Injected: 1",
        "http://127.0.0.1:9/\thook",
        "http://127.0.0.1:9/hook\x00",
        "http://127.0.0.1:9/hook\x7f",
        "http://127.0.0.1:9/hook\x85",
        "http://127.0.0.1:9/a hook",
        "http://exa mple.com/hook",
    ],
)
def test_control_characters_and_spaces_are_refused(url: str) -> None:
    with pytest.raises(InvalidCallbackUrl, match="control characters"):
        check_callback_url(url, allow_private=True)


@pytest.mark.parametrize(
    ("url", "word"),
    [
        ("http://[::1/", "not a valid URL"),
        ("http://[::1/hook", "not a valid URL"),
        ("http://[not-an-address]/", "not a valid URL"),
        ("http://127.0.0.1:99999/hook", "port"),
        ("http://127.0.0.1:0/hook", "port"),
        ("http://user:pw@127.0.0.1/hook", "credentials"),
        ("http://[fe80::1%25eth0]/hook", "zone"),
        ("ftp://127.0.0.1/hook", "http"),
        ("http:///hook", "host"),
    ],
)
def test_what_httpx_would_not_request_is_refused(url: str, word: str) -> None:
    """Refused even where private addresses are allowed: the delivery could not use them."""
    with pytest.raises(InvalidCallbackUrl) as raised:
        check_callback_url(url, allow_private=True)
    assert word.lower() in raised.value.message.lower()


@pytest.mark.parametrize("url", IPV4_EMBEDDING.values(), ids=IPV4_EMBEDDING.keys())
def test_ipv6_forms_that_embed_ipv4_are_refused(url: str) -> None:
    with pytest.raises(InvalidCallbackUrl, match="IPv4"):
        check_callback_url(url, allow_private=False)
    assert check_callback_url(url, allow_private=True).addresses


@pytest.mark.parametrize(
    ("url", "public"),
    [
        ("http://[::ffff:8.8.8.8]/hook", True),  # IPv4-mapped: judged by its IPv4 address
        ("http://[::ffff:127.0.0.1]/hook", False),
        ("http://[::ffff:10.0.0.1]/hook", False),
        ("http://[2606:4700:4700::1111]/hook", True),
        ("http://8.8.8.8/hook", True),
        ("http://[::1]/hook", False),
        ("http://[fe80::1]/hook", False),
        ("http://0x7f.1/hook", False),  # 127.0.0.1 written the way inet_aton reads it
    ],
)
def test_literal_addresses(url: str, public: bool) -> None:
    if public:
        assert check_callback_url(url, allow_private=False).addresses
    else:
        with pytest.raises(InvalidCallbackUrl, match="non-public"):
            check_callback_url(url, allow_private=False)


@pytest.mark.parametrize(
    ("url", "host_header", "target"),
    [
        ("http://[::1]:8080/hook?a=1#fragment", "[::1]:8080", "/hook?a=1"),
        ("http://[::1]/hook", "[::1]", "/hook"),
        ("https://[::1]:443/", "[::1]", "/"),
        ("http://127.0.0.1:8080", "127.0.0.1:8080", "/"),
        ("http://localhost:80/a%20b", "localhost", "/a%20b"),
    ],
)
def test_the_request_it_describes(url: str, host_header: str, target: str) -> None:
    checked = check_callback_url(url, allow_private=True)
    assert checked.host_header == host_header
    assert checked.target == target


def test_a_name_keeps_every_address_it_resolves_to() -> None:
    checked = check_callback_url("http://localhost:9/hook", allow_private=True)
    assert checked.host == "localhost" and checked.port == 9
    assert "127.0.0.1" in checked.addresses
