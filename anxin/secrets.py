"""The key that signs bearer tokens: configured, or made once and kept in the var folder."""

from __future__ import annotations

import os
import secrets

from anxin.settings import Settings


def token_secret(settings: Settings) -> str:
    if settings.secret_key is not None:
        return settings.secret_key.get_secret_value()
    path = settings.var_dir / "secret_key"
    if path.exists():
        return path.read_text(encoding="ascii").strip()
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48)
    # Created readable by the owner only.
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="ascii") as handle:
        handle.write(secret)
    return secret
