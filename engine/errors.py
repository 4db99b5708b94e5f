"""Domain errors, independent of HTTP.

Each class names a kind of failure a caller can act on; the API layer maps kinds
to Docker's status codes (`engine.api.errors`), the CLI prints the message.
Messages follow Docker's wording because clients and users match on them.
"""

from __future__ import annotations


class EngineError(Exception):
    """Base class: something the engine refuses or failed to do."""

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else self.__class__.__name__


class InvalidParameter(EngineError):
    """The request is malformed or asks for something impossible (400)."""


class NotFound(EngineError):
    """The named container, image, exec or network does not exist (404)."""


class Unauthorized(EngineError):
    """A registry refused the credentials, or wants some (401)."""


class Conflict(EngineError):
    """The request clashes with the current state: a name in use, a running container (409)."""


class NotModified(EngineError):
    """Nothing to do: already started, already stopped (304)."""


class Forbidden(EngineError):
    """The operation is never allowed on this object (403)."""


class Unsupported(EngineError):
    """The engine does not implement this (501)."""


class Unavailable(EngineError):
    """The engine is not in the state this needs, such as swarm mode when it has none (503)."""


class SystemFailure(EngineError):
    """The host, the runtime or the store failed (500)."""


class HostNotReady(SystemFailure):
    """The host cannot run containers as it is set up; the message says how to fix it."""


def system_failure(exc: OSError, op: str) -> SystemFailure:
    """`exc` in dockerd's words (Go's error strings): `write /path: no space left on device`.

    Clients match on the lowercase errno text ("no space left on device"), not Python's.
    """
    text = exc.strerror or str(exc)
    text = text[:1].lower() + text[1:]
    where = f" {exc.filename}" if exc.filename else ""
    return SystemFailure(f"{op}{where}: {text}")
