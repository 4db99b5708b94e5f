"""`GET /system/df`: the disk usage `docker system df` shows (Engine API 1.50 shape).

Images come with `Containers` (every container made from them, in any state) and
`SharedSize` (their layers that other images list too), `LayersSize` is each layer
once; containers with `SizeRw` (their writable layer) and `SizeRootFs` (that plus the
image; `engine/containers/sizes.py`, as `ps -s` counts them); volumes with
`UsageData`. As in Docker only `local` volumes without driver options are listed: the
others' data is not a directory moord can measure. There is no builder, so
`BuildCache` is always empty. Sizes of directories are walked in one
worker-thread hop per request: they can be large.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio

from engine.api.http import JSONResponse, Request
from engine.api.router import Router
from engine.api.wire import containers as containers_wire
from engine.api.wire import images as images_wire
from engine.api.wire import volumes as volumes_wire
from engine.containers.sizes import container_sizes
from engine.errors import InvalidParameter
from engine.volumes.copy import tree_size
from engine.volumes.model import DEFAULT_DRIVER

if TYPE_CHECKING:
    from engine.containers.model import Container
    from engine.engine import Engine
    from engine.images.model import Image
    from engine.volumes.model import Volume

router = Router()

_TYPES = ("container", "image", "volume", "build-cache")


def _wanted(req: Request) -> set[str]:
    """The `type=` parameters (API 1.42 and later); none, or an older API, means all."""
    requested = req.args("type")
    if not requested or images_wire.older_than(req.api_version, "1.42"):
        return set(_TYPES)
    for kind in requested:
        if kind not in _TYPES:
            raise InvalidParameter(f"unknown object type: {kind}")
    return set(requested)


def _sizes_sync(paths: list[Path]) -> list[int]:
    """Bytes of the regular files under each path (0 for a path that is not there)."""
    sizes = []
    for path in paths:
        try:
            sizes.append(tree_size(path))
        except OSError:
            sizes.append(0)
    return sizes


def _images_json(engine: Engine, images: list[Image], containers: list[Container],
                 api_version: str) -> tuple[int, list[dict[str, Any]]]:
    """(LayersSize, Images): every layer counted once; shared means listed by 2+ images."""
    store = engine.images
    users = Counter(c.image_id for c in containers)
    listed_by = Counter(d for image in images for d in set(image.diff_ids))
    layers_size = sum(store.layer_size(d) for d in listed_by)
    out = []
    for image in images:
        summary = images_wire.summary(image, size=store.layers_size(image),
                                      api_version=api_version)
        summary["Containers"] = users[image.id]
        summary["SharedSize"] = sum(store.layer_size(d) for d in image.diff_ids
                                    if listed_by[d] > 1)
        out.append(summary)
    return layers_size, out


@router.route("GET", "/system/df")
async def disk_usage(req: Request, engine: Engine) -> JSONResponse:
    wanted = _wanted(req)
    containers = engine.containers.all()
    volumes: list[Volume] = []
    if "volume" in wanted:
        volumes = [v for v in engine.volumes.list()
                   if v.driver == DEFAULT_DRIVER and not v.options]
    shown = containers if "container" in wanted else []
    sizes = await container_sizes(engine.containers, shown)
    volume_sizes = await trio.to_thread.run_sync(
        _sizes_sync, [Path(v.mountpoint) for v in volumes])
    body: dict[str, Any] = {"LayersSize": 0, "Images": None, "Containers": None,
                            "Volumes": None, "BuildCache": None}
    if "image" in wanted:
        body["LayersSize"], body["Images"] = _images_json(
            engine, engine.images.list(), containers, req.api_version)
    if "container" in wanted:
        body["Containers"] = []
        for c, measured in zip(shown, sizes, strict=True):
            summary = containers_wire.summary_json(
                c, containers_wire.shown_image(c, engine.images.resolve), engine.networks)
            summary["SizeRw"] = measured.rw
            summary["SizeRootFs"] = measured.root_fs
            body["Containers"].append(summary)
    if "volume" in wanted:
        body["Volumes"] = []
        for volume, size in zip(volumes, volume_sizes, strict=True):
            entry = volumes_wire.volume_json(volume)
            entry["UsageData"] = {"Size": size, "RefCount": len(engine.volumes.users(volume.name))}
            body["Volumes"].append(entry)
    if "build-cache" in wanted:
        body["BuildCache"] = []
    return JSONResponse(body)
