"""Volumes with real containers: the docker CLI and the Docker SDK against moord.

What issue 6 asks to see: data outliving containers in named volumes, `:ro` refusing
writes (EROFS) for bind, named and tmpfs mounts, a new named volume holding the
image's files with their owners, `rm -v` taking anonymous volumes but never named ones,
in-use volumes kept, `--volumes-from`, `uid/gid` options for a non-root container, bad
input refused with nothing left behind, and a third-party driver package installed with
pip found by `docker volume create -d`.

Names start with `vt-` and every test removes what it made: the session's moord is
shared with other tests.
"""

from __future__ import annotations

import io
import json
import shutil
import stat
import tarfile
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import docker.errors
import pytest

from engine.images.busybox_rootfs import write_rootfs
from tests.support.daemon import Moord, inspect
from tests.support.volume_plugin import DRIVER, volume_plugin_installed

EROFS_TEXT = "Read-only file system"


def _name(prefix: str = "vt") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def cleanup(moord: Moord) -> Iterator[Callable[..., None]]:
    """Register containers (`c=`) and volumes (`v=`) to remove after the test."""
    containers: list[str] = []
    volumes: list[str] = []

    def register(*, c: str | None = None, v: str | None = None) -> None:
        if c:
            containers.append(c)
        if v:
            volumes.append(v)

    yield register
    if containers:
        moord.docker("rm", "-f", "-v", *containers, check=False)
    if volumes:
        moord.docker("volume", "rm", "-f", *volumes, check=False)


@pytest.fixture
def host_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="vt-host-", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _volumes(moord: Moord) -> set[str]:
    return set(moord.docker("volume", "ls", "-q").stdout.split())


def _mounts(moord: Moord, ref: str) -> list[dict[str, object]]:
    mounts = inspect(moord, ref)["Mounts"]
    assert isinstance(mounts, list)
    return mounts


# named volumes -----------------------------------------------------------------------------


def test_named_volume_outlives_its_containers(moord: Moord, cleanup: Callable[..., None]) -> None:
    vol = _name()
    cleanup(v=vol)
    moord.docker("run", "--rm", "-v", f"{vol}:/data", "busybox", "sh", "-c",
                 "echo written by the first > /data/note")
    assert vol in _volumes(moord)  # made on first use, as docker does
    out = moord.docker("run", "--rm", "-v", f"{vol}:/data", "busybox", "cat", "/data/note").stdout
    assert out == "written by the first\n"
    info = json.loads(moord.docker("volume", "inspect", vol).stdout)[0]
    assert info["Driver"] == "local"
    assert info["Scope"] == "local"
    assert info["Mountpoint"] == str(moord.data_root / "volumes" / vol / "_data")
    assert Path(info["Mountpoint"], "note").read_text() == "written by the first\n"
    moord.docker("volume", "rm", vol)
    assert vol not in _volumes(moord)
    assert not (moord.data_root / "volumes" / vol).exists()


def test_docker_volume_commands(moord: Moord, cleanup: Callable[..., None]) -> None:
    vol = _name()
    cleanup(v=vol)
    assert moord.docker("volume", "create", "--label", "team=blue", vol).stdout == f"{vol}\n"
    listing = moord.docker("volume", "ls", "--filter", f"name={vol}").stdout
    assert listing == f"DRIVER    VOLUME NAME\nlocal     {vol}\n"
    assert moord.docker("volume", "ls", "-q", "--filter", "label=team=blue").stdout.split() == [vol]
    out = moord.docker("volume", "inspect", "--format", "{{.Name}} {{.Labels.team}}", vol).stdout
    assert out == f"{vol} blue\n"
    assert moord.docker("volume", "rm", vol).stdout == f"{vol}\n"
    result = moord.docker("volume", "inspect", vol, check=False)
    assert result.returncode != 0
    assert "no such volume" in result.stderr


# read-only --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["bind", "named", "tmpfs-mount", "tmpfs-flag", "local-tmpfs"])
def test_read_only_mounts_refuse_writes(moord: Moord, cleanup: Callable[..., None],
                                        host_dir: Path, kind: str) -> None:
    vol = _name()
    cleanup(v=vol)
    flags = {
        "bind": ["-v", f"{host_dir}:/m:ro"],
        "named": ["-v", f"{vol}:/m:ro"],
        "tmpfs-mount": ["--mount", "type=tmpfs,target=/m,readonly"],
        "tmpfs-flag": ["--tmpfs", "/m:ro"],
        "local-tmpfs": ["--mount", f"type=volume,source={vol},target=/m,readonly,"
                                   "volume-opt=type=tmpfs,volume-opt=device=tmpfs"],
    }[kind]
    result = moord.docker("run", "--rm", *flags, "busybox", "sh", "-c", "echo x > /m/f",
                          check=False)
    assert result.returncode != 0
    assert EROFS_TEXT in result.stderr
    # and the same mount without ro is writable
    writable = [f.replace(":ro", "").replace(",readonly", "") for f in flags]
    moord.docker("run", "--rm", *writable, "busybox", "sh", "-c", "echo x > /m/f")


