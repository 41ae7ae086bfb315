"""Endpoint signing secrets: made here, shown to the app once, stored only encrypted.

A signing secret has to be read back to sign every delivery, so it cannot be hashed like an API key;
it is encrypted with Fernet (AES-128-CBC and HMAC-SHA256, from ``cryptography``) under
``SATWORKS_WEBHOOK_SECRET_KEY``. A dump of the database without that key holds no usable secret.
``SATWORKS_WEBHOOK_SECRET_OLD_KEYS`` still decrypt, so the key itself can be changed: set the new key
first and the old one among the old keys, then ``satworks webhooks rekey``.
"""

from __future__ import annotations

import secrets

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from satworks.errors import DependencyUnavailable, PermanentError
from satworks.settings import Settings

PREFIX = "whsec_"


def new_secret() -> str:
    """``whsec_`` and 256 random bits, url-safe."""
    return PREFIX + secrets.token_urlsafe(32)


def new_key() -> str:
    """A fresh Fernet key for ``SATWORKS_WEBHOOK_SECRET_KEY``."""
    return Fernet.generate_key().decode()


class SecretsNotConfigured(DependencyUnavailable):
    """No ``SATWORKS_WEBHOOK_SECRET_KEY``: endpoints can neither be registered nor signed for."""

    code = "webhooks_not_configured"


class UnreadableSecret(PermanentError):
    """A stored secret none of the configured keys decrypts (the key was changed without the old one)."""

    code = "unreadable_webhook_secret"


class SecretBox:
    """Encrypts with the first key, decrypts with any (``MultiFernet``)."""

    def __init__(self, keys: list[str]) -> None:
        self._fernet = MultiFernet([Fernet(key) for key in keys]) if keys else None

    @classmethod
    def from_settings(cls, settings: Settings) -> SecretBox:
        keys = [settings.webhook_secret_key] if settings.webhook_secret_key is not None else []
        return cls([k.get_secret_value() for k in (*keys, *settings.webhook_secret_old_keys)])

    @property
    def configured(self) -> bool:
        return self._fernet is not None

    def seal(self, secret: str) -> str:
        return self._box().encrypt(secret.encode()).decode()

    def open(self, sealed: str) -> str:
        try:
            return self._box().decrypt(sealed.encode()).decode()
        except InvalidToken as exc:
            raise UnreadableSecret("a webhook secret cannot be decrypted with the configured keys") from exc

    def reseal(self, sealed: str) -> str:
        """``sealed`` encrypted again under the first key (after the key changed)."""
        try:
            return self._box().rotate(sealed.encode()).decode()
        except InvalidToken as exc:
            raise UnreadableSecret("a webhook secret cannot be decrypted with the configured keys") from exc

    def _box(self) -> MultiFernet:
        if self._fernet is None:
            raise SecretsNotConfigured(
                "webhooks are not configured: set SATWORKS_WEBHOOK_SECRET_KEY",
                details={"setting": "webhook_secret_key"},
            )
        return self._fernet
