"""`docker exec`: output, exit codes, stdin, user, env, workdir, detached runs, inspect,
the refusals, terminals (TERM, framing as the start asks), HOME per user, detach keys."""

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
    with pytest.raises(docker.errors.APIError, match="has already run") as again:
        client.api.exec_start(exec_id)
    assert again.value.status_code == 409
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


def _read_until(fd: int, marker: bytes, timeout: float = 20.0) -> bytes:
    import os
    import select

    seen = b""
    deadline = time.monotonic() + timeout
    while marker not in seen:
        left = deadline - time.monotonic()
        assert left > 0, f"no {marker!r} in {seen!r}"
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
    return seen


def test_exec_it_under_a_terminal(moord: Moord, running: str) -> None:
    """The docker CLI on a pseudo-terminal of the test's own: typed commands run in a shell
    with a TTY, `stty size` sees the terminal's size, and `exit 7` is the exit code."""
    import fcntl
    import os
    import pty
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 33, 101, 0, 0))
    proc = subprocess.Popen([DOCKER_CLI, "exec", "-it", running, "sh"], env=moord.env,
                            stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
    os.close(slave)
    try:
        os.write(master, b"echo marker-$((6*7)); tty; stty size\n")
        out = _read_until(master, b"33 101")
        assert b"marker-42" in out
        assert b"/dev/pts/" in out
        os.write(master, b"exit 7\n")
        assert proc.wait(timeout=20) == 7
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)


def test_exec_t_sets_term_and_u_gets_the_users_home(moord: Moord, running: str) -> None:
    """`exec -t` has TERM=xterm (a plain exec has no TERM); `exec -u nobody` has nobody's
    HOME from the image's passwd, not root's; a HOME or TERM the container set stays."""
    tty = moord.docker("exec", "-t", running, "sh", "-c", "echo T=$TERM").stdout
    assert tty.replace("\r", "") == "T=xterm\n"
    plain = moord.docker("exec", running, "sh", "-c", "echo T=$TERM H=$HOME").stdout
    assert plain == "T= H=/root\n"
    nobody = moord.docker("exec", "-u", "nobody", running, "sh", "-c", "echo $HOME").stdout
    assert nobody == "/home\n"
    name = f"ex-home-{secrets.token_hex(3)}"
    moord.docker("run", "-d", "--name", name, "-e", "HOME=/srv", "-e", "TERM=dumb",
                 "busybox", "sleep", "300")
    try:
        kept = moord.docker("exec", "-t", "-u", "nobody", name, "sh", "-c",
                            "echo $HOME $TERM").stdout
        assert kept.replace("\r", "") == "/srv dumb\n"
    finally:
        moord.docker("rm", "-f", name, check=False)


def test_tty_exec_framing_follows_the_start_request(moord: Moord, running: str) -> None:
    """With a TTY the stream is raw when the start asks for a TTY (the docker CLI), and in
    stdout frames when it does not (the SDK's `exec_start` without `tty=True`), so both
    of the SDK's demux modes read it."""
    import docker
    from docker.utils.socket import next_frame_header, read_exactly

    client = docker.APIClient(base_url=moord.host, version="1.45", timeout=60)
    try:
        cmd = ["sh", "-c", "echo out; echo err >&2"]
        exec_id = client.exec_create(running, cmd, tty=True)
        assert client.exec_start(exec_id) == b"out\r\nerr\r\n"
        exec_id = client.exec_create(running, cmd, tty=True)
        assert client.exec_start(exec_id, demux=True) == (b"out\r\nerr\r\n", None)
        exec_id = client.exec_create(running, cmd, tty=True)
        assert client.exec_start(exec_id, tty=True) == b"out\r\nerr\r\n"
        exec_id = client.exec_create(running, ["printf", "exact"], tty=True)
        sock = client.exec_start(exec_id, socket=True)
        try:
            stream, size = next_frame_header(sock)
            assert (stream, size) == (1, len("exact"))
            assert read_exactly(sock, size) == b"exact"
        finally:
            sock.close()
    finally:
        client.close()


def test_detach_keys_in_the_sdks_spelling(moord: Moord, running: str) -> None:
    """The SDK sends the config file's detach keys as `detachKeys`: they are the exec's."""
    import docker

    client = docker.APIClient(base_url=moord.host, version="1.45", timeout=60)
    try:
        client._general_configs["detachKeys"] = "ctrl-x"
        exec_id = client.exec_create(running, "cat", stdin=True, tty=True)
        assert client.exec_inspect(exec_id)["DetachKeys"] == "ctrl-x"
    finally:
        client.close()
