"""`moor build`: the context as a tar (minus what `.dockerignore` excludes), sent to the
classic builder, its output shown as `docker build` shows it."""

from __future__ import annotations

import base64
import io
import json
import os
import secrets
import sys
import tarfile
import tempfile
from pathlib import Path

import click

from engine.build.dockerignore import DockerIgnore
from engine.cli.app import App, describe, out, pass_app
from engine.cli.client import ClientError, ParamValue
from engine.cli.errors import CommandError
from engine.cli.images import show_messages


def _ignore(context: Path, dockerfile: str) -> DockerIgnore | None:
    path = context / ".dockerignore"
    if not path.is_file():
        return None
    return DockerIgnore.parse(path.read_bytes()).with_build_files_kept(dockerfile)


def add_outside_dockerfile(context: Path, text: bytes, target: tarfile.TarFile) -> str:
    """A Dockerfile from outside the context (`-f -`, `-f ../Dockerfile`) added to it
    under a generated name, as the docker CLI adds it: that name and `.dockerignore` are
    appended to the `.dockerignore` sent, so neither is part of what COPY sees. Call
    after `write_context` (which then must skip `.dockerignore`); returns the name."""
    name = f".dockerfile.{secrets.token_hex(10)}"
    ignore = context / ".dockerignore"
    rules = ignore.read_bytes() if ignore.is_file() else b""
    for member, data in ((name, text), (".dockerignore", rules + f"\n.dockerignore\n{name}\n".encode())):
        info = tarfile.TarInfo(member)
        info.size, info.mode = len(data), 0o600
        target.addfile(info, io.BytesIO(data))
    return name


def write_context(context: Path, dockerfile: str, target: tarfile.TarFile, *,
                  skip: tuple[str, ...] = ()) -> None:
    """Add the context's files to `target`, skipping what `.dockerignore` excludes and
    the top-level names in `skip`."""
    ignore = _ignore(context, dockerfile)
    for top, dirs, files in os.walk(context):
        rel_top = os.path.relpath(top, context)
        rel_top = "" if rel_top == "." else rel_top
        for name in sorted(dirs):
            rel = f"{rel_top}/{name}" if rel_top else name
            if ignore is not None and ignore.excludes(rel) and ignore.can_skip_directory(rel):
                dirs.remove(name)
        dirs.sort()
        if rel_top and not (ignore is not None and ignore.excludes(rel_top)):
            target.add(top, arcname=rel_top, recursive=False)
        for name in sorted(files):
            rel = f"{rel_top}/{name}" if rel_top else name
            if (ignore is not None and ignore.excludes(rel)) or rel in skip:
                continue
            target.add(os.path.join(top, name), arcname=rel, recursive=False)


@click.command()
@click.option("-t", "--tag", "tags", multiple=True, help="Name and optionally a tag (name:tag)")
@click.option("-f", "--file", "dockerfile", default="", help="Name of the Dockerfile")
@click.option("--build-arg", "build_args", multiple=True, help="Set build-time variables")
@click.option("--label", "labels", multiple=True, help="Set metadata for an image")
@click.option("--target", default="", help="Set the target build stage to build")
@click.option("--no-cache", is_flag=True, help="Do not use cache when building the image")
@click.option("--pull", is_flag=True, help="Always attempt to pull a newer version of the image")
@click.option("--network", default="", help="Networking mode for the RUN instructions")
@click.option("--add-host", "add_hosts", multiple=True,
              help="Add a custom host-to-IP mapping (host:ip) for the RUN instructions")
@click.option("--cache-from", "cache_from", multiple=True,
              help="Images to consider as cache sources")
@click.option("-q", "--quiet", is_flag=True, help="Suppress the build output and print image ID")
@click.argument("context", type=click.Path(exists=True, file_okay=False))
@pass_app
def build(app: App, tags: tuple[str, ...], dockerfile: str, build_args: tuple[str, ...],
          labels: tuple[str, ...], target: str, no_cache: bool, pull: bool, network: str,
          add_hosts: tuple[str, ...], cache_from: tuple[str, ...], quiet: bool,
          context: str) -> None:
    """Build an image from a Dockerfile (the classic builder)."""
    root = Path(context)
    name = dockerfile or "Dockerfile"
    outside: bytes | None = None  # a Dockerfile that is not in the context
    if dockerfile == "-":
        outside = sys.stdin.buffer.read()
    elif dockerfile:
        # -f is relative to the working directory, as the docker CLI takes it
        name = os.path.relpath(os.path.abspath(dockerfile), root.resolve())
        if name == ".." or name.startswith("../"):
            try:
                outside = Path(dockerfile).read_bytes()
            except OSError as exc:
                raise CommandError(f"unable to read the Dockerfile {dockerfile}: "
                                   f"{exc.strerror}") from None
    args: dict[str, str | None] = {}
    for item in build_args:
        key, sep, value = item.partition("=")
        args[key] = value if sep else os.environ.get(key)
    params: dict[str, ParamValue] = {
        "t": list(tags), "dockerfile": name, "target": target,
        "buildargs": json.dumps({k: v for k, v in args.items() if v is not None}),
        "labels": json.dumps(dict(item.partition("=")[::2] for item in labels)),
        "nocache": "1" if no_cache else "0", "pull": "1" if pull else "0",
        "q": "1" if quiet else "0", "rm": "1",
    }
    if network:
        params["networkmode"] = network
    if add_hosts:
        params["extrahosts"] = list(add_hosts)
    if cache_from:
        params["cachefrom"] = json.dumps(list(cache_from))
    with tempfile.TemporaryFile() as spool:
        with tarfile.open(fileobj=spool, mode="w", format=tarfile.PAX_FORMAT) as tf:
            if outside is None:
                write_context(root, name, tf)
            else:
                write_context(root, name, tf, skip=(".dockerignore",))
                params["dockerfile"] = add_outside_dockerfile(root, outside, tf)
        spool.seek(0)
        empty = base64.urlsafe_b64encode(b"{}").decode()
        try:
            response = app.client.call("POST", "/build", params, body=spool,
                                       headers={"Content-Type": "application/x-tar",
                                                "X-Registry-Config": empty})
            with response:
                aux = show_messages(response, open(os.devnull, "w") if quiet else sys.stdout)  # noqa: SIM115
        except ClientError as exc:
            raise CommandError(describe(exc)) from None
    if quiet:
        ids = [a.get("ID") for a in aux if isinstance(a, dict) and a.get("ID")]
        if ids:
            out(f"{ids[-1]}\n")





@click.command(name="prune")
@click.option("-a", "--all", "all_", is_flag=True, help="Remove all unused build cache")
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation")
@pass_app
def builder_prune(app: App, all_: bool, force: bool) -> None:
    """Remove the build cache (and the intermediate images only it kept)."""
    from engine.cli.app import confirm
    from engine.cli.formatting import human_size

    if not force and not confirm("WARNING! This will remove all dangling build cache. "
                                 "Are you sure you want to continue? [y/N] "):
        return
    try:
        result = app.client.post_json("/build/prune", {"all": "1" if all_ else "0"}) or {}
    except ClientError as exc:
        raise CommandError(describe(exc)) from None
    deleted = result.get("CachesDeleted") or []
    if deleted:
        out("Deleted build cache objects:\n" + "".join(f"{d}\n" for d in deleted) + "\n")
    out(f"Total reclaimed space: {human_size(result.get('SpaceReclaimed') or 0)}\n")
__all__ = ["build", "builder_prune", "write_context"]
