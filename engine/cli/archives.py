"""`moor save`, `moor load` and `moor export`: image archives and a container's
filesystem, to and from files or pipes."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from typing import IO, Any

import click

from engine.cli.app import App, describe, pass_app
from engine.cli.client import ClientError, container_path
from engine.cli.errors import CommandError
from engine.cli.images import show_messages


def check_output_path(path: str, failure: str = "failed to save image") -> None:
    """Docker's checks before a save: the directory exists, the target is a file or none."""
    cleaned = os.path.normpath(path)
    directory = os.path.dirname(cleaned)
    if directory and not os.path.isdir(directory):
        raise CommandError(
            f'{failure}: invalid output path: directory "{directory}" does not exist'
        )
    if os.path.lexists(cleaned) and not (os.path.isfile(cleaned) or os.path.isdir(cleaned)):
        raise CommandError(
            f'{failure}: invalid output path: "{path}" must be a directory or a '
            "regular file"
        )


def _write_file(path: str, chunks: Any) -> None:
    """Write next to `path` and rename at the end: a failed save leaves no half archive."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".moor_temp_", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            for chunk in chunks:
                f.write(chunk)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@click.command()
@click.option("-o", "--output", metavar="string", help="Write to a file, instead of STDOUT")
@click.option("--platform", "platforms", multiple=True, metavar="strings",
              help="Save only the given platform(s) (this engine stores one)")
@click.argument("names", nargs=-1, required=True, metavar="IMAGE [IMAGE...]")
@pass_app
def save(app: App, output: str | None, platforms: tuple[str, ...], names: tuple[str, ...]
         ) -> None:
    """Save one or more images to a tar archive (streamed to STDOUT by default)."""
    params = {"names": list(names), "platform": list(platforms) or None}
    _download(app, "/images/get", params, output, "failed to save image")


def _download(app: App, path: str, params: dict[str, Any], output: str | None,
              failure: str) -> None:
    """A tar from moord into the file `output` (whole or not at all), or to STDOUT (never
    a terminal)."""
    if output:
        check_output_path(output, failure)
    elif sys.stdout.isatty():
        raise CommandError("cowardly refusing to save to a terminal. Use the -o flag or redirect")
    try:
        with app.client.call("GET", path, params) as response:
            if output:
                _write_file(output, response.iter_body())
            else:
                sys.stdout.flush()
                target: IO[bytes] = sys.stdout.buffer
                for chunk in response.iter_body():
                    target.write(chunk)
                target.flush()
    except ClientError as exc:
        raise CommandError(describe(exc)) from None
    except OSError as exc:
        if isinstance(exc, BrokenPipeError):
            raise
        raise CommandError(f"{failure}: {exc.strerror or exc}") from None


@click.command()
@click.option("-o", "--output", metavar="string", help="Write to a file, instead of STDOUT")
@click.argument("container")
@pass_app
def export(app: App, output: str | None, container: str) -> None:
    """Export a container's filesystem as a tar archive (streamed to STDOUT by default)."""
    _download(app, container_path(container, "/export"), {}, output,
              "failed to export container")


@click.command()
@click.option("-i", "--input", "input_", metavar="string",
              help="Read from tar archive file, instead of STDIN")
@click.option("-q", "--quiet", is_flag=True, help="Suppress the load output")
@click.option("--platform", "platforms", multiple=True, metavar="strings",
              help="Load only the given platform(s) (this engine stores one)")
@pass_app
def load(app: App, input_: str | None, quiet: bool, platforms: tuple[str, ...]) -> None:
    """Load an image from a tar archive or STDIN (docker save's or an OCI layout's)."""
    if not input_ and sys.stdin.isatty():
        raise CommandError("requested load from stdin, but stdin is empty")
    params = {"quiet": quiet or not sys.stdout.isatty(), "platform": list(platforms) or None}
    headers = {"Content-Type": "application/x-tar"}
    try:
        if input_:
            try:
                body = open(input_, "rb")  # noqa: SIM115 - closed below, after the upload
            except OSError as exc:
                raise CommandError(f"open {input_}: {exc.strerror or exc}") from None
            with body:
                response = app.client.call("POST", "/images/load", params, body=body,
                                           headers=headers)
        else:
            response = app.client.call("POST", "/images/load", params, body=sys.stdin.buffer,
                                       headers=headers)
        with response:
            show_messages(response)
    except ClientError as exc:
        raise CommandError(describe(exc)) from None


__all__ = ["check_output_path", "export", "load", "save"]
