"""Image archives: `docker save` output (docker-archive + OCI layout), loading it and OCI
archives back, and refusing hostile archives without leaving anything behind."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from engine.api.handlers.images import load_messages
from engine.errors import InvalidParameter, NotFound, SystemFailure
from engine.images import archive
from engine.images.importer import host_architecture
from engine.images.model import Image
from engine.images.reference import parse
from engine.images.store import CorruptBlob, ImageStore

pytestmark = pytest.mark.needs_root("layer unpacking needs root")


# building blocks -----------------------------------------------------------------


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


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


async def chunks(data: bytes, size: int = 7000) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


@pytest.fixture
async def store(tmp_path: Path) -> ImageStore:
    return await ImageStore.open(tmp_path / "images", durable=False)


@pytest.fixture
async def other_store(tmp_path: Path) -> ImageStore:
    return await ImageStore.open(tmp_path / "other", durable=False)


async def do_import(store: ImageStore, data: bytes = BUSYBOX, name: str | None = "busybox",
                    message: str = "Imported from -") -> Image:
    return await store.import_rootfs(chunks(data), reference=parse(name) if name else None,
                                     changes=['CMD ["sh"]'], message=message)


async def save(store: ImageStore, *names: str) -> bytes:
    plan = await archive.prepare_save(store, list(names))
    return b"".join([piece async for piece in plan.chunks()])


async def load(store: ImageStore, data: bytes) -> list[archive.LoadedImage]:
    return await archive.load_archive(store, chunks(data))


def members(data: bytes) -> dict[str, bytes]:
    out = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        for info in tar:
            if info.isreg():
                f = tar.extractfile(info)
                assert f is not None
                out[info.name] = f.read()
            else:
                out[info.name + "/"] = b""
    return out


def config_blob(*diff_ids: str, os_name: str = "linux") -> bytes:
    arch, _ = host_architecture()
    return json.dumps({
        "architecture": arch, "os": os_name, "config": {"Cmd": ["sh"]},
        "created": "2024-01-01T00:00:00Z",
        "rootfs": {"type": "layers", "diff_ids": list(diff_ids)},
    }).encode()


class Tar:
    """An archive made by hand, including members no honest tool writes."""

    def __init__(self) -> None:
        self.buf = io.BytesIO()
        self.tar = tarfile.open(  # noqa: SIM115 - closed by bytes()
            fileobj=self.buf, mode="w", format=tarfile.PAX_FORMAT)

    def file(self, name: str, data: bytes) -> Tar:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        self.tar.addfile(info, io.BytesIO(data))
        return self

    def link(self, name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> Tar:
        info = tarfile.TarInfo(name)
        info.type = kind
        info.linkname = target
        self.tar.addfile(info)
        return self

    def json(self, name: str, doc: Any) -> Tar:
        return self.file(name, json.dumps(doc).encode())

    def bytes(self) -> bytes:
        self.tar.close()
        return self.buf.getvalue()


def docker_archive(layers: Sequence[bytes] = (BUSYBOX,), tags: Sequence[str] = ("busybox:latest",),
                   *, layer_paths: Sequence[str] | None = None, write_layers: bool = True,
                   diff_ids: Sequence[str] | None = None, extra: Tar | None = None) -> Tar:
    """A docker-archive as older `docker save` wrote it; `layer_paths` may lie."""
    tar = extra or Tar()
    ids = list(diff_ids) if diff_ids is not None else [sha(layer) for layer in layers]
    config = config_blob(*ids)
    tar.file(f"{sha(config)[7:]}.json", config)
    paths = list(layer_paths or [f"l{i}/layer.tar" for i in range(len(layers))])
    if write_layers:
        for path, layer in zip(paths, layers, strict=True):
            tar.file(path, layer)
    return tar.json("manifest.json", [{"Config": f"{sha(config)[7:]}.json",
                                       "RepoTags": list(tags), "Layers": paths}])


def oci_archive(layer: bytes, *, compress: bool = True, name: str | None = "docker.io/library/ocibox:v1",
                nested: bool = False, platforms: Sequence[str] = ()) -> bytes:
    """An OCI layout archive as `skopeo copy … oci-archive:` writes one."""
    tar = Tar().file("oci-layout", archive.OCI_LAYOUT)
    blob = gzip.compress(layer, mtime=0) if compress else layer
    config = config_blob(sha(layer))
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": archive.MEDIA_MANIFEST,
        "config": {"mediaType": archive.MEDIA_CONFIG, "digest": sha(config), "size": len(config)},
        "layers": [{"mediaType": archive.MEDIA_LAYER + (".gzip" if compress else ""),
                    "digest": sha(blob), "size": len(blob)}],
    }).encode()
    for data in (blob, config, manifest):
        tar.file(f"blobs/sha256/{sha(data)[7:]}", data)
    top = {"mediaType": archive.MEDIA_MANIFEST, "digest": sha(manifest), "size": len(manifest)}
    if nested:
        arch, _ = host_architecture()
        children = [{**top, "platform": {"os": "linux", "architecture": arch}}]
        for other in platforms:  # other platforms point at a missing manifest: never read
            os_name, other_arch = other.split("/")
            children.insert(0, {"mediaType": archive.MEDIA_MANIFEST, "digest": "sha256:" + "e" * 64,
                                "size": 10, "platform": {"os": os_name, "architecture": other_arch}})
        inner = json.dumps({"schemaVersion": 2, "mediaType": archive.MEDIA_INDEX,
                            "manifests": children}).encode()
        tar.file(f"blobs/sha256/{sha(inner)[7:]}", inner)
        top = {"mediaType": archive.MEDIA_INDEX, "digest": sha(inner), "size": len(inner)}
    if name is not None:
        top["annotations"] = {archive.ANNOTATION_REF_NAME: name}
    return tar.json("index.json", {"schemaVersion": 2, "manifests": [top]}).bytes()


async def nothing_left(store: ImageStore) -> None:
    await store.drain()  # removed layers' files go in the background
    assert store.list() == []
    assert [p for p in store.layers_dir.iterdir() if p.name not in ("l",)] == []
    assert list(store.tmp_dir.iterdir()) == []


# save -----------------------------------------------------------------------------


async def test_save_writes_a_docker_archive_that_is_an_oci_layout(store: ImageStore) -> None:
    image = await do_import(store)
    diff_id = image.diff_ids[0]
    files = members(await save(store, "busybox:latest"))
    manifest = json.loads(files["manifest.json"])
    assert manifest == [{"Config": f"blobs/sha256/{image.id[7:]}", "RepoTags": ["busybox:latest"],
                         "Layers": [f"blobs/sha256/{diff_id[7:]}"]}]
    assert files[f"blobs/sha256/{diff_id[7:]}"] == BUSYBOX
    assert sha(files[f"blobs/sha256/{image.id[7:]}"]) == image.id
    assert json.loads(files["repositories"]) == {"busybox": {"latest": diff_id[7:]}}
    assert json.loads(files["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads(files["index.json"])
    assert index["mediaType"] == archive.MEDIA_INDEX
    [entry] = index["manifests"]
    assert entry["annotations"] == {"io.containerd.image.name": "docker.io/library/busybox:latest",
                                    "org.opencontainers.image.ref.name": "latest"}
    oci_manifest = files[f"blobs/sha256/{entry['digest'][7:]}"]
    assert sha(oci_manifest) == entry["digest"]
    assert len(oci_manifest) == entry["size"]
    doc = json.loads(oci_manifest)
    assert doc["config"]["digest"] == image.id
    assert doc["layers"] == [{"mediaType": archive.MEDIA_LAYER, "digest": diff_id,
                              "size": len(BUSYBOX)}]
    names = list(files)
    assert names[:2] == ["blobs/", "blobs/sha256/"]
    assert names[-4:] == ["index.json", "manifest.json", "oci-layout", "repositories"]


async def test_save_by_id_carries_no_tags(store: ImageStore) -> None:
    image = await do_import(store)
    for name in (image.id, image.id[7:19]):
        files = members(await save(store, name))
        assert json.loads(files["manifest.json"])[0]["RepoTags"] is None
        assert "repositories" not in files
        [entry] = json.loads(files["index.json"])["manifests"]
        assert "annotations" not in entry


async def test_save_by_repository_takes_all_its_tags_only(store: ImageStore) -> None:
    image = await do_import(store)
    await store.tag("busybox", parse("busybox:1"))
    await store.tag("busybox", parse("other:latest"))
    files = members(await save(store, "busybox"))
    assert json.loads(files["manifest.json"])[0]["RepoTags"] == ["busybox:1", "busybox:latest"]
    files = members(await save(store, "busybox:1", image.id, "other"))
    [item] = json.loads(files["manifest.json"])
    assert item["RepoTags"] == ["busybox:1", "other:latest"]


async def test_save_of_several_images_shares_nothing_twice(store: ImageStore) -> None:
    first = await do_import(store)
    second = await do_import(store, name="again:1", message="second")
    assert first.id != second.id
    assert first.diff_ids == second.diff_ids
    files = members(await save(store, "busybox", "again:1"))
    assert len(json.loads(files["manifest.json"])) == 2
    layer_members = [n for n in files if n.endswith(first.diff_ids[0][7:])]
    assert len(layer_members) == 1


async def test_save_unknown_name_is_not_found(store: ImageStore) -> None:
    await do_import(store)
    with pytest.raises(NotFound, match="No such image: nosuch"):
        await archive.prepare_save(store, ["busybox", "nosuch"])
    with pytest.raises(InvalidParameter):
        await archive.prepare_save(store, [])


async def test_save_is_byte_identical_every_time(store: ImageStore) -> None:
    await do_import(store)
    assert await save(store, "busybox") == await save(store, "busybox")


async def test_save_decompresses_a_compressed_layer(store: ImageStore) -> None:
    image = await do_import(store, gzip.compress(BUSYBOX))
    assert store.layer_blob(image.diff_ids[0]) != image.diff_ids[0]
    data = await save(store, "busybox")
    files = members(data)
    assert files[f"blobs/sha256/{image.diff_ids[0][7:]}"] == BUSYBOX
    assert data == await save(store, "busybox")  # the size now comes from the cache


async def test_a_corrupt_blob_fails_the_save_before_any_byte(store: ImageStore) -> None:
    image = await do_import(store)
    blob = store.layer_blob(image.diff_ids[0])
    assert blob is not None
    store.blob_path(blob).write_bytes(b"rotten")
    with pytest.raises(CorruptBlob):
        await archive.prepare_save(store, ["busybox"])
    with pytest.raises(SystemFailure, match="no longer in the store"):
        await archive.prepare_save(store, ["busybox"])


async def test_loading_gives_a_layer_its_lost_tarball_back(store: ImageStore,
                                                             other_store: ImageStore) -> None:
    image = await do_import(store)
    good = await save(store, "busybox")
    blob = store.layer_blob(image.diff_ids[0])
    assert blob is not None
    store.blob_path(blob).write_bytes(b"rotten")
    with pytest.raises(CorruptBlob):
        await archive.prepare_save(store, ["busybox"])
    assert store.layer_blob(image.diff_ids[0]) is None
    [loaded] = await load(store, good)
    assert loaded.new_layers == ()
    assert store.layer_blob(image.diff_ids[0]) == image.diff_ids[0]
    assert await save(store, "busybox") == good


async def test_a_layer_changing_during_the_stream_never_completes(store: ImageStore) -> None:
    await do_import(store, rootfs(("big", os.urandom(3 * 1024 * 1024))))
    plan = await archive.prepare_save(store, ["busybox"])
    member = next(m for m in plan.members if m.layer is not None)
    layer = member.layer
    assert layer is not None
    got = bytearray()

    def spoil() -> None:
        with open(layer.path, "r+b") as f:
            f.seek(-600, os.SEEK_END)
            f.write(b"x")

    async def stream() -> None:
        async for piece in plan.chunks():
            got.extend(piece)
            if len(got) > 1024 * 1024 and not spoiled:
                spoiled.append(True)
                spoil()

    spoiled: list[bool] = []
    with pytest.raises(SystemFailure, match="changed while it was being saved"):
        await stream()
    start = got.index(member.name.encode()) + 512
    assert len(got) - start < layer.size


# load -----------------------------------------------------------------------------


async def test_round_trip_into_another_store(store: ImageStore, other_store: ImageStore) -> None:
    image = await do_import(store)
    loaded = await load(other_store, await save(store, "busybox"))
    assert loaded == [archive.LoadedImage(
        image.id, (archive.LoadedTag("busybox:latest"),),
        ((image.diff_ids[0], len(BUSYBOX)),))]
    copy = other_store.resolve("busybox")
    assert copy.id == image.id
    assert copy.config.cmd == ["sh"]
    assert (other_store.layer_dirs(copy)[0] / "bin" / "sh").read_bytes() == b"#!fake shell\n"
    assert await save(other_store, "busybox") == await save(store, "busybox")
    assert list(other_store.tmp_dir.iterdir()) == []


async def test_load_skips_stored_layers_and_restores_removed_images(store: ImageStore) -> None:
    image = await do_import(store)
    data = await save(store, image.id)
    [again] = await load(store, data)
    assert again == archive.LoadedImage(image.id)
    await store.delete("busybox", force=False, prune_children=True, in_use_by=lambda _i: [])
    assert store.list() == []
    [back] = await load(store, data)
    assert back.image_id == image.id
    assert back.tags == ()
    assert len(back.new_layers) == 1
    assert store.is_dangling(image.id)


async def test_load_moves_a_tag_and_says_so(store: ImageStore, other_store: ImageStore) -> None:
    image = await do_import(store)
    old = await do_import(other_store, OTHER)
    [loaded] = await load(other_store, await save(store, "busybox"))
    assert loaded.tags == (archive.LoadedTag("busybox:latest", old.id),)
    assert other_store.resolve("busybox").id == image.id
    assert other_store.is_dangling(old.id)
    assert load_messages([loaded], quiet=True) == [
        {"stream": f"The image busybox:latest already exists, renaming the old one with ID "
                   f"{old.id} to empty string\n"},
        {"stream": "Loaded image: busybox:latest\n"},
    ]


async def test_load_messages_name_untagged_images_by_id() -> None:
    loaded = archive.LoadedImage("sha256:" + "a" * 64, (), (("sha256:" + "b" * 64, 2048),))
    assert load_messages([loaded], quiet=False) == [
        {"status": "Loading layer", "progressDetail": {"current": 2048, "total": 2048},
         "id": "b" * 12},
        {"stream": f"Loaded image ID: sha256:{'a' * 64}\n"},
    ]


async def test_load_a_gzipped_archive(store: ImageStore, other_store: ImageStore) -> None:
    await do_import(store)
    [loaded] = await load(other_store, gzip.compress(await save(store, "busybox")))
    assert loaded.tags[0].name == "busybox:latest"


async def test_load_a_plain_docker_archive_with_shared_layer_links(store: ImageStore) -> None:
    """Docker before 25 linked a layer two images share instead of writing it twice."""
    tar = Tar().file("aaa/layer.tar", BUSYBOX).link("bbb/layer.tar", "../aaa/layer.tar")
    data = docker_archive(layer_paths=["bbb/layer.tar"], write_layers=False, extra=tar).bytes()
    [loaded] = await load(store, data)
    assert store.resolve("busybox").id == loaded.image_id


async def test_load_an_oci_archive_with_a_gzipped_layer(store: ImageStore) -> None:
    [loaded] = await load(store, oci_archive(BUSYBOX))
    image = store.resolve("ocibox:v1")
    assert image.id == loaded.image_id
    assert image.diff_ids == [sha(BUSYBOX)]
    assert store.layer_blob(sha(BUSYBOX)) == sha(gzip.compress(BUSYBOX, mtime=0))
    files = members(await save(store, "ocibox:v1"))  # saved back uncompressed
    assert files[f"blobs/sha256/{sha(BUSYBOX)[7:]}"] == BUSYBOX


async def test_load_an_oci_archive_through_a_nested_index(store: ImageStore) -> None:
    data = oci_archive(BUSYBOX, nested=True, platforms=["linux/s390x", "windows/amd64"])
    [loaded] = await load(store, data)
    assert store.resolve("ocibox:v1").id == loaded.image_id


async def test_load_an_oci_archive_whose_ref_name_is_only_a_tag(store: ImageStore) -> None:
    [loaded] = await load(store, oci_archive(BUSYBOX, compress=False, name="v1"))
    assert loaded.tags == ()
    assert store.list()[0].id == loaded.image_id


async def test_load_refuses_windows_images(store: ImageStore) -> None:
    config = config_blob(sha(BUSYBOX), os_name="windows")
    tar = Tar().file("c.json", config).file("l.tar", BUSYBOX)
    data = tar.json("manifest.json", [{"Config": "c.json", "Layers": ["l.tar"]}]).bytes()
    with pytest.raises(InvalidParameter, match="cannot load windows image on linux"):
        await load(store, data)


async def test_a_load_failing_on_its_second_layer_leaves_no_layer_behind(
        store: ImageStore, monkeypatch: pytest.MonkeyPatch) -> None:
    ingested: list[str] = []
    real_ingest = store.ingest_layer

    async def counting_ingest(tarball: Path, **kwargs: Any) -> Any:
        stats = await real_ingest(tarball, **kwargs)
        ingested.append(stats.diff_id)
        return stats

    monkeypatch.setattr(store, "ingest_layer", counting_ingest)
    escaping = rootfs(("../escape", b"x"))  # passes the archive's checks, not unpacking
    with pytest.raises(InvalidParameter, match="outside the layer"):
        await load(store, docker_archive([OTHER, escaping]).bytes())
    assert ingested == [sha(OTHER)]  # the first layer did make it into the store
    await nothing_left(store)
    assert not store.has_layer(sha(OTHER))
    assert list(store.links_dir.iterdir()) == []
    assert list(store.blobs_dir.iterdir()) == []


async def test_discard_layers_keeps_what_an_image_or_a_pin_needs(store: ImageStore,
                                                                 tmp_path: Path) -> None:
    image = await do_import(store)
    used = image.diff_ids[0]
    tarball = tmp_path / "other.tar"
    tarball.write_bytes(OTHER)
    await store.ingest_layer(tarball, blob_digest=sha(OTHER), expected_diff_id=sha(OTHER))
    with store.pin_layers([sha(OTHER)]):
        assert await store.discard_layers([used, sha(OTHER)]) == []
    assert await store.discard_layers([used, sha(OTHER)]) == [sha(OTHER)]
    assert store.has_layer(used)
    assert not store.has_layer(sha(OTHER))
    assert not (store.layers_dir / sha(OTHER)[7:]).exists()
    assert not store.blob_path(sha(OTHER)).exists()
    assert store.resolve("busybox").id == image.id


# hostile archives -------------------------------------------------------------------


def _huge_manifest() -> bytes:
    return Tar().file("manifest.json", b"[" + b" " * (archive.MAX_JSON_BYTES + 1) + b"]").bytes()


def _lying_size() -> bytes:
    data = docker_archive().bytes()
    info = tarfile.TarInfo("zz-big")
    info.size = 10 * 1024 * 1024
    return data.rstrip(b"\0") + b"\0" * (-len(data.rstrip(b"\0")) % 512) + info.tobuf() + b"x" * 100


def _oci_with_bad_blob() -> bytes:
    data = oci_archive(BUSYBOX, compress=False)
    return data.replace(b"#!fake shell", b"#!evil shell")


HOSTILE = {
    "dotdot member": (lambda: docker_archive(extra=Tar().file("../x", b"x")).bytes(),
                      "climbs out of the archive"),
    "absolute member": (lambda: docker_archive(extra=Tar().file("/etc/x", b"x")).bytes(),
                        "absolute path"),
    "symlinked manifest.json": (
        lambda: Tar().link("manifest.json", "/etc/passwd").bytes(), "outside the archive"),
    "manifest.json linked inside": (
        lambda: Tar().json("m.json", []).link("manifest.json", "m.json").bytes(),
        "must be a regular file"),
    "hard link": (lambda: docker_archive(extra=Tar().link("h", "/etc/shadow", tarfile.LNKTYPE))
                  .bytes(), "hard link"),
    "device": (lambda: docker_archive(extra=Tar().link("d", "", tarfile.CHRTYPE)).bytes(),
               "not a regular file"),
    "layer outside": (lambda: docker_archive(layer_paths=["../../etc/passwd"],
                                             write_layers=False).bytes(), "outside the archive"),
    "layer absolute": (lambda: docker_archive(layer_paths=["/etc/passwd"],
                                              write_layers=False).bytes(), "outside the archive"),
    "layer link outside": (
        lambda: docker_archive(layer_paths=["l.tar"], write_layers=False,
                               extra=Tar().link("l.tar", "../../etc/passwd")).bytes(),
        "outside the archive"),
    "missing layer": (lambda: docker_archive(layer_paths=["blobs/sha256/" + "0" * 64],
                                             write_layers=False).bytes(), "not in the archive"),
    "diff ID mismatch": (lambda: docker_archive(diff_ids=[sha(OTHER)]).bytes(),
                         "does not match the image config"),
    "layer count mismatch": (lambda: docker_archive(diff_ids=[sha(BUSYBOX), sha(OTHER)]).bytes(),
                             "layers length mismatch"),
    "size beyond the end": (_lying_size, "archive ends before"),
    "huge JSON": (_huge_manifest, "too large"),
    "deep JSON": (lambda: Tar().file("manifest.json", b"[" * 100_000).bytes(), "not valid JSON"),
    "null manifest": (lambda: Tar().file("manifest.json", b"null").bytes(), "cannot be null"),
    "bad tag": (lambda: docker_archive(tags=["Busybox:x"]).bytes(), "must be lowercase"),
    "duplicate member": (lambda: docker_archive(extra=Tar().file("manifest.json", b"[]")).bytes(),
                         "appears twice"),
    "no manifest": (lambda: Tar().file("x", b"").bytes(), "neither a manifest.json"),
    "not a tar": (lambda: b"hello" * 300, "not a readable tar"),
    "empty": (lambda: b"", "not a readable tar"),
    "bad gzip": (lambda: b"\x1f\x8b" + b"\0" * 600, "cannot decompress"),
    "OCI blob not matching": (_oci_with_bad_blob, "does not match its digest"),
}


@pytest.mark.parametrize("case", list(HOSTILE))
async def test_hostile_archives_are_refused_and_leave_nothing(store: ImageStore, case: str) -> None:
    make, message = HOSTILE[case]
    with pytest.raises(InvalidParameter, match=message):
        await load(store, make())
    await nothing_left(store)


async def test_a_refused_archive_leaves_stored_images_alone(store: ImageStore) -> None:
    image = await do_import(store)
    with pytest.raises(InvalidParameter):
        await load(store, docker_archive(diff_ids=[sha(OTHER)], tags=["busybox:latest"]).bytes())
    assert store.resolve("busybox").id == image.id
    assert list(store.tmp_dir.iterdir()) == []
