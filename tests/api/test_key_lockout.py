"""Wrong API-key secrets lock out the guesser, never the owner (issue 10, point 7).

Guesses are counted per key id and client: past ten a minute, that client's guesses for that
key get 429 without a bcrypt. The owner's right secret still works from any other address,
and from the guesser's own address too once this process has verified (or issued) the key.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.main import create_app
from shared.config import Settings
from shared.security import api_keys
from shared.security.api_keys import KeyHasher, Verdict
from shared.security.lockout import client_group
from tests.support.builders import Account, register
from tests.support.settings import make_settings

ME = "/api/v1/users/me"
GUESSER = "198.51.100.66"
OWNER = "203.0.113.9"


@pytest.fixture
def fresh_app(settings: Settings) -> Iterator[FastAPI]:
    """Another API process on the same database: it has verified no key yet."""
    app = create_app(
        make_settings(
            DATABASE_URL=settings.DATABASE_URL,
            REDIS_URL=settings.REDIS_URL,
            TABPFN_API_URL=settings.TABPFN_API_URL,
        )
    )
    yield app
    app.state.context.close()


def guess(app: FastAPI, account: Account, n: int) -> list[int]:
    """`n` wrong secrets for the account's key id from the guesser's address."""
    guesser = TestClient(app, client=(GUESSER, 40000))
    wrong = {"Authorization": f"Bearer tpk_{account.key_id}_wrong-secret-guess"}
    return [guesser.get(ME, headers=wrong).status_code for _ in range(n)]


def test_a_guesser_locks_out_only_itself(client: TestClient, fresh_app: FastAPI) -> None:
    account = register(client)
    statuses = guess(fresh_app, account, 12)
    assert statuses == [401] * 10 + [429] * 2
    locked = TestClient(fresh_app, client=(GUESSER, 40001)).get(ME, headers=account.headers)
    # This process never saw the key: it cannot tell the owner at the guesser's own address
    # from the guesser without a bcrypt, which the lockout exists to save (docs/decisions.md).
    assert locked.status_code == 429
    assert locked.json()["code"] == "RATE_LIMITED"
    assert 0 < int(locked.headers["retry-after"]) <= 60

    owner = TestClient(fresh_app, client=(OWNER, 40000))
    assert owner.get(ME, headers=account.headers).status_code == 200
    # Now the process knows the key: the right secret passes at the guesser's address too,
    # while the guesser's next guess is still refused.
    same_address = TestClient(fresh_app, client=(GUESSER, 40002))
    assert same_address.get(ME, headers=account.headers).status_code == 200
    assert guess(fresh_app, account, 1) == [429]


def test_a_key_issued_here_is_never_locked_out(client: TestClient, app: FastAPI) -> None:
    """The process that issued the key knows it: no guess at any address locks its owner out."""
    account = register(client)
    assert guess(app, account, 11)[-1] == 429
    same_address = TestClient(app, client=(GUESSER, 40003))
    assert same_address.get(ME, headers=account.headers).status_code == 200


def test_the_known_secret_is_remembered_beyond_the_cache_period() -> None:
    hasher = KeyHasher([b"p" * 32], rounds=4, cache_ttl_s=0)  # nothing is ever fresh
    new = api_keys.generate()
    stored = hasher.hash(new.secret)
    assert hasher.verify(new.key_id, new.secret, stored, client=OWNER) is Verdict.VALID
    for n in range(10):
        assert hasher.verify(new.key_id, f"g{n}", stored, client=GUESSER) is Verdict.INVALID
    assert hasher.verify(new.key_id, "g10", stored, client=GUESSER) is Verdict.LOCKED_OUT
    assert hasher.verify(new.key_id, new.secret, stored, client=GUESSER) is Verdict.VALID
    # A new hash (the key was re-issued under a new pepper) is not vouched for by the old one.
    assert hasher.verify(new.key_id, new.secret, hasher.hash(new.secret), client=GUESSER) is (
        Verdict.LOCKED_OUT
    )


def test_an_ipv6_host_counts_as_its_64() -> None:
    assert client_group("2001:db8:1:2:aaaa::1") == client_group("2001:db8:1:2:ffff::9")
    assert client_group("2001:db8:1:3::1") != client_group("2001:db8:1:2::1")
    assert client_group("::ffff:192.0.2.7") == "192.0.2.7"
    assert client_group("192.0.2.7") == "192.0.2.7"


def test_guesses_spread_over_many_addresses_are_bounded_per_key() -> None:
    """Each /64 gets its 10 wrong secrets a minute; all of them together get 60 bcrypts for
    one key, after which unknown secrets are refused at once (no thread waits for bcrypt),
    while a secret this process knows still gets through."""
    hasher = KeyHasher([b"p" * 32], rounds=4, cache_ttl_s=60)
    new = api_keys.generate()
    stored = hasher.hash_new(new.key_id, new.secret)  # issued here: known
    verdicts = [
        hasher.verify(new.key_id, "wrong", stored, client=f"2001:db8:{group:x}::1")
        for group in range(70)
    ]
    assert verdicts[:60] == [Verdict.INVALID] * 60
    assert verdicts[60:] == [Verdict.LOCKED_OUT] * 10
    assert hasher.lockout_remaining_s(new.key_id, "2001:db8:ffff::1") > 0
    assert hasher.verify(new.key_id, new.secret, stored, client="2001:db8:ffff::1") in (
        Verdict.VALID,
        Verdict.VALID_REHASH,
    )
