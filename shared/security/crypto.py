"""Encryption at rest and token fingerprints, all derived from SECRET_KEY with HKDF.

Each purpose gets its own key (HKDF with a distinct `info`), never a slice of the secret.
`MultiFernet` encrypts with the current SECRET_KEY and still decrypts with every
SECRET_KEY_FALLBACKS entry, so a rotation never locks out existing rows; `reencrypt`
(`python -m shared.security.reencrypt`) then moves every row to the current key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from shared.config import Settings

_SALT = b"tabpfn-api/v1"


def derive_key(secret: str, purpose: str) -> bytes:
    """32 bytes for one purpose, derived from one secret (RFC 5869)."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=_SALT, info=purpose.encode())
    return hkdf.derive(secret.encode())


class DecryptionFailed(Exception):
    """A stored value matches none of the configured keys (a SECRET_KEY was lost)."""


class SecretBox:
    """Encrypts and fingerprints user secrets under the current and the fallback keys."""

    def __init__(self, secret_key: str, fallbacks: list[str]) -> None:
        secrets = [secret_key, *fallbacks]
        self._fernet = MultiFernet(
            [Fernet(base64.urlsafe_b64encode(derive_key(s, "fernet"))) for s in secrets]
        )
        self._fingerprint_keys = [derive_key(s, "token-fingerprint") for s in secrets]
        self.peppers = [derive_key(s, "api-key-pepper") for s in secrets]

    @classmethod
    def from_settings(cls, settings: Settings) -> SecretBox:
        return cls(
            settings.SECRET_KEY.get_secret_value(),
            [fallback.get_secret_value() for fallback in settings.SECRET_KEY_FALLBACKS],
        )

    def encrypt(self, plaintext: str) -> str:
        """Encrypt under the current key."""
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, ciphertext: str) -> str:
        """Decrypt with whichever configured key made it."""
        try:
            return self._fernet.decrypt(ciphertext.encode()).decode()
        except InvalidToken:
            raise DecryptionFailed("no configured SECRET_KEY decrypts this value") from None

    def reencrypt(self, ciphertext: str) -> str:
        """The same plaintext, encrypted under the current key."""
        try:
            return self._fernet.rotate(ciphertext.encode()).decode()
        except InvalidToken:
            raise DecryptionFailed("no configured SECRET_KEY decrypts this value") from None

    def fingerprint(self, token: str) -> str:
        """HMAC of a TabPFN token under the current key: finds its user without decrypting."""
        return self.fingerprints(token)[0]

    def fingerprints(self, token: str) -> list[str]:
        """The token's fingerprint under every configured key, current first."""
        return [
            hmac.new(key, token.encode(), hashlib.sha256).hexdigest()
            for key in self._fingerprint_keys
        ]
