"""Idempotency-Key: what a key may be, whose it is, which request it stands for.

A call that is not idempotent by itself (register, add, request, claim, knowledge PUT) may
carry an `Idempotency-Key`. The store keeps the call's answer under the key in the same
atomic step as its write (store/replay.py), so a retry with the key, after a reply was
lost (a timeout, a dropped connection, a 503 from a store step that ran after all), gets
the first answer and never causes a second effect. Decided here, once for every store:

- the key is 1..255 printable ASCII characters (else 400, nothing done);
- its scope is the caller's identity (the operator, or one session) and the route
  (`POST /work`), so two callers, or two routes, never share a key (`Idem.id`);
- the request is fingerprinted (the path and the JSON body, keys sorted): the same key
  with another request is refused (422 `idempotency_key_reused`), nothing done;
- the answer is kept `Settings.idempotency_ttl` seconds (24 h by default).

A register answers a session token, which the store must never keep in clear. So a keyed
register does not draw a random token: it derives it, an HMAC of the key's id under a
secret derived from the operator token (`session_token`). The store keeps only the
token's digest, as for any session, and the retry derives the same token again: nothing
secret is stored, and only the server (which knows the operator token) can derive it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

import orjson

from ..errors import InvalidInput
from ..models import Idem

HEADER = "Idempotency-Key"
MAX_KEY = 255
#: the key's grammar, as a JSON Schema pattern (documented in the OpenAPI document)
KEY_PATTERN = r"^[\x20-\x7e]{1,255}$"


def check_key(raw: str) -> str:
    """The key as sent, when it is 1..255 printable ASCII characters; else InvalidInput."""
    if not 0 < len(raw) <= MAX_KEY or not all(" " <= ch <= "~" for ch in raw):
        raise InvalidInput(f"the {HEADER} header must be 1..{MAX_KEY} printable ASCII "
                           f"characters")
    return raw


def fingerprint(route: str, path: str, body: bytes) -> str:
    """The digest of a request: its route, path and JSON body (keys sorted, so a client
    that writes the same JSON another way is still the same request)."""
    try:
        canonical = orjson.dumps(orjson.loads(body) if body else None,
                                 option=orjson.OPT_SORT_KEYS)
    except orjson.JSONDecodeError:
        canonical = body  # refused later by the route; still a fingerprint of its own
    h = hashlib.sha256()
    for part in (route.encode(), path.encode(), canonical):
        h.update(len(part).to_bytes(8, "big"))
        h.update(part)
    return h.hexdigest()


def make(identity: str, route: str, key: str, path: str, body: bytes, ttl: float) -> Idem:
    """The key of `identity` (the caller: "operator" or a session id) on `route`."""
    check_key(key)
    scoped = hashlib.sha256("\0".join((identity, route, key)).encode()).hexdigest()
    return Idem(scoped, fingerprint(route, path, body), ttl)


def task_id(idem: Idem) -> str:
    """The id of the task a keyed call adds when the client names none (an emergency's):
    the same for every retry of the key, so a retry meets the first try's task."""
    return "task-" + hashlib.sha256(b"task\0" + idem.id.encode()).hexdigest()[:32]


def secret(operator_token: str) -> bytes:
    """The server's secret for derived session tokens: from the operator token, never kept."""
    return hmac.new(operator_token.encode(), b"unified-swarm idempotent register",
                    hashlib.sha256).digest()


def session_token(key: bytes, idem: Idem) -> str:
    """The session token a keyed register answers: the same for every retry of the key,
    256 bits, URL-safe like `tokens.new_token`, unknowable without the server's secret."""
    mac = hmac.new(key, idem.id.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()
