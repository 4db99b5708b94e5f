"""An image of 120 layers, loaded through the API, runs: short layer links keep its
overlay mount options inside the kernel's one-page limit (absolute paths overflow
near 40 layers)."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

from tests.support.daemon import REPO, Moord, inspect

LAYERS = 120


def _tar_of(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 1_600_000_000
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def build_archive(workdir: Path, tag: str) -> Path:
    """A docker-archive (`docker save` format): busybox, then 119 layers of one file each."""
    rootfs = workdir / "busybox-rootfs.tar"
    subprocess.run([sys.executable, "-m", "engine.images.busybox_rootfs", str(rootfs)],
                   check=True, cwd=REPO)
    layers = [rootfs.read_bytes()]
    layers += [_tar_of({f"f{i}": f"layer {i}\n".encode(), "top": f"{i}\n".encode()})
               for i in range(1, LAYERS)]
    diff_ids = ["sha256:" + hashlib.sha256(data).hexdigest() for data in layers]
    config = json.dumps({
        "architecture": "amd64", "os": "linux", "created": "2024-01-01T00:00:00Z",
        "config": {"Cmd": ["sh"], "Env": ["PATH=/bin:/usr/bin:/sbin:/usr/sbin"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created": "2024-01-01T00:00:00Z", "created_by": f"layer {i}"}
                    for i in range(LAYERS)],
    }).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    manifest = [{"Config": config_name, "RepoTags": [tag],
                 "Layers": [f"{i}/layer.tar" for i in range(LAYERS)]}]
    archive = workdir / "many.tar"
    with tarfile.open(archive, "w") as tar:
        members = {"manifest.json": json.dumps(manifest).encode(), config_name: config}
        members.update({f"{i}/layer.tar": data for i, data in enumerate(layers)})
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 1_600_000_000
            tar.addfile(info, io.BytesIO(data))
    return archive


def test_run_an_image_of_120_layers(moord: Moord, tmp_path: Path) -> None:
    archive = build_archive(tmp_path, "many:layers")
    out = moord.docker("load", "-i", str(archive), timeout=300).stdout
    assert "many:layers" in out
    try:
        data = inspect(moord, "many:layers")
        rootfs = data["RootFS"]
        assert isinstance(rootfs, dict)
        assert len(rootfs["Layers"]) == LAYERS
        result = moord.docker("run", "--rm", "many:layers", "cat", f"/f{LAYERS - 1}")
        assert result.stdout == f"layer {LAYERS - 1}\n"
        # the top layer wins; the bottom one (busybox) is there too
        result = moord.docker("run", "--rm", "many:layers", "sh", "-c", "cat /top /f1; ls /bin/sh")
        assert result.stdout == f"{LAYERS - 1}\nlayer 1\n/bin/sh\n"
        # inspect keeps absolute paths: 120 of them, top first
        moord.docker("create", "--name", "many", "many:layers", "true")
        graph = inspect(moord, "many")["GraphDriver"]
        assert isinstance(graph, dict)
        lower = graph["Data"]["LowerDir"].split(":")
        assert len(lower) == LAYERS
        assert all(p.startswith(str(moord.data_root)) and p.endswith("/diff") for p in lower)
        assert Path(lower[0], f"f{LAYERS - 1}").read_text() == f"layer {LAYERS - 1}\n"
    finally:
        moord.docker("rm", "-f", "many", check=False)
        moord.docker("rmi", "many:layers", check=False)
    layers = moord.data_root / "images" / "layers"
    # the links of the 119 layers only this image had went with it; none dangles
    kept = [p for p in layers.iterdir() if len(p.name) == 64]
    links = list((layers / "l").iterdir())
    assert len(links) == len(kept)
    assert all(link.resolve().is_dir() for link in links)
