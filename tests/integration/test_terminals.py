"""Terminals, through the docker CLI on pseudo-terminals of the test's own: `run -it`
takes typed commands and follows resizes; detach keys leave containers and exec'd
shells running; several clients attach at once; signals reach the container through
the CLI's proxy; a daemon-side detach for API clients."""

from __future__ import annotations

import contextlib
import json
import secrets
import signal
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

from engine.runtime import rlimits as rl
from tests.support.daemon import DOCKER_CLI, Moord
from tests.support.terminal import Terminal

pytestmark = pytest.mark.integration

CTRL_P_CTRL_Q = b"\x10\x11"


@pytest.fixture
def name(moord: Moord) -> Iterator[str]:
    """A container name the test may use; the container is removed afterwards."""
    chosen = f"tty-{secrets.token_hex(3)}"
    yield chosen
    moord.docker("rm", "-f", chosen, check=False)


@contextlib.contextmanager
def terminal(moord: Moord, *args: str, rows: int = 24, columns: int = 80) -> Iterator[Terminal]:
    term = Terminal.spawn([DOCKER_CLI, *args], moord.env, rows=rows, columns=columns)
    try:
        yield term
    finally:
        term.close()


def state(moord: Moord, name: str) -> dict[str, Any]:
    out = moord.docker("inspect", "--format", "{{json .State}}", name).stdout
    result: dict[str, Any] = json.loads(out)
    return result


def wait_running(moord: Moord, name: str) -> None:
    deadline = time.monotonic() + 30
    while not state(moord, name)["Running"]:
        assert time.monotonic() < deadline, f"{name} never ran"
        time.sleep(0.05)


def resize_until_seen(term: Terminal, rows: int, columns: int) -> None:
    """Resize the client's window until the shell inside reports the new size.

    The client sends the size through the API when it gets SIGWINCH; a SIGWINCH that
    arrives before it watches for one (right after the start) is lost, as it would be
    for a person resizing the window that early, so each try resizes again.
    """
    deadline = time.monotonic() + 30
    while True:
        term.resize(rows, columns)
        term.type(b"stty size\n")
        try:
            term.expect(f"{rows} {columns}".encode(), timeout=1)
            return
        except AssertionError:
            assert time.monotonic() < deadline, "the container never saw the resize"


def test_run_it_takes_commands_follows_resizes_and_exits_with_the_shell(
        moord: Moord, name: str) -> None:
    with terminal(moord, "run", "-it", "--name", name, "busybox", "sh",
                  rows=31, columns=97) as term:
        term.type(b"echo marker-$((6*7)); tty; stty size\n")
        out = term.expect(b"31 97")
        assert b"marker-42" in out
        assert b"/dev/pts/0" in out or b"/dev/console" in out
        resize_until_seen(term, 45, 132)
        term.type(b"exit 3\n")
        assert term.wait() == 3
    assert state(moord, name)["ExitCode"] == 3


def test_run_it_ctrl_c_reaches_the_foreground_job_and_rm_removes(moord: Moord, name: str) -> None:
    """The terminal is the container's: ctrl-c interrupts the shell's job, not the CLI."""
    with terminal(moord, "run", "-it", "--rm", "--name", name, "busybox", "sh") as term:
        term.type(b"sleep 300\n")
        deadline = time.monotonic() + 30
        while "sleep 300" not in moord.docker("top", name, check=False).stdout:
            assert time.monotonic() < deadline, "sleep never started"
            time.sleep(0.05)
        term.type(b"\x03")
        term.expect(b"^C")  # the container's terminal echoes it, and the shell takes it
        term.type(b"echo status-$?\n")
        term.expect(b"status-130")
        assert "sleep 300" not in moord.docker("top", name).stdout
        term.type(b"exit\n")
        assert term.wait() == 0
    gone = moord.docker("inspect", name, check=False)
    assert gone.returncode != 0, "--rm left the container behind"


def test_detach_keys_leave_the_container_running_and_attach_comes_back(
        moord: Moord, name: str) -> None:
    with terminal(moord, "run", "-it", "--name", name, "busybox", "sh") as term:
        term.type(b"export KEPT=yes-$((2+2))\n")
        term.type(b"echo set-$((1+2))\n")  # a marker the shell computes, not the typed echo
        term.expect(b"set-3")
        term.press_one_by_one(CTRL_P_CTRL_Q)
        assert term.wait() == 0
    assert state(moord, name)["Running"], "the container stopped when the client detached"

    # the same shell, with its variable, through `docker attach` and other keys
    with terminal(moord, "attach", "--detach-keys", "ctrl-a,x", name) as term:
        term.type(b"echo again $KEPT\n")
        term.expect(b"again yes-4")
        term.press_one_by_one(b"\x01x")
        # the CLI's own words and status after a detached `attach` (`run -it` exits 0)
        assert term.wait() == 1
        assert b"read escape sequence" in term.seen
    assert state(moord, name)["Running"]


