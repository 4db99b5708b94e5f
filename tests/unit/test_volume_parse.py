"""Mount requests from `-v`, `--mount`, `--tmpfs`, `--volumes-from` and image VOLUMEs.

The messages are Docker's (moby's volume/mounts parser and the local driver's name
rule), because users and scripts match on them.
"""

from __future__ import annotations

from typing import Any

import pytest

from engine.errors import InvalidParameter
from engine.volumes.model import MountPoint, MountRequest, MountType, Origin
from engine.volumes.parse import (
    parse_bind,
    parse_mount,
    parse_mount_requests,
    parse_tmpfs,
    parse_volumes_from,
    tmpfs_size_text,
    valid_mode,
    validate_volume_name,
    volumes_from,
)

# -v --------------------------------------------------------------------------------------

VALID_BINDS: list[tuple[str, dict[str, Any]]] = [
    ("/host:/ctr", dict(type=MountType.BIND, source="/host", target="/ctr", read_only=False,
                        create_source=True, mode="")),
    ("/host/:/ctr/", dict(type=MountType.BIND, source="/host", target="/ctr")),
    ("/a//b/../c:/x/./y", dict(source="/a/c", target="/x/y")),
    ("/host:/ctr:ro", dict(read_only=True, mode="ro")),
    ("/host:/ctr:rw", dict(read_only=False, mode="rw")),
    ("/host:/ctr:ro,z", dict(read_only=True, relabel="z", mode="ro,z")),
    ("/host:/ctr:Z", dict(relabel="Z", read_only=False)),
    ("/host:/ctr:rshared", dict(propagation="rshared")),
    ("/host:/ctr:ro,slave", dict(propagation="slave", read_only=True)),
    ("/host:/ctr:private", dict(propagation="private")),
    ("/host:/ctr:rslave", dict(propagation="rslave")),
    ("/host:/ctr:rprivate", dict(propagation="rprivate")),
    ("/host:/ctr:shared", dict(propagation="shared")),
    ("/host:/ctr:cached", dict(read_only=False)),
    ("data:/ctr", dict(type=MountType.VOLUME, source="data", target="/ctr", create_source=False)),
    ("my_vol.1-x:/ctr:ro", dict(type=MountType.VOLUME, source="my_vol.1-x", read_only=True)),
    ("data:/ctr:nocopy", dict(type=MountType.VOLUME, nocopy=True)),
    ("data:/ctr:ro,nocopy,z", dict(nocopy=True, read_only=True, relabel="z")),
    ("/ctr", dict(type=MountType.VOLUME, source="", target="/ctr")),
    ("/proc/meminfo:/proc/meminfo:ro", dict(target="/proc/meminfo")),  # lxcfs style
    ("/sys/fs/cgroup:/sys/fs/cgroup:ro", dict(target="/sys/fs/cgroup")),
]


@pytest.mark.parametrize(("raw", "expected"), VALID_BINDS, ids=[v[0] for v in VALID_BINDS])
def test_valid_binds(raw: str, expected: dict[str, Any]) -> None:
    request = parse_bind(raw)
    for key, value in expected.items():
        assert getattr(request, key) == value, key
    assert request.origin is Origin.BINDS


INVALID_BINDS = [
    ("", "invalid volume specification: ''"),
    (":/ctr", "invalid volume specification: ':/ctr'"),
    ("/ctr:rw", "invalid volume specification: '/ctr:rw'"),
    ("/a:/b:ro:x", "invalid volume specification: '/a:/b:ro:x'"),
    ("/host:/ctr:rx", "invalid mode: rx"),
    ("/host:/ctr:ro,rw", "invalid mode: ro,rw"),
    ("/host:/ctr:z,Z", "invalid mode: z,Z"),
    ("/host:/ctr:shared,slave", "invalid mode: shared,slave"),
    ("/host:ctr", "invalid volume specification: '/host:ctr': invalid mount config for type "
                  "\"bind\": invalid mount path: 'ctr' mount path must be absolute"),
    ("/host:/", "invalid volume specification: '/host:/': invalid mount config for type "
                "\"bind\": invalid specification: destination can't be '/'"),
    ("/host:/a/..", "destination can't be '/'"),
    ("/host:/proc", "mounting over the container's /proc or /sys is not allowed"),
    ("/host:/proc/", "'/proc'"),
    ("/host:/proc/sys/kernel", "mounting over the container's /proc or /sys is not allowed"),
    ("/host:/sys", "mounting over the container's /proc or /sys is not allowed"),
    ("/host:/x/../proc", "'/proc'"),
    ("data:/proc", "invalid mount config for type \"volume\""),
    ("/ctr/../sys", "invalid mount config for type \"volume\""),
    ("relative", "invalid mount path: 'relative' mount path must be absolute"),
    ("data:/ctr:shared", "invalid volume specification: 'data:/ctr:shared': invalid mount config "
                         "for type \"volume\": field BindOptions must not be specified"),
    ("/host:/ctr:nocopy", "invalid mount config for type \"bind\": field VolumeOptions must not "
                          "be specified"),
    ("./rel:/ctr", 'create ./rel: "./rel" includes invalid characters for a local volume name, '
                   'only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host '
                   "directory, use absolute path"),
    ("rel/dir:/ctr", 'create rel/dir: "rel/dir" includes invalid characters'),
    ("~/x:/ctr", "includes invalid characters for a local volume name"),
    ("_x:/ctr", "includes invalid characters"),
    ("x:/ctr", "create x: volume name is too short, names should be at least two alphanumeric "
               "characters"),
]


