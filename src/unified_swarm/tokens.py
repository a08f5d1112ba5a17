"""Tokens: how they are made and kept, and the operator's.

Every token (the operator's, each session's) is 256 bits from the OS CSPRNG and is stored
and compared only as its SHA-256 digest. The operator token comes from SWARM_TOKEN, or is
generated once into <data dir>/token (mode 0600) and read from there by the local CLI.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from pathlib import Path

from .config import Settings


def new_token() -> str:
    """256 bits from the OS CSPRNG, URL-safe."""
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """Tokens are stored and compared only as SHA-256 digests."""
    return hashlib.sha256(token.encode()).hexdigest()


def token_path(settings: Settings) -> Path:
    return settings.data_dir / "token"


def operator_token(settings: Settings) -> tuple[str, bool]:
    """The token and whether it was generated just now (then the server prints it once)."""
    if settings.token:
        return settings.token, False
    path = token_path(settings)
    if path.exists():
        return path.read_text().strip(), False
    path.parent.mkdir(parents=True, exist_ok=True)
    token = new_token()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    return token, True


def read_operator_token(settings: Settings) -> str | None:
    """For clients on this machine: SWARM_TOKEN, else the data dir's token file."""
    if settings.token:
        return settings.token
    path = token_path(settings)
    return path.read_text().strip() if path.exists() else None