def test_read_only_root_with_tmpfs_for_writable_paths(moord: Moord) -> None:
    result = moord.docker("run", "--rm", "--read-only", "--tmpfs", "/scratch", "busybox", "sh",
                          "-c", "echo x > /scratch/ok && cat /scratch/ok && echo y > /nope",
                          check=False)
    assert result.stdout == "x\n"
    assert result.returncode != 0
    assert EROFS_TEXT in result.stderr


# image content --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def app_image(moord: Moord) -> Iterator[str]:
    """busybox plus /data (owned 1000:1000, 0750, with a 0640 file) declared as a VOLUME."""
    ref = f"vt-app:{uuid.uuid4().hex[:6]}"
    with tempfile.TemporaryDirectory(prefix="vt-img-") as tmp:
        tarball = Path(tmp) / "rootfs.tar"
        with open(tarball, "wb") as f:
            write_rootfs(f)
        with tarfile.open(tarball, "a") as tar:
            data = tarfile.TarInfo("data")
            data.type, data.mode, data.uid, data.gid = tarfile.DIRTYPE, 0o750, 1000, 1000
            tar.addfile(data)
            body = b"from the image\n"
            hello = tarfile.TarInfo("data/hello")
            hello.size, hello.mode, hello.uid, hello.gid = len(body), 0o640, 1000, 1000
            tar.addfile(hello, io.BytesIO(body))
        moord.docker("import", "--change", 'CMD ["sh"]', "--change", "VOLUME /data",
                     str(tarball), ref)
    try:
        yield ref
    finally:
        moord.docker("rmi", "-f", ref, check=False)


def test_new_named_volume_gets_the_image_content(moord: Moord, app_image: str,
                                                 cleanup: Callable[..., None]) -> None:
    vol = _name()
    cleanup(v=vol)
    out = moord.docker("run", "--rm", "-v", f"{vol}:/data", app_image, "sh", "-c",
                       "stat -c '%u:%g %a' /data /data/hello && cat /data/hello").stdout
    assert out == "1000:1000 750\n1000:1000 640\nfrom the image\n"
    data = moord.data_root / "volumes" / vol / "_data"
    st = data.stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (1000, 1000, 0o750)
    # busybox's own /etc, into a volume mounted there
    etc = _name()
    cleanup(v=etc)
    out = moord.docker("run", "--rm", "-v", f"{etc}:/etc", "busybox", "cat", "/etc/passwd").stdout
    assert out.startswith("root:x:0:0:")
    # nocopy leaves it empty
    empty = _name()
    cleanup(v=empty)
    out = moord.docker("run", "--rm", "-v", f"{empty}:/data:nocopy", app_image, "ls", "-A",
                       "/data").stdout
    assert out == ""


def test_image_volume_is_an_anonymous_volume_with_the_content(
        moord: Moord, app_image: str, cleanup: Callable[..., None]) -> None:
    cid = moord.docker("create", app_image, "cat", "/data/hello").stdout.strip()
    cleanup(c=cid)
    [mount] = _mounts(moord, cid)
    assert mount["Type"] == "volume"
    assert mount["Destination"] == "/data"
    assert mount["Driver"] == "local"
    assert len(str(mount["Name"])) == 64
    assert mount["RW"] is True
    moord.docker("start", cid)
    assert moord.docker("wait", cid).stdout.strip() == "0"
    assert moord.docker("logs", cid).stdout == "from the image\n"
    info = json.loads(moord.docker("volume", "inspect", str(mount["Name"])).stdout)[0]
    assert info["Labels"] == {"com.docker.volume.anonymous": ""}


# rm -v, --rm, in use --------------------------------------------------------------------------


