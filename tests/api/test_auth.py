"""Accounts and API keys: TabPFN token in, API key out; keys, revocation, token replacement,
webhook secret rotation, account deletion; one query and at most one bcrypt per key."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient
from passlib.hash import bcrypt

from api.main import create_app
from scripts.engines import free_port
from shared.config import Settings
from tests.support import secrets as secret_registry
from tests.support.builders import Account, new_token, register
from tests.support.settings import make_settings

ME = "/api/v1/users/me"


def other_app(settings: Settings, **overrides: object) -> FastAPI:
    values = {
        "DATABASE_URL": settings.DATABASE_URL,
        "REDIS_URL": settings.REDIS_URL,
        "TABPFN_API_URL": settings.TABPFN_API_URL,
        **overrides,
    }
    return create_app(make_settings(**values))


@pytest.fixture
def account(client: TestClient) -> Account:
    return register(client)


def test_setup_returns_a_working_key(client: TestClient, account: Account) -> None:
    assert account.api_key.startswith(f"tpk_{account.key_id}_")
    assert account.webhook_secret.startswith("whsec_")
    me = client.get(ME, headers=account.headers)
    assert me.status_code == 200
    assert me.json()["id"] == account.user_id
    assert me.json()["current_key_id"] == account.key_id


def test_the_same_token_finds_the_same_user_with_a_new_key(
    client: TestClient, account: Account
) -> None:
    again = register(client, account.token)
    assert again.user_id == account.user_id
    assert again.key_id != account.key_id
    assert again.webhook_secret == account.webhook_secret
    for key in (account, again):
        assert client.get(ME, headers=key.headers).status_code == 200


@pytest.mark.parametrize(
    ("prefix", "code"),
    [("invalid", "TABPFN_TOKEN_INVALID"), ("unverified", "TABPFN_EMAIL_UNVERIFIED")],
)
def test_rejected_tokens_get_400(client: TestClient, prefix: str, code: str) -> None:
    response = client.post("/api/v1/auth/setup", json={"tabpfn_token": new_token(prefix)})
    assert response.status_code == 400
    assert response.json()["code"] == code


def test_unreachable_upstream_is_503_with_retry_after(settings: Settings) -> None:
    app = other_app(settings, TABPFN_API_URL=f"http://127.0.0.1:{free_port()}")
    try:
        response = TestClient(app).post("/api/v1/auth/setup", json={"tabpfn_token": new_token()})
    finally:
        app.state.context.close()
    assert response.status_code == 503
    assert response.json()["code"] == "UPSTREAM_UNAVAILABLE"
    assert int(response.headers["retry-after"]) > 0


def test_too_many_setups_from_one_client_get_429(settings: Settings) -> None:
    app = other_app(settings, RATE_LIMIT_SETUP_PER_MINUTE=3)
    try:
        client = TestClient(app, client=("203.0.113.77", 5000))
        statuses = [
            client.post(
                "/api/v1/auth/setup", json={"tabpfn_token": new_token("invalid")}
            ).status_code
            for _ in range(5)
        ]
        limited = client.post("/api/v1/auth/setup", json={"tabpfn_token": new_token()})
    finally:
        app.state.context.close()
    assert statuses[:3] == [400, 400, 400] and statuses[3:] == [429, 429]
    assert limited.status_code == 429
    assert limited.json()["code"] == "RATE_LIMITED"
    assert int(limited.headers["retry-after"]) >= 1


@pytest.mark.parametrize(
    "header",
    [
        None,
        "Basic abc",
        "Bearer ",
        "Bearer nonsense",
        "Bearer tpk_0123456789abcdef_wrongsecret",
        "Bearer tpk_zzzz_secret",
    ],
)
def test_bad_credentials_get_401_with_www_authenticate(
    client: TestClient, header: str | None
) -> None:
    response = client.get(ME, headers={"Authorization": header} if header else {})
    assert response.status_code == 401
    assert response.json()["code"] == "UNAUTHORIZED"
    assert response.headers["www-authenticate"] == "Bearer"


def test_a_wrong_secret_for_a_real_key_id_is_401(client: TestClient, account: Account) -> None:
    forged = f"tpk_{account.key_id}_not-the-secret"
    assert client.get(ME, headers={"Authorization": f"Bearer {forged}"}).status_code == 401


def test_key_management_and_revocation_is_immediate(client: TestClient, account: Account) -> None:
    created = client.post("/api/v1/auth/keys", json={"name": "ci"}, headers=account.headers)
    assert created.status_code == 201
    new_key = secret_registry.remember(created.json()["api_key"], "API key")
    second = {"Authorization": f"Bearer {new_key}"}
    assert client.get(ME, headers=second).status_code == 200  # now cached as verified

    listed = client.get("/api/v1/auth/keys", headers=account.headers).json()
    assert listed["total"] == 2 and {k["name"] for k in listed["items"]} == {None, "ci"}
    assert all("api_key" not in k for k in listed["items"])

    revoke = client.delete(f"/api/v1/auth/keys/{created.json()['key_id']}", headers=account.headers)
    assert revoke.status_code == 204
    assert client.get(ME, headers=second).status_code == 401
    assert client.get(ME, headers=account.headers).status_code == 200
    assert (
        client.delete("/api/v1/auth/keys/0000000000000000", headers=account.headers).status_code
        == 404
    )


def test_revocation_beats_the_cache_of_another_api_process(
    settings: Settings, client: TestClient, account: Account
) -> None:
    """Two API processes (two apps, two caches): a key revoked through one is refused by the
    other on its very next request."""
    other = other_app(settings)
    try:
        elsewhere = TestClient(other)
        assert elsewhere.get(ME, headers=account.headers).status_code == 200
        assert (
            client.delete(
                f"/api/v1/auth/keys/{account.key_id}", headers=account.headers
            ).status_code
            == 204
        )
        assert elsewhere.get(ME, headers=account.headers).status_code == 401
    finally:
        other.state.context.close()


def test_replacing_the_tabpfn_token(client: TestClient, account: Account) -> None:
    fresh = new_token()
    response = client.put(
        "/api/v1/auth/tabpfn-token", json={"tabpfn_token": fresh}, headers=account.headers
    )
    assert response.status_code == 200
    assert register(client, fresh).user_id == account.user_id
    rejected = client.put(
        "/api/v1/auth/tabpfn-token",
        json={"tabpfn_token": new_token("invalid")},
        headers=account.headers,
    )
    assert rejected.status_code == 400 and rejected.json()["code"] == "TABPFN_TOKEN_INVALID"
    someone_else = register(client)
    taken = client.put(
        "/api/v1/auth/tabpfn-token",
        json={"tabpfn_token": someone_else.token},
        headers=account.headers,
    )
    assert taken.status_code == 409 and taken.json()["code"] == "TOKEN_IN_USE"


def test_rotating_the_webhook_secret(client: TestClient, account: Account) -> None:
    response = client.post("/api/v1/auth/webhook-secret", headers=account.headers)
    assert response.status_code == 201
    secret = secret_registry.remember(response.json()["webhook_secret"], "webhook secret")
    assert secret.startswith("whsec_") and secret != account.webhook_secret
    assert register(client, account.token).webhook_secret == secret


def test_deleting_the_account_removes_everything(
    client: TestClient, settings: Settings, account: Account
) -> None:
    assert client.delete(ME, headers=account.headers).status_code == 204
    assert client.get(ME, headers=account.headers).status_code == 401
    engine = sa.create_engine(settings.DATABASE_URL)
    try:
        with engine.connect() as connection:
            for table in ("users", "api_keys", "models", "jobs", "payloads"):
                column = "id" if table == "users" else "user_id"
                count = connection.execute(
                    sa.text(f"SELECT count(*) FROM {table} WHERE {column} = :u"),
                    {"u": account.user_id},
                ).scalar()
                assert count == 0, table
    finally:
        engine.dispose()


@pytest.fixture
def counted_bcrypt(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls = [0]
    original = bcrypt.verify

    def counting(secret: str, hashed: str) -> bool:
        calls[0] += 1
        return bool(original(secret, hashed))

    monkeypatch.setattr("shared.security.api_keys._bcrypt.verify", counting)
    return calls


def test_a_key_costs_one_query_and_at_most_one_bcrypt(
    app: FastAPI, client: TestClient, account: Account, counted_bcrypt: list[int]
) -> None:
    statements: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        statements.append(statement)

    engine = app.state.context.db.engine
    client.get(ME, headers=account.headers)  # first use: bcrypt once, last_used_at written
    first_bcrypt = counted_bcrypt[0]
    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        for _ in range(5):
            assert client.get(ME, headers=account.headers).status_code == 200
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)
    assert first_bcrypt == 1
    assert counted_bcrypt[0] == 1  # the cache verified the next five
    assert len(statements) == 5  # one indexed SELECT per request, no writes
    assert all(s.lstrip().upper().startswith("SELECT") and "key_id" in s for s in statements)


def test_no_plaintext_secret_in_any_table(client: TestClient, settings: Settings) -> None:
    accounts = [register(client) for _ in range(2)]
    engine = sa.create_engine(settings.DATABASE_URL)
    try:
        with engine.connect() as connection:
            tables = (
                connection.execute(
                    sa.text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
                )
                .scalars()
                .all()
            )
            dump = "\n".join(
                str(row)
                for table in tables
                for row in connection.execute(sa.text(f'SELECT * FROM "{table}"')).all()
            )
    finally:
        engine.dispose()
    for account in accounts:
        assert account.token not in dump
        assert account.api_key not in dump
        assert account.api_key.split("_", 2)[2] not in dump
        assert account.webhook_secret not in dump
        assert account.webhook_secret.removeprefix("whsec_") not in dump


def test_concurrent_first_uses_of_a_key_run_bcrypt_once(counted_bcrypt: list[int]) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from shared.security import api_keys
    from shared.security.api_keys import KeyHasher, Verdict

    hasher = KeyHasher([b"p" * 32], rounds=6, cache_ttl_s=60)
    new = api_keys.generate()
    stored = hasher.hash(new.secret)
    with ThreadPoolExecutor(8) as pool:
        verdicts = list(
            pool.map(
                lambda _: hasher.verify(new.key_id, new.secret, stored, client="192.0.2.1"),
                range(16),
            )
        )
    assert set(verdicts) == {Verdict.VALID}
    assert counted_bcrypt[0] == 1
    assert hasher.verify(new.key_id, "wrong", stored, client="192.0.2.1") is Verdict.INVALID


def test_guessing_a_keys_secret_is_cut_off_without_bcrypt(counted_bcrypt: list[int]) -> None:
    from shared.security import api_keys
    from shared.security.api_keys import KeyHasher, Verdict

    hasher = KeyHasher([b"p" * 32], rounds=4, cache_ttl_s=60)
    new = api_keys.generate()
    stored = hasher.hash(new.secret)
    verdicts = [
        hasher.verify(new.key_id, f"guess-{n}", stored, client="192.0.2.1") for n in range(25)
    ]
    assert verdicts == [Verdict.INVALID] * 10 + [Verdict.LOCKED_OUT] * 15
    assert counted_bcrypt[0] == 10  # the rest were refused without hashing