@pytest.mark.parametrize(("raw", "message"), INVALID_BINDS, ids=[v[0] or "empty" for v in INVALID_BINDS])
def test_invalid_binds(raw: str, message: str) -> None:
    with pytest.raises(InvalidParameter) as info:
        parse_bind(raw)
    assert message in info.value.message


def test_modes() -> None:
    assert valid_mode("")
    assert valid_mode("ro,z,rshared,nocopy,cached")
    assert not valid_mode("ro,ro")
    assert not valid_mode("bogus")


def test_volume_names() -> None:
    for good in ("ab", "a1", "0_x", "data.v1-2", "A" * 200, "v" * 236):
        validate_volume_name(good)
    for bad in ("a", ".ab", "-ab", "a/b", "a b", "a:b", "", "é1"):
        with pytest.raises(InvalidParameter):
            validate_volume_name(bad)
    with pytest.raises(InvalidParameter) as info:  # a 400, not an OSError from mkdir
        validate_volume_name("v" * 300)
    assert info.value.message.endswith("volume name is too long, names can be at most "
                                       "236 bytes")


def test_volume_driver_only_applies_to_volumes() -> None:
    assert parse_bind("data:/x", "other").driver == "other"
    assert parse_bind("/h:/x", "other").driver == ""


# --mount (HostConfig.Mounts as the docker CLI sends it) ------------------------------------

VALID_MOUNTS: list[tuple[dict[str, Any], dict[str, Any]]] = [
    ({"Type": "bind", "Source": "/h", "Target": "/c"},
     dict(type=MountType.BIND, source="/h", target="/c", create_source=False, propagation="")),
    ({"Type": "bind", "Source": "/h", "Target": "/c", "ReadOnly": True,
      "BindOptions": {"Propagation": "rshared"}},
     dict(read_only=True, propagation="rshared")),
    ({"Type": "bind", "Source": "/h", "Target": "/c",
      "BindOptions": {"CreateMountpoint": True, "NonRecursive": True}},
     dict(create_source=True, recursive=False)),
    ({"Type": "volume", "Source": "v1", "Target": "/c"},
     dict(type=MountType.VOLUME, source="v1", nocopy=False)),
    ({"Type": "volume", "Target": "/c"}, dict(type=MountType.VOLUME, source="")),
    ({"Type": "volume", "Source": "v1", "Target": "/c", "ReadOnly": True,
      "VolumeOptions": {"NoCopy": True, "Labels": {"a": "b"},
                        "DriverConfig": {"Name": "local",
                                         "Options": {"type": "tmpfs", "device": "tmpfs"}}}},
     dict(read_only=True, nocopy=True, labels={"a": "b"}, driver="local",
          driver_options={"type": "tmpfs", "device": "tmpfs"})),
    ({"Type": "volume", "Source": "v1", "Target": "/c", "VolumeOptions": {"Subpath": "a/b"}},
     dict(subpath="a/b")),
    ({"Type": "tmpfs", "Target": "/t"}, dict(type=MountType.TMPFS, tmpfs_data="")),
    ({"Type": "tmpfs", "Target": "/t", "ReadOnly": True,
      "TmpfsOptions": {"SizeBytes": 64 * 1024 * 1024, "Mode": 0o1777}},
     dict(read_only=True, tmpfs_data="ro,mode=1777,size=64m")),
    ({"Type": "tmpfs", "Target": "/t", "TmpfsOptions": {"SizeBytes": 1000,
                                                          "Options": [["exec"]]}},
     dict(tmpfs_data="size=1000,exec")),
    ({"Type": "bind", "Source": "/h", "Target": "/c", "Consistency": "cached",
      "BindOptions": None}, dict(type=MountType.BIND)),
]


