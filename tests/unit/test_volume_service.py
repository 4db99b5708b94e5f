"""VolumeService on a temporary data root with the real local driver (as root).

Everything real but the containers: claims, mounts and releases are made with
container IDs, the way the container manager makes them.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
import trio

from engine.errors import Conflict, InvalidParameter, NotFound
from engine.events import EventBus
from engine.kernel.mounts import is_mountpoint, unmount
from engine.volumes.model import ANONYMOUS_LABEL, MountPoint, SpecMount
from engine.volumes.parse import parse_mount_requests, volumes_from
from engine.volumes.service import VolumeService, volume_drivers_from
from plugins import load_plugin_manager
from volume_drivers.local import LocalDriver

# These tests look at the files the service made, from the test task: blocking is fine here.
# ruff: noqa: ASYNC240

pytestmark = pytest.mark.needs_root("chown and mount need root")

C1 = "c1" * 32
C2 = "c2" * 32


@pytest.fixture
async def service(tmp_path: Path) -> VolumeService:
    drivers = {"local": LocalDriver(tmp_path / "volumes")}
    return await VolumeService.open(tmp_path, drivers, events=EventBus(), durable=False)


def _cleanup_mounts(root: Path) -> None:
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4]
        if point.startswith(str(root)):
            unmount(Path(point))


@pytest.fixture(autouse=True)
def no_leftover_mounts(tmp_path: Path):  # type: ignore[no-untyped-def]
    yield
    _cleanup_mounts(tmp_path)


# the volumes API side ----------------------------------------------------------------------


async def test_create_inspect_list_remove(service: VolumeService, tmp_path: Path) -> None:
    volume = await service.create("data", labels={"team": "a"})
    assert volume.driver == "local"
    assert volume.mountpoint == str(tmp_path / "volumes" / "data" / "_data")
    assert Path(volume.mountpoint).is_dir()
    assert not volume.anonymous
    record = json.loads((tmp_path / "state" / "volumes" / "data.json").read_text())
    assert record["name"] == "data"
    assert record["labels"] == {"team": "a"}
    # creating it again gives the same volume, unchanged
    again = await service.create("data", labels={"other": "x"})
    assert again.labels == {"team": "a"}
    assert [v.name for v in service.list()] == ["data"]
    await service.remove("data")
    assert service.list() == []
    assert not (tmp_path / "volumes" / "data").exists()
    assert not (tmp_path / "state" / "volumes" / "data.json").exists()
    with pytest.raises(NotFound, match=r"^get data: no such volume$"):
        await service.remove("data")
    await service.remove("data", force=True)  # force: missing is fine


async def test_records_survive_a_restart(service: VolumeService, tmp_path: Path) -> None:
    await service.create("kept", labels={"a": "b"}, options={"uid": "1000"})
    reopened = await VolumeService.open(tmp_path, service.drivers, durable=False)
    assert reopened.get("kept").labels == {"a": "b"}
    assert reopened.get("kept").options == {"uid": "1000"}


async def test_a_volume_without_a_record_is_adopted(tmp_path: Path) -> None:
    driver = LocalDriver(tmp_path / "volumes")
    await driver.create("orphan", {})  # as if moord died before saving the record
    service = await VolumeService.open(tmp_path, {"local": driver}, durable=False)
    adopted = service.get("orphan")
    assert not adopted.anonymous
    assert adopted.populated


async def test_anonymous_create(service: VolumeService) -> None:
    volume = await service.create()
    assert len(volume.name) == 64
    assert volume.anonymous
    assert volume.labels == {ANONYMOUS_LABEL: ""}


async def test_bad_names_options_and_drivers(service: VolumeService, tmp_path: Path) -> None:
    with pytest.raises(InvalidParameter, match="includes invalid characters"):
        await service.create("../etc")
    with pytest.raises(InvalidParameter, match=r'^create v1: invalid option: "foo"$'):
        await service.create("v1", options={"foo": "bar"})
    with pytest.raises(InvalidParameter, match='missing required option: "device"'):
        await service.create("v1", options={"type": "tmpfs"})
    with pytest.raises(NotFound, match='error looking up volume plugin nope: plugin "nope" not found'):
        await service.create("v1", driver="nope")
    assert service.list() == []
    assert not (tmp_path / "volumes" / "v1").exists()


async def test_list_filters(service: VolumeService) -> None:
    await service.create("alpha", labels={"env": "prod", "tier": "db"})
    await service.create("beta", labels={"env": "dev"})
    anon = await service.create()
    await service.claim(C1, parse_mount_requests(binds=["alpha:/a"]))

    def names(**filters: list[str]) -> list[str]:
        return [v.name for v in service.list(filters)]

    assert names(dangling=["true"]) == sorted(["beta", anon.name])
    assert names(dangling=["false"]) == ["alpha"]
    assert names(dangling=["1"]) == names(dangling=["true"])
    assert names(name=["alp"]) == ["alpha"]
    # the anonymous volume's random hex name starts with "b" one time in sixteen
    assert names(name=["^b"]) == sorted(["beta", *([anon.name] if anon.name[0] == "b" else [])])
    assert names(name=["^bet"]) == ["beta"]
    assert names(label=["env"]) == ["alpha", "beta"]
    assert names(label=["env=prod"]) == ["alpha"]
    assert names(label=["env=prod", "tier=db"]) == ["alpha"]
    assert names(label=["env=prod", "tier=web"]) == []
    assert names(driver=["local"]) == sorted(["alpha", "beta", anon.name])
    assert names(driver=["other"]) == []
    with pytest.raises(InvalidParameter, match="invalid filter 'bogus'"):
        service.list({"bogus": ["x"]})
    with pytest.raises(InvalidParameter, match="invalid filter 'dangling=maybe'"):
        service.list({"dangling": ["maybe"]})


async def test_in_use_volumes_are_not_removed(service: VolumeService) -> None:
    await service.create("busy")
    await service.claim(C1, parse_mount_requests(binds=["busy:/a"]))
    await service.claim(C2, parse_mount_requests(mounts=[{"Type": "volume", "Source": "busy",
                                                          "Target": "/b"}]))
    message = f"^remove busy: volume is in use - \\[{C1} {C2}\\]$"
    with pytest.raises(Conflict, match=message):
        await service.remove("busy")
    with pytest.raises(Conflict):
        await service.remove("busy", force=True)  # force does not override "in use"
    assert service.users("busy") == [C1, C2]


async def test_prune(service: VolumeService) -> None:
    named = await service.create("named")
    anon = await service.create()
    used_anon = await service.create()
    labelled = await service.create("labelled", labels={"keep": "yes"})
    Path(anon.mountpoint, "blob").write_bytes(b"x" * 5000)
    await service.claim(C1, parse_mount_requests(binds=[f"{used_anon.name}:/x"]))
    removed, reclaimed = await service.prune()
    assert removed == [anon.name]
    assert reclaimed == 5000
    assert {v.name for v in service.list()} == {named.name, used_anon.name, labelled.name}
    removed, _ = await service.prune({"all": ["true"], "label!": ["keep"]})
    assert removed == ["named"]
    removed, _ = await service.prune({"all": ["1"], "label": ["keep=yes"]})
    assert removed == ["labelled"]
    with pytest.raises(InvalidParameter, match="invalid filter 'dangling'"):
        await service.prune({"dangling": ["true"]})


async def test_events(service: VolumeService) -> None:
    assert service.events is not None
    await service.create("ev")
    await service.remove("ev")
    actions = [(e.type, e.action, e.actor_id) for e in service.events.history]
    assert actions == [("volume", "create", "ev"), ("volume", "destroy", "ev")]


# the container side --------------------------------------------------------------------------


async def test_claim_creates_what_is_missing(service: VolumeService, tmp_path: Path) -> None:
    host_dir = tmp_path / "host" / "made-by-v"
    requests = parse_mount_requests(
        binds=[f"{host_dir}:/h:ro", "named:/n", "/anon-by-bind"],
        mounts=[{"Type": "volume", "Source": "viamount", "Target": "/m",
                 "VolumeOptions": {"Labels": {"l": "1"}, "NoCopy": True}},
                {"Type": "tmpfs", "Target": "/t", "TmpfsOptions": {"SizeBytes": 1 << 20}}],
        anonymous=["/anon"], image_volumes=["/img", "/n"], tmpfs={"/run": "size=1m"})
    points = await service.claim(C1, requests)
    assert host_dir.is_dir()
    assert stat.S_IMODE(host_dir.stat().st_mode) == 0o755
    by_dest = {p.destination: p for p in points}
    assert by_dest["/h"] == MountPoint(type="bind", destination="/h", source=str(host_dir),
                                       mode="ro", rw=False, propagation="rprivate",
                                       create_source=True)
    assert by_dest["/n"].name == "named"
    assert by_dest["/n"].mode == "z"
    assert by_dest["/n"].copy_data
    assert not by_dest["/n"].anonymous
    assert by_dest["/m"].mode == "z"
    assert not by_dest["/m"].copy_data
    assert service.get("viamount").labels == {"l": "1"}
    assert by_dest["/anon"].anonymous
    assert by_dest["/anon"].mode == ""
    assert by_dest["/anon-by-bind"].anonymous
    assert by_dest["/anon-by-bind"].mode == "z"
    assert by_dest["/img"].anonymous
    assert len(by_dest["/img"].name) == 64
    assert by_dest["/t"].tmpfs_data == "size=1m"
    assert by_dest["/t"].listed
    assert not by_dest["/run"].listed
    for p in points:
        if p.type == "volume":
            assert service.users(p.name) == [C1]
            assert p.source == service.get(p.name).mountpoint


async def test_mount_bind_source_must_exist(service: VolumeService, tmp_path: Path) -> None:
    missing = tmp_path / "nothing-here"
    requests = parse_mount_requests(
        binds=["newvol:/v"], mounts=[{"Type": "bind", "Source": str(missing), "Target": "/x"}])
    with pytest.raises(InvalidParameter) as info:
        await service.claim(C1, requests)
    assert info.value.message == ('invalid mount config for type "bind": bind source path '
                                  f"does not exist: {missing}")
    assert service.list() == []  # nothing was created
    assert not missing.exists()
    # bind-create-mountpoint makes it, as Docker does
    requests = parse_mount_requests(mounts=[{"Type": "bind", "Source": str(missing),
                                             "Target": "/x",
                                             "BindOptions": {"CreateMountpoint": True}}])
    await service.claim(C1, requests)
    assert missing.is_dir()


async def test_claim_checks_before_creating(service: VolumeService) -> None:
    requests = parse_mount_requests(
        binds=["first:/a"],
        mounts=[{"Type": "volume", "Source": "second", "Target": "/b",
                 "VolumeOptions": {"DriverConfig": {"Name": "local", "Options": {"bad": "1"}}}}])
    with pytest.raises(InvalidParameter, match='invalid option: "bad"'):
        await service.claim(C1, requests)
    assert service.list() == []
    # not a 404: from container create, the docker CLI would take that for "no such image"
    with pytest.raises(InvalidParameter, match='plugin "nope" not found'):
        await service.claim(C1, parse_mount_requests(binds=["v9:/a"], volume_driver="nope"))
    assert service.list() == []


async def test_existing_volume_with_another_driver_is_a_conflict(service: VolumeService) -> None:
    await service.create("shared")
    service.drivers["other"] = LocalDriver(service.data_root / "other-volumes", name="other")
    with pytest.raises(Conflict, match="volume name must be unique"):
        await service.claim(C1, parse_mount_requests(
            mounts=[{"Type": "volume", "Source": "shared", "Target": "/a",
                     "VolumeOptions": {"DriverConfig": {"Name": "other"}}}]))


async def test_release_removes_anonymous_volumes_only_when_asked(service: VolumeService) -> None:
    points = await service.claim(C1, parse_mount_requests(binds=["named:/n"], anonymous=["/a"]))
    anon = next(p.name for p in points if p.anonymous)
    assert await service.release(C1, points, remove_anonymous=False) == []
    assert {v.name for v in service.list()} == {"named", anon}
    assert service.users(anon) == []
    points = await service.claim(C2, parse_mount_requests(binds=["named:/n", f"{anon}:/a"]))
    # a volume given by name is not anonymous for this container... but stays anonymous
    assert next(p for p in points if p.name == anon).anonymous
    assert await service.release(C2, points, remove_anonymous=True) == [anon]
    assert {v.name for v in service.list()} == {"named"}


async def test_volumes_from_keeps_shared_anonymous_volumes(service: VolumeService) -> None:
    first = await service.claim(C1, parse_mount_requests(anonymous=["/data"]))
    second = await service.claim(C2, parse_mount_requests(inherited=volumes_from(first, "ro")))
    assert second[0].name == first[0].name
    assert not second[0].rw
    assert not second[0].copy_data
    assert await service.release(C1, first, remove_anonymous=True) == []  # C2 still uses it
    assert await service.release(C2, second, remove_anonymous=True) == [first[0].name]


async def test_mount_for_start_and_populate(service: VolumeService, tmp_path: Path) -> None:
    rootfs = tmp_path / "rootfs"
    app = rootfs / "var" / "lib" / "app"
    (app / "sub").mkdir(parents=True)
    (app / "config").write_text("key=value\n")
    os.chmod(app / "config", 0o640)
    os.chown(app / "config", 1000, 1001)
    os.chown(app, 1000, 1000)
    os.chmod(app, 0o750)
    (app / "link").symlink_to("/etc/passwd")
    os.link(app / "config", app / "hardlink")
    (rootfs / "etc").mkdir()
    # a symlink in the image that points outside: resolved inside the root, never on the host
    (rootfs / "escape").symlink_to("/etc")
    points = await service.claim(C1, parse_mount_requests(
        binds=["appdata:/var/lib/app", "nocopy:/var/lib/app2:nocopy", "esc:/escape"]))
    specs = await service.mount_for_start(C1, points, rootfs=rootfs)
    data = Path(service.get("appdata").mountpoint)
    assert specs[0] == SpecMount("bind", "/var/lib/app", str(data), readonly=False)
    assert (data / "config").read_text() == "key=value\n"
    st = (data / "config").stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (1000, 1001, 0o640)
    root_st = data.stat()
    assert (root_st.st_uid, root_st.st_gid, stat.S_IMODE(root_st.st_mode)) == (1000, 1000, 0o750)
    assert os.readlink(data / "link") == "/etc/passwd"
    assert (data / "hardlink").stat().st_ino == (data / "config").stat().st_ino
    assert (data / "sub").is_dir()
    assert service.get("appdata").populated
    assert list(Path(service.get("nocopy").mountpoint).iterdir()) == []
    assert list(Path(service.get("esc").mountpoint).iterdir()) == []  # /etc in the root is empty
    # data deleted by a container does not come back on the next start
    for entry in data.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            os.rmdir(entry)
        else:
            entry.unlink()
    await service.unmount_after_stop(C1, points)
    await service.mount_for_start(C1, points, rootfs=rootfs)
    assert list(data.iterdir()) == []


async def test_populate_does_not_overwrite(service: VolumeService, tmp_path: Path) -> None:
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "f").write_text("image")
    volume = await service.create("full")
    Path(volume.mountpoint, "mine").write_text("mine")
    assert not await service.populate("full", tmp_path / "img")
    assert not Path(volume.mountpoint, "f").exists()
    assert service.get("full").populated


async def test_uid_gid_mode_options(service: VolumeService, tmp_path: Path) -> None:
    volume = await service.create("owned", options={"uid": "1000", "gid": "2000", "mode": "0770"})
    st = Path(volume.mountpoint).stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (1000, 2000, 0o770)
    # the options win over the image directory's owner when content is copied in
    image_dir = tmp_path / "imgdir"
    image_dir.mkdir()
    (image_dir / "x").write_text("x")
    assert await service.populate("owned", image_dir)
    st = Path(volume.mountpoint).stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (1000, 2000, 0o770)
    for bad, message in (({"uid": "bob"}, "a number is needed"), ({"mode": "999"}, "octal"),
                         ({"gid": "-1"}, "out of range")):
        with pytest.raises(InvalidParameter, match=message):
            await service.create("bad1", options=bad)


async def test_tmpfs_volume_is_mounted_while_used(service: VolumeService) -> None:
    await service.create("scratch", options={"type": "tmpfs", "device": "tmpfs",
                                             "o": "size=4m", "uid": "1000", "mode": "0700"})
    data = Path(service.get("scratch").mountpoint)
    points = await service.claim(C1, parse_mount_requests(binds=["scratch:/s"]))
    await service.claim(C2, parse_mount_requests(binds=["scratch:/s2"]))
    assert not is_mountpoint(data)
    await service.mount_for_start(C1, points)
    assert is_mountpoint(data)
    st = data.stat()
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (1000, 0o700)
    assert os.statvfs(data).f_blocks * os.statvfs(data).f_frsize == 4 << 20
    await service.mount_for_start(C2, points)  # a second user: no second mount
    await service.unmount_after_stop(C1, points)
    assert is_mountpoint(data)  # C2 still has it
    await service.unmount_after_stop(C1, points)  # idempotent
    await service.unmount_after_stop(C2, points)
    assert not is_mountpoint(data)


async def test_bind_style_volume(service: VolumeService, tmp_path: Path) -> None:
    device = tmp_path / "srv-data"
    device.mkdir()
    (device / "hello").write_text("hi")
    await service.create("bound", options={"type": "none", "o": "bind,ro", "device": str(device)})
    points = await service.claim(C1, parse_mount_requests(binds=["bound:/b"]))
    [spec] = await service.mount_for_start(C1, points)
    assert Path(spec.source, "hello").read_text() == "hi"
    with pytest.raises(OSError, match="Read-only file system"):
        Path(spec.source, "new").write_text("no")
    await service.release(C1, points, remove_anonymous=True)
    await service.remove("bound")
    assert (device / "hello").read_text() == "hi"  # the user's directory is never deleted
    with pytest.raises(InvalidParameter, match="absolute host path"):
        await service.create("bound2", options={"type": "none", "o": "bind", "device": "rel"})


async def test_a_failed_mount_is_reported_and_undone(service: VolumeService,
                                                     tmp_path: Path) -> None:
    await service.create("broken", options={"type": "none", "o": "bind",
                                            "device": str(tmp_path / "gone")})
    await service.create("fine", options={"type": "tmpfs", "device": "tmpfs"})
    points = await service.claim(C1, parse_mount_requests(binds=["fine:/f", "broken:/b"]))
    with pytest.raises(Exception, match="failed to mount local volume") as info:
        await service.mount_for_start(C1, points)
    assert "No such file or directory" in str(info.value)
    assert not is_mountpoint(Path(service.get("fine").mountpoint))


async def test_adopt_after_a_daemon_restart(service: VolumeService, tmp_path: Path) -> None:
    points = await service.claim(C1, parse_mount_requests(binds=["kept:/k"]))
    reopened = await VolumeService.open(tmp_path, service.drivers, durable=False)
    assert reopened.users("kept") == []
    reopened.adopt(C1, points, running=True)
    assert reopened.users("kept") == [C1]
    with pytest.raises(Conflict):
        await reopened.remove("kept")


async def test_subpath(service: VolumeService) -> None:
    volume = await service.create("withsub")
    Path(volume.mountpoint, "a", "b").mkdir(parents=True)
    points = await service.claim(C1, parse_mount_requests(mounts=[
        {"Type": "volume", "Source": "withsub", "Target": "/s",
         "VolumeOptions": {"Subpath": "a/b"}}]))
    [spec] = await service.mount_for_start(C1, points)
    assert spec.source == str(Path(volume.mountpoint, "a", "b"))


async def test_concurrent_claims_of_one_new_volume(service: VolumeService) -> None:
    results: list[list[MountPoint]] = []

    async def claim(cid: str) -> None:
        results.append(await service.claim(cid, parse_mount_requests(binds=["race:/r"])))

    async with trio.open_nursery() as nursery:
        for i in range(5):
            nursery.start_soon(claim, f"{i:064d}")
    assert len(service.list()) == 1
    assert len(service.users("race")) == 5


def test_drivers_come_from_the_plugin_hook(tmp_path: Path) -> None:
    pm = load_plugin_manager(autoload=False)
    drivers = volume_drivers_from(pm, tmp_path)
    assert list(drivers) == ["local"]
    driver = drivers["local"]
    assert isinstance(driver, LocalDriver)
    assert driver.root == tmp_path / "volumes"