def test_rm_v_removes_anonymous_volumes_but_not_named_ones(
        moord: Moord, cleanup: Callable[..., None]) -> None:
    named = _name()
    cleanup(v=named)
    cid = moord.docker("create", "-v", "/anon", "-v", f"{named}:/named", "busybox",
                       "true").stdout.strip()
    cleanup(c=cid)
    by_dest = {m["Destination"]: m for m in _mounts(moord, cid)}
    anon = str(by_dest["/anon"]["Name"])
    assert {anon, named} <= _volumes(moord)
    moord.docker("rm", "-v", cid)
    left = _volumes(moord)
    assert anon not in left
    assert named in left


def test_rm_without_v_keeps_anonymous_volumes(moord: Moord, cleanup: Callable[..., None]) -> None:
    cid = moord.docker("create", "-v", "/anon", "busybox", "true").stdout.strip()
    anon = str(_mounts(moord, cid)[0]["Name"])
    cleanup(v=anon)
    moord.docker("rm", cid)
    assert anon in _volumes(moord)
    assert anon in moord.docker("volume", "ls", "-q", "--filter", "dangling=true").stdout
    pruned = moord.docker("volume", "prune", "-f").stdout
    assert anon in pruned
    assert anon not in _volumes(moord)


def test_run_rm_removes_anonymous_volumes(moord: Moord, cleanup: Callable[..., None]) -> None:
    named = _name()
    cleanup(v=named)
    before = _volumes(moord)
    moord.docker("run", "--rm", "-v", "/scratch", "-v", f"{named}:/keep", "busybox", "sh", "-c",
                 "echo x > /scratch/x")
    assert _volumes(moord) - before == {named}


def test_in_use_volume_cannot_be_removed(moord: Moord, cleanup: Callable[..., None]) -> None:
    vol = _name()
    cleanup(v=vol)
    cid = moord.docker("create", "-v", f"{vol}:/data", "busybox", "true").stdout.strip()
    cleanup(c=cid)
    for args in (("volume", "rm", vol), ("volume", "rm", "-f", vol)):
        result = moord.docker(*args, check=False)
        assert result.returncode != 0
        assert f"remove {vol}: volume is in use - [{cid}]" in result.stderr
    assert vol not in moord.docker("volume", "ls", "-q", "--filter", "dangling=true").stdout
    moord.docker("rm", cid)
    moord.docker("volume", "rm", vol)


# --volumes-from --------------------------------------------------------------------------------


def test_volumes_from(moord: Moord, cleanup: Callable[..., None], host_dir: Path) -> None:
    vol = _name()
    cleanup(v=vol)
    src = _name("vt-src")
    cleanup(c=src)
    moord.docker("create", "--name", src, "-v", f"{vol}:/data", "-v", f"{host_dir}:/host",
                 "busybox", "true")
    moord.docker("run", "--rm", "--volumes-from", src, "busybox", "sh", "-c",
                 "echo shared > /data/x && echo host > /host/y")
    assert (host_dir / "y").read_text() == "host\n"
    out = moord.docker("run", "--rm", "-v", f"{vol}:/d", "busybox", "cat", "/d/x").stdout
    assert out == "shared\n"
    result = moord.docker("run", "--rm", "--volumes-from", f"{src}:ro", "busybox", "sh", "-c",
                          "cat /data/x && echo no > /data/z", check=False)
    assert result.stdout == "shared\n"
    assert EROFS_TEXT in result.stderr
    cid = moord.docker("create", "--volumes-from", f"{src}:ro", "busybox", "true").stdout.strip()
    cleanup(c=cid)
    by_dest = {m["Destination"]: m for m in _mounts(moord, cid)}
    assert by_dest["/data"]["Name"] == vol
    assert by_dest["/data"]["RW"] is False
    assert by_dest["/host"]["Source"] == str(host_dir)


# ownership options --------------------------------------------------------------------------


def test_uid_gid_options_let_a_non_root_container_write(
        moord: Moord, cleanup: Callable[..., None]) -> None:
    owned, plain = _name(), _name()
    cleanup(v=owned)
    cleanup(v=plain)
    moord.docker("volume", "create", "-o", "uid=1000", "-o", "gid=1000", "-o", "mode=0750", owned)
    out = moord.docker("run", "--rm", "-u", "1000:1000", "-v", f"{owned}:/data", "busybox", "sh",
                       "-c", "echo mine > /data/f && stat -c '%u:%g %a' /data /data/f").stdout
    assert out == "1000:1000 750\n1000:1000 644\n"
    result = moord.docker("run", "--rm", "-u", "1000:1000", "-v", f"{plain}:/data", "busybox",
                          "sh", "-c", "echo x > /data/f", check=False)
    assert result.returncode != 0
    assert "Permission denied" in result.stderr


