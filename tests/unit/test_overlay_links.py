"""Short layer links (`layers/l/<name>`) and overlay mounts of images with many layers."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from pathlib import Path

import pytest

from engine.errors import SystemFailure
from engine.images.model import Image
from engine.images.store import ImageStore
from engine.runtime import mounts

pytestmark = pytest.mark.needs_root("layers and mounts need root")

LAYERS = 128  # Docker's overlay2 limit


def layer_tar(i: int) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        data = f"layer {i}\n".encode()
        info = tarfile.TarInfo(f"f{i}")
        info.size = len(data)
        info.mtime = 1_600_000_000
        tar.addfile(info, io.BytesIO(data))
        shared = f"top is {i}\n".encode()  # every layer writes it: the top one must win
        info = tarfile.TarInfo("shared")
        info.size = len(shared)
        info.mtime = 1_600_000_000
        tar.addfile(info, io.BytesIO(shared))
    return buf.getvalue()


async def make_image(store: ImageStore, count: int, salt: str = "") -> Image:
    """An image of `count` layers, put together through the store API as a load does."""
    diff_ids = []
    for i in range(count):
        data = layer_tar(i) if not salt else layer_tar(i) + salt.encode().ljust(512, b"\0")
        tarball = store.tmp_path("layer-")
        tarball.write_bytes(data)
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        await store.ingest_layer(tarball, blob_digest=None, expected_diff_id=digest)
        diff_ids.append(digest)
    config = {"architecture": "amd64", "os": "linux", "config": {},
              "rootfs": {"type": "layers", "diff_ids": diff_ids}}
    return await store.add_image(json.dumps(config).encode())


def link_of(store: ImageStore, diff_id: str) -> str:
    return (store.layers_dir / diff_id.removeprefix("sha256:") / "link").read_text().strip()


@pytest.fixture
async def store(tmp_path: Path) -> ImageStore:
    return await ImageStore.open(tmp_path / "images")


async def test_every_layer_gets_a_short_link(store: ImageStore) -> None:
    image = await make_image(store, 3)
    links = store.layer_links(image)
    assert len(links) == 3
    for rel, absolute in zip(links, store.layer_dirs(image), strict=True):
        assert rel.startswith("l/")
        assert len(rel) == 2 + 12
        assert (store.layers_dir / rel).samefile(absolute)
        assert os.readlink(store.layers_dir / rel) == f"../{absolute.parent.name}/diff"
    # top layer first, as layer_dirs
    assert links[0] == "l/" + link_of(store, image.diff_ids[-1])


async def test_links_go_with_their_layers(store: ImageStore) -> None:
    image = await make_image(store, 2)
    assert len(list(store.links_dir.iterdir())) == 2
    await store.delete(image.id, force=True, prune_children=False, in_use_by=lambda _i: [])
    assert list(store.links_dir.iterdir()) == []


async def test_open_repairs_links(store: ImageStore) -> None:
    image = await make_image(store, 3)
    bottom, middle, top = image.diff_ids
    kept = link_of(store, bottom)
    # a symlink lost: recreated under the same name
    (store.links_dir / kept).unlink()
    # a layer from before links existed: no link file, no symlink
    old = link_of(store, middle)
    (store.layers_dir / middle.removeprefix("sha256:") / "link").unlink()
    (store.links_dir / old).unlink()
    # a link file naming a symlink that points elsewhere: gets a new name
    hijacked = link_of(store, top)
    (store.links_dir / hijacked).unlink()
    os.symlink("../elsewhere/diff", store.links_dir / hijacked)
    # crash leftovers: a dangling link of a layer never renamed visible, and junk
    os.symlink("../" + "f" * 64 + "/diff", store.links_dir / "AAAAAAAAAAAA")
    (store.links_dir / "junk").write_text("x")

    reopened = await ImageStore.open(store.root)
    same = reopened.get(image.id)
    assert same is not None
    assert link_of(reopened, bottom) == kept
    assert link_of(reopened, middle) != old
    assert link_of(reopened, top) != hijacked
    names = sorted(p.name for p in reopened.links_dir.iterdir())
    assert names == sorted(link_of(reopened, d) for d in image.diff_ids)
    for rel, absolute in zip(reopened.layer_links(same), reopened.layer_dirs(same),
                             strict=True):
        assert (reopened.layers_dir / rel).samefile(absolute)


async def test_open_drops_links_of_unreferenced_layers(store: ImageStore) -> None:
    image = await make_image(store, 2)
    # a crash after the layers were committed but before the image was recorded
    (store.index_dir / (image.id.removeprefix("sha256:") + ".json")).unlink()
    reopened = await ImageStore.open(store.root)
    assert reopened.list() == []
    assert list(reopened.links_dir.iterdir()) == []


async def test_absolute_paths_overflow_where_links_fit(store: ImageStore, tmp_path: Path
                                                       ) -> None:
    image = await make_image(store, LAYERS)
    absolute = ":".join(str(p) for p in store.layer_dirs(image))
    assert len(absolute) > 4096
    short = ":".join(store.layer_links(image))
    assert len(short) < 2000
    container = tmp_path / "c"
    target = container / "merged"
    cwd = os.getcwd()
    mounts.mount_overlay(store.layer_links(image), container / "upper", container / "work",
                         target, base=store.layers_dir)
    try:
        assert os.getcwd() == cwd  # the chdir stayed in the mount's own thread
        assert (target / "f0").read_text() == "layer 0\n"
        assert (target / f"f{LAYERS - 1}").read_text() == f"layer {LAYERS - 1}\n"
        assert (target / "shared").read_text() == f"top is {LAYERS - 1}\n"
        (target / "written").write_text("upper")
        assert (container / "upper" / "written").read_text() == "upper"
        # mounting again is a no-op, as before
        mounts.mount_overlay(store.layer_links(image), container / "upper",
                             container / "work", target, base=store.layers_dir)
    finally:
        mounts.unmount(target)
    assert not mounts.is_mountpoint(target)


def test_too_many_layers_is_a_clear_error(tmp_path: Path) -> None:
    lowers = [f"l/{i:012d}" for i in range(300)]
    with pytest.raises(SystemFailure, match="the image has 300 layers"):
        mounts.mount_overlay(lowers, tmp_path / "u", tmp_path / "w", tmp_path / "m",
                             base=tmp_path)
    assert not (tmp_path / "m").exists()  # refused before anything was made


def test_a_repeated_layer_is_given_once_at_its_topmost_place(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[bytes] = []

    def fake_mount(base: Path, target: bytes, options: bytes) -> None:
        seen.append(options)

    monkeypatch.setattr(mounts, "_mount_from", fake_mount)
    mounts.mount_overlay(["l/TOP", "l/DUP", "l/MID", "l/DUP", "l/BASE"], tmp_path / "u",
                         tmp_path / "w", tmp_path / "m", base=tmp_path)
    assert seen[0].startswith(b"lowerdir=l/TOP:l/DUP:l/MID:l/BASE,")


def test_mount_failure_is_reported_without_moving_cwd(tmp_path: Path) -> None:
    cwd = os.getcwd()
    with pytest.raises(SystemFailure, match="mounting the container's root filesystem"):
        mounts.mount_overlay(["l/MISSINGLINKX"], tmp_path / "u", tmp_path / "w",
                             tmp_path / "m", base=tmp_path)
    assert os.getcwd() == cwd
