"""Image records → Docker's JSON (ImageSummary, ImageInspect, history, delete, prune).

Shapes follow the Engine API 1.50 swagger, and what older API versions expected
where clients still ask for them (`VirtualSize` before 1.44, `<none>` placeholders
before 1.43, `Container`/`ContainerConfig` before 1.45).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.images import ociconfig
from engine.images.model import Image, ImageConfig
from engine.images.store import DeleteItem

if TYPE_CHECKING:  # the registry client loads httpx: not at moord's start-up
    from engine.registry.distribution import DistributionInfo


def version_tuple(version: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in version.split("."))
    except ValueError:
        return (0,)


def older_than(version: str, other: str) -> bool:
    return version_tuple(version) < version_tuple(other)


def _nullable_list(value: list[str] | None) -> list[str] | None:
    return list(value) if value is not None else None


def _set_or_none(values: Sequence[str]) -> dict[str, dict[str, Any]] | None:
    return {v: {} for v in values} if values else None


def healthcheck(config: ImageConfig) -> dict[str, Any] | None:
    if config.healthcheck is None:
        return None
    return ociconfig.healthcheck_to_json(config.healthcheck)


def image_config(config: ImageConfig, api_version: str) -> dict[str, Any]:
    """The image's `Config` as Docker shows it in inspect.

    Up to API 1.51 Docker shows the container-config shape: every field present,
    empty ones as "", false or null. From 1.52 only the image-config fields that are set.
    """
    if not older_than(api_version, "1.52"):
        return ociconfig.config_to_json(config)
    out: dict[str, Any] = {
        "Hostname": "",
        "Domainname": "",
        "User": config.user,
        "AttachStdin": False,
        "AttachStdout": False,
        "AttachStderr": False,
    }
    if config.exposed_ports:
        out["ExposedPorts"] = {p: {} for p in config.exposed_ports}
    out.update({
        "Tty": False,
        "OpenStdin": False,
        "StdinOnce": False,
        "Env": list(config.env) if config.env else None,
        "Cmd": _nullable_list(config.cmd),
    })
    hc = healthcheck(config)
    if hc is not None:
        out["Healthcheck"] = hc
    if config.args_escaped:
        out["ArgsEscaped"] = True
    out.update({
        "Image": "",
        "Volumes": _set_or_none(config.volumes),
        "WorkingDir": config.working_dir,
        "Entrypoint": _nullable_list(config.entrypoint),
        "OnBuild": list(config.on_build) if config.on_build else None,
        "Labels": dict(config.labels) if config.labels else None,
    })
    if config.stop_signal:
        out["StopSignal"] = config.stop_signal
    if config.shell is not None:
        out["Shell"] = list(config.shell)
    return out


def summary(image: Image, *, size: int, api_version: str) -> dict[str, Any]:
    """One entry of `GET /images/json`."""
    repo_tags: list[str] = list(image.repo_tags)
    repo_digests: list[str] = list(image.repo_digests)
    if older_than(api_version, "1.43") and not repo_tags and not repo_digests:
        repo_tags = ["<none>:<none>"]
        repo_digests = ["<none>@<none>"]
    out: dict[str, Any] = {
        "Containers": -1,
        "Created": ociconfig.unix_seconds(image.created),
        "Id": image.id,
        "Labels": dict(image.config.labels) if image.config.labels else None,
        "ParentId": image.parent,
        "RepoDigests": repo_digests,
        "RepoTags": repo_tags,
        "SharedSize": -1,
        "Size": size,
    }
    if older_than(api_version, "1.44"):
        out["VirtualSize"] = size
    return out


def graph_driver(layer_dirs: Sequence[Path]) -> dict[str, Any]:
    """Overlay paths of the image's layers: the top one as UpperDir, the rest below it."""
    data: dict[str, str] = {}
    if layer_dirs:
        data["UpperDir"] = str(layer_dirs[0])
        if len(layer_dirs) > 1:
            data["LowerDir"] = ":".join(str(p) for p in layer_dirs[1:])
    return {"Data": data or None, "Name": "overlay"}


