"""One error tree for the whole swarm, mapped once per boundary.

    SwarmError                      500 internal
    ├── IllegalTransition           500 illegal_transition (a store bug, never a client's)
    ├── InvalidInput                400 invalid_input
    │   ├── UnknownDependency       400 unknown_dependency
    │   ├── DependencyCycle         400 dependency_cycle
    │   ├── UnknownCapability       400 unknown_capability
    │   └── ValidationFailed        422 validation_error   (malformed JSON / wrong types)
    ├── PayloadTooLarge             413 payload_too_large
    ├── Unauthorized                401 unauthorized
    ├── Forbidden                   403 forbidden
    ├── NotFound                    404 not_found
    ├── Conflict                    409 conflict
    │   ├── AlreadyExists           409 already_exists
    │   ├── NotClaimable            409 not_claimable     (the session cannot take work now)
    │   │   └── TaskTaken           409 not_claimable     (that task is gone: try another)
    │   ├── LeaseLost               409 lease_lost        (stale fencing token / expired lease)
    │   ├── OutcomeMismatch         409 outcome_mismatch  (a different outcome was recorded)
    │   ├── StaleVersion            409 stale_version     (knowledge expected_version)
    │   └── KeyReused               409 idempotency_key_reused (one key, another request)
    ├── HeadersTooLarge             431 headers_too_large
    ├── RateLimited                 429 rate_limited      (retry_after)
    ├── NotInstalled                501 not_implemented   (an optional extra is missing)
    └── Unavailable                 503 unavailable       (the store cannot be reached)
        ├── Contended               503 unavailable       (every candidate was taken first)
        └── ServerUnreachable       503 unavailable       (SDK: no answer after every retry)

The API turns each into `{"error": {"code", "message"}}` with its status; the SDK maps the
code back to the same class, so a client catches what the server raised (a subclass that
shares its parent's code, like ServerUnreachable, is the SDK's own: the code maps back to the
parent).
"""

from __future__ import annotations

from typing import Any, ClassVar


class SwarmError(Exception):
    """Base of every error the swarm raises on purpose.

    A subclass names its HTTP status and error code in its class line
    (`class NotFound(SwarmError, status=404, code="not_found")`) and inherits what it leaves
    out, so the tree below reads as the table in the module docstring."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal"

    def __init_subclass__(cls, *, status: int | None = None, code: str | None = None,
                          **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if status is not None:
            cls.status = status
        if code is not None:
            cls.code = code

    def __init__(self, message: str = "", *, retry_after: float | None = None) -> None:
        super().__init__(message or self.code)
        self.message = message or self.code
        self.retry_after = retry_after


class IllegalTransition(SwarmError, code="illegal_transition"):
    """A store tried a move `lifecycle.TRANSITIONS` does not have: a bug, never a client error."""


class InvalidInput(SwarmError, status=400, code="invalid_input"):
    ...


class UnknownDependency(InvalidInput, code="unknown_dependency"):
    ...


class DependencyCycle(InvalidInput, code="dependency_cycle"):
    ...


class UnknownCapability(InvalidInput, code="unknown_capability"):
    ...


class ValidationFailed(InvalidInput, status=422, code="validation_error"):
    ...


class PayloadTooLarge(SwarmError, status=413, code="payload_too_large"):
    ...


class Unauthorized(SwarmError, status=401, code="unauthorized"):
    ...


class Forbidden(SwarmError, status=403, code="forbidden"):
    ...


class NotFound(SwarmError, status=404, code="not_found"):
    ...


class Conflict(SwarmError, status=409, code="conflict"):
    ...


class AlreadyExists(Conflict, code="already_exists"):
    ...


class NotClaimable(Conflict, code="not_claimable"):
    ...


class TaskTaken(NotClaimable):
    """The named task cannot be claimed or offered any more (another session has it, it is no
    longer ready): a scheduler moves on to its next candidate. The session itself could."""


class LeaseLost(Conflict, code="lease_lost"):
    ...


class OutcomeMismatch(Conflict, code="outcome_mismatch"):
    ...


class StaleVersion(Conflict, code="stale_version"):
    ...


class KeyReused(Conflict, code="idempotency_key_reused"):
    """An `Idempotency-Key` came back with another request than the one it first carried:
    a conflict with what the key holds (nothing was done; the first request's answer stays
    the key's answer). A 409, not a 422: the request itself is valid, a new key takes it."""


class HeadersTooLarge(SwarmError, status=431, code="headers_too_large"):
    ...


class RateLimited(SwarmError, status=429, code="rate_limited"):
    ...


class NotInstalled(SwarmError, status=501, code="not_implemented"):
    """An optional part needs an extra that is not installed; the message names the
    install command (`pip install 'unified-swarm[server]'`)."""


class Unavailable(SwarmError, status=503, code="unavailable"):
    ...


class Contended(Unavailable):
    """Every task a claim tried was taken by other sessions first, round after round: ask
    again at once (a long-poll does so by itself)."""


class ServerUnreachable(Unavailable):
    """The server could not be reached, or did not answer in time, after every retry."""


def _all_subclasses(cls: type[SwarmError]) -> list[type[SwarmError]]:
    out: list[type[SwarmError]] = [cls]
    for sub in cls.__subclasses__():
        out.extend(_all_subclasses(sub))
    return out


#: code -> class, so a client can raise exactly what the server raised (the first class of
#: the tree with a code: a parent before the subclasses that share its code)
BY_CODE: dict[str, type[SwarmError]] = {}
for _cls in _all_subclasses(SwarmError):
    BY_CODE.setdefault(_cls.code, _cls)


def from_code(code: str, message: str, status: int, retry_after: float | None = None) -> SwarmError:
    """Rebuild the error a server answered with; unknown codes fall back by status."""
    cls = BY_CODE.get(code)
    if cls is None:
        cls = next((c for c in BY_CODE.values() if c.status == status), SwarmError)
    return cls(message, retry_after=retry_after)