def test_local_tmpfs_volume(moord: Moord, cleanup: Callable[..., None]) -> None:
    vol = _name()
    cleanup(v=vol)
    moord.docker("volume", "create", "-o", "type=tmpfs", "-o", "device=tmpfs", "-o", "o=size=8m",
                 "-o", "uid=1000", vol)
    out = moord.docker("run", "--rm", "-u", "1000", "-v", f"{vol}:/t", "busybox", "sh", "-c",
                       "echo x > /t/f && df -k /t | tail -1").stdout
    assert out.split()[1] == "8192"
    data = moord.data_root / "volumes" / vol / "_data"
    assert str(data) not in Path("/proc/self/mountinfo").read_text()  # unmounted after the run
    assert not (data / "f").exists()


# bind mounts ----------------------------------------------------------------------------------


def test_bind_mounts(moord: Moord, host_dir: Path) -> None:
    made = host_dir / "made" / "by" / "v"
    moord.docker("run", "--rm", "-v", f"{made}:/out", "busybox", "sh", "-c", "echo hi > /out/f")
    assert (made / "f").read_text() == "hi\n"
    assert stat.S_IMODE(made.stat().st_mode) == 0o755
    missing = host_dir / "missing"
    result = moord.docker("run", "--rm", "--mount", f"type=bind,source={missing},target=/x",
                          "busybox", "true", check=False)
    assert result.returncode == 125
    assert (f'invalid mount config for type "bind": bind source path does not exist: {missing}'
            in result.stderr)
    assert not missing.exists()
    (host_dir / "file").write_text("single file\n")
    out = moord.docker("run", "--rm", "--mount", f"type=bind,src={host_dir / 'file'},dst=/f,ro",
                       "busybox", "cat", "/f").stdout
    assert out == "single file\n"


def test_bad_input_creates_nothing(moord: Moord) -> None:
    before_volumes = _volumes(moord)
    before_containers = moord.docker("ps", "-aq").stdout.split()
    cases = [
        (["-v", "rel/dir:/x"], "includes invalid characters for a local volume name"),
        (["-v", "/tmp:relative"], "mount path must be absolute"),
        (["-v", "/tmp:/proc"], "/proc or /sys is not allowed"),
        (["-v", "/tmp:/sys"], "/proc or /sys is not allowed"),
        (["-v", "/tmp:/"], "destination can't be '/'"),
        (["-v", "vt-good:/x", "-v", "/tmp:/x"], "Duplicate mount point: /x"),
        (["-v", "/tmp:/x:bogus"], "invalid mode: bogus"),
        # (`-v a:/x` would not do: the docker CLI reads `a:` as a drive letter)
        (["--mount", "type=volume,source=a,target=/x"], "volume name is too short"),
        (["--mount", "type=volume,target=/x,volume-opt=nope=1"], 'invalid option: "nope"'),
        (["--mount", "type=volume,source=vt-x1,target=/x,volume-driver=nosuch"],
         'plugin "nosuch" not found'),
    ]
    for flags, message in cases:
        result = moord.docker("create", *flags, "busybox", "true", check=False)
        assert result.returncode != 0, flags
        assert message in result.stderr, (flags, result.stderr)
    assert _volumes(moord) == before_volumes
    assert moord.docker("ps", "-aq").stdout.split() == before_containers


# inspect -------------------------------------------------------------------------------------


def test_inspect_mounts_as_docker_shows_them(moord: Moord, cleanup: Callable[..., None],
                                             host_dir: Path) -> None:
    vol = _name()
    cleanup(v=vol)
    cid = moord.docker("create", "-v", f"{vol}:/named", "-v", f"{host_dir}:/bind:ro",
                       "--mount", "type=tmpfs,target=/tmpfs", "--tmpfs", "/run", "busybox",
                       "true").stdout.strip()
    cleanup(c=cid)
    by_dest = {m["Destination"]: m for m in _mounts(moord, cid)}
    assert set(by_dest) == {"/named", "/bind", "/tmpfs"}  # docker leaves --tmpfs out
    assert by_dest["/named"] == {
        "Type": "volume", "Name": vol,
        "Source": str(moord.data_root / "volumes" / vol / "_data"), "Destination": "/named",
        "Driver": "local", "Mode": "z", "RW": True, "Propagation": ""}
    assert by_dest["/bind"] == {"Type": "bind", "Source": str(host_dir), "Destination": "/bind",
                                "Mode": "ro", "RW": False, "Propagation": "rprivate"}
    assert by_dest["/tmpfs"] == {"Type": "tmpfs", "Source": "", "Destination": "/tmpfs",
                                 "Mode": "", "RW": True, "Propagation": ""}
    host_config = inspect(moord, cid)["HostConfig"]
    assert isinstance(host_config, dict)
    # the docker CLI sends -v's in its own order (it collects them in a map)
    assert sorted(host_config["Binds"]) == sorted([f"{vol}:/named", f"{host_dir}:/bind:ro"])
    assert host_config["Tmpfs"] == {"/run": ""}


