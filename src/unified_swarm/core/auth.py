"""Who is calling: the operator or one session, told by the bearer token alone.

Tokens are compared only as SHA-256 digests (tokens.py): the operator's in constant time,
a session's through the store's index of digests.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Literal

from ..errors import Forbidden, Unauthorized
from ..models import Session
from ..store.base import Store
from ..tokens import hash_token


@dataclass(frozen=True, slots=True)
class Principal:
    role: Literal["operator", "session"]
    session: Session | None = None

    @property
    def session_id(self) -> str | None:
        return None if self.session is None else self.session.id

    @property
    def name(self) -> str:
        return "operator" if self.session is None else self.session.id


class Auth:
    """Tells the operator's token from a session's; anything else is Unauthorized."""

    def __init__(self, store: Store, operator_token: str) -> None:
        self.store = store
        self._operator_hash = hash_token(operator_token)

    async def authenticate(self, token: str | None) -> Principal:
        if not token:
            raise Unauthorized("missing bearer token")
        digest = hash_token(token)
        if hmac.compare_digest(digest, self._operator_hash):
            return Principal("operator")
        session = await self.store.session_by_token(digest)
        if session is None:
            raise Unauthorized("unknown or revoked token")
        return Principal("session", session)


def require_holder(principal: Principal) -> Session:
    """Task outcome calls take a session token: the token alone says which session calls."""
    if principal.session is None:
        raise Forbidden("this call takes a session token (from POST /session/register)")
    return principal.session


def require_operator(principal: Principal, what: str = "this call") -> Principal:
    if principal.role != "operator":
        raise Forbidden(f"{what} takes the operator token")
    return principal
