"""Removing images: Docker's `rmi` rules, prune, gc, and deleting the files out of the way.

Deletion runs opposite to creation: tags, then the index record (the point of no
return), then layer directories and blobs. Those are renamed out of sight at once and
deleted in the background: a crash leaves unreferenced files, which start-up removes.
Every method but `drain` expects the caller (`ImageStore`) to hold the store's lock.

As in dockerd, removing an image also removes its parent chain (a classic build's
intermediate steps) as far as no tag, container or other child image holds a parent,
unless the caller asks not to (the API's `noprune`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import attrs
import trio

from engine import fsutil
from engine.errors import Conflict
from engine.images.blobstore import BlobStore, hex_of
from engine.images.catalog import ImageCatalog
from engine.images.layerstore import LayerStore
from engine.images.model import Image
from engine.images.reference import Reference, is_id_prefix, parse

log = logging.getLogger(__name__)

ImageUsers = Callable[[str], Sequence[tuple[str, bool]]]
"""`image_id -> [(container_id, running), …]`: the containers made from an image.

The container manager's `image_users` has this shape; image deletion needs to tell
running users (a hard conflict) from stopped ones (forcible)."""

InUse = Callable[[str], bool]
"""`image_id -> bool`: whether any container, running or not, uses the image."""

ImageFilter = Callable[[Image], bool]


@attrs.frozen
class DeleteItem:
    """One line of `docker rmi` output: exactly one of the two is set."""

    untagged: str = ""
    deleted: str = ""


def _is_single_reference(refs: Sequence[Reference]) -> bool:
    """Docker's rule: all references in one repository, at most one of them a tag."""
    if len(refs) <= 1:
        return len(refs) == 1
    single: Reference | None = None
    canonical: set[str] = set()
    for ref in refs:
        if ref.digest is not None:
            canonical.add(ref.name)
        elif single is None:
            single = ref
        else:
            return False
    if single is None:
        single = refs[0]
    return len(canonical) == 1 and single.name in canonical


@attrs.define
class _DeleteConflict:
    image_id: str
    hard: bool
    used: bool
    message: str

    def error(self) -> Conflict:
        force = "cannot be forced" if self.hard else "must be forced"
        short = hex_of(self.image_id)[:12]
        return Conflict(f"conflict: unable to delete {short} ({force}) - {self.message}")


def _delete_paths(paths: Sequence[Path]) -> None:
    for path in paths:
        if path.is_dir() and not path.is_symlink():
            fsutil.remove_tree(path)
        else:
            path.unlink(missing_ok=True)


