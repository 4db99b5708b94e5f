"""The image store's parts on their own: blobs, short layer links, the layer table."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from engine.errors import InvalidParameter
from engine.images.blobstore import BlobStore
from engine.images.layerlinks import LayerLinks
from engine.images.layerstore import LayerInfo, LayerStore
from engine.images.reference import parse
from engine.images.removal import _is_single_reference


async def chunks(data: bytes) -> AsyncIterator[bytes]:
    yield data


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture
def blobs(tmp_path: Path) -> BlobStore:
    (tmp_path / "blobs").mkdir()
    (tmp_path / "tmp").mkdir()
    return BlobStore(tmp_path / "blobs", tmp_path / "tmp", durable=True)


# blobs ---------------------------------------------------------------------------


async def test_a_written_blob_is_named_by_its_digest_and_checks_intact(blobs: BlobStore) -> None:
    digest, size = await blobs.write(chunks(b"abc"))
    assert (digest, size) == (digest_of(b"abc"), 3)
    assert blobs.path(digest).read_bytes() == b"abc"
    assert await blobs.intact(digest)
    blobs.path(digest).write_bytes(b"abd")
    assert not await blobs.intact(digest)
    assert list(blobs.tmp_dir.iterdir()) == []


async def test_a_blob_that_is_not_what_was_expected_leaves_nothing(blobs: BlobStore) -> None:
    with pytest.raises(InvalidParameter, match="blob digest mismatch"):
        await blobs.write(chunks(b"abc"), expected=digest_of(b"xyz"))
    assert list(blobs.directory.iterdir()) == []
    assert list(blobs.tmp_dir.iterdir()) == []


async def test_missing_blob_is_file_not_found_and_bad_digests_are_refused(blobs: BlobStore) -> None:
    with pytest.raises(FileNotFoundError):
        await blobs.intact(digest_of(b"never stored"))
    for bad in ("abc", "sha256:xyz", "sha512:" + "0" * 64, "sha256:../" + "0" * 61):
        with pytest.raises(InvalidParameter):
            blobs.path(bad)


async def test_hidden_and_unneeded_blobs_go(blobs: BlobStore) -> None:
    kept, _ = await blobs.write(chunks(b"kept"))
    hidden, _ = await blobs.write(chunks(b"hidden"))
    swept, _ = await blobs.write(chunks(b"swept"))
    moved = blobs.hide_sync(hidden)
    assert moved is not None
    assert moved.parent == blobs.tmp_dir
    assert moved.read_bytes() == b"hidden"
    assert blobs.hide_sync(hidden) is None  # already gone
    blobs.remove_unneeded_sync({kept.removeprefix("sha256:")})
    assert [p.name for p in blobs.directory.iterdir()] == [kept.removeprefix("sha256:")]
    assert not blobs.path(swept).exists()


def test_config_blobs_are_read_back_only_if_they_still_match(blobs: BlobStore) -> None:
    data = b'{"config": {}}'
    image_id = digest_of(data)
    blobs.write_config_sync(image_id, data)
    assert blobs.read_verified_sync(image_id.removeprefix("sha256:")) == data
    blobs.path(image_id).write_bytes(b"{}")
    with pytest.raises(ValueError, match="does not match"):
        blobs.read_verified_sync(image_id.removeprefix("sha256:"))


# short links ---------------------------------------------------------------------


def test_links_are_made_repaired_dropped_and_swept(tmp_path: Path) -> None:
    links = LayerLinks(tmp_path / "l", durable=False)
    layer = tmp_path / ("a" * 64)
    (layer / "diff").mkdir(parents=True)

    name = links.repair_sync(layer)  # no link file yet: a new link, recorded
    assert (layer / "link").read_text() == f"{name}\n"
    assert os.readlink(links.directory / name) == f"../{'a' * 64}/diff"
    assert links.repair_sync(layer) == name  # intact: unchanged

    (links.directory / name).unlink()
    assert links.repair_sync(layer) == name  # recreated under its recorded name
    assert (links.directory / name).is_symlink()

    (links.directory / name).unlink()
    os.symlink("../elsewhere/diff", links.directory / name)  # taken by another target
    renamed = links.repair_sync(layer)
    assert renamed != name
    assert (layer / "link").read_text() == f"{renamed}\n"

    links.drop_sync(name, "a" * 64)  # not a link to this layer: left alone
    assert (links.directory / name).is_symlink()
    links.sweep_sync({renamed})
    assert [p.name for p in links.directory.iterdir()] == [renamed]
    links.drop_sync(renamed, "a" * 64)
    assert list(links.directory.iterdir()) == []


# the layer table ----------------------------------------------------------------


def test_forgetting_layers_frees_only_blobs_no_other_layer_keeps(
        tmp_path: Path, blobs: BlobStore) -> None:
    layers = LayerStore(tmp_path / "layers", blobs, durable=False)
    shared, own = digest_of(b"shared"), digest_of(b"own")
    layers.add("sha256:" + "1" * 64, LayerInfo(10, shared, "L1"))
    layers.add("sha256:" + "2" * 64, LayerInfo(20, shared, "L2"))
    layers.add("sha256:" + "3" * 64, LayerInfo(30, own, "L3"))
    layers.add("sha256:" + "4" * 64, LayerInfo(40, None, "L4"))

    freed, size = layers.forget(["sha256:" + "1" * 64, "sha256:" + "3" * 64,
                                 "sha256:" + "9" * 64])  # an unknown one counts for nothing
    assert (freed, size) == ([own], 40)
    assert layers.kept_blobs() == {shared.removeprefix("sha256:")}
    freed, size = layers.forget(["sha256:" + "2" * 64, "sha256:" + "4" * 64])
    assert (freed, size) == ([shared], 60)
    assert layers.kept_blobs() == set()


def test_pins_count_until_every_holder_lets_go(tmp_path: Path, blobs: BlobStore) -> None:
    layers = LayerStore(tmp_path / "layers", blobs, durable=False)
    with layers.pin(["a", "b"]):
        with layers.pin(["a"]):
            assert layers.pinned() == {"a", "b"}
        assert layers.pinned() == {"a", "b"}
    assert layers.pinned() == set()


# docker rmi's one rule of references ---------------------------------------------


@pytest.mark.parametrize(("names", "single"), [
    ([], False),
    (["busybox:latest"], True),
    (["busybox:latest", "busybox@sha256:" + "0" * 64], True),
    (["busybox@sha256:" + "0" * 64, "busybox@sha256:" + "1" * 64], True),
    (["busybox:latest", "busybox:old"], False),
    (["busybox:latest", "alpine@sha256:" + "0" * 64], False),
])
def test_single_reference_means_one_repository_and_at_most_one_tag(
        names: list[str], single: bool) -> None:
    assert _is_single_reference([parse(n, default_tag=False) for n in names]) is single
