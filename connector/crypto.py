"""Encrypt store credentials at rest (Fernet: AES-128-CBC + HMAC-SHA256)."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

from connector.config import Settings
from connector.errors import ConfigError


def _dev_key(settings: Settings) -> bytes:
    """Development only: a random key kept in the data dir, created on first use."""
    path = settings.data_dir / "dev-encryption.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(Fernet.generate_key())
        path.chmod(0o600)
    return path.read_bytes().strip()


def _key(settings: Settings) -> bytes:
    """The deployment's Fernet key; from RETENTION_ENCRYPTION_KEY."""
    key = settings.secrets.encryption_key
    if not key:
        if not settings.development:
            raise ConfigError(["RETENTION_ENCRYPTION_KEY: required outside development mode"])
        return _dev_key(settings)
    try:
        Fernet(key.encode())
        return key.encode()
    except ValueError:
        # Accept any passphrase by stretching it to a Fernet key; a real key is 32 url-safe base64 bytes.
        return base64.urlsafe_b64encode(hashlib.sha256(key.encode()).digest())


def fernet(settings: Settings) -> Fernet:
    """The cipher for this deployment; the key comes from RETENTION_ENCRYPTION_KEY."""
    return Fernet(_key(settings))


def bind(settings: Settings, value: str) -> str:
    """A keyed digest of `value` (an install state) for a browser cookie: only this deployment can make one."""
    key = hashlib.sha256(b"retention-browser-binding:" + _key(settings)).digest()
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()


def bound(settings: Settings, value: str, given: str | None) -> bool:
    """Constant-time check of a cookie made by `bind`."""
    return bool(given) and hmac.compare_digest(bind(settings, value).encode(), (given or "").encode())


def encrypt_json(settings: Settings, data: dict[str, Any]) -> str:
    """Encrypt a credentials object."""
    return fernet(settings).encrypt(json.dumps(data, sort_keys=True).encode()).decode()


def decrypt_json(settings: Settings, token: str) -> dict[str, Any]:
    """Decrypt a credentials object; an empty token is an empty object."""
    if not token:
        return {}
    try:
        return json.loads(fernet(settings).decrypt(token.encode()))
    except InvalidToken:
        raise ConfigError(["RETENTION_ENCRYPTION_KEY: cannot decrypt stored credentials (wrong key?)"]) from None



def derived_key(settings: Settings, purpose: str) -> bytes:
    """A key for one purpose (e.g. signing app home links), derived from the encryption key: one secret to keep."""
    material = settings.secrets.encryption_key.encode() or _dev_key(settings)
    return hmac.new(material, f"retention:{purpose}".encode(), hashlib.sha256).digest()
