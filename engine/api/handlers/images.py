"""`/images/…`: list, inspect, history, import and pull (`POST /images/create`), tag,
remove, prune, save (`GET /images/get`), load (`POST /images/load`). Pulls are
`engine.api.handlers.registry`'s; searching answers 501.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from contextlib import aclosing
from typing import TYPE_CHECKING, Any

from engine.api.handlers import registry as registry_api
from engine.api.http import (
    EmptyResponse,
    JSONResponse,
    RawResponse,
    Request,
    StreamResponse,
    StreamWriter,
)
from engine.api.router import Router
from engine.api.wire import images as wire
from engine.api.wire import progress as progress_wire
from engine.errors import EngineError, InvalidParameter, Unsupported
from engine.filtering import bool_filter, check_filters, labels_match
from engine.gopattern import go_pattern
from engine.images import archive
from engine.images.model import Image
from engine.images.reference import Reference, parse, parse_repository_and_tag
from engine.images.store import DeleteItem
from engine.timestamps import filter_time

if TYPE_CHECKING:
    from engine.engine import Engine

log = logging.getLogger(__name__)
router = Router()

_LIST_FILTERS = {"dangling", "label", "before", "since", "reference", "until"}
_PRUNE_FILTERS = {"dangling", "label", "label!", "until"}


# filters ----------------------------------------------------------------------


def go_path_match(pattern: str, name: str) -> bool:
    """Go's `path.Match`; a malformed pattern is an error, as in dockerd's filters."""
    regex = go_pattern(pattern)
    if regex is None:
        raise InvalidParameter("syntax error in pattern")
    return regex.match(name) is not None


def _reference_matches(patterns: list[str], ref: Reference) -> bool:
    return any(
        go_path_match(p, ref.familiar()) or go_path_match(p, ref.repository) for p in patterns
    )


def _created_before(until: list[str]) -> Callable[[Image], bool]:
    limits = [filter_time(u) for u in until]
    return lambda img: all(img.created < limit for limit in limits)


# list / inspect / history -----------------------------------------------------


@router.route("GET", "/images/json")
async def list_images(req: Request, engine: Engine) -> JSONResponse:
    filters = req.filters()
    if req.arg("filter"):  # the pre-1.13 form of a reference filter
        filters.setdefault("reference", []).append(req.arg("filter") or "")
    check_filters(filters, _LIST_FILTERS)
    dangling = bool_filter(filters, "dangling")
    patterns = filters.get("reference", [])
    before = [engine.images.resolve(r).created for r in filters.get("before", [])]
    since = [engine.images.resolve(r).created for r in filters.get("since", [])]
    until = _created_before(filters["until"]) if "until" in filters else None
    out = []
    images = engine.images.list()
    # an untagged image another one was built on is an intermediate step: hidden, as in
    # Docker, unless all=1
    parents = set() if req.flag("all") else {img.parent for img in images if img.parent}
    for image in images:
        if image.id in parents and not image.repo_tags and not image.repo_digests:
            continue
        if not labels_match(image.config.labels, filters):
            continue
        if any(image.created >= b for b in before) or any(image.created <= s for s in since):
            continue
        if until is not None and not until(image):
            continue
        is_dangling = not image.repo_tags and not image.repo_digests
        if dangling is True and not is_dangling:
            continue
        if dangling is False and is_dangling:
            continue
        shown = image
        if patterns:
            refs = [r for r in engine.images.references(image.id)
                    if _reference_matches(patterns, r)]
            if not refs:
                continue
            shown = Image(
                id=image.id, config=image.config, diff_ids=image.diff_ids,
                created=image.created, parent=image.parent,
                repo_tags=[r.familiar() for r in refs if r.digest is None],
                repo_digests=[f"{r.repository}@{r.digest}" for r in refs if r.digest],
            )
        out.append(wire.summary(shown, size=engine.images.layers_size(image),
                                api_version=req.api_version))
    return JSONResponse(out)


@router.route("GET", "/images/search")
async def search(req: Request, engine: Engine) -> JSONResponse:
    raise Unsupported("searching registries is not supported by moorage yet")


@router.route("GET", "/images/{name:path}/json")
async def inspect(req: Request, engine: Engine) -> JSONResponse:
    image = engine.images.resolve(req.params["name"])
    return JSONResponse(wire.inspect(
        image,
        size=engine.images.layers_size(image),
        layer_dirs=engine.images.layer_dirs(image),
        last_tag_time=engine.images.last_tag_time(image.id),
        api_version=req.api_version,
    ))


@router.route("GET", "/images/{name:path}/history")
async def history(req: Request, engine: Engine) -> JSONResponse:
    image = engine.images.resolve(req.params["name"])
    sizes = [engine.images.layer_size(d) for d in image.diff_ids]
    ancestors: list[Image] = []
    parent = engine.images.get(image.parent) if image.parent else None
    while parent is not None and len(ancestors) < len(image.history):
        ancestors.append(parent)
        parent = engine.images.get(parent.parent) if parent.parent else None
    return JSONResponse(wire.history(image, layer_sizes=sizes, ancestors=ancestors))


# create (import; pull is not there yet) -----------------------------------------


@router.route("POST", "/images/create")
async def create(req: Request, engine: Engine) -> RawResponse | StreamResponse:
    """Docker answers an import from the request body only at the end, so errors keep
    their status codes; the body is one JSON progress line with the new image's ID."""
    from_image = req.arg("fromImage") or ""
    from_src = req.arg("fromSrc") or ""
    if from_image:
        ref = parse(from_image, default_tag=False)
        tag = req.arg("tag") or ""
        if tag and ref.digest is None:
            ref = ref.with_tag(tag) if not tag.startswith("sha256:") else Reference(
                ref.domain, ref.path, None, tag)
        if ref.tag is None and ref.digest is None:
            ref = ref.with_tag("latest")
        return await registry_api.pull(req, engine, ref)
    if not from_src:
        raise InvalidParameter("fromImage or fromSrc is required")
    if from_src != "-":
        raise Unsupported(
            "importing from a URL is not supported by moorage; send the tarball in the "
            "request body (fromSrc=-), e.g. `docker import - < rootfs.tar`"
        )
    repo = req.arg("repo") or ""
    reference = parse_repository_and_tag(repo, req.arg("tag") or "") if repo else None
    message = req.arg("message") or f"Imported from {from_src}"
    image = await engine.images.import_rootfs(
        req.body_chunks(),
        reference=reference,
        changes=req.args("changes"),
        message=message,
        platform=req.arg("platform") or "",
    )
    engine.events.publish("image", "import", image.id,
                          {"name": reference.familiar() if reference else image.id})
    body = json.dumps({"status": image.id}).encode() + b"\r\n"
    return RawResponse(body, content_type="application/json")