class ImageRemover:
    """Takes images, layers and blobs out of the catalogue and off the disk."""

    def __init__(self, catalog: ImageCatalog, layers: LayerStore, blobs: BlobStore) -> None:
        self._catalog = catalog
        self._layers = layers
        self._blobs = blobs
        self._reaping = 0  # background deletions of removed layers and blobs in flight
        self._reaped = trio.Event()

    # docker rmi ------------------------------------------------------------------------
    async def delete(self, name_or_id: str, *, force: bool, prune: bool,
                     in_use_by: ImageUsers) -> list[DeleteItem]:
        """`docker rmi` of one name (see `ImageStore.delete`)."""
        catalog = self._catalog
        image = catalog.resolve(name_or_id)
        refs = catalog.references(image.id)
        records: list[DeleteItem] = []
        quiet = False
        if not is_id_prefix(image.id, name_or_id):
            if not force and _is_single_reference(refs):
                users = list(in_use_by(image.id))
                if users:
                    raise Conflict(
                        f'conflict: unable to remove repository reference "{name_or_id}" '
                        f"(must force) - container {users[0][0][:12]} is using its "
                        f"referenced image {image.short_id}"
                    )
            ref = parse(name_or_id)
            remaining = [r for r in refs if r.full_name() != ref.full_name()]
            doomed_refs = [ref]
            if ref.digest is None and not any(
                r.digest is None and r.name == ref.name for r in remaining
            ):  # the repository's last tag: its digests go with it
                doomed_refs += [r for r in remaining if r.digest is not None and r.name == ref.name]
            await catalog.untag(doomed_refs)  # one write of repositories.json
            records.extend(DeleteItem(untagged=r.familiar()) for r in doomed_refs)
            refs = catalog.references(image.id)
            if refs:
                return records
            quiet = True
        elif _is_single_reference(refs):
            conflict = self._conflict(image.id, in_use_by, stopped=not force,
                                      references=False)
            if conflict is not None:
                raise conflict.error()
            await catalog.untag(refs)
            records.extend(DeleteItem(untagged=r.familiar()) for r in refs)
        await self._delete_chain(image.id, records, force=force, prune=prune, quiet=quiet,
                                 in_use_by=in_use_by)
        return records

    async def _delete_chain(self, image_id: str, records: list[DeleteItem], *, force: bool,
                            prune: bool, quiet: bool, in_use_by: ImageUsers) -> int:
        """Delete an image, then (with `prune`) its parent, its parent's parent…; bytes freed.

        A parent goes only if nothing holds it (no tag, container or other child: the
        checks are not forced) and quietly: the first one held ends the chain without an
        error. `quiet` also spares the image itself an error, unless it is dangling and no
        container uses it, so the user learns why it stayed (dockerd's rule).
        """
        freed = 0
        while True:
            conflict = self._conflict(image_id, in_use_by, stopped=not force,
                                      references=not force)
            if conflict is not None:
                if quiet and (not self._dangling(image_id) or conflict.used):
                    return freed
                raise conflict.error()
            image = self._catalog.get(image_id)
            parent = image.parent if image is not None else ""
            items, n = await self._remove_image(image_id, in_use_by)
            records.extend(items)
            freed += n
            if not prune or not parent or parent not in self._catalog \
                    or parent in self._catalog.hidden():
                return freed
            image_id, force, quiet = parent, False, True

    def _dangling(self, image_id: str) -> bool:
        """dockerd's "dangling" for deletion: no reference names it and no image is built
        on it."""
        return self._catalog.is_dangling(image_id) and not self._catalog.children(image_id)

    def _conflict(self, image_id: str, in_use_by: ImageUsers, *, stopped: bool,
                  references: bool) -> _DeleteConflict | None:
        if self._catalog.children(image_id):
            return _DeleteConflict(image_id, hard=True, used=False,
                                   message="image has dependent child images")
        users = list(in_use_by(image_id))
        for container_id, running in users:
            if running:
                return _DeleteConflict(
                    image_id, hard=True, used=True,
                    message=f"image is being used by running container {container_id[:12]}",
                )
        if references and not self._catalog.is_dangling(image_id):
            return _DeleteConflict(
                image_id, hard=False, used=False,
                message="image is referenced in multiple repositories",
            )
        if stopped and users:
            return _DeleteConflict(
                image_id, hard=False, used=True,
                message=f"image is being used by stopped container {users[0][0][:12]}",
            )
        return None

    async def _remove_image(self, image_id: str,
                            in_use_by: ImageUsers) -> tuple[list[DeleteItem], int]:
        """Untag and remove an image, and the layers no other image needs.

        If a container still uses it (a forced removal), only hide it: its layers stay
        for that container until `gc` finds it unused.
        """
        records: list[DeleteItem] = []
        refs = self._catalog.references(image_id)
        if refs:
            await self._catalog.untag(refs)
            records.extend(DeleteItem(untagged=r.familiar()) for r in refs)
        if list(in_use_by(image_id)):
            await self._catalog.hide(image_id)
            records.append(DeleteItem(deleted=image_id))
            return records, 0
        image = await self._catalog.forget(image_id)  # from here on the image is gone
        still_needed = self._catalog.layers_needed() | self._layers.pinned()
        doomed = [d for d in dict.fromkeys(image.diff_ids) if d not in still_needed]
        removed_blobs, reclaimed = self._layers.forget(doomed)
        removed_blobs.append(image_id)
        await self._remove_files(doomed, removed_blobs)
        records.append(DeleteItem(deleted=image_id))
        records.extend(DeleteItem(deleted=d) for d in doomed)
        return records, reclaimed

    # prune and gc ------------------------------------------------------------------------
    async def prune(self, *, dangling_only: bool, in_use: InUse,
                    select: ImageFilter | None) -> tuple[list[DeleteItem], int]:
        """`docker image prune [-a]` (see `ImageStore.prune`), dockerd's way.

        The candidates are the images no other image is built on (all images with `-a`),
        leaving out untagged ones that have children: those are a chain's intermediate
        steps and go with the image on top of them, as a `docker rmi` would take them.
        """

        def users(image_id: str) -> Sequence[tuple[str, bool]]:
            return [("", False)] if in_use(image_id) else []

        catalog = self._catalog
        candidates = [
            image for image in catalog.list()
            if not (dangling_only and catalog.children(image.id))
            and not (catalog.is_dangling(image.id) and catalog.children(image.id))
            and (select is None or select(image))
        ]
        records: list[DeleteItem] = []
        reclaimed = 0
        for image in candidates:
            if catalog.visible(image.id) is None or in_use(image.id):
                continue  # gone with an earlier one's chain, or used
            refs = catalog.references(image.id)
            if refs and dangling_only and any(r.digest is None for r in refs):
                continue
            if refs:
                await catalog.untag(refs)
                records.extend(DeleteItem(untagged=r.familiar()) for r in refs)
            reclaimed += await self._delete_chain(image.id, records, force=False, prune=True,
                                                  quiet=True, in_use_by=users)
        reclaimed += await self.gc(in_use)
        return records, reclaimed

    async def gc(self, in_use: InUse) -> int:
        """Drop images hidden by a forced removal once no container uses them; bytes freed."""
        freed = 0
        for image_id in self._catalog.hidden():
            if not in_use(image_id):
                _, n = await self._remove_image(image_id, lambda _i: [])
                freed += n
        return freed

    async def discard_layers(self, diff_ids: Iterable[str]) -> list[str]:
        """Remove these layers unless an image uses them or a pin holds them; those removed."""
        still_needed = self._catalog.layers_needed() | self._layers.pinned()
        doomed = [d for d in dict.fromkeys(diff_ids)
                  if d in self._layers and d not in still_needed]
        removed_blobs, _ = self._layers.forget(doomed)
        if doomed:
            await self._remove_files(doomed, removed_blobs)
        return doomed

    # the files -------------------------------------------------------------------------
    async def _remove_files(self, layers: Sequence[str], blobs: Sequence[str]) -> None:
        """Take layers and blobs out of sight now; delete their files in the background.

        Called after the index record is gone, which is the point of no return: a crash
        from here on leaves unreferenced layers and blobs, which `open` removes. So the
        renames need no fsync, and nobody waits for megabytes to be unlinked (`rmi`
        answers once the names are gone; `drain` waits for the deleting, for tests).
        """
        trash = await trio.to_thread.run_sync(self._hide_files_sync, layers, blobs)
        if not trash:
            return
        self._reaping += 1

        async def reap() -> None:
            try:
                await trio.to_thread.run_sync(_delete_paths, trash)
            except Exception:
                log.exception("deleting removed layers failed; the next start retries")
            finally:
                self._reaping -= 1
                if self._reaping == 0:
                    self._reaped.set()
                    self._reaped = trio.Event()

        trio.lowlevel.spawn_system_task(reap, name="image-store-reaper")

    def _hide_files_sync(self, layers: Sequence[str], blobs: Sequence[str]) -> list[Path]:
        trash: list[Path] = []
        for diff_id in layers:
            doomed = self._layers.hide_sync(diff_id, durable=False)
            if doomed is not None:
                trash.append(doomed)
        for digest in blobs:
            doomed = self._blobs.hide_sync(digest)
            if doomed is not None:
                trash.append(doomed)
        return trash

    async def drain(self) -> None:
        """Wait until files of removed images are deleted (tests; disk accounting)."""
        while self._reaping:
            await self._reaped.wait()
