"""SECRET_KEY rotation: with the old secret in SECRET_KEY_FALLBACKS every stored token and key
still works, and the re-encrypt command moves every row to the new secret."""

from __future__ import annotations

import secrets
import subprocess
from pathlib import Path

import sqlalchemy as sa
from fastapi.testclient import TestClient

from api.main import create_app
from shared.config import Settings
from shared.security.crypto import SecretBox
from tests.support import secrets as secret_registry
from tests.support.builders import register
from tests.support.processes import BIN, ROOT, child_env
from tests.support.servers import PostgresServer
from tests.support.settings import make_settings


def test_rotation_keeps_everything_readable_and_reencrypt_moves_rows(
    postgres: PostgresServer, settings: Settings, tmp_path: Path
) -> None:
    database = postgres.create_migrated_database("tabpfn_rotation")
    old_secret, new_secret = secrets.token_urlsafe(48), secrets.token_urlsafe(48)
    common = {
        "DATABASE_URL": database,
        "REDIS_URL": settings.REDIS_URL,
        "TABPFN_API_URL": settings.TABPFN_API_URL,
    }

    before = create_app(make_settings(SECRET_KEY=old_secret, **common))
    try:
        accounts = [register(TestClient(before)) for _ in range(3)]
        # A webhook secret rotated under the old SECRET_KEY: its previous secret moves too.
        rotation = TestClient(before).post(
            "/api/v1/auth/webhook-secret", headers=accounts[0].headers
        )
        assert rotation.status_code == 201
        secret_registry.remember(rotation.json()["webhook_secret"], "webhook secret")
    finally:
        before.state.context.close()

    rotated_settings = make_settings(
        SECRET_KEY=new_secret, SECRET_KEY_FALLBACKS=[old_secret], **common
    )
    rotated = create_app(rotated_settings)
    try:
        client = TestClient(rotated)
        # Old keys (peppered with the old secret) still authenticate, and old tokens decrypt.
        for account in accounts:
            assert client.get("/api/v1/usage", headers=account.headers).json()["tabpfn"] is not None
        # The same TabPFN token still finds its user (fingerprint under the fallback).
        assert register(client, accounts[0].token).user_id == accounts[0].user_id
    finally:
        rotated.state.context.close()

    result = subprocess.run(
        [str(BIN / "python"), "-m", "shared.security.reencrypt"],
        cwd=ROOT,
        env=child_env(rotated_settings),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert "re-encrypted the secrets of 3 user(s)" in result.stdout
    assert all(a.token not in result.stdout + result.stderr for a in accounts)

    only_new = SecretBox(new_secret, [])
    engine = sa.create_engine(database)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                sa.text(
                    "SELECT id, token_fingerprint, tabpfn_token_encrypted, "
                    "webhook_secret_encrypted, previous_webhook_secret_encrypted FROM users"
                )
            ).all()
    finally:
        engine.dispose()
    tokens = {a.user_id: a.token for a in accounts}
    for user_id, fingerprint, token_encrypted, secret_encrypted, previous_encrypted in rows:
        assert only_new.decrypt(token_encrypted) == tokens[str(user_id)]
        assert only_new.decrypt(secret_encrypted).startswith("whsec_")
        assert fingerprint == only_new.fingerprint(tokens[str(user_id)])
        if str(user_id) == accounts[0].user_id:
            assert only_new.decrypt(previous_encrypted) == accounts[0].webhook_secret
        else:
            assert previous_encrypted is None

    # Without the fallback: tokens decrypt and users are found; keys used during the
    # rotation window were re-hashed under the new pepper and keep working.
    after = create_app(make_settings(SECRET_KEY=new_secret, **common))
    try:
        client = TestClient(after)
        assert client.get("/api/v1/users/me", headers=accounts[1].headers).status_code == 200
        assert register(client, accounts[2].token).user_id == accounts[2].user_id
    finally:
        after.state.context.close()