# save / load ------------------------------------------------------------------------


def _image_event(engine: Engine, action: str, image_id: str) -> None:
    """Docker's image events carry the image's labels and `name` (here the image ID)."""
    image = engine.images.get(image_id)
    attributes = dict(image.config.labels) if image is not None else {}
    attributes["name"] = image_id
    engine.events.publish("image", action, image_id, attributes)


async def _save(engine: Engine, names: list[str]) -> StreamResponse:
    """Unknown names, corrupt blobs and the like fail before the 200 (the CLI prints
    them); the tar is then streamed, so a multi-GB save never sits in memory."""
    plan = await archive.prepare_save(engine.images, names)
    for saved in plan.images:
        _image_event(engine, "save", saved.image.id)

    async def produce(writer: StreamWriter) -> None:
        async with aclosing(plan.chunks()) as chunks:
            async for chunk in chunks:
                await writer.send(chunk)

    return StreamResponse(produce, content_type="application/x-tar")


@router.route("GET", "/images/get")
async def save_images(req: Request, engine: Engine) -> StreamResponse:
    """`docker save a b`: `names` repeated; `platform` is accepted (one platform here)."""
    return await _save(engine, req.args("names"))


@router.route("GET", "/images/{name:path}/get")
async def save_image(req: Request, engine: Engine) -> StreamResponse:
    return await _save(engine, [req.params["name"]])