def inspect(
    image: Image,
    *,
    size: int,
    layer_dirs: Sequence[Path],
    last_tag_time: Any,
    api_version: str,
) -> dict[str, Any]:
    """`GET /images/{name}/json`."""
    config = image_config(image.config, api_version)
    out: dict[str, Any] = {
        "Id": image.id,
        "RepoTags": list(image.repo_tags),
        "RepoDigests": list(image.repo_digests),
        "Parent": image.parent,
        "Comment": image.comment,
        "Created": ociconfig.format_time(image.created),
    }
    if older_than(api_version, "1.45"):
        out["Container"] = ""
        out["ContainerConfig"] = image_config(ImageConfig(), api_version)
    out.update({
        "DockerVersion": "",
        "Author": image.author,
        "Config": config,
        "Architecture": image.architecture,
    })
    if image.variant:
        out["Variant"] = image.variant
    out.update({
        "Os": image.os,
        "Size": size,
    })
    if older_than(api_version, "1.44"):
        out["VirtualSize"] = size
    out.update({
        "GraphDriver": graph_driver(layer_dirs),
        "RootFS": {"Type": "layers", "Layers": list(image.diff_ids)},
        "Metadata": {"LastTagTime": ociconfig.format_time(last_tag_time)},
    })
    return out


def history(image: Image, *, layer_sizes: Sequence[int],
            ancestors: Sequence[Image] = ()) -> list[dict[str, Any]]:
    """`GET /images/{name}/history`: newest first.

    As dockerd fills it in: the top entry carries the image's ID and tags, the next its
    parent's (`ancestors`: parent, grandparent, … as far as the store has them; a
    classic build leaves one per step), and the entries past the chain `<missing>`.
    `layer_sizes` are the sizes of `image.diff_ids` in order; entries marked
    `empty_layer` have size 0. An image without history gets one entry per layer.
    """
    entries = list(image.history)
    rows: list[dict[str, Any]] = []
    layer = 0
    if not entries:
        for size in layer_sizes:
            rows.append({"Created": ociconfig.unix_seconds(image.created), "CreatedBy": "",
                         "Comment": "", "Size": size})
    for entry in entries:
        size = 0
        if not entry.empty_layer:
            size = layer_sizes[layer] if layer < len(layer_sizes) else 0
            layer += 1
        rows.append({
            "Created": ociconfig.unix_seconds(entry.created or image.created),
            "CreatedBy": entry.created_by,
            "Comment": entry.comment,
            "Size": size,
        })
    rows.reverse()
    chain = [image, *ancestors]
    out = []
    for i, row in enumerate(rows):
        owner = chain[i] if i < len(chain) else None
        out.append({
            "Id": owner.id if owner is not None else "<missing>",
            "Created": row["Created"],
            "CreatedBy": row["CreatedBy"],
            "Tags": (list(owner.repo_tags) or None) if owner is not None else None,
            "Size": row["Size"],
            "Comment": row["Comment"],
        })
    return out


def delete_items(items: Sequence[DeleteItem]) -> list[dict[str, str]]:
    """`DELETE /images/{name}` and the prune report: one key per line."""
    return [{"Untagged": i.untagged} if i.untagged else {"Deleted": i.deleted} for i in items]


def prune_report(items: Sequence[DeleteItem], reclaimed: int) -> dict[str, Any]:
    return {"ImagesDeleted": delete_items(items) or None, "SpaceReclaimed": reclaimed}


def distribution(info: DistributionInfo) -> dict[str, Any]:
    """`GET /distribution/{name}/json`: an OCI descriptor and OCI platforms, as dockerd
    marshals them (empty optional fields left out, `Platforms` null when none)."""
    d = info.descriptor
    platforms = []
    for p in info.platforms:
        doc: dict[str, Any] = {"architecture": p.architecture, "os": p.os}
        if p.os_version:
            doc["os.version"] = p.os_version
        if p.os_features:
            doc["os.features"] = list(p.os_features)
        if p.variant:
            doc["variant"] = p.variant
        platforms.append(doc)
    return {"Descriptor": {"mediaType": d.media_type, "digest": d.digest, "size": d.size},
            "Platforms": platforms or None}


__all__ = [
    "delete_items",
    "distribution",
    "graph_driver",
    "history",
    "image_config",
    "inspect",
    "older_than",
    "prune_report",
    "summary",
]
