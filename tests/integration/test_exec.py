"""`docker exec` without a terminal: output, exit codes, stdin, user, env, workdir, detached
runs, inspect, and the refusals (stopped container, -t not yet)."""

from __future__ import annotations

import secrets
import subprocess
import time

import pytest

from tests.support.daemon import DOCKER_CLI, Moord

pytestmark = pytest.mark.integration


@pytest.fixture
def running(moord: Moord):  # type: ignore[no-untyped-def]
    name = f"ex-{secrets.token_hex(3)}"
    moord.docker("run", "-d", "--name", name, "-e", "FROM_RUN=yes", "busybox", "sleep", "300")
    yield name
    moord.docker("rm", "-f", name, check=False)


def test_output_and_exit_codes(moord: Moord, running: str) -> None:
    out = moord.docker("exec", running, "sh", "-c", "echo out; echo err >&2; echo $FROM_RUN")
    assert out.stdout == "out\nyes\n"
    assert out.stderr == "err\n"
    failed = moord.docker("exec", running, "sh", "-c", "exit 3", check=False)
    assert failed.returncode == 3
    missing = moord.docker("exec", running, "no-such-binary", check=False)
    assert missing.returncode in (126, 127)


def test_stdin_user_env_workdir(moord: Moord, running: str) -> None:
    result = subprocess.run([DOCKER_CLI, "exec", "-i", running, "sh", "-c", "cat; echo done"],
                            env=moord.env, input="piped in\n", capture_output=True, text=True,
                            timeout=60)
    assert result.stdout == "piped in\ndone\n"
    out = moord.docker("exec", "-u", "nobody", "-e", "EXTRA=1", "-w", "/tmp", running,
                       "sh", "-c", "id -un; echo $EXTRA; pwd").stdout
    assert out == "nobody\n1\n/tmp\n"


def test_detached_and_inspect_with_docker_py(moord: Moord, running: str) -> None:
    import docker

    moord.docker("exec", "-d", running, "sh", "-c", "sleep 0.2; touch /detached")
    deadline = time.monotonic() + 10
    while moord.docker("exec", running, "test", "-e", "/detached", check=False).returncode:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    client = docker.DockerClient(base_url=f"unix://{moord.socket_path}", version="1.43")
    container = client.containers.get(running)
    code, output = container.exec_run(["sh", "-c", "echo py; exit 5"])
    assert code == 5
    assert output == b"py\n"
    exec_id = client.api.exec_create(running, ["true"])["Id"]
    client.api.exec_start(exec_id)
    info = client.api.exec_inspect(exec_id)
    assert info["ExitCode"] == 0
    assert info["Running"] is False
    with pytest.raises(docker.errors.NotFound):
        client.api.exec_inspect("no-such-exec")
    client.close()


def test_refusals(moord: Moord) -> None:
    name = f"ex-stopped-{secrets.token_hex(3)}"
    moord.docker("create", "--name", name, "busybox", "true")
    try:
        out = moord.docker("exec", name, "true", check=False)
        assert out.returncode != 0
        assert "is not running" in out.stderr
    finally:
        moord.docker("rm", "-f", name, check=False)