def load_messages(loaded: list[archive.LoadedImage], *, quiet: bool) -> list[dict[str, Any]]:
    """The JSON messages `docker load` prints, in Docker's words."""
    out: list[dict[str, Any]] = []
    for image in loaded:
        if not quiet:
            for diff_id, size in image.new_layers:
                out.append({"status": "Loading layer",
                            "progressDetail": {"current": size, "total": size},
                            "id": diff_id.removeprefix("sha256:")[:12]})
        for tag in image.tags:
            if tag.previous is not None:
                out.append({"stream": f"The image {tag.name} already exists, renaming the old "
                                      f"one with ID {tag.previous} to empty string\n"})
            out.append({"stream": f"Loaded image: {tag.name}\n"})
        if not image.tags:
            out.append({"stream": f"Loaded image ID: {image.image_id}\n"})
    return out


@router.route("POST", "/images/load")
async def load(req: Request, engine: Engine) -> StreamResponse:
    """The load is done before the answer; the messages then go out chunked, one JSON
    object a line, as docker-py reads them. A failed load is a 200 too, its error the
    stream's one `errorDetail` line: dockerd answers so, and docker-py raises
    `ImageLoadError` only for that."""
    quiet = req.flag("quiet", True)
    try:
        loaded = await archive.load_archive(engine.images, req.body_chunks())
    except EngineError as exc:
        failure = exc.message
    except OSError as exc:  # a full or failing disk: the store's trouble, said without paths
        log.error("loading an image archive failed", exc_info=True)
        failure = f"loading the archive failed: {exc.strerror or exc.__class__.__name__}"
    else:
        for image in loaded:
            _image_event(engine, "load", image.image_id)
        lines = [json.dumps(m).encode() + b"\n" for m in load_messages(loaded, quiet=quiet)]
        return StreamResponse(_send_all(lines), content_type="application/json")
    return StreamResponse(_send_all([progress_wire.encode_error(failure)]),
                          content_type="application/json")


def _send_all(lines: list[bytes]) -> Callable[[StreamWriter], Awaitable[None]]:
    async def produce(writer: StreamWriter) -> None:
        for line in lines:
            await writer.send(line)

    return produce


# tag / delete / prune -------------------------------------------------------------


@router.route("POST", "/images/prune")
async def prune(req: Request, engine: Engine) -> JSONResponse:
    filters = req.filters()
    check_filters(filters, _PRUNE_FILTERS)
    dangling = bool_filter(filters, "dangling")
    dangling_only = True if dangling is None else dangling
    until = _created_before(filters["until"]) if "until" in filters else None

    def select(image: Image) -> bool:
        if until is not None and not until(image):
            return False
        return labels_match(image.config.labels, filters)

    def in_use(image_id: str) -> bool:
        return bool(engine.containers.image_users(image_id))

    items, reclaimed = await engine.images.prune(
        dangling_only=dangling_only, in_use=in_use, select=select
    )
    _publish_deletions(engine, items)
    engine.events.publish("image", "prune", "", {"reclaimed": str(reclaimed)})
    return JSONResponse(wire.prune_report(items, reclaimed))


@router.route("POST", "/images/{name:path}/tag")
async def tag(req: Request, engine: Engine) -> EmptyResponse:
    reference = parse_repository_and_tag(req.arg("repo") or "", req.arg("tag") or "")
    await engine.images.tag(req.params["name"], reference)
    image = engine.images.resolve(reference.familiar())
    engine.events.publish("image", "tag", image.id, {"name": reference.familiar()})
    return EmptyResponse(201)


@router.route("DELETE", "/images/{name:path}")
async def remove(req: Request, engine: Engine) -> JSONResponse:
    name = req.params["name"]
    if not name.strip():
        raise InvalidParameter("image name cannot be blank")
    items = await engine.images.delete(
        name,
        force=req.flag("force"),
        prune_children=not req.flag("noprune"),
        in_use_by=engine.containers.image_users,
    )
    _publish_deletions(engine, items)
    return JSONResponse(wire.delete_items(items))


def _publish_deletions(engine: Engine, items: list[DeleteItem]) -> None:
    for item in items:
        if item.untagged:
            engine.events.publish("image", "untag", item.untagged, {"name": item.untagged})
        if item.deleted:
            engine.events.publish("image", "delete", item.deleted, {"name": item.deleted})


__all__ = ["go_path_match", "load_messages", "router"]
