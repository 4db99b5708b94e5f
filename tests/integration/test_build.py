"""`docker build` with the classic builder (DOCKER_BUILDKIT=0) against moord: the steps,
the cache, multi-stage builds, .dockerignore, ARG/ENV, ENTRYPOINT + CMD, bad input."""

from __future__ import annotations

import io
import secrets
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest

from engine.runtime import cgroups
from tests.support.daemon import DOCKER_CLI, Moord, inspect

pytestmark = pytest.mark.integration


def _build(d: Moord, context: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**d.env, "DOCKER_BUILDKIT": "0"}
    result = subprocess.run([DOCKER_CLI, "build", *args, str(context)], env=env,
                            capture_output=True, text=True, timeout=300)
    if check and result.returncode != 0:
        raise AssertionError(f"docker build failed ({result.returncode}):\n{result.stdout}\n"
                             f"{result.stderr}\n{d.log_tail(30)}")
    return result


def _write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def _tag() -> str:
    return f"built-{secrets.token_hex(3)}"


NODE_STYLE = """\
FROM busybox
WORKDIR /app
COPY package.json ./
RUN echo "installed $(cat package.json)" > deps.txt
COPY . .
EXPOSE 3000
CMD ["sh", "-c", "cat deps.txt index.js"]
"""


def test_node_style_build_runs_and_caches(moord: Moord, tmp_path: Path) -> None:
    ctx = _write(tmp_path / "app", {"Dockerfile": NODE_STYLE, "package.json": "deps-v1\n",
                                    "index.js": "console.log(1)\n"})
    tag = _tag()
    first = _build(moord, ctx, "-t", tag)
    assert "Step 1/7 : FROM busybox" in first.stdout
    assert "Step 4/7 : RUN echo" in first.stdout
    assert " ---> Running in " in first.stdout
    assert "Removing intermediate container" in first.stdout
    assert f"Successfully tagged {tag}:latest" in first.stdout
    assert moord.docker("run", "--rm", tag).stdout == "installed deps-v1\nconsole.log(1)\n"
    info = inspect(moord, tag)
    assert info["Config"]["WorkingDir"] == "/app"  # type: ignore[index]
    assert "3000/tcp" in info["Config"]["ExposedPorts"]  # type: ignore[index,operator]

    # only the source changed: every step before `COPY . .` comes from the cache
    (ctx / "index.js").write_text("console.log(2)\n")
    second = _build(moord, ctx, "-t", tag)
    assert second.stdout.count("Using cache") == 3  # WORKDIR, COPY package.json, RUN
    assert " ---> Running in " not in second.stdout
    assert moord.docker("run", "--rm", tag).stdout == "installed deps-v1\nconsole.log(2)\n"

    # nothing changed: all cached, same image
    third = _build(moord, ctx, "-t", tag)
    assert third.stdout.count("Using cache") == 6
    assert inspect(moord, tag)["Id"] == inspect(moord, tag)["Id"]
    # `docker history` names each step's image, as dockerd does with the classic builder:
    # the tag's image, then its parents, down to busybox (whose own parents are unknown)
    rows = moord.docker("history", "--no-trunc", "--format", "{{.ID}} {{.CreatedBy}}",
                        tag).stdout.splitlines()
    ids = [row.split(" ", 1)[0] for row in rows]
    assert ids[0] == inspect(moord, tag)["Id"]
    named = [i for i in ids if i != "<missing>"]
    assert len(named) == 7, rows  # six steps after FROM, and busybox itself
    assert ids[: len(named)] == named, "a <missing> row above a named one"
    assert named[6] == inspect(moord, "busybox")["Id"]
    for image_id in named:
        moord.docker("image", "inspect", image_id)
    # intermediate images are hidden from `docker images`, shown with -a
    listed = moord.docker("images", "-q").stdout.split()
    everything = moord.docker("images", "-aq").stdout.split()
    assert len(everything) > len(listed)
    moord.docker("rmi", tag)


