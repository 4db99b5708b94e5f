"""Image commands: images, import, tag, rmi, pull, image prune."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable
from typing import IO, Any

import attrs
import click

from engine.cli.app import App, confirm, describe, for_each, out, pass_app
from engine.cli.client import Client, ClientError, Response, quote_path
from engine.cli.credentials import registry_auth_header
from engine.cli.errors import CommandError
from engine.cli.formatting import (
    TemplateError,
    ellipsis,
    go_time,
    human_size,
    render_listing,
    since,
    truncate_id,
)
from engine.cli.options import OptionError, build_filters, split_reference
from engine.cli.progress import TerminalProgress
from engine.cli.streams import json_lines
from engine.errors import InvalidParameter
from engine.images.reference import parse as parse_reference


def show_messages(response: Response, stream: IO[str] | None = None) -> list[Any]:
    """Print a JSON-message stream (pull, import) the way docker does without a TTY.

    Status lines are printed, pure progress updates skipped; an in-band error ends
    the command. Returns the `aux` payloads (image IDs) for callers that want them.
    """
    target = stream or sys.stdout
    terminal = TerminalProgress(target) if target.isatty() else None
    aux: list[Any] = []
    for message in json_lines(response.iter_body()):
        if not isinstance(message, dict):
            continue
        detail = message.get("errorDetail") or {}
        if message.get("error") or detail.get("message"):
            raise CommandError(str(detail.get("message") or message.get("error")))
        if "aux" in message:
            aux.append(message["aux"])
            continue
        if terminal is not None and message.get("status"):
            terminal.show(message)
        elif "stream" in message:
            target.write(str(message["stream"]))
        elif message.get("status"):
            progress = message.get("progressDetail") or {}
            if progress.get("current") is not None or message.get("progress"):
                continue
            prefix = f"{message['id']}: " if message.get("id") else ""
            target.write(f"{prefix}{message['status']}\n")
        target.flush()
    return aux


def pull_image(client: Client, image: str, stream: IO[str] | None = None) -> None:
    """POST /images/create?fromImage=…; pulling is the daemon's job, we show its progress.

    The stored login for the image's registry goes along as `X-Registry-Auth`.
    """
    try:
        ref = parse_reference(image, default_tag=False)
    except InvalidParameter as exc:
        raise CommandError(f"invalid reference format: {exc.message}") from None
    tag = ref.digest or ref.tag or "latest"
    if ref.digest is None and ref.tag is None:
        (stream or sys.stderr).write("Using default tag: latest\n")
    response = client.call("POST", "/images/create", {"fromImage": ref.name, "tag": tag},
                           headers={"X-Registry-Auth": registry_auth_header(ref.domain)})
    with response:
        show_messages(response, stream or sys.stderr)


# --- images ----------------------------------------------------------------------------

IMAGES_TABLE = ("table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}")
IMAGES_HEADERS = {
    "Repository": "REPOSITORY", "Tag": "TAG", "Digest": "DIGEST", "ID": "IMAGE ID",
    "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "Size": "SIZE",
    "Containers": "CONTAINERS", "SharedSize": "SHARED SIZE", "UniqueSize": "UNIQUE SIZE",
    "VirtualSize": "VIRTUAL SIZE",
}


def _split_named(ref: str) -> tuple[str, str]:
    """`repo:tag` or `repo@digest` → (repo, tag-or-digest)."""
    if "@" in ref:
        repo, digest = ref.split("@", 1)
        return repo, digest
    slash, colon = ref.rfind("/"), ref.rfind(":")
    if colon > slash:
        return ref[:colon], ref[colon + 1:]
    return ref, ""


@attrs.define
class ImageRow:
    """One `images` line: an image under one repository:tag."""

    data: dict[str, Any]
    repository: str = "<none>"
    tag: str = "<none>"
    digest: str = "<none>"
    trunc: bool = True
    now: float = attrs.field(factory=time.time)

    def field(self, name: str) -> Any:
        getter = getattr(self, f"_f_{name}", None)
        if getter is None:
            raise TemplateError(f"can't evaluate field {name} in type image")
        return getter()

    def as_dict(self) -> dict[str, Any]:
        return {name: self.field(name) for name in sorted(IMAGES_HEADERS)}

    def _f_ID(self) -> str:
        return truncate_id(str(self.data.get("Id", "")), full=not self.trunc)

    def _f_Repository(self) -> str:
        return self.repository

    def _f_Tag(self) -> str:
        return self.tag

    def _f_Digest(self) -> str:
        return self.digest

    def _f_CreatedSince(self) -> str:
        created = float(self.data.get("Created") or 0)
        return since(created, self.now) if created > 0 else "N/A"

    def _f_CreatedAt(self) -> str:
        return go_time(float(self.data.get("Created") or 0))

    def _f_Size(self) -> str:
        return human_size(self.data.get("Size") or 0, 3)

    def _f_VirtualSize(self) -> str:
        return human_size(self.data.get("VirtualSize") or self.data.get("Size") or 0)

    def _f_SharedSize(self) -> str:
        shared = self.data.get("SharedSize", -1)
        return "N/A" if shared is None or shared < 0 else human_size(shared, 3)

    def _f_UniqueSize(self) -> str:
        shared = self.data.get("SharedSize", -1)
        if shared is None or shared < 0:
            return "N/A"
        return human_size((self.data.get("Size") or 0) - shared)

    def _f_Containers(self) -> str:
        count = self.data.get("Containers", -1)
        return "N/A" if count is None or count < 0 else str(count)


def image_rows(images: Iterable[dict[str, Any]], trunc: bool = True,
               show_digests: bool = False) -> list[ImageRow]:
    """One row per repository:tag; digest-only repos get tag `<none>`; bare images one row.

    Like docker, a tagged row's digest is shown only when asked for (`--digests`).
    """
    rows: list[ImageRow] = []
    now = time.time()
    for image in images:
        tags = [t for t in image.get("RepoTags") or [] if t != "<none>:<none>"]
        repo_digests = [d for d in image.get("RepoDigests") or [] if d != "<none>@<none>"]
        digest_of: dict[str, str] = {}
        for entry in repo_digests:
            repo, digest = _split_named(entry)
            digest_of.setdefault(repo, digest)
        seen: set[str] = set()
        for entry in tags:
            repo, tag = _split_named(entry)
            seen.add(repo)
            digest = digest_of.get(repo, "<none>") if show_digests else "<none>"
            rows.append(ImageRow(image, repo, tag or "<none>", digest, trunc, now))
        for repo, digest in digest_of.items():
            if repo not in seen:
                rows.append(ImageRow(image, repo, "<none>", digest if show_digests else "",
                                     trunc, now))
                seen.add(repo)
        if not seen:
            rows.append(ImageRow(image, trunc=trunc, now=now))
    return rows


@click.command()
@click.option("-a", "--all", "all_", is_flag=True,
              help="Show all images (default hides intermediate images)")
@click.option("--digests", is_flag=True, help="Show digests")
@click.option("-f", "--filter", "filters", multiple=True, metavar="FILTER",
              help="Filter output based on conditions provided (key=value)")
@click.option("--format", "fmt", metavar="STRING",
              help="Format output: 'table', 'table TEMPLATE', 'json', or a Go template")
@click.option("--no-trunc", is_flag=True, help="Don't truncate output")
@click.option("-q", "--quiet", is_flag=True, help="Only show image IDs")
@click.argument("reference", required=False, metavar="[REPOSITORY[:TAG]]")
@pass_app
def images(app: App, all_: bool, digests: bool, filters: tuple[str, ...], fmt: str | None,
           no_trunc: bool, quiet: bool, reference: str | None) -> None:
    """List images."""
    all_filters = list(filters) + ([f"reference={reference}"] if reference else [])
    try:
        params = {"all": all_ or None, "filters": build_filters(all_filters)}
        found = app.client.get_json("/images/json", params) or []
    except (ClientError, OptionError) as exc:
        raise CommandError(describe(exc)) from None
    rows = image_rows(found, trunc=not no_trunc, show_digests=digests)
    if quiet:
        ids: list[str] = []
        for row in rows:
            if (ident := row.field("ID")) not in ids:
                ids.append(ident)
        out("".join(f"{i}\n" for i in ids))
        return
    table = IMAGES_TABLE
    if digests:
        table = table.replace("{{.Tag}}\t", "{{.Tag}}\t{{.Digest}}\t")
    try:
        out(render_listing(fmt, rows, table, IMAGES_HEADERS))
    except TemplateError as exc:
        raise CommandError(f"failed to execute template: {exc}") from None


# --- import / tag / rmi / pull / prune -------------------------------------------------

@click.command(name="import")
@click.option("-c", "--change", "changes", multiple=True, metavar="LIST",
              help="Apply Dockerfile instruction to the created image")
@click.option("-m", "--message", default="", metavar="STRING",
              help="Set commit message for imported image")
@click.option("--platform", metavar="STRING", help="Set platform if server is multi-platform "
                                                    "capable")
@click.argument("source", metavar="file|URL|-")
@click.argument("reference", required=False, metavar="[REPOSITORY[:TAG]]")
@pass_app
def import_(app: App, changes: tuple[str, ...], message: str, platform: str | None,
            source: str, reference: str | None) -> None:
    """Import the contents from a tarball to create a filesystem image.

    The tarball is streamed to the daemon as it is read; `-` reads it from stdin.
    """
    repo, tag = ("", "")
    if reference:
        repo, tag = split_reference(reference)
    params: dict[str, Any] = {"fromSrc": "-", "repo": repo or None, "tag": tag or None,
                              "message": message or None, "changes": list(changes),
                              "platform": platform}
    try:
        if source.startswith(("http://", "https://")):
            params["fromSrc"] = source
            response = app.client.call("POST", "/images/create", params)
        elif source == "-":
            response = app.client.call("POST", "/images/create", params,
                                       body=sys.stdin.buffer,
                                       headers={"Content-Type": "application/x-tar"})
        else:
            try:
                body = open(source, "rb")  # noqa: SIM115 - closed below, after the upload
            except OSError as exc:
                raise CommandError(f"open {source}: {exc.strerror or exc}") from None
            with body:
                response = app.client.call("POST", "/images/create", params, body=body,
                                           headers={"Content-Type": "application/x-tar"})
        with response:
            show_messages(response)
    except ClientError as exc:
        raise CommandError(describe(exc)) from None


@click.command()
@click.argument("source", metavar="SOURCE_IMAGE[:TAG]")
@click.argument("target", metavar="TARGET_IMAGE[:TAG]")
@pass_app
def tag(app: App, source: str, target: str) -> None:
    """Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE."""
    repo, tag_ = split_reference(target)
    if not tag_:
        raise CommandError("refusing to create a tag with a digest reference")
    try:
        app.client.call("POST", f"/images/{quote_path(source)}/tag",
                        {"repo": repo, "tag": tag_}).close()
    except ClientError as exc:
        raise CommandError(describe(exc)) from None


@click.command()
@click.option("-f", "--force", is_flag=True, help="Force removal of the image")
@click.option("--no-prune", is_flag=True, help="Do not delete untagged parents")
@click.argument("names", nargs=-1, required=True, metavar="IMAGE [IMAGE...]")
@pass_app
def rmi(app: App, force: bool, no_prune: bool, names: tuple[str, ...]) -> None:
    """Remove one or more images."""
    client = app.client

    def one(name: str) -> None:
        result = client.call("DELETE", f"/images/{quote_path(name)}",
                             {"force": force or None, "noprune": no_prune or None}).json()
        for item in result or []:
            if item.get("Untagged"):
                out(f"Untagged: {item['Untagged']}\n")
            if item.get("Deleted"):
                out(f"Deleted: {item['Deleted']}\n")

    for_each(names, one)


@click.command()
@click.argument("name", metavar="NAME[:TAG|@DIGEST]")
@pass_app
def pull(app: App, name: str) -> None:
    """Download an image from a registry."""
    try:
        pull_image(app.client, name, sys.stdout)
    except ClientError as exc:
        raise CommandError(describe(exc)) from None


@click.command(name="prune")
@click.option("-a", "--all", "all_", is_flag=True,
              help="Remove all unused images, not just dangling ones")
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation")
@click.option("--filter", "filters", multiple=True, metavar="FILTER",
              help="Provide filter values (e.g. \"until=<timestamp>\")")
@pass_app
def image_prune(app: App, all_: bool, force: bool, filters: tuple[str, ...]) -> None:
    """Remove unused images."""
    warning = ("WARNING! This will remove all images without at least one container "
               "associated to them." if all_ else "WARNING! This will remove all dangling "
               "images.")
    if not force and not confirm(f"{warning}\nAre you sure you want to continue? [y/N] "):
        return
    try:
        query = build_filters([*filters, f"dangling={'false' if all_ else 'true'}"])
        result = app.client.post_json("/images/prune", {"filters": query}) or {}
    except (ClientError, OptionError) as exc:
        raise CommandError(describe(exc)) from None
    deleted = result.get("ImagesDeleted") or []
    if deleted:
        lines = ["Deleted Images:"]
        for item in deleted:
            if item.get("Untagged"):
                lines.append(f"untagged: {item['Untagged']}")
            if item.get("Deleted"):
                lines.append(f"deleted: {item['Deleted']}")
        out("\n".join(lines) + "\n\n")
    out(f"Total reclaimed space: {human_size(result.get('SpaceReclaimed') or 0)}\n")


# --- history -----------------------------------------------------------------------------

HISTORY_TABLE = "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}"
HISTORY_HEADERS = {"ID": "IMAGE", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT",
                   "CreatedBy": "CREATED BY", "Size": "SIZE", "Comment": "COMMENT"}
_HISTORY_EPOCH = 946684800  # 2000-01-01: docker shows older (unset) dates as N/A


def rfc3339_local(timestamp: float) -> str:
    """Go's `time.Unix(t, 0).Format(time.RFC3339)`: local time, `Z` for a zero offset."""
    moment = time.localtime(timestamp)
    offset = moment.tm_gmtoff or 0
    if offset == 0:
        zone = "Z"
    else:
        sign = "+" if offset > 0 else "-"
        hours, minutes = divmod(abs(offset) // 60, 60)
        zone = f"{sign}{hours:02d}:{minutes:02d}"
    return time.strftime("%Y-%m-%dT%H:%M:%S", moment) + zone


@attrs.define
class HistoryRow:
    """One `history` line: a layer or an empty step of the image's build."""

    data: dict[str, Any]
    trunc: bool = True
    human: bool = True
    now: float = attrs.field(factory=time.time)

    def field(self, name: str) -> Any:
        getter = getattr(self, f"_f_{name}", None)
        if getter is None:
            raise TemplateError(f"can't evaluate field {name} in type history")
        return getter()

    def as_dict(self) -> dict[str, Any]:
        return {name: self.field(name) for name in sorted(HISTORY_HEADERS)}

    def _f_ID(self) -> str:
        return truncate_id(str(self.data.get("Id") or ""), full=not self.trunc)

    def _f_CreatedAt(self) -> str:
        return rfc3339_local(int(self.data.get("Created") or 0))

    def _f_CreatedSince(self) -> str:
        if not self.human:
            return self._f_CreatedAt()
        created = int(self.data.get("Created") or 0)
        return "N/A" if created <= _HISTORY_EPOCH else since(created, self.now)

    def _f_CreatedBy(self) -> str:
        created_by = str(self.data.get("CreatedBy") or "").replace("\t", " ")
        return ellipsis(created_by, 45) if self.trunc else created_by

    def _f_Size(self) -> str:
        size = int(self.data.get("Size") or 0)
        return human_size(size, 3) if self.human else str(size)

    def _f_Comment(self) -> str:
        return str(self.data.get("Comment") or "")


@click.command()
@click.option("-H", "--human/--no-human", default=True, show_default=True,
              help="Print sizes and dates in human readable format (--human=false: raw)")
@click.option("--no-trunc", is_flag=True, help="Don't truncate output")
@click.option("-q", "--quiet", is_flag=True, help="Only show image IDs")
@click.option("--format", "fmt", metavar="STRING",
              help="Format output: 'table', 'table TEMPLATE', 'json', or a Go template")
@click.argument("image", metavar="IMAGE")
@pass_app
def history(app: App, human: bool, no_trunc: bool, quiet: bool, fmt: str | None,
            image: str) -> None:
    """Show the history of an image."""
    try:
        items = app.client.get_json(f"/images/{quote_path(image)}/history") or []
    except ClientError as exc:
        raise CommandError(describe(exc)) from None
    now = time.time()
    rows = [HistoryRow(item, trunc=not no_trunc, human=human, now=now) for item in items]
    table = HISTORY_TABLE if human else HISTORY_TABLE.replace("CreatedSince", "CreatedAt")
    if fmt in (None, "", "table") and quiet:
        fmt = "{{.ID}}"
    try:
        out(render_listing(fmt, rows, table, HISTORY_HEADERS))
    except TemplateError as exc:
        raise CommandError(f"failed to execute template: {exc}") from None
