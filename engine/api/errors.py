"""Docker's status codes for the engine's error kinds."""

from __future__ import annotations

from engine.errors import (
    Conflict,
    EngineError,
    Forbidden,
    InvalidParameter,
    NotFound,
    NotModified,
    Unauthorized,
    Unavailable,
    Unsupported,
)

_STATUS: list[tuple[type[EngineError], int]] = [
    (InvalidParameter, 400),
    (Unauthorized, 401),
    (Forbidden, 403),
    (NotFound, 404),
    (Conflict, 409),
    (NotModified, 304),
    (Unsupported, 501),
    (Unavailable, 503),
]


def status_for(exc: EngineError) -> int:
    for kind, status in _STATUS:
        if isinstance(exc, kind):
            return status
    return 500