def test_cache_survives_a_moord_restart(fresh_moord, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    d = fresh_moord()
    d.start()
    d.import_busybox()
    ctx = _write(tmp_path / "c", {"Dockerfile": "FROM busybox\nRUN echo slow > /f\n"})
    _build(d, ctx, "-t", "cached")
    d.stop()
    d.start()
    again = _build(d, ctx, "-t", "cached")
    assert "Using cache" in again.stdout
    assert " ---> Running in " not in again.stdout


def test_multi_stage_with_copy_from_and_target(moord: Moord, tmp_path: Path) -> None:
    ctx = _write(tmp_path / "ms", {"Dockerfile": """\
FROM busybox AS build
RUN mkdir /out && echo built-artifact > /out/artifact && echo junk > /junk
FROM busybox
COPY --from=build /out/artifact /artifact
CMD ["cat", "/artifact"]
"""})
    tag = _tag()
    _build(moord, ctx, "-t", tag)
    assert moord.docker("run", "--rm", tag).stdout == "built-artifact\n"
    assert moord.docker("run", "--rm", tag, "ls", "/junk", check=False).returncode != 0
    target = _build(moord, ctx, "--target", "build", "-t", f"{tag}-build")
    assert "Step 3/5" not in target.stdout
    assert moord.docker("run", "--rm", f"{tag}-build", "cat", "/junk").stdout == "junk\n"
    moord.docker("rmi", tag, f"{tag}-build")


def test_dockerignore_and_args(moord: Moord, tmp_path: Path) -> None:
    ctx = _write(tmp_path / "ig", {
        "Dockerfile": """\
ARG BASE=busybox
FROM $BASE
ARG VERSION=1.0
ENV APP_VERSION=${VERSION:-none} MODE=${UNSET:-fallback}
COPY . /src/
RUN echo "$APP_VERSION $MODE" > /version
ENTRYPOINT ["cat"]
CMD ["/version"]
""",
        ".dockerignore": "secret*\n*.log\n!keep.log\n",
        "secret.txt": "nope", "a.log": "nope", "keep.log": "kept", "code.txt": "code"})
    tag = _tag()
    _build(moord, ctx, "-t", tag, "--build-arg", "VERSION=2.5")
    assert moord.docker("run", "--rm", tag).stdout == "2.5 fallback\n"
    listing = moord.docker("run", "--rm", tag, "/src/keep.log").stdout
    assert listing == "kept"
    files = moord.docker("run", "--rm", "--entrypoint", "ls", tag, "/src").stdout.split()
    assert "secret.txt" not in files
    assert "a.log" not in files
    assert "code.txt" in files
    # ENTRYPOINT + CMD: arguments replace CMD, not ENTRYPOINT
    assert moord.docker("run", "--rm", tag, "/src/code.txt").stdout == "code"
    moord.docker("rmi", tag)


def test_bad_input_is_a_clear_error_and_leaves_nothing(moord: Moord, tmp_path: Path) -> None:
    before = set(moord.docker("ps", "-aq").stdout.split())
    bad = _write(tmp_path / "bad", {"Dockerfile": "FROM busybox\nFORM x\n"})
    out = _build(moord, bad, check=False)
    assert out.returncode != 0
    assert "line 2" in out.stderr
    assert "unknown instruction" in out.stderr.lower()

    escape = _write(tmp_path / "esc", {"Dockerfile": "FROM busybox\nCOPY ../outside /x\n"})
    out = _build(moord, escape, check=False)
    assert out.returncode != 0
    assert "outside the build context" in (out.stdout + out.stderr)

    missing = _write(tmp_path / "miss", {"Dockerfile": "FROM 127.0.0.1:1/nothing:here\n"})
    out = _build(moord, missing, check=False)
    assert out.returncode != 0

    tag = _tag()
    failing = _write(tmp_path / "fail", {"Dockerfile": "FROM busybox\nRUN echo start && exit 3\n"})
    out = _build(moord, failing, "-t", tag, check=False)
    assert out.returncode != 0
    assert "returned a non-zero code: 3" in (out.stdout + out.stderr)
    assert moord.docker("image", "inspect", tag, check=False).returncode != 0
    assert set(moord.docker("ps", "-aq").stdout.split()) == before
    mounts = Path("/proc/self/mountinfo").read_text()
    assert str(moord.data_root / "build") not in mounts


def test_docker_py_build(moord: Moord) -> None:
    import docker

    client = docker.DockerClient(base_url=f"unix://{moord.socket_path}", version="1.43")
    dockerfile = b"FROM busybox\nLABEL made=py\nRUN echo from-py > /py\nCMD [\"cat\", \"/py\"]\n"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(dockerfile)
        tf.addfile(info, io.BytesIO(dockerfile))
    buf.seek(0)
    tag = _tag()
    image, logs = client.images.build(fileobj=buf, custom_context=True, tag=tag, rm=True)
    assert image.labels["made"] == "py"
    assert any("Successfully built" in str(x.get("stream", "")) for x in logs)
    assert client.containers.run(tag, remove=True) == b"from-py\n"
    client.images.remove(tag)
    client.close()


def test_moor_build_and_builder_prune(moord: Moord, tmp_path: Path) -> None:
    import sys

    ctx = _write(tmp_path / "moor", {"Dockerfile": "FROM busybox\nCOPY . /ctx/\nRUN ls /ctx > /listing\n",
                                     ".dockerignore": "skip.me\n", "skip.me": "x", "keep.me": "y"})
    tag = _tag()
    env = {**moord.env, "MOORAGE_HOST": moord.host}
    moor = [sys.executable, "-m", "engine.cli"]
    out = subprocess.run([*moor, "build", "-t", tag, str(ctx)], env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "Successfully tagged" in out.stdout
    listing = moord.docker("run", "--rm", tag, "cat", "/listing").stdout.split()
    assert "keep.me" in listing
    assert "skip.me" not in listing
    quiet = subprocess.run([*moor, "build", "-q", str(ctx)], env=env, capture_output=True,
                           text=True, timeout=120)
    assert quiet.stdout.strip() == inspect(moord, tag)["Id"]
    moord.docker("rmi", tag)
    pruned = subprocess.run([*moor, "builder", "prune", "-f"], env=env, capture_output=True,
                            text=True, timeout=120)
    assert pruned.returncode == 0, pruned.stderr
    assert "Total reclaimed space" in pruned.stdout
    rebuilt = _build(moord, ctx, "-t", tag)
    assert "Using cache" not in rebuilt.stdout
    moord.docker("rmi", tag)


def test_the_rest_of_the_instructions(moord: Moord, tmp_path: Path) -> None:
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tf:
        data = b"from the tarball\n"
        info = tarfile.TarInfo("inner/file.txt")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    ctx = _write(tmp_path / "rest", {
        "build/Dockerfile.dev": """\
FROM busybox
SHELL ["/bin/sh", "-e", "-c"]
RUN <<EOF
echo line one > /heredoc
echo line two >> /heredoc
EOF
ADD bundle.tar.gz /unpacked/
COPY --chown=1234:5678 --chmod=640 owned.txt /owned.txt
COPY *.cfg /configs/
HEALTHCHECK --interval=5s --retries=2 CMD true
STOPSIGNAL SIGUSR1
ONBUILD RUN echo triggered > /tmp/onbuild
USER 1234
""",
        "owned.txt": "mine\n", "a.cfg": "a", "b.cfg": "b"})
    (ctx / "bundle.tar.gz").write_bytes(archive.getvalue())
    tag = _tag()
    _build(moord, ctx, "-f", str(ctx / "build/Dockerfile.dev"), "-t", f"{tag}:one",
           "-t", f"{tag}:two")
    assert inspect(moord, f"{tag}:one")["Id"] == inspect(moord, f"{tag}:two")["Id"]
    run = ["run", "--rm", "--user", "0", f"{tag}:one", "sh", "-c"]
    assert moord.docker(*run, "cat /heredoc").stdout == "line one\nline two\n"
    assert moord.docker(*run, "cat /unpacked/inner/file.txt").stdout == "from the tarball\n"
    assert moord.docker(*run, "stat -c '%u:%g %a' /owned.txt").stdout == "1234:5678 640\n"
    assert sorted(moord.docker(*run, "ls /configs").stdout.split()) == ["a.cfg", "b.cfg"]
    config = inspect(moord, f"{tag}:one")["Config"]
    assert config["Healthcheck"]["Test"] == ["CMD-SHELL", "true"]  # type: ignore[index]
    assert config["StopSignal"] == "SIGUSR1"  # type: ignore[index]
    assert config["User"] == "1234"  # type: ignore[index]
    assert config["Shell"] == ["/bin/sh", "-e", "-c"]  # type: ignore[index]
    assert config["OnBuild"] == ["RUN echo triggered > /tmp/onbuild"]  # type: ignore[index]
    # the trigger runs in a build FROM this image
    child = _write(tmp_path / "child", {"Dockerfile": f"FROM {tag}:one\nUSER 0\n"})
    out = _build(moord, child, "-t", f"{tag}:child")
    assert "Executing 1 build trigger" in out.stdout
    assert moord.docker("run", "--rm", f"{tag}:child", "cat", "/tmp/onbuild").stdout == "triggered\n"
    assert not inspect(moord, f"{tag}:child")["Config"]["OnBuild"]  # type: ignore[index]
    moord.docker("rmi", f"{tag}:one", f"{tag}:two", f"{tag}:child")


# docker-py's build parameters and the docker CLI's ways of sending a Dockerfile (issue 15)

DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def _client(d: Moord) -> Any:
    import docker

    return docker.APIClient(base_url=d.host, version="1.45")


def _script(*lines: str) -> io.BytesIO:
    return io.BytesIO("\n".join(lines).encode())


def test_labels_env_path_and_stderr(moord: Moord) -> None:
    api = _client(moord)
    tag = _tag()
    # each label is a LABEL step of its own, taken as written ($X is not expanded)
    out = list(api.build(fileobj=_script("FROM scratch"), tag=tag, decode=True,
                         labels={"b": "two", "a": "$X"}))
    steps = [x["stream"] for x in out if x.get("stream", "").startswith("Step ")]
    assert steps == ["Step 1/3 : FROM scratch\n", "Step 2/3 : LABEL a=$X\n",
                     "Step 3/3 : LABEL b=two\n"]
    config = api.inspect_image(tag)["Config"]
    assert config["Labels"] == {"a": "$X", "b": "two"}
    assert config["Env"] == [DEFAULT_PATH]  # a stage starts with dockerd's default PATH
    # ENV keeps the base image's environment (busybox here has none: the default PATH)
    base_env = api.inspect_image("busybox")["Config"]["Env"] or [DEFAULT_PATH]
    list(api.build(fileobj=_script("FROM busybox", "ENV A=1 B=$A"), tag=f"{tag}-env"))
    assert api.inspect_image(f"{tag}-env")["Config"]["Env"] == [*base_env, "A=1", "B="]
    history = api.history(f"{tag}-env")
    assert history[0]["CreatedBy"] == "/bin/sh -c #(nop)  ENV A=1 B="
    # a RUN's stderr is in the stream, in red as dockerd sends it; stdout is not
    out = list(api.build(fileobj=_script("FROM busybox", "RUN echo out; echo err >&2"),
                         nocache=True, decode=True))
    streams = [x.get("stream") for x in out]
    assert "\x1b[91merr\n\x1b[0m" in streams
    assert "out\n" in streams
    api.remove_image(tag)
    api.remove_image(f"{tag}-env")
    api.close()


def test_failing_run_has_its_code_and_cli_exits_with_it(moord: Moord, tmp_path: Path) -> None:
    api = _client(moord)
    out = list(api.build(fileobj=_script("FROM busybox", "RUN exit 7"), decode=True))
    message = "The command '/bin/sh -c exit 7' returned a non-zero code: 7"
    assert out[-1] == {"errorDetail": {"code": 7, "message": message}, "error": message}
    api.close()
    ctx = _write(tmp_path / "code", {"Dockerfile": "FROM busybox\nRUN exit 7\n"})
    assert _build(moord, ctx, check=False).returncode == 7  # the CLI exits with the code


def test_extra_hosts_and_network_modes(moord: Moord) -> None:
    api = _client(moord)
    tag = _tag()
    script = _script("FROM busybox", "RUN ping -c1 -W2 hello.world.test",
                     "RUN cp /etc/hosts /hosts-file")
    out = list(api.build(fileobj=script, tag=tag, decode=True,
                         extra_hosts={"hello.world.test": "127.0.0.1", "b.test": "127.0.0.2"}))
    assert not [x for x in out if "error" in x], out
    hosts = moord.docker("run", "--rm", tag, "cat", "/hosts-file").stdout
    assert "127.0.0.1\thello.world.test\n" in hosts
    assert "127.0.0.2\tb.test\n" in hosts
    # a user network: RUN resolves a container there by its alias
    net = f"bn-{secrets.token_hex(3)}"
    moord.docker("network", "create", net)
    target = moord.docker("run", "-d", "--network", net, "--network-alias", "pingtarget",
                          "busybox", "sleep", "300").stdout.strip()
    try:
        out = list(api.build(fileobj=_script("FROM busybox", "RUN ping -c1 -W2 pingtarget"),
                             network_mode=net, tag=f"{tag}-net", decode=True))
        assert not [x for x in out if "error" in x], out
        # the default bridge does not know the alias
        out = list(api.build(fileobj=_script("FROM busybox", "RUN ping -c1 -W2 pingtarget"),
                             nocache=True, decode=True))
        assert out[-1]["errorDetail"]["code"] == 1
    finally:
        moord.docker("rm", "-f", target)
        moord.docker("network", "rm", net)
    # none: only a loopback
    out = list(api.build(fileobj=_script("FROM busybox", "RUN ip -o link | grep -v ': lo:'"),
                         network_mode="none", nocache=True, decode=True))
    assert out[-1]["errorDetail"]["code"] == 1
    # a network that does not exist: dockerd's words
    out = list(api.build(fileobj=_script("FROM busybox", "RUN true"), decode=True,
                         network_mode="nosuchnetwork", nocache=True))
    assert out[-1]["error"] == "network nosuchnetwork not found"
    api.remove_image(tag)
    api.remove_image(f"{tag}-net")
    api.close()


def test_dockerfile_outside_the_context(moord: Moord, tmp_path: Path) -> None:
    ctx = _write(tmp_path / "ctx", {"file.txt": "hello", ".dockerignore": ".dockerignore\n"})
    dockerfile = "FROM busybox\nCOPY . /src\nCMD [\"ls\", \"-a\", \"/src\"]\n"
    outside = _write(tmp_path / "elsewhere", {"Dockerfile": dockerfile}) / "Dockerfile"
    tag = _tag()
    # docker-py: `dockerfile=` twice (a generated name, then the text), the file in the tar
    api = _client(moord)
    out = list(api.build(path=str(ctx), dockerfile=str(outside), tag=tag, decode=True))
    assert "Successfully tagged" in out[-1]["stream"], out
    assert moord.docker("run", "--rm", tag).stdout.split() == [".", "..", "file.txt"]
    api.close()
    # the docker CLI: `-f ../elsewhere/Dockerfile` and `-f -` send a tar whose last member
    # has no padding and no end-of-archive blocks
    _build(moord, ctx, "-f", str(outside), "-t", f"{tag}-cli")
    assert moord.docker("run", "--rm", f"{tag}-cli").stdout.split() == [".", "..", "file.txt"]
    env = {**moord.env, "DOCKER_BUILDKIT": "0"}
    piped = subprocess.run([DOCKER_CLI, "build", "-f", "-", "-t", f"{tag}-stdin", str(ctx)],
                           input=dockerfile.encode(), env=env,
                           capture_output=True, timeout=300)
    assert piped.returncode == 0, piped.stderr.decode()
    assert moord.docker("run", "--rm", f"{tag}-stdin").stdout.split() == [".", "..", "file.txt"]
    moord.docker("rmi", tag, f"{tag}-cli", f"{tag}-stdin")


def test_cache_from(moord: Moord, tmp_path: Path) -> None:
    api = _client(moord)
    dockerfile = ("FROM busybox", f"ENV RUN_ID={secrets.token_hex(4)}", "RUN echo one > /one",
                  "RUN echo two > /two")
    tag = _tag()
    list(api.build(fileobj=_script(*dockerfile), tag=tag))

    def cached(*cache_from: str) -> int:
        out = list(api.build(fileobj=_script(*dockerfile), decode=True,
                             cache_from=list(cache_from)))
        return sum("Using cache" in x.get("stream", "") for x in out)

    assert cached(tag) == 3
    assert cached("nosuchimage") == 0  # only the named images' steps count
    assert cached("busybox") == 0
    # an image with no local build chain (saved, removed, loaded) is matched by its
    # history: the build makes the same images again
    image_id = api.inspect_image(tag)["Id"]
    saved = tmp_path / "saved.tar"
    moord.docker("save", "-o", str(saved), tag)
    chain = [h["Id"] for h in api.history(tag) if h["Id"] != "<missing>"][:-1]  # not busybox
    moord.docker("rmi", tag)
    for built in chain:
        moord.docker("rmi", built, check=False)
    assert not [i for i in chain if moord.docker("image", "inspect", i, check=False).returncode == 0]
    moord.docker("load", "-i", str(saved))
    assert cached(tag) == 3
    out = list(api.build(fileobj=_script(*dockerfile), decode=True, cache_from=[tag]))
    assert out[-1]["stream"].startswith("Successfully built")
    built_id = next(x["aux"]["ID"] for x in out if "aux" in x)
    assert built_id == image_id
    api.remove_image(tag)
    api.close()


def test_moor_build_outside_dockerfile_add_host_and_cache_from(moord: Moord, tmp_path: Path) -> None:
    import sys

    ctx = _write(tmp_path / "mctx", {"file.txt": "hello", ".dockerignore": "*.log\n", "x.log": "no"})
    outside = _write(tmp_path / "mdf", {"Dockerfile": (
        "FROM busybox\nCOPY . /src\nRUN grep -q 'moor.test' /etc/hosts && ls -a /src > /listing\n"
        'CMD ["cat", "/listing"]\n')}) / "Dockerfile"
    tag = _tag()
    env = {**moord.env, "MOORAGE_HOST": moord.host}
    moor = [sys.executable, "-m", "engine.cli", "build", "--add-host", "moor.test:127.0.0.1"]
    out = subprocess.run([*moor, "-t", tag, "-f", str(outside), str(ctx)], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert moord.docker("run", "--rm", tag).stdout.split() == [".", "..", "file.txt"]
    piped = subprocess.run([*moor, "--cache-from", tag, "-f", "-", str(ctx)], env=env,
                           input=outside.read_text(), capture_output=True, text=True, timeout=120)
    assert piped.returncode == 0, piped.stdout + piped.stderr
    assert piped.stdout.count("Using cache") == 3
    nothing = subprocess.run([*moor, "--cache-from", "nosuchimage", "-f", str(outside), str(ctx)],
                             env=env, capture_output=True, text=True, timeout=120)
    assert nothing.returncode == 0, nothing.stdout + nothing.stderr
    assert "Using cache" not in nothing.stdout
    moord.docker("rmi", tag)


def v2() -> bool:
    return cgroups.detect().version == 2


def test_run_limits_and_refused_options(moord: Moord) -> None:
    import docker

    api = _client(moord)
    # the container's own cgroup files, v2 or v1
    script = _script("FROM busybox", "RUN cd /sys/fs/cgroup && "
                     "{ cat memory.max || cat memory/memory.limit_in_bytes; } 2>/dev/null && "
                     "{ cat cpu.weight || cat cpu/cpu.shares; } 2>/dev/null && df -k /dev/shm")
    out = list(api.build(fileobj=script, nocache=True, decode=True, shmsize=32 * 1024 * 1024,
                         container_limits={"memory": 96 * 1024 * 1024, "cpushares": 512}))
    text = "".join(x.get("stream", "") for x in out)
    assert "Successfully built" in text, out
    assert f"{96 * 1024 * 1024}\n" in text, text  # memory.max
    assert ("\n20\n" if v2() else "\n512\n") in text  # cpu.weight: 512 shares on cgroup v2
    assert " 32768 " in text  # /dev/shm in KiB
    # what a dockerd without experimental features refuses, and an isolation Linux lacks
    with pytest.raises(docker.errors.APIError, match="squash is only supported"):
        list(api.build(fileobj=_script("FROM busybox"), squash=True))
    with pytest.raises(docker.errors.APIError, match='Unsupported isolation: "hyperv"'):
        list(api.build(fileobj=_script("FROM busybox"), isolation="hyperv"))
    api.close()


def test_steps_that_change_nothing_or_repeat_a_layer(moord: Moord, tmp_path: Path) -> None:
    # `RUN true` changes no file: no layer, an empty_layer history entry (as dockerd);
    # two steps writing the same file in one second make the same layer twice, which the
    # later steps and containers still mount
    ctx = _write(tmp_path / "rep", {"Dockerfile": (
        "FROM busybox\nRUN echo a > /f\nRUN echo a > /f\nRUN true\nRUN cat /f > /g\n"
        "RUN echo a > /f\n")})
    tag = _tag()
    _build(moord, ctx, "-t", tag)
    base = len(inspect(moord, "busybox")["RootFS"]["Layers"])  # type: ignore[index]
    layers = inspect(moord, tag)["RootFS"]["Layers"]  # type: ignore[index]
    assert len(layers) == base + 4  # type: ignore[arg-type]
    history = moord.docker("history", "--format", "{{.Size}} {{.CreatedBy}}", tag).stdout
    assert "0B /bin/sh -c true" in history
    assert moord.docker("run", "--rm", tag, "cat", "/f", "/g").stdout == "a\na\n"
    moord.docker("rmi", tag)
