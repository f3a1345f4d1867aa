"""`X-Forwarded-For` counts only from FORWARDED_ALLOW_IPS, in the app and under uvicorn
(issue 10, point 7): a spoofed header from anyone else leaves the client's rate-limit bucket
alone, a trusted proxy's header picks it, and uvicorn can never trust more than the app."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.main import create_app
from api.proxies import TrustedProxies, check_uvicorn_agrees, forwarded_client, uvicorn_trust
from scripts.engines import free_port
from shared.config import ConfigError, Settings
from tests.support.builders import new_token
from tests.support.processes import ROOT, api_command, child_env, start_api
from tests.support.settings import make_settings

SETUP = "/api/v1/auth/setup"
PROXY = "192.0.2.200"


def unique_address() -> str:
    """A client address no earlier run used (rate-limit windows outlive a test)."""
    return f"2001:db8:{uuid.uuid4().hex[:4]}:{uuid.uuid4().hex[:4]}::1"


def setups(client: TestClient | httpx.Client, forwarded_for: list[str]) -> list[int]:
    """One refused-token setup per entry, each with that `X-Forwarded-For`; their statuses."""
    return [
        client.post(
            SETUP,
            json={"tabpfn_token": new_token("invalid")},
            headers={"X-Forwarded-For": forwarded},
        ).status_code
        for forwarded in forwarded_for
    ]


@pytest.fixture
def proxied_app(settings: Settings) -> Iterator[FastAPI]:
    app = create_app(
        make_settings(
            DATABASE_URL=settings.DATABASE_URL,
            REDIS_URL=settings.REDIS_URL,
            TABPFN_API_URL=settings.TABPFN_API_URL,
            RATE_LIMIT_SETUP_PER_MINUTE=2,
            FORWARDED_ALLOW_IPS=f"{PROXY},10.99.0.0/16",
        )
    )
    yield app
    app.state.context.close()


def test_a_spoofed_header_from_an_untrusted_peer_changes_nothing(proxied_app: FastAPI) -> None:
    client = TestClient(proxied_app, client=(unique_address(), 40000))
    spoofed = [unique_address() for _ in range(3)]
    assert setups(client, spoofed) == [400, 400, 429]


def test_a_trusted_proxy_names_the_client(proxied_app: FastAPI) -> None:
    proxy = TestClient(proxied_app, client=(PROXY, 40000))
    first, second = unique_address(), unique_address()
    # Each client gets its own bucket of two; a client's own spoofed entries to the left of
    # what our proxy appended do not help it.
    assert setups(proxy, [first, second, f"[{first}]:5555", second]) == [400, 400, 400, 400]
    assert setups(proxy, [f"{unique_address()}, {first}"]) == [429]
    # Behind two of our proxies (the inner one in 10.99/16), the outer one's entry counts.
    third = unique_address()
    assert setups(proxy, [f"{third}, 10.99.1.2"] * 3) == [400, 400, 429]


def test_the_rightmost_untrusted_entry_is_the_client() -> None:
    trusted = TrustedProxies("10.0.0.0/8, 192.0.2.1")
    assert forwarded_client("192.0.2.1", ["1.1.1.1, 2.2.2.2"], trusted) == "2.2.2.2"
    assert forwarded_client("192.0.2.1", ["1.1.1.1", "2.2.2.2, 10.1.1.1"], trusted) == "2.2.2.2"
    assert forwarded_client("192.0.2.1", ["10.2.2.2, 10.1.1.1"], trusted) == "10.2.2.2"
    assert forwarded_client("192.0.2.1", ["[2001:db8::1]:443"], trusted) == "[2001:db8::1]:443"
    assert forwarded_client("192.0.2.9", ["1.1.1.1"], trusted) is None
    assert forwarded_client("192.0.2.1", [" , "], trusted) is None
    assert forwarded_client("192.0.2.1", ["x"], TrustedProxies("")) is None


@pytest.mark.parametrize(
    ("ours", "environ", "agree"),
    [
        ("", {}, False),  # uvicorn's default trusts 127.0.0.1 and ::1
        ("", {"FORWARDED_ALLOW_IPS": ""}, True),
        ("127.0.0.1,::1", {}, True),
        ("10.0.0.0/8", {"FORWARDED_ALLOW_IPS": "10.1.0.0/16"}, True),
        ("10.1.0.0/16", {"FORWARDED_ALLOW_IPS": "10.0.0.0/8"}, False),
        ("", {"FORWARDED_ALLOW_IPS": "", "UVICORN_FORWARDED_ALLOW_IPS": "*"}, False),
        ("10.0.0.1", {"FORWARDED_ALLOW_IPS": "*"}, False),
        ("*", {"FORWARDED_ALLOW_IPS": "*"}, True),
        ("", {"UVICORN_PROXY_HEADERS": "false"}, True),
        ("", {"FORWARDED_ALLOW_IPS": "/run/proxy.sock"}, False),
    ],
)
def test_uvicorn_may_trust_no_more_than_the_app(
    ours: str, environ: dict[str, str], agree: bool
) -> None:
    if agree:
        check_uvicorn_agrees(TrustedProxies(ours), environ)
    else:
        with pytest.raises(ConfigError, match="FORWARDED_ALLOW_IPS"):
            check_uvicorn_agrees(TrustedProxies(ours), environ)
    assert uvicorn_trust({}).raw == "127.0.0.1,::1"


@pytest.fixture
def clean_loopback_bucket(settings: Settings) -> None:
    """The documented command sees this test as 127.0.0.1: start that bucket afresh."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        for key in client.scan_iter("tabpfn-api:rl:setup:127.0.0.1:*"):
            client.delete(key)
    finally:
        client.close()


def api_env(settings: Settings, **values: str) -> dict[str, str]:
    return child_env(settings, RATE_LIMIT_SETUP_PER_MINUTE="2", **values)


def test_the_documented_command_refuses_to_disagree_with_uvicorn(settings: Settings) -> None:
    """Without FORWARDED_ALLOW_IPS in its environment uvicorn would trust 127.0.0.1 and ::1,
    and rewrite the client before the app sees it: the API says so and does not start."""
    env = api_env(settings)
    env.pop("FORWARDED_ALLOW_IPS", None)
    result = subprocess.run(
        api_command(free_port()),
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert result.returncode != 0
    assert "FORWARDED_ALLOW_IPS" in result.stderr and "127.0.0.1,::1" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.usefixtures("clean_loopback_bucket")
@pytest.mark.parametrize(("trusted", "honoured"), [("", False), ("127.0.0.1", True)])
def test_under_uvicorn_the_header_counts_only_from_trusted_proxies(
    settings: Settings, log_dir: Path, trusted: str, honoured: bool
) -> None:
    port = free_port()
    name = f"api-proxies-{'trusted' if honoured else 'untrusted'}"
    api = start_api(api_env(settings, FORWARDED_ALLOW_IPS=trusted), log_dir, name=name, port=port)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            statuses = setups(client, [unique_address() for _ in range(3)])
    finally:
        api.stop()
    assert statuses == ([400, 400, 400] if honoured else [400, 400, 429])
