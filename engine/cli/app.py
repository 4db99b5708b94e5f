"""What every command shares: the daemon address, the client, and error reporting."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

import attrs
import click

from engine.cli.client import APIError, Client, ClientError, DaemonUnreachable, resolve_host
from engine.cli.errors import CommandError
from engine.cli.options import OptionError

F = TypeVar("F", bound=Callable[..., Any])


@attrs.define
class App:
    """Per-invocation state, built from the global flags."""

    host_flag: str | None = None
    _client: Client | None = None

    @property
    def host(self) -> str:
        return resolve_host(self.host_flag)

    @property
    def client(self) -> Client:
        if self._client is None:
            client = Client(self.host)
            try:
                client.socket_path  # noqa: B018 - validates the address early
            except ClientError as exc:
                raise CommandError(exc.message) from None
            self._client = client
        return self._client


pass_app = click.make_pass_decorator(App, ensure=True)


def describe(exc: ClientError | OptionError) -> str:
    """The line docker would print for this failure."""
    if isinstance(exc, APIError):
        return f"Error response from daemon: {exc.message}"
    if isinstance(exc, OptionError):
        return str(exc)
    return exc.message


@contextlib.contextmanager
def exit_code(code: int) -> Iterator[None]:
    """Failures inside end the command with `code` (run/create use 125)."""
    try:
        yield
    except (ClientError, OptionError) as exc:
        raise CommandError(describe(exc), code) from None
    except CommandError as exc:
        if exc.code == 1:
            exc.code = code
        raise


def error_line(message: str) -> None:
    sys.stdout.flush()
    print(message, file=sys.stderr, flush=True)


def for_each(names: Iterable[str], action: Callable[[str], None]) -> None:
    """Apply `action` to every name, reporting each failure and exiting 1 if any failed.

    This is how docker handles `stop a b c`: one bad name does not spare the others.
    """
    failed = False
    for name in names:
        try:
            action(name)
        except DaemonUnreachable:
            raise
        except (ClientError, OptionError) as exc:
            error_line(describe(exc))
            failed = True
        except CommandError as exc:
            if exc.message:
                error_line(exc.message)
            failed = True
    if failed:
        raise CommandError("", 1)


def out(text: str) -> None:
    """Write to stdout (text already carries its newline)."""
    sys.stdout.write(text)


def confirm(prompt: str) -> bool:
    """Docker's `[y/N]` question; anything but y/yes (or no terminal input) is a no."""
    sys.stdout.write(prompt)
    sys.stdout.flush()
    answer = sys.stdin.readline()
    return answer.strip().lower() in ("y", "yes")