@pytest.mark.parametrize(("obj", "expected"), VALID_MOUNTS)
def test_valid_mounts(obj: dict[str, Any], expected: dict[str, Any]) -> None:
    request = parse_mount(obj)
    for key, value in expected.items():
        assert getattr(request, key) == value, key
    assert request.origin is Origin.MOUNTS
    assert request.listed


INVALID_MOUNTS: list[tuple[Any, str]] = [
    ({"Type": "bind", "Source": "/h"}, 'invalid mount config for type "bind": field Target must '
                                       "not be empty"),
    ({"Type": "bind", "Target": "/c"}, 'invalid mount config for type "bind": field Source must '
                                       "not be empty"),
    ({"Type": "bind", "Source": "rel", "Target": "/c"},
     "invalid mount config for type \"bind\": invalid mount path: 'rel' mount path must be absolute"),
    ({"Type": "bind", "Source": "/h", "Target": "c"},
     "invalid mount path: 'c' mount path must be absolute"),
    ({"Type": "bind", "Source": "/h", "Target": "/"}, "destination can't be '/'"),
    ({"Type": "bind", "Source": "/h", "Target": "/proc"}, "/proc or /sys is not allowed"),
    ({"Type": "tmpfs", "Target": "/sys"}, "/proc or /sys is not allowed"),
    ({"Type": "bind", "Source": "/h", "Target": "/c", "BindOptions": {"Propagation": "bad"}},
     "invalid propagation mode: bad"),
    ({"Type": "bind", "Source": "/h", "Target": "/c", "VolumeOptions": {}},
     "field VolumeOptions must not be specified"),
    ({"Type": "volume", "Source": "v1", "Target": "/c", "BindOptions": {}},
     'invalid mount config for type "volume": field BindOptions must not be specified'),
    ({"Type": "volume", "Target": "/c", "ReadOnly": True},
     "must not set ReadOnly mode when using anonymous volumes"),
    ({"Type": "volume", "Target": "/c", "VolumeOptions": {"Subpath": "x"}},
     "must not set Subpath when using anonymous volumes"),
    ({"Type": "volume", "Source": "v1", "Target": "/c", "VolumeOptions": {"Subpath": "../x"}},
     "subpath must be a relative path within the volume"),
    ({"Type": "volume", "Source": "a/b", "Target": "/c"}, "includes invalid characters"),
    ({"Type": "tmpfs", "Source": "x", "Target": "/t"},
     'invalid mount config for type "tmpfs": field Source must not be specified'),
    ({"Type": "tmpfs", "Target": "/t", "TmpfsOptions": {"Options": [["suid"]]}},
     "invalid option: suid"),
    ({"Type": "bogus", "Target": "/t"}, 'invalid mount config for type "bogus": mount type unknown'),
    ({"Type": "image", "Source": "busybox", "Target": "/t"}, "not supported by moorage"),
    ({"Type": "bind", "Source": 3, "Target": "/c"},
     "invalid type for HostConfig.Mounts[0].Source: expected a string"),
    ({"Type": "bind", "Source": "/h", "Target": "/c", "ReadOnly": "yes"},
     "invalid type for HostConfig.Mounts[0].ReadOnly: expected a boolean"),
    ("bind", "invalid type for HostConfig.Mounts[0]: expected an object"),
]


@pytest.mark.parametrize(("obj", "message"), INVALID_MOUNTS)
def test_invalid_mounts(obj: Any, message: str) -> None:
    with pytest.raises(InvalidParameter) as info:
        parse_mount(obj)
    assert message in info.value.message


def test_tmpfs_sizes() -> None:
    assert tmpfs_size_text(1 << 30) == "1g"
    assert tmpfs_size_text(3 << 20) == "3m"
    assert tmpfs_size_text(1536) == "1536"
    assert tmpfs_size_text(2048) == "2k"


# --tmpfs -------------------------------------------------------------------------------------