def test_exec_it_detach_leaves_the_exec_running(moord: Moord, name: str) -> None:
    moord.docker("run", "-d", "--name", name, "busybox", "sleep", "300")
    with terminal(moord, "exec", "-it", name, "sh") as term:
        term.type(b"echo $$ > /exec.pid; echo pid-$((2*3))\n")
        term.expect(b"pid-6")
        term.press_one_by_one(CTRL_P_CTRL_Q)
        assert term.wait() == 1  # the CLI's status after a detach, as with dockerd
        assert b"read escape sequence" in term.seen
    pid = moord.docker("exec", name, "cat", "/exec.pid").stdout.strip()
    alive = moord.docker("exec", name, "kill", "-0", pid, check=False)
    assert alive.returncode == 0, "the exec'd shell died when its client detached"


def test_several_clients_attach_at_once(moord: Moord, name: str) -> None:
    moord.docker("run", "-dit", "--name", name, "busybox", "sh")
    wait_running(moord, name)
    with terminal(moord, "attach", name) as first, terminal(moord, "attach", name) as second:
        first.type(b"echo first-$((1+1))\n")
        first.expect(b"first-2")
        second.type(b"echo second-$((2+3))\n")
        second.expect(b"second-5")
        # each sees what the other typed, and its output
        first.expect(b"second-5")
        first.type(b"echo third-$((3+4))\n")
        first.expect(b"third-7")
        second.expect(b"third-7")
        first.press_one_by_one(CTRL_P_CTRL_Q)
        assert first.wait() == 1
        assert b"read escape sequence" in first.seen
        second.type(b"echo still-$((4+5))\n")
        second.expect(b"still-9")
        second.press_one_by_one(CTRL_P_CTRL_Q)
        assert second.wait() == 1
    assert state(moord, name)["Running"]


TRAP = 'trap "echo got-term; exit 42" TERM; echo ready; while :; do sleep 0.1; done'


