"""One error tree for the whole swarm, mapped once per boundary.

    SwarmError                      500 internal
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
    │   ├── NotClaimable            409 not_claimable
    │   ├── LeaseLost               409 lease_lost        (stale fencing token / expired lease)
    │   ├── OutcomeMismatch         409 outcome_mismatch  (a different outcome was recorded)
    │   └── StaleVersion            409 stale_version     (knowledge expected_version)
    ├── RateLimited                 429 rate_limited      (retry_after)
    └── Unavailable                 503 unavailable       (the store cannot be reached)

The API turns each into `{"error": {"code", "message"}}` with its status; the SDK maps the
code back to the same class, so a client catches what the server raised.
"""

from __future__ import annotations


class SwarmError(Exception):
    """Base of every error the swarm raises on purpose."""

    status = 500
    code = "internal"

    def __init__(self, message: str = "", *, retry_after: float | None = None) -> None:
        super().__init__(message or self.code)
        self.message = message or self.code
        self.retry_after = retry_after


class InvalidInput(SwarmError):
    status = 400
    code = "invalid_input"


class UnknownDependency(InvalidInput):
    code = "unknown_dependency"


class DependencyCycle(InvalidInput):
    code = "dependency_cycle"


class UnknownCapability(InvalidInput):
    code = "unknown_capability"


class ValidationFailed(InvalidInput):
    status = 422
    code = "validation_error"


class PayloadTooLarge(SwarmError):
    status = 413
    code = "payload_too_large"


class Unauthorized(SwarmError):
    status = 401
    code = "unauthorized"


class Forbidden(SwarmError):
    status = 403
    code = "forbidden"


class NotFound(SwarmError):
    status = 404
    code = "not_found"


class Conflict(SwarmError):
    status = 409
    code = "conflict"


class AlreadyExists(Conflict):
    code = "already_exists"


class NotClaimable(Conflict):
    code = "not_claimable"


class LeaseLost(Conflict):
    code = "lease_lost"


class OutcomeMismatch(Conflict):
    code = "outcome_mismatch"


class StaleVersion(Conflict):
    code = "stale_version"


class RateLimited(SwarmError):
    status = 429
    code = "rate_limited"


class Unavailable(SwarmError):
    status = 503
    code = "unavailable"


def _all_subclasses(cls: type[SwarmError]) -> list[type[SwarmError]]:
    out: list[type[SwarmError]] = [cls]
    for sub in cls.__subclasses__():
        out.extend(_all_subclasses(sub))
    return out


#: code -> class, so a client can raise exactly what the server raised.
BY_CODE: dict[str, type[SwarmError]] = {c.code: c for c in _all_subclasses(SwarmError)}


def from_code(code: str, message: str, status: int, retry_after: float | None = None) -> SwarmError:
    """Rebuild the error a server answered with; unknown codes fall back by status."""
    cls = BY_CODE.get(code)
    if cls is None:
        cls = next((c for c in BY_CODE.values() if c.status == status), SwarmError)
    return cls(message, retry_after=retry_after)
