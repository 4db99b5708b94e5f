"""The image store: import, lookup, tags, Docker's delete rules, prune, crash recovery."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from engine.errors import Conflict, InvalidParameter, NotFound
from engine.images.importer import host_architecture
from engine.images.model import Image
from engine.images.reference import parse
from engine.images.store import DeleteItem, ImageStore

pytestmark = pytest.mark.needs_root("layer unpacking needs root")


def rootfs(*files: tuple[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 1_600_000_000
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


BUSYBOX = rootfs(("bin/sh", b"#!fake shell\n"), ("etc/passwd", b"root:x:0:0::/root:/bin/sh\n"))
OTHER = rootfs(("hello", b"world"))


async def chunks(data: bytes, size: int = 1000) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def no_users(_image_id: str) -> Sequence[tuple[str, bool]]:
    return []


async def do_import(store: ImageStore, data: bytes = BUSYBOX, name: str | None = "busybox",
                    changes: Sequence[str] = ('CMD ["sh"]',)) -> Image:
    return await store.import_rootfs(
        chunks(data),
        reference=parse(name) if name else None,
        changes=list(changes),
        message="Imported from -",
    )


@pytest.fixture
async def store(tmp_path: Path) -> ImageStore:
    return await ImageStore.open(tmp_path / "images")


def layer_count(store: ImageStore) -> int:
    return sum(1 for p in store.layers_dir.iterdir() if not p.name.startswith(".")
               and p != store.links_dir)


# import and lookup --------------------------------------------------------------


async def test_import_makes_a_one_layer_image(store: ImageStore) -> None:
    image = await do_import(store)
    diff_id = "sha256:" + hashlib.sha256(BUSYBOX).hexdigest()
    assert image.diff_ids == [diff_id]
    assert image.config.cmd == ["sh"]
    assert image.repo_tags == ["busybox:latest"]
    assert image.comment == "Imported from -"
    assert image.history[0].comment == "Imported from -"
    assert image.history[0].created_by == ""
    assert (image.architecture, image.variant) == host_architecture()
    assert image.os == "linux"
    config_blob = (store.blobs_dir / image.id.removeprefix("sha256:")).read_bytes()
    assert image.id == "sha256:" + hashlib.sha256(config_blob).hexdigest()
    assert json.loads(config_blob)["rootfs"] == {"type": "layers", "diff_ids": [diff_id]}
    # the tarball is kept as a blob (save and push need the exact bytes)
    assert (store.blobs_dir / diff_id.removeprefix("sha256:")).read_bytes() == BUSYBOX
    [layer] = store.layer_dirs(image)
    assert (layer / "bin/sh").read_bytes() == b"#!fake shell\n"
    assert image.size == store.layers_size(image) == len(b"#!fake shell\n") + 26
    assert list(store.tmp_dir.iterdir()) == []
    assert store.last_tag_time(image.id) is not None


async def test_resolve_by_id_prefix_and_names(store: ImageStore) -> None:
    image = await do_import(store)
    hexid = image.id.removeprefix("sha256:")
    for name in [image.id, hexid, hexid[:12], "sha256:" + hexid[:12], "busybox",
                 "busybox:latest", "library/busybox", "docker.io/library/busybox:latest",
                 "index.docker.io/library/busybox"]:
        assert store.resolve(name) is image, name
    assert store.get(image.id) is image
    assert store.get(hexid) is image
    assert store.list() == [image]


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("nope", "No such image: nope:latest"),
        ("busybox:1.36", "No such image: busybox:1.36"),
        ("myreg:5000/x/y", "No such image: myreg:5000/x/y:latest"),
        ("f" * 64, "No such image: sha256:" + "f" * 64),
        ("sha256:" + "f" * 64, "No such image: sha256:" + "f" * 64),
    ],
)
async def test_not_found_messages(store: ImageStore, name: str, message: str) -> None:
    await do_import(store)
    with pytest.raises(NotFound) as info:
        store.resolve(name)
    assert info.value.message == message


async def test_invalid_names_are_400(store: ImageStore) -> None:
    with pytest.raises(InvalidParameter, match="must be lowercase"):
        store.resolve("BusyBox")


async def test_ambiguous_prefix_is_not_found(store: ImageStore) -> None:
    images = [await do_import(store, name=None) for _ in range(20)]
    firsts = [i.id.removeprefix("sha256:")[0] for i in images]
    shared = next(c for c in firsts if firsts.count(c) > 1)
    with pytest.raises(NotFound):
        store.resolve(shared)


async def test_import_options(store: ImageStore) -> None:
    image = await store.import_rootfs(
        chunks(BUSYBOX), reference=parse("x"), changes=["ENV A=1", "EXPOSE 80"],
        message="m", platform="linux/arm64/v8",
    )
    assert (image.architecture, image.variant, image.os) == ("arm64", "v8", "linux")
    assert image.config.env == ["A=1"]
    assert image.config.exposed_ports == ["80/tcp"]
    with pytest.raises(InvalidParameter, match="operating system is not supported"):
        await store.import_rootfs(chunks(BUSYBOX), reference=None, changes=[], message="",
                                  platform="windows/amd64")


async def test_bad_changes_fail_before_the_upload(store: ImageStore) -> None:
    consumed = False

    async def body() -> AsyncIterator[bytes]:
        nonlocal consumed
        consumed = True
        yield BUSYBOX

    with pytest.raises(InvalidParameter, match="run is not a valid change command"):
        await store.import_rootfs(body(), reference=None, changes=["RUN x"], message="")
    assert not consumed


async def test_bad_tarball_leaves_nothing(store: ImageStore) -> None:
    with pytest.raises(InvalidParameter, match="invalid layer archive"):
        await store.import_rootfs(chunks(b"garbage" * 1000), reference=parse("bad"),
                                  changes=[], message="")
    with pytest.raises(InvalidParameter, match="outside the layer"):
        await store.import_rootfs(chunks(rootfs(("../x", b""))), reference=None, changes=[],
                                  message="")
    assert store.list() == []
    assert list(store.tmp_dir.iterdir()) == []
    assert list(store.layers_dir.iterdir()) == [store.links_dir]
    assert list(store.links_dir.iterdir()) == []
    assert list(store.blobs_dir.iterdir()) == []


async def test_upload_failure_cleans_up(store: ImageStore) -> None:
    async def body() -> AsyncIterator[bytes]:
        yield BUSYBOX[:100]
        raise OSError("client went away")

    with pytest.raises(OSError, match="client went away"):
        await store.import_rootfs(body(), reference=None, changes=[], message="")
    assert list(store.tmp_dir.iterdir()) == []


async def test_gzip_import(store: ImageStore) -> None:
    import gzip

    packed = gzip.compress(BUSYBOX)
    image = await store.import_rootfs(chunks(packed), reference=None, changes=[], message="")
    assert image.diff_ids == ["sha256:" + hashlib.sha256(BUSYBOX).hexdigest()]
    layer = store.layers_dir / image.diff_ids[0].removeprefix("sha256:")
    assert (layer / "blob").read_text().strip() == (
        "sha256:" + hashlib.sha256(packed).hexdigest())


# tags ------------------------------------------------------------------------------


async def test_tag_and_move_tags(store: ImageStore) -> None:
    a = await do_import(store)
    b = await do_import(store, OTHER, "other")
    await store.tag("busybox", parse("myreg:5000/team/busybox:1"))
    await store.tag(a.id, parse("zed"))
    assert a.repo_tags == ["busybox:latest", "zed:latest", "myreg:5000/team/busybox:1"]
    await store.tag("other", parse("zed:latest"))  # moves the tag
    assert "zed:latest" not in a.repo_tags
    assert b.repo_tags == ["other:latest", "zed:latest"]
    assert store.resolve("zed") is b
    with pytest.raises(NotFound, match="No such image: ghost:latest"):
        await store.tag("ghost", parse("x"))
    with pytest.raises(InvalidParameter, match="ambiguous"):
        await store.tag("busybox", parse("sha256:1"))
    with pytest.raises(InvalidParameter, match="digest"):
        await store.tag("busybox", parse(f"x@sha256:{'a' * 64}"))


async def test_state_survives_reopen(tmp_path: Path) -> None:
    store = await ImageStore.open(tmp_path / "images")
    image = await do_import(store)
    await store.tag("busybox", parse("again:2"))
    reopened = await ImageStore.open(tmp_path / "images")
    same = reopened.resolve("again:2")
    assert same.id == image.id
    assert same.repo_tags == ["again:2", "busybox:latest"]
    assert same.config == image.config
    assert same.size == image.size
    assert reopened.last_tag_time(image.id) is not None
    assert reopened.layer_dirs(same) == store.layer_dirs(image)


# delete ------------------------------------------------------------------------------


def untagged(*names: str) -> list[DeleteItem]:
    return [DeleteItem(untagged=n) for n in names]


async def test_delete_by_tag_untags_until_the_last(store: ImageStore) -> None:
    image = await do_import(store)
    await store.tag("busybox", parse("copy"))
    out = await store.delete("copy", force=False, prune_children=True, in_use_by=no_users)
    assert out == untagged("copy:latest")
    assert store.resolve("busybox") is image
    out = await store.delete("busybox", force=False, prune_children=True, in_use_by=no_users)
    assert out == [
        DeleteItem(untagged="busybox:latest"),
        DeleteItem(deleted=image.id),
        DeleteItem(deleted=image.diff_ids[0]),
    ]
    assert store.list() == []
    assert layer_count(store) == 0
    assert list(store.blobs_dir.iterdir()) == []
    assert list((store.root / "index").glob("*.json")) == []
    # the files themselves go in the background, out of sight already
    await store.drain()
    assert [p.name for p in store.layers_dir.iterdir()] == ["l"]
    assert list(store.tmp_dir.iterdir()) == []


async def test_delete_by_id_with_tags_in_several_repositories(store: ImageStore) -> None:
    image = await do_import(store)
    await store.tag("busybox", parse("other:1"))
    with pytest.raises(Conflict) as info:
        await store.delete(image.short_id, force=False, prune_children=True, in_use_by=no_users)
    assert info.value.message == (
        f"conflict: unable to delete {image.short_id} (must be forced) - "
        "image is referenced in multiple repositories"
    )
    out = await store.delete(image.short_id, force=True, prune_children=True, in_use_by=no_users)
    assert out[:3] == [*untagged("busybox:latest", "other:1"), DeleteItem(deleted=image.id)]


async def test_delete_by_id_with_one_tag(store: ImageStore) -> None:
    image = await do_import(store)
    out = await store.delete(image.id, force=False, prune_children=True, in_use_by=no_users)
    assert out[:2] == [*untagged("busybox:latest"), DeleteItem(deleted=image.id)]


async def test_delete_by_id_prefix_of_an_untagged_image(store: ImageStore) -> None:
    image = await do_import(store, name=None)
    out = await store.delete(image.short_id[:6], force=False, prune_children=True,
                             in_use_by=no_users)
    assert out == [DeleteItem(deleted=image.id), DeleteItem(deleted=image.diff_ids[0])]


async def test_delete_tag_in_use_by_a_container(store: ImageStore) -> None:
    image = await do_import(store)
    cid = "c" * 64

    def stopped(image_id: str) -> Sequence[tuple[str, bool]]:
        return [(cid, False)] if image_id == image.id else []

    with pytest.raises(Conflict) as info:
        await store.delete("busybox", force=False, prune_children=True, in_use_by=stopped)
    assert info.value.message == (
        f'conflict: unable to remove repository reference "busybox" (must force) - '
        f"container {cid[:12]} is using its referenced image {image.short_id}"
    )
    # a second tag makes the untag harmless: allowed
    await store.tag("busybox", parse("two"))
    out = await store.delete("two", force=False, prune_children=True, in_use_by=stopped)
    assert out == untagged("two:latest")


async def test_forced_untag_of_an_image_a_running_container_uses(store: ImageStore) -> None:
    image = await do_import(store)

    def running(image_id: str) -> Sequence[tuple[str, bool]]:
        return [("r" * 64, True)]

    out = await store.delete("busybox", force=True, prune_children=True, in_use_by=running)
    assert out == untagged("busybox:latest")
    assert store.resolve(image.id) is image  # still there, now dangling
    assert image.repo_tags == []
    with pytest.raises(Conflict) as info:
        await store.delete(image.id, force=True, prune_children=True, in_use_by=running)
    assert info.value.message == (
        f"conflict: unable to delete {image.short_id} (cannot be forced) - "
        f"image is being used by running container {'r' * 12}"
    )


async def test_delete_by_id_used_by_a_stopped_container(store: ImageStore) -> None:
    image = await do_import(store)
    users: list[tuple[str, bool]] = [("s" * 64, False)]

    def stopped(_image_id: str) -> Sequence[tuple[str, bool]]:
        return users

    with pytest.raises(Conflict) as info:
        await store.delete(image.id, force=False, prune_children=True, in_use_by=stopped)
    assert info.value.message == (
        f"conflict: unable to delete {image.short_id} (must be forced) - "
        f"image is being used by stopped container {'s' * 12}"
    )
    out = await store.delete(image.id, force=True, prune_children=True, in_use_by=stopped)
    assert out == [*untagged("busybox:latest"), DeleteItem(deleted=image.id)]
    # gone for users, kept for the container that still needs its layers
    with pytest.raises(NotFound):
        store.resolve(image.id)
    assert store.list() == []
    assert store.get(image.id) is image
    assert all(p.is_dir() for p in store.layer_dirs(image))
    assert await store.gc(lambda _i: True) == 0
    assert store.get(image.id) is image
    users.clear()
    assert await store.gc(lambda _i: False) == image.size
    assert store.get(image.id) is None
    assert layer_count(store) == 0


async def test_hidden_image_survives_reopen(tmp_path: Path) -> None:
    store = await ImageStore.open(tmp_path / "images")
    image = await do_import(store, name=None)
    await store.delete(image.id, force=True, prune_children=True,
                       in_use_by=lambda _i: [("s" * 64, False)])
    reopened = await ImageStore.open(tmp_path / "images")
    assert reopened.get(image.id) is not None
    assert reopened.list() == []
    assert all(p.is_dir() for p in reopened.layer_dirs(image))


async def test_shared_layers_go_with_the_last_image(store: ImageStore) -> None:
    a = await do_import(store, BUSYBOX, "a")
    b = await do_import(store, BUSYBOX, "b", changes=["ENV X=1"])
    assert a.id != b.id
    assert a.diff_ids == b.diff_ids
    assert layer_count(store) == 1
    out = await store.delete("a", force=False, prune_children=True, in_use_by=no_users)
    assert out == [*untagged("a:latest"), DeleteItem(deleted=a.id)]  # no layer deleted
    assert all(p.is_dir() for p in store.layer_dirs(b))
    out = await store.delete("b", force=False, prune_children=True, in_use_by=no_users)
    assert out[-1] == DeleteItem(deleted=b.diff_ids[0])
    assert layer_count(store) == 0
    assert list(store.blobs_dir.iterdir()) == []


async def test_concurrent_imports_share_one_layer(store: ImageStore) -> None:
    import trio

    results: list[Image] = []

    async def one(i: int) -> None:
        results.append(await do_import(store, BUSYBOX, f"img{i}", changes=[f"ENV N={i}"]))

    async with trio.open_nursery() as nursery:
        for i in range(5):
            nursery.start_soon(one, i)
    assert len({img.id for img in results}) == 5
    assert layer_count(store) == 1
    assert not [p for p in store.layers_dir.iterdir() if p.name.startswith(".")]
    assert list(store.tmp_dir.iterdir()) == []


# parent chains (a classic build's intermediate images) ---------------------------------


async def child_of(store: ImageStore, parent: Image, step: str, name: str | None = None) -> Image:
    """A config-only image on `parent`, as a build step (`ENV`, `LABEL`) makes one."""
    import attrs

    from engine.images import ociconfig
    from engine.images.model import HistoryEntry

    config = attrs.evolve(parent.config, env=[*parent.config.env, step])
    draft = attrs.evolve(parent, id="", config=config, parent=parent.id, repo_tags=[],
                         repo_digests=[],
                         history=[*parent.history, HistoryEntry(created_by=step,
                                                                empty_layer=True)])
    image = await store.add_image(ociconfig.image_to_config(draft))
    if name is not None:
        await store.tag(image.id, parse(name))
    return image


async def build_chain(store: ImageStore) -> tuple[Image, Image, Image, Image]:
    base = await do_import(store)
    one = await child_of(store, base, "A=1")
    two = await child_of(store, one, "B=2")
    top = await child_of(store, two, "C=3", name="built:1")
    return base, one, two, top


async def test_rmi_of_a_built_image_takes_its_untagged_parents(store: ImageStore) -> None:
    base, one, two, top = await build_chain(store)
    out = await store.delete("built:1", force=False, prune_children=True, in_use_by=no_users)
    assert out == [*untagged("built:1"), DeleteItem(deleted=top.id), DeleteItem(deleted=two.id),
                   DeleteItem(deleted=one.id)]  # the tagged base stays, and so its layer
    assert [i.id for i in store.list()] == [base.id]


async def test_noprune_keeps_the_parents(store: ImageStore) -> None:
    _, one, two, top = await build_chain(store)
    out = await store.delete("built:1", force=False, prune_children=False, in_use_by=no_users)
    assert out == [*untagged("built:1"), DeleteItem(deleted=top.id)]
    assert {one.id, two.id} <= {i.id for i in store.list()}


async def test_a_parent_with_another_child_or_a_user_stays(store: ImageStore) -> None:
    _, one, two, _top = await build_chain(store)
    sibling = await child_of(store, one, "D=4", name="sibling:1")
    out = await store.delete("built:1", force=False, prune_children=True, in_use_by=no_users)
    assert out[-1] == DeleteItem(deleted=two.id)  # `one` still has `sibling`
    assert store.get(one.id) is not None

    def using_one(image_id: str) -> Sequence[tuple[str, bool]]:
        return [("c" * 64, False)] if image_id == one.id else []

    out = await store.delete("sibling:1", force=False, prune_children=True, in_use_by=using_one)
    assert out == [*untagged("sibling:1"), DeleteItem(deleted=sibling.id)]
    assert store.get(one.id) is not None  # a stopped container uses it: quietly kept


async def test_an_image_with_children_cannot_be_deleted_even_forced(store: ImageStore) -> None:
    base, one, _, _ = await build_chain(store)
    for name, image in (("busybox", base), (one.id, one)):
        for force in (False, True):
            with pytest.raises(Conflict) as info:
                await store.delete(image.id if name == "busybox" else name, force=force,
                                   prune_children=True, in_use_by=no_users)
            assert info.value.message == (f"conflict: unable to delete {image.short_id} "
                                          "(cannot be forced) - image has dependent child images")
    # by tag: the tag goes, the image stays for its children (dockerd's quiet delete)
    out = await store.delete("busybox", force=False, prune_children=True, in_use_by=no_users)
    assert out == untagged("busybox:latest")
    assert store.get(base.id) is not None


async def test_forced_rmi_of_a_used_image_still_prunes_its_parents(store: ImageStore) -> None:
    _, one, two, top = await build_chain(store)

    def using_top(image_id: str) -> Sequence[tuple[str, bool]]:
        return [("c" * 64, False)] if image_id == top.id else []

    out = await store.delete(top.id, force=True, prune_children=True, in_use_by=using_top)
    assert out == [*untagged("built:1"), DeleteItem(deleted=top.id), DeleteItem(deleted=two.id),
                   DeleteItem(deleted=one.id)]
    assert store.get(top.id) is not None  # hidden, for its container


# prune -----------------------------------------------------------------------------


async def test_prune_dangling_and_all(store: ImageStore) -> None:
    tagged = await do_import(store, BUSYBOX, "kept")
    dangling = await do_import(store, OTHER, None)
    used = await do_import(store, rootfs(("u", b"u")), None)

    def in_use(image_id: str) -> bool:
        return image_id == used.id

    items, reclaimed = await store.prune(dangling_only=True, in_use=in_use)
    assert items == [DeleteItem(deleted=dangling.id), DeleteItem(deleted=dangling.diff_ids[0])]
    assert reclaimed == dangling.size == 5
    assert {i.id for i in store.list()} == {tagged.id, used.id}

    items, reclaimed = await store.prune(dangling_only=False, in_use=in_use,
                                         select=lambda img: True)
    assert items[:2] == [DeleteItem(untagged="kept:latest"), DeleteItem(deleted=tagged.id)]
    assert reclaimed == tagged.size
    assert [i.id for i in store.list()] == [used.id]


async def test_prune_takes_chains_from_the_top(store: ImageStore) -> None:
    base, one, two, top = await build_chain(store)
    await store.delete("built:1", force=False, prune_children=False, in_use_by=no_users)
    # `two` is the dangling head now; `one` is not a head: it goes with `two`
    items, _ = await store.prune(dangling_only=True, in_use=lambda _i: False)
    assert store.get(top.id) is None
    assert items == [DeleteItem(deleted=two.id), DeleteItem(deleted=one.id)]
    assert [i.id for i in store.list()] == [base.id]


async def test_prune_select_narrows(store: ImageStore) -> None:
    await do_import(store, OTHER, None)
    items, reclaimed = await store.prune(dangling_only=True, in_use=lambda _i: False,
                                         select=lambda img: False)
    assert items == []
    assert reclaimed == 0


# crash recovery ------------------------------------------------------------------------


async def test_open_cleans_crash_leftovers(tmp_path: Path) -> None:
    root = tmp_path / "images"
    store = await ImageStore.open(root)
    image = await do_import(store)
    # what a kill -9 at various points leaves behind
    (store.tmp_dir / "upload-abc").write_bytes(b"partial upload")
    staging = store.layers_dir / ".tmp-0123"
    (staging / "diff").mkdir(parents=True)
    (staging / "diff" / "f").write_bytes(b"half")
    (store.layers_dir / ".del-abc-1234" / "diff").mkdir(parents=True)
    orphan_layer = store.layers_dir / ("e" * 64)
    (orphan_layer / "diff").mkdir(parents=True)
    (orphan_layer / "size").write_text("0\n")
    (store.blobs_dir / ("d" * 64)).write_bytes(b"orphan blob")
    (store.blobs_dir / f".{'c' * 64}.xyz.tmp").write_bytes(b"half blob")
    (root / ".repositories.json.abc.tmp").write_bytes(b"{")
    (root / "index" / ".deadbeef.json.x.tmp").write_bytes(b"{")
    (root / "index" / f"{'b' * 64}.json").write_text(json.dumps({"id": "sha256:" + "b" * 64}))
    refs = json.loads(store.repositories_path.read_bytes())
    refs["references"]["docker.io/library/ghost:latest"] = "sha256:" + "b" * 64
    store.repositories_path.write_text(json.dumps(refs))

    reopened = await ImageStore.open(root)

    assert [i.id for i in reopened.list()] == [image.id]
    assert reopened.resolve("busybox").id == image.id
    with pytest.raises(NotFound):
        reopened.resolve("ghost")
    assert list(reopened.tmp_dir.iterdir()) == []
    assert sorted(p.name for p in reopened.layers_dir.iterdir()) == [
        image.diff_ids[0].removeprefix("sha256:"), "l"
    ]
    assert sorted(p.name for p in reopened.blobs_dir.iterdir()) == sorted(
        [image.id.removeprefix("sha256:"), image.diff_ids[0].removeprefix("sha256:")]
    )
    assert not list(root.glob(".*.tmp"))
    assert (root / "index" / f"{'b' * 64}.corrupt").exists()  # record without blob: set aside


async def test_image_without_its_layer_is_set_aside(tmp_path: Path) -> None:
    root = tmp_path / "images"
    store = await ImageStore.open(root)
    image = await do_import(store)
    hexid = image.diff_ids[0].removeprefix("sha256:")
    os.rename(store.layers_dir / hexid, store.layers_dir / ".del-x")
    reopened = await ImageStore.open(root)
    assert reopened.list() == []
    with pytest.raises(NotFound):
        reopened.resolve("busybox")


async def test_write_blob_verifies(store: ImageStore) -> None:
    digest, size = await store.write_blob(chunks(b"abc"))
    assert digest == "sha256:" + hashlib.sha256(b"abc").hexdigest()
    assert size == 3
    assert store.blob_path(digest).read_bytes() == b"abc"
    with pytest.raises(InvalidParameter, match="mismatch"):
        await store.write_blob(chunks(b"abc"), expected="sha256:" + "0" * 64)
    assert list(store.tmp_dir.iterdir()) == []
