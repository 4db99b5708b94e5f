"""`docker commit` through moord: files added, changed and deleted in a container's
writable layer become a layer of a new image that runs with them."""

from __future__ import annotations

import secrets
import time

import pytest

from tests.support.daemon import Moord, inspect

pytestmark = pytest.mark.integration


def test_commit_keeps_additions_changes_and_deletions(moord: Moord) -> None:
    name = f"committed-{secrets.token_hex(3)}"
    cid = moord.docker(
        "run", "-d", "-e", "FROM_RUN=1", "busybox", "sh", "-c",
        "mkdir -p /data/sub && echo new > /data/sub/file && echo changed > /etc/motd"
        " && rm /bin/vi && ln -s /data/sub/file /data/link && ln /data/sub/file /data/hard"
        " && mkdir -p /opaque && rm -rf /usr && mkdir /usr && echo only > /usr/only"
        " && chmod 4755 /data/sub/file && echo ready && sleep 300").stdout.strip()
    try:
        deadline = time.monotonic() + 30
        while "ready" not in moord.docker("logs", cid).stdout:
            assert time.monotonic() < deadline, "the container did not get ready"
            time.sleep(0.05)
        image = moord.docker("commit", "-m", "a message", "-a", "tester",
                             "--change", 'CMD ["cat", "/data/sub/file"]', cid, f"{name}:v1")
        image_id = image.stdout.strip()
        assert image_id.startswith("sha256:")
        assert inspect(moord, cid)["State"]["Running"] is True  # type: ignore[index]
        info = inspect(moord, f"{name}:v1")
        assert info["Id"] == image_id
        assert info["Comment"] == "a message"
        assert info["Author"] == "tester"
        assert info["Config"]["Cmd"] == ["cat", "/data/sub/file"]  # type: ignore[index]
        assert "FROM_RUN=1" in info["Config"]["Env"]  # type: ignore[index]
        assert info["Parent"] == inspect(moord, "busybox")["Id"]
        layers = info["RootFS"]["Layers"]  # type: ignore[index]
        assert len(layers) == len(inspect(moord, "busybox")["RootFS"]["Layers"]) + 1  # type: ignore[index]

        assert moord.docker("run", "--rm", f"{name}:v1").stdout == "new\n"
        script = ("cat /etc/motd; ls /bin/vi 2>&1 || echo vi-gone; readlink /data/link;"
                  " cat /data/hard; ls /usr; stat -c %a /data/sub/file;"
                  " test -e /etc/hosts && echo hosts-present")
        out = moord.docker("run", "--rm", f"{name}:v1", "sh", "-c", script).stdout.split("\n")
        assert out[0] == "changed"
        assert "vi-gone" in out
        assert "/data/sub/file" in out
        assert out.count("new") == 1
        assert "only" in out  # /usr was replaced: an opaque directory, busybox's /usr hidden
        assert "4755" in out
        history = moord.docker("history", "--no-trunc", "--format", "{{.Comment}}",
                               f"{name}:v1").stdout.split("\n")
        assert history[0] == "a message"
    finally:
        moord.docker("rm", "-f", cid, check=False)
        moord.docker("rmi", f"{name}:v1", check=False)


def test_commit_of_a_stopped_container_with_docker_py(moord: Moord) -> None:
    import docker

    client = docker.DockerClient(base_url=f"unix://{moord.socket_path}", version="1.43")
    container = client.containers.run("busybox", ["sh", "-c", "echo hi > /greeting"], detach=True)
    try:
        container.wait()
        image = container.commit(repository="pycommit", tag="t",
                                 conf={"Entrypoint": ["cat"], "Cmd": ["/greeting"],
                                       "Labels": {"made": "by docker-py"}})
        assert image.labels["made"] == "by docker-py"
        out = client.containers.run("pycommit:t", remove=True)
        assert out == b"hi\n"
        # the same writable layer again gives the same layer: the tarball is deterministic
        second = container.commit(repository="pycommit", tag="u",
                                  conf={"Entrypoint": ["cat"], "Cmd": ["/greeting"]})
        assert second.attrs["RootFS"]["Layers"][-1] == image.attrs["RootFS"]["Layers"][-1]
        with pytest.raises(docker.errors.APIError) as failure:
            client.api.commit(container.id, repository="pycommit", tag="bad", changes="RUN true")
        assert failure.value.status_code == 400
        with pytest.raises(docker.errors.NotFound):
            client.api.commit("no-such-container-here")
    finally:
        container.remove(force=True)
        for tag in ("pycommit:t", "pycommit:u"):
            try:
                client.images.remove(tag)
            except docker.errors.ImageNotFound:
                pass
        client.close()


def test_commit_change_reads_what_a_dockerfile_reads(moord: Moord) -> None:
    """`--change` goes through the Dockerfile parser: quoted flag values, ranges, JSON
    forms, variables from the image's environment; a bad line is dockerd's 400."""
    name = f"changed-{secrets.token_hex(3)}"
    cid = moord.docker("create", "-e", "PORT=9000", "busybox", "true").stdout.strip()
    try:
        moord.docker(
            "commit",
            "--change", 'HEALTHCHECK --interval="5s" --retries=2 CMD ["true"]',
            "--change", "EXPOSE 8000-8001/udp $PORT",
            "--change", "ENV GREETING=\"hello there\" COPY_OF_PORT=$PORT",
            "--change", "STOPSIGNAL SIGQUIT",
            cid, f"{name}:v1")
        config = inspect(moord, f"{name}:v1")["Config"]
        assert isinstance(config, dict)
        assert config["Healthcheck"]["Test"] == ["CMD", "true"]
        assert config["Healthcheck"]["Interval"] == 5_000_000_000
        assert config["Healthcheck"]["Retries"] == 2
        assert set(config["ExposedPorts"]) == {"8000/udp", "8001/udp", "9000/tcp"}
        assert "GREETING=hello there" in config["Env"]
        assert "COPY_OF_PORT=9000" in config["Env"]
        assert config["StopSignal"] == "SIGQUIT"
        refused = moord.docker("commit", "--change", "SHELL [\"/bin/bash\", \"-c\"]", cid,
                               f"{name}:bad", check=False)
        assert refused.returncode != 0
        assert "shell is not a valid change command" in refused.stderr
        refused = moord.docker("commit", "--change", "HEALTHCHECK --interval=1s --interval=2s "
                               "CMD true", cid, f"{name}:bad", check=False)
        assert "duplicate flag specified: --interval" in refused.stderr
    finally:
        moord.docker("rm", "-f", cid, check=False)
        moord.docker("rmi", f"{name}:v1", check=False)


def test_commit_of_a_container_that_exits_meanwhile(moord: Moord, docker_client) -> None:  # type: ignore[no-untyped-def]
    """docker-py's own commit tests start `touch /test` and commit at once: the container
    exits during the commit, which must not fail it (nothing is left to pause), nor leave
    anything paused."""
    images = []
    try:
        for _ in range(5):
            container = docker_client.containers.run("busybox", ["touch", "/test"], detach=True)
            try:
                image = container.commit()
                images.append(image.id)
                container.reload()
                assert container.status in ("running", "exited")
                container.wait(timeout=30)
                assert docker_client.containers.get(container.id).status == "exited"
            finally:
                container.remove(force=True)
        ran = docker_client.containers.run(images[-1], ["ls", "/"], remove=True)
        assert b"bin" in ran
    finally:
        for image_id in images:
            docker_client.images.remove(image_id, force=True)