def test_tmpfs_flag() -> None:
    request = parse_tmpfs("/run", "rw,size=10m,mode=1777")
    assert request.type is MountType.TMPFS
    assert request.tmpfs_data == "rw,size=10m,mode=1777"
    assert not request.listed  # Docker leaves --tmpfs out of inspect's Mounts
    assert parse_tmpfs("/run", "ro").read_only
    with pytest.raises(InvalidParameter, match='invalid tmpfs option "bogus"'):
        parse_tmpfs("/run", "bogus")
    with pytest.raises(InvalidParameter, match="must be absolute"):
        parse_tmpfs("run", "")


# all together --------------------------------------------------------------------------------


def test_duplicates_are_refused() -> None:
    with pytest.raises(InvalidParameter, match=r"^Duplicate mount point: /x$"):
        parse_mount_requests(binds=["/a:/x", "/b:/x/"])
    with pytest.raises(InvalidParameter, match="Duplicate mount point: /x"):
        parse_mount_requests(binds=["/a:/x"], mounts=[{"Type": "volume", "Target": "/x"}])
    with pytest.raises(InvalidParameter, match="Duplicate mount point: /x"):
        parse_mount_requests(binds=["data:/x"], tmpfs={"/x": ""})


def test_anonymous_and_image_volumes_yield_to_mounts() -> None:
    requests = parse_mount_requests(
        binds=["/h:/data"], anonymous=["/cache", "/data"], image_volumes=["/data", "/var/lib/x/",
                                                                          "/cache"],
        tmpfs={"/run": "size=1m"})
    by_target = {r.target: r for r in requests}
    assert set(by_target) == {"/data", "/cache", "/var/lib/x", "/run"}
    assert by_target["/data"].type is MountType.BIND
    assert by_target["/cache"].anonymous
    assert by_target["/cache"].origin is Origin.VOLUMES
    assert by_target["/var/lib/x"].anonymous
    assert by_target["/var/lib/x"].origin is Origin.IMAGE
    assert by_target["/run"].type is MountType.TMPFS


def test_image_volume_with_a_bad_path_is_refused() -> None:
    with pytest.raises(InvalidParameter, match="must be absolute"):
        parse_mount_requests(image_volumes=["data"])


def test_anonymous_volumes_use_the_volume_driver() -> None:
    [request] = parse_mount_requests(anonymous=["/d"], volume_driver="other")
    assert request.driver == "other"


def test_volumes_from() -> None:
    assert parse_volumes_from("web") == ("web", "rw")
    assert parse_volumes_from("web:ro") == ("web", "ro")
    assert parse_volumes_from("web:ro,z") == ("web", "ro,z")
    with pytest.raises(InvalidParameter, match="cannot be an empty string"):
        parse_volumes_from("")
    for bad in ("web:shared", "web:nocopy", "web:bogus"):
        with pytest.raises(InvalidParameter, match="invalid mode"):
            parse_volumes_from(bad)
    points = [
        MountPoint(type="volume", destination="/data", source="/v/_data", name="vol", driver="local",
                   rw=True, anonymous=False, copy_data=True),
        MountPoint(type="bind", destination="/h", source="/host", rw=False, propagation="rslave"),
        MountPoint(type="tmpfs", destination="/t", tmpfs_data="size=1m"),
        MountPoint(type="tmpfs", destination="/run", tmpfs_data="", listed=False),
    ]
    shared = volumes_from(points, "rw")
    assert [r.target for r in shared] == ["/data", "/h", "/t"]
    assert shared[0] == MountRequest(type=MountType.VOLUME, target="/data", source="vol",
                                     read_only=False, nocopy=True, driver="local",
                                     origin=Origin.VOLUMES_FROM)
    assert shared[1].read_only  # it was read-only in the first container
    assert shared[1].propagation == "rslave"
    read_only = volumes_from(points, "ro")
    assert all(r.read_only for r in read_only)
    assert read_only[2].tmpfs_data == "ro,size=1m"


def test_own_mounts_replace_inherited_ones() -> None:
    inherited = volumes_from([MountPoint(type="volume", destination="/data", name="vol",
                                         driver="local")])
    requests = parse_mount_requests(binds=["/h:/data"], inherited=inherited)
    assert [(r.type, r.source) for r in requests] == [(MountType.BIND, "/h")]
    # and an image volume at an inherited path is not made
    requests = parse_mount_requests(image_volumes=["/data"], inherited=inherited)
    assert [(r.type, r.source) for r in requests] == [(MountType.VOLUME, "vol")]
