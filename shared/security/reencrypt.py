"""Move every stored secret to the current SECRET_KEY: `uv run python -m shared.security.reencrypt`.

Run it after a rotation (new SECRET_KEY, old one in SECRET_KEY_FALLBACKS); afterwards the
fallback can be removed. Safe to re-run; it prints counts, never values.
"""

from __future__ import annotations

import sys

from sqlalchemy import select

from shared.config import Settings, load_settings
from shared.db import Database
from shared.jobs import reuse
from shared.models import User
from shared.security.crypto import SecretBox

BATCH = 500


def reencrypt_all(settings: Settings) -> int:
    """Re-encrypt tokens and webhook secrets and refresh fingerprints; returns rows changed."""
    box = SecretBox.from_settings(settings)
    database = Database(settings, label="reencrypt", pool_size=1)
    changed = 0
    try:
        with database.session_scope() as session:
            users = session.execute(
                select(User).order_by(User.id).execution_options(yield_per=BATCH)
            )
            for user in users.scalars():
                token = box.decrypt(user.tabpfn_token_encrypted)
                user.tabpfn_token_encrypted = box.reencrypt(user.tabpfn_token_encrypted)
                user.webhook_secret_encrypted = box.reencrypt(user.webhook_secret_encrypted)
                if user.previous_webhook_secret_encrypted is not None:
                    user.previous_webhook_secret_encrypted = box.reencrypt(
                        user.previous_webhook_secret_encrypted
                    )
                fingerprint = box.fingerprint(token)
                reuse.refingerprint(session, user.id, user.token_fingerprint, fingerprint)
                user.token_fingerprint = fingerprint
                changed += 1
    finally:
        database.dispose()
    return changed


def main() -> int:
    changed = reencrypt_all(load_settings())
    print(f"re-encrypted the secrets of {changed} user(s) under the current SECRET_KEY")
    return 0


if __name__ == "__main__":
    sys.exit(main())
