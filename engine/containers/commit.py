"""`docker commit`: a container's writable layer on top of its image, as a new image.

The new image's config is the container's (its image's defaults with what `create`
changed merged in: command, environment, labels, …), then the `--change` instructions.
Its layers are the image's plus one made from the writable layer
(`engine.images.upperdir`), kept as an uncompressed blob so push and save send the
exact bytes. `parent` names the image the container ran, as Docker's commit does.
A running container is paused while its files are read, unless asked not to be; one
that exits meanwhile is committed all the same (nothing is left to pause), and a
commit that fails never leaves it paused.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from typing import TYPE_CHECKING

import attrs
import trio

from engine.containers.model import Container, ContainerSpec, Status
from engine.errors import Conflict, EngineError, NotFound, system_failure
from engine.images import ociconfig
from engine.images.changes import apply_changes
from engine.images.model import HistoryEntry, Image, ImageConfig
from engine.images.reference import Reference
from engine.images.upperdir import LayerTar, write_upper_tar
from engine.runtime.interface import ContainerGone

if TYPE_CHECKING:
    from pathlib import Path

    from engine.containers.manager import ContainerManager

log = logging.getLogger(__name__)


@attrs.frozen
class CommitRequest:
    reference: Reference | None = None
    comment: str = ""
    author: str = ""
    pause: bool = True
    changes: tuple[str, ...] = ()


def config_of(spec: ContainerSpec) -> ImageConfig:
    """What a container runs with, as image defaults."""
    return ImageConfig(
        user=spec.user,
        env=list(spec.env),
        cmd=None if spec.cmd is None else list(spec.cmd),
        entrypoint=None if spec.entrypoint is None else list(spec.entrypoint),
        working_dir=spec.working_dir,
        labels=dict(spec.labels),
        exposed_ports=list(spec.exposed_ports),
        volumes=list(spec.volumes),
        stop_signal=spec.stop_signal,
        healthcheck=spec.healthcheck,
        shell=None if spec.shell is None else list(spec.shell),
        on_build=list(spec.on_build),
        args_escaped=spec.args_escaped,
    )


#: a layer tarball with no members (end-of-archive blocks only, or padded to a 10 KiB
#: record as Python's tarfile pads it): a commit that changed nothing
_EMPTY_TARS = frozenset("sha256:" + hashlib.sha256(bytes(n)).hexdigest() for n in (1024, 10240))


def _tar_upper(upper: Path, target: Path) -> LayerTar:
    with open(target, "wb") as out:
        return write_upper_tar(upper, out)


async def commit_container(m: ContainerManager, c: Container, request: CommitRequest) -> Image:
    """Make the image; tag it if a reference is given."""
    parent = m.images.get(c.image_id)
    if parent is None:
        raise NotFound(f"No such image: {c.image_id}")
    if c.state.status in (Status.REMOVING, Status.DEAD):
        raise Conflict(f"You cannot commit container {c.id} which is being removed")
    config = apply_changes(config_of(c.spec), request.changes)  # bad changes fail first
    cmd = [*(c.spec.entrypoint or []), *(c.spec.cmd or [])]
    paused_here = False
    try:
        if request.pause and c.state.status is Status.RUNNING:
            paused_here = await _pause_for_commit(m, c)
        image = await commit_upper(
            m, c, parent, config,
            HistoryEntry(created=dt.datetime.now(dt.UTC), created_by=" ".join(cmd),
                         comment=request.comment, author=request.author),
            author=request.author, comment=request.comment,
            unpause=paused_here)
    except OSError as exc:
        # a full disk above all: "write …: no space left on device", as dockerd says it
        raise system_failure(exc, "commit") from exc
    finally:
        if paused_here:
            with trio.CancelScope(shield=True):
                await _let_go(m, c)
    if request.reference is not None:
        await m.images.add_reference(image.id, request.reference)
    m.publish(c, "commit", comment=request.comment, imageID=image.id,
              imageRef=request.reference.familiar() if request.reference else "")
    return image


async def _pause_for_commit(m: ContainerManager, c: Container) -> bool:
    """Pause `c` while its files are read; False if it exited first (nothing to pause:
    its files hold still anyway). A pause that failed otherwise leaves it not frozen."""
    try:
        await m.pause(c)
    except (ContainerGone, Conflict):
        return False  # it exited (or is exiting), or someone else paused it, meanwhile
    except BaseException:
        with trio.CancelScope(shield=True):
            await _thaw_if_frozen(m, c)
        raise
    return True


async def _let_go(m: ContainerManager, c: Container) -> None:
    """Unpause what the commit paused, whatever became of the commit."""
    if c.state.status is not Status.PAUSED:
        return
    try:
        await m.unpause(c)
    except EngineError as exc:
        log.warning("unpausing %s after a commit: %s", c.short_id, exc.message)


async def _thaw_if_frozen(m: ContainerManager, c: Container) -> None:
    """A pause that failed half-way may have frozen the cgroup: resume it."""
    try:
        if await m.runtime.frozen(m.target(c)):
            await m.runtime.resume(m.target(c))
    except EngineError as exc:
        log.warning("thawing %s after a failed pause: %s", c.short_id, exc.message)


async def commit_upper(m: ContainerManager, c: Container, parent: Image, config: ImageConfig,
                       history: HistoryEntry, *, author: str = "", comment: str = "",
                       unpause: bool = False) -> Image:
    """`parent` plus a layer made of `c`'s writable layer, with `config` (commits, builds).

    A writable layer with nothing in it adds no layer, only an `empty_layer` history
    entry, as dockerd does (and two such layers would otherwise repeat one diff ID).
    With `unpause`, the (paused) container is let go as soon as its files are read.
    """
    tarball = m.images.tmp_path("commit-")
    try:
        try:
            layer = await trio.to_thread.run_sync(_tar_upper, m.paths(c).upper, tarball)
        finally:
            if unpause:
                with trio.CancelScope(shield=True):
                    await _let_go(m, c)
        empty = layer.digest in _EMPTY_TARS
        diff_ids = list(parent.diff_ids) if empty else [*parent.diff_ids, layer.digest]
        if empty:
            history = attrs.evolve(history, empty_layer=True)
        ingested = False
        try:
            with m.images.pin_layers(diff_ids):
                if not empty:
                    await m.images.ingest_layer(tarball, blob_digest=layer.digest,
                                                expected_diff_id=layer.digest)
                    ingested = True
                return await m.images.add_image(ociconfig.image_to_config(
                    _draft(parent, config, diff_ids, history, author, comment)))
        except BaseException:
            if ingested:  # the image could not be made (a full disk): no layer for nothing
                with trio.CancelScope(shield=True):
                    await _discard_layer(m, layer.digest)
            raise
    finally:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(lambda: tarball.unlink(missing_ok=True))


def _draft(parent: Image, config: ImageConfig, diff_ids: list[str], history: HistoryEntry,
           author: str, comment: str) -> Image:
    return Image(
        id="",
        config=config,
        diff_ids=diff_ids,
        created=history.created or dt.datetime.now(dt.UTC),
        architecture=parent.architecture,
        os=parent.os,
        variant=parent.variant,
        author=author,
        comment=comment,
        parent=parent.id,
        history=[*parent.history, history],
    )


async def _discard_layer(m: ContainerManager, diff_id: str) -> None:
    """Drop the layer of a commit that failed after ingesting it (unless something uses it);
    never hide the commit's failure behind this one's."""
    try:
        await m.images.discard_layers([diff_id])
    except Exception:
        log.exception("cannot remove the layer of a failed commit; the next start will")


__all__ = ["CommitRequest", "commit_container", "commit_upper", "config_of"]