def test_sig_proxy_forwards_signals_to_the_container(moord: Moord, name: str) -> None:
    since = int(time.time())
    proc = subprocess.Popen([DOCKER_CLI, "run", "--name", name, "busybox", "sh", "-c", TRAP],
                            env=moord.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"ready\n"
        proc.send_signal(signal.SIGTERM)
        assert proc.stdout.readline() == b"got-term\n"
        assert proc.wait(timeout=30) == 42
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert state(moord, name)["ExitCode"] == 42
    kills = moord.docker("events", "--since", str(since), "--until", str(int(time.time()) + 1),
                         "--filter", f"container={name}", "--filter", "event=kill",
                         "--format", "{{.Actor.Attributes.signal}}").stdout.split()
    assert kills == ["15"], "the CLI's proxy goes through POST /containers/{id}/kill"


def test_api_clients_detach_by_keys_seen_in_the_daemon(moord: Moord, name: str) -> None:
    """docker-py has no terminal of its own: the daemon watches its input for the keys."""
    import docker

    client = docker.APIClient(base_url=moord.host, version="1.43")
    try:
        since = int(time.time())
        container = client.create_container("busybox", "sh", tty=True, stdin_open=True,
                                            name=name)
        client.start(container)
        sock = client.attach_socket(container, params={
            "stdin": 1, "stdout": 1, "stream": 1, "detachKeys": "ctrl-x,x"})
        raw = sock._sock
        raw.settimeout(30)
        raw.sendall(b"echo api-$((3*3))\n")
        seen = b""
        while b"api-9" not in seen:
            chunk = raw.recv(4096)
            assert chunk, f"the stream ended early: {seen!r}"
            seen += chunk
        raw.sendall(b"\x18")
        raw.sendall(b"x")
        while raw.recv(4096):  # the daemon ends the stream
            pass
        sock.close()
        assert client.inspect_container(name)["State"]["Running"]
        events = client.events(since=since, until=int(time.time()) + 1, decode=True,
                               filters={"container": name, "event": "detach"})
        assert [e["Action"] for e in events] == ["detach"]
        with pytest.raises(docker.errors.APIError, match="Invalid detach keys") as refused:
            client.attach_socket(container, params={"stdin": 1, "stream": 1,
                                                    "detachKeys": "ctrl-1"})
        assert refused.value.status_code == 400
    finally:
        client.close()


def test_privileged_exec_has_every_capability(moord: Moord, name: str) -> None:
    moord.docker("run", "-d", "--name", name, "busybox", "sleep", "300")

    def effective(*flags: str) -> int:
        out = moord.docker("exec", *flags, name, "grep", "CapEff", "/proc/self/status").stdout
        return int(out.split()[1], 16)

    plain, privileged = effective(), effective("--privileged")
    cap_sys_admin = 1 << 21
    assert not plain & cap_sys_admin
    assert privileged & cap_sys_admin
    assert privileged & plain == plain


def test_ulimits_apply_and_past_the_host_are_refused(moord: Moord) -> None:
    out = moord.docker("run", "--rm", "--ulimit", "nofile=1234:5678", "--ulimit",
                       "nproc=300:400", "busybox", "sh", "-c",
                       "echo $(ulimit -Sn) $(ulimit -Hn) $(ulimit -Su) $(ulimit -Hu)").stdout
    assert out.split() == ["1234", "5678", "300", "400"]
    ceiling = rl.host_limits().ceiling("RLIMIT_NOFILE")  # nr_open, or moord's own hard limit
    too_many = ceiling + 1
    refused = moord.docker("run", "--rm", "--ulimit", f"nofile={too_many}:{too_many}",
                           "busybox", "true", check=False)
    assert refused.returncode == 125
    assert "exceeds what this host allows" in refused.stderr
    assert f"at most {ceiling}" in refused.stderr
    soft_over_hard = moord.docker("run", "--rm", "--ulimit", "nofile=10:5", "busybox", "true",
                                  check=False)
    assert soft_over_hard.returncode == 125
    assert "soft limit" in soft_over_hard.stderr


# --- the same through moor ----------------------------------------------------------


@contextlib.contextmanager
def moor_terminal(moord: Moord, *args: str, rows: int = 24,
                  columns: int = 80) -> Iterator[Terminal]:
    from tests.integration.test_moor_cli import moor_argv

    term = Terminal.spawn([*moor_argv(), *args], moord.env, rows=rows, columns=columns)
    try:
        yield term
    finally:
        term.close()


def test_moor_run_it_detach_attach_and_exec_it(moord: Moord, name: str) -> None:
    with moor_terminal(moord, "run", "-it", "--name", name, "busybox", "sh",
                       rows=27, columns=88) as term:
        term.type(b"export KEPT=moor-$((5+5)); stty size\n")
        term.expect(b"27 88")
        term.press_one_by_one(CTRL_P_CTRL_Q)
        assert term.wait() == 0
    assert state(moord, name)["Running"]
    with moor_terminal(moord, "attach", "--detach-keys", "ctrl-a,x", name) as term:
        term.type(b"echo back $KEPT\n")
        term.expect(b"back moor-10")
        term.press_one_by_one(b"\x01x")
        assert term.wait() == 1
        assert b"read escape sequence" in term.seen
    with moor_terminal(moord, "exec", "-it", name, "sh", rows=19, columns=61) as term:
        term.type(b"tty; stty size\n")
        out = term.expect(b"19 61")
        assert b"/dev/pts/" in out
        resize_until_seen(term, 22, 70)
        term.type(b"exit 9\n")
        assert term.wait() == 9
    assert state(moord, name)["Running"]


def test_moor_exec_without_terminal(moord: Moord, name: str) -> None:
    from tests.integration.test_moor_cli import moor_argv

    moord.docker("run", "-d", "--name", name, "busybox", "sleep", "300")

    def moor(*args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*moor_argv(), *args], env=moord.env, input=input, text=True,
                              capture_output=True, timeout=60)

    done = moor("exec", "-e", "X=1", "-u", "nobody", "-w", "/tmp", name,
                "sh", "-c", "echo $X $(id -un) $(pwd); echo err >&2; exit 4")
    assert (done.stdout, done.stderr, done.returncode) == ("1 nobody /tmp\n", "err\n", 4)
    piped = moor("exec", "-i", name, "sh", "-c", "cat; echo end", input="through stdin\n")
    assert piped.stdout == "through stdin\nend\n"
    assert moor("exec", "-d", name, "touch", "/from-detached").returncode == 0
    deadline = time.monotonic() + 30
    while moor("exec", name, "test", "-e", "/from-detached").returncode:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    missing = moor("exec", name, "no-such-command")
    assert missing.returncode == 127
    moord.docker("stop", "-t", "0", name)
    stopped = moor("exec", name, "true")
    assert stopped.returncode == 1
    assert "is not running" in stopped.stderr


def test_an_interactive_shell_outlives_moord_and_takes_a_new_client(
        fresh_moord: Any) -> None:
    """The terminal is conmon's: killing moord under an attached `docker run -it` ends
    that client, not the shell, and the restarted moord attaches a new one to it."""
    d = fresh_moord()
    d.start()
    d.import_busybox()
    with terminal(d, "run", "-it", "--name", "keeper", "busybox", "sh") as term:
        term.type(b"export MARK=kept-$((8*8)); echo ready-$((4+5))\n")
        term.expect(b"ready-9")
        d.kill9()
        term.wait()  # the CLI loses its daemon; its status is the CLI's business
    d.start()
    assert state(d, "keeper")["Running"]
    with terminal(d, "attach", "keeper") as term:
        term.type(b"echo $MARK\n")
        term.expect(b"kept-64")
        term.type(b"exit\n")
        term.wait()
    deadline = time.monotonic() + 30
    while state(d, "keeper")["Running"]:
        assert time.monotonic() < deadline, "the shell did not exit"
        time.sleep(0.05)


def test_attach_refusals_in_dockerd_s_words(moord: Moord, name: str) -> None:
    import docker

    moord.docker("run", "-dit", "--name", name, "busybox", "sh")
    moord.docker("pause", name)
    client = docker.APIClient(base_url=moord.host, version="1.43")
    try:
        with pytest.raises(docker.errors.APIError) as paused:
            client.attach(name, stream=False, logs=False)
        assert paused.value.status_code == 409
        assert f"container {name} is paused, unpause the container before attach" in str(
            paused.value)
    finally:
        client.close()
        moord.docker("unpause", name, check=False)