# the SDK ------------------------------------------------------------------------------------


def test_sdk(docker_client: docker.DockerClient, moord: Moord) -> None:
    name = _name()
    volume = docker_client.volumes.create(name, labels={"via": "sdk"})
    try:
        assert volume.attrs["Mountpoint"].endswith(f"/volumes/{name}/_data")
        out = docker_client.containers.run(
            "busybox", ["sh", "-c", "echo sdk > /v/f && cat /v/f"], remove=True,
            volumes={name: {"bind": "/v", "mode": "rw"}})
        assert out == b"sdk\n"
        assert [v.name for v in docker_client.volumes.list(filters={"label": "via=sdk"})] == [name]
        c = docker_client.containers.create("busybox", "true", volumes=[f"{name}:/v:ro"])
        try:
            with pytest.raises(docker.errors.APIError) as info:
                docker_client.volumes.get(name).remove()
            assert info.value.status_code == 409
        finally:
            c.remove(v=True)
    finally:
        docker_client.volumes.get(name).remove()
    with pytest.raises(docker.errors.NotFound):
        docker_client.volumes.get(name)


# a third-party driver ---------------------------------------------------------------------------


def test_third_party_driver_from_a_pip_installed_package(fresh_moord: Callable[[], Moord]) -> None:
    with volume_plugin_installed():
        d = fresh_moord()
        d.start()
        d.import_busybox()
        d.docker("volume", "create", "-d", DRIVER, "-o", "color=red", "tv1")
        info = json.loads(d.docker("volume", "inspect", "tv1").stdout)[0]
        assert info["Driver"] == DRIVER
        assert info["Status"] == {"color": "red", "mounted": "no"}
        data = d.data_root / "plugins" / DRIVER / "tv1" / "data"
        assert info["Mountpoint"] == str(data)
        assert "testvol   tv1" in d.docker("volume", "ls").stdout
        result = d.docker("volume", "create", "-d", DRIVER, "-o", "shade=dark", "tv2", check=False)
        assert "testvol knows only the color option" in result.stderr
        out = d.docker("run", "--rm", "-v", "tv1:/data", "busybox", "sh", "-c",
                       "echo hi > /data/f && cat /proc/self/mountinfo").stdout
        assert " /data " in out
        assert (data / "f").read_text() == "hi\n"
        assert not (data.parent / "mounted-by").exists()  # unmounted after the run
        d.docker("volume", "rm", "tv1")
        assert not data.parent.exists()


# across a daemon restart ----------------------------------------------------------------------


def test_volume_users_and_mounts_survive_a_moord_restart(fresh_moord: Callable[[], Moord]) -> None:
    d = fresh_moord()
    d.start()
    d.import_busybox()
    d.docker("volume", "create", "-o", "type=tmpfs", "-o", "device=tmpfs", "scratch")
    cid = d.docker("run", "-d", "-v", "scratch:/s", "-v", "/anon", "busybox", "sh", "-c",
                   "echo kept > /s/f; exec sleep 600").stdout.strip()
    data = d.data_root / "volumes" / "scratch" / "_data"
    d.stop()  # TERM: moord goes, the container and its volume mount stay
    d.start()
    assert (data / "f").read_text() == "kept\n"
    result = d.docker("volume", "rm", "scratch", check=False)
    assert f"volume is in use - [{cid}]" in result.stderr
    assert "scratch" not in d.docker("volume", "ls", "-q", "--filter", "dangling=true").stdout
    d.docker("stop", "-t", "0", cid)
    assert str(data) not in Path("/proc/self/mountinfo").read_text()  # the last user stopped
    anon = [m["Name"] for m in _mounts(d, cid) if m["Destination"] == "/anon"]
    d.docker("rm", "-v", cid)
    assert set(d.docker("volume", "ls", "-q").stdout.split()) == {"scratch"}
    assert anon
    d.docker("volume", "rm", "scratch")
