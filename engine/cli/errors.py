"""The one error type commands raise: a message for stderr and the exit status."""

from __future__ import annotations


class CommandError(Exception):
    """Print `message` (if any) on stderr and exit with `code`.

    Docker's convention: 1 for a failed command, 125 when `run`/`create` fail before
    the container runs, the container's own status otherwise.
    """

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
