"""Engine-run probes end to end: busybox httpd as the service, moord probing it from the
host inside the container's network namespace (the container runs nothing for them).

What a probe sees is changed through the container's root filesystem as the host sees it
(moord's overlay mount) or by stopping httpd with `docker exec`. Waits poll with a
generous deadline; nothing asserts on how long anything took.
"""

from __future__ import annotations

import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.daemon import REPO, Moord
from tests.support.health import health_of, inspect_container, rootfs, status_is, wait_until

pytestmark = pytest.mark.integration

SERVE = "mkdir -p /www && echo ok > /www/healthz && exec httpd -f -p {listen} -h /www"
COMPOSE = "/usr/bin/docker-compose"


def _health(moord: Moord, cid: str) -> dict[str, Any]:
    health = health_of(moord, cid)
    assert health is not None, "no State.Health"
    return health


def _events(moord: Moord, cid: str, since: str) -> list[str]:
    until = f"{time.time() + 1:.3f}"
    return moord.docker("events", "--since", since, "--until", until, "--filter",
                        f"container={cid}", "--format", "{{.Action}}").stdout.split("\n")


def _run(moord: Moord, made: list[str], *args: str, listen: str = "8080") -> str:
    cid = moord.docker("run", "-d", "--label", "moorage.health.interval=1s", *args,
                       "busybox", "sh", "-c", SERVE.format(listen=listen)).stdout.strip()
    made.append(cid)
    return cid


def _moor(moord: Moord, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "engine.cli", *args], env=moord.env, cwd=REPO,
                          capture_output=True, text=True, timeout=60)


def test_http_probe_healthy_then_unhealthy(moord: Moord, containers: list[str]) -> None:
    since = f"{time.time() - 1:.3f}"
    cid = _run(moord, containers, "--label", "moorage.health.http=:8080/healthz",
               "--label", "moorage.health.retries=2")
    wait_until("healthy", status_is(moord, cid, "healthy"), moord)
    health = _health(moord, cid)
    assert set(health) == {"Status", "FailingStreak", "Log"}
    assert health["FailingStreak"] == 0
    last = health["Log"][-1]
    assert set(last) == {"Start", "End", "ExitCode", "Output"}
    assert (last["ExitCode"], last["Output"]) == (0, "HTTP 200 OK")
    assert last["Start"] <= last["End"]
    ps = moord.docker("ps", "--filter", f"id={cid}", "--format", "{{.Status}}").stdout.strip()
    assert ps.endswith("(healthy)"), ps

    (rootfs(moord, cid) / "www" / "healthz").unlink()  # httpd now answers 404
    wait_until("unhealthy", status_is(moord, cid, "unhealthy"), moord)
    health = _health(moord, cid)
    assert health["FailingStreak"] >= 2
    assert 1 <= len(health["Log"]) <= 5
    assert (health["Log"][-1]["ExitCode"], health["Log"][-1]["Output"]) == (1, "HTTP 404 Not Found")
    assert inspect_container(moord, cid)["State"]["Running"] is True  # only reported: no on-failure

    (rootfs(moord, cid) / "www" / "healthz").write_text("ok\n")
    wait_until("healthy again", status_is(moord, cid, "healthy"), moord)
    moord.docker("stop", "-t", "1", cid)
    events = [e for e in _events(moord, cid, since) if e.startswith("health_status")]
    assert events == ["health_status: healthy", "health_status: unhealthy",
                      "health_status: healthy"]
    assert _health(moord, cid)["Status"] == "healthy"  # a stopped container keeps its last


def test_stopped_server_is_refused(moord: Moord, containers: list[str]) -> None:
    cid = moord.docker(
        "run", "-d", "--label", "moorage.health.http=:8080/healthz",
        "--label", "moorage.health.interval=1s", "--label", "moorage.health.retries=1",
        "busybox", "sh", "-c",
        "mkdir -p /www && echo ok > /www/healthz && httpd -p 8080 -h /www && sleep 300",
    ).stdout.strip()
    containers.append(cid)
    wait_until("healthy", status_is(moord, cid, "healthy"), moord)
    moord.docker("exec", cid, "killall", "httpd")
    wait_until("unhealthy", status_is(moord, cid, "unhealthy"), moord)
    last = _health(moord, cid)["Log"][-1]
    assert (last["ExitCode"], last["Output"]) == (
        1, "connecting to 127.0.0.1:8080: Connection refused")


def test_tcp_probe(moord: Moord, containers: list[str]) -> None:
    cid = _run(moord, containers, "--label", "moorage.health.tcp=:8080")
    wait_until("healthy", status_is(moord, cid, "healthy"), moord)
    assert _health(moord, cid)["Log"][-1]["Output"] == "connected to 127.0.0.1:8080"

    refused = _run(moord, containers, "--label", "moorage.health.tcp=:9090",
                   "--label", "moorage.health.retries=1")
    wait_until("unhealthy", status_is(moord, refused, "unhealthy"), moord)
    assert _health(moord, refused)["Log"][-1]["Output"] == \
        "connecting to 127.0.0.1:9090: Connection refused"


def test_probe_reaches_loopback_only_and_network_none(moord: Moord,
                                                     containers: list[str]) -> None:
    """The probe works inside the container's namespace: a server on its 127.0.0.1 (which
    the host can't reach at the container's address) and one in a container with no
    network at all are both healthy."""
    local = _run(moord, containers, "--label", "moorage.health.http=:8080/healthz",
                 listen="127.0.0.1:8080")
    isolated = _run(moord, containers, "--network", "none",
                    "--label", "moorage.health.http=:8080/healthz")
    wait_until("loopback-only healthy", status_is(moord, local, "healthy"), moord)
    wait_until("network none healthy", status_is(moord, isolated, "healthy"), moord)
    assert _health(moord, isolated)["Log"][-1]["Output"] == "HTTP 200 OK"
    assert inspect_container(moord, isolated)["NetworkSettings"]["Networks"].keys() == {"none"}

    address = inspect_container(moord, local)["NetworkSettings"]["IPAddress"]
    assert address
    with socket.socket() as sock:  # from the host, the loopback-only server isn't there
        sock.settimeout(10)
        assert sock.connect_ex((address, 8080)) != 0


def test_bad_labels_refused_at_create(moord: Moord) -> None:
    before = moord.docker("ps", "-aq").stdout.split()
    cases = [
        (["--label", "moorage.health.http=:70000/"], "the port must be between 1 and 65535"),
        (["--label", "moorage.health.http=:8080healthz"], "the path must start with /"),
        (["--label", "moorage.health.tcp=:80", "--label", "moorage.health.http=:80/"],
         "conflicting labels moorage.health.http and moorage.health.tcp"),
        (["--label", "moorage.health.tcp=:80", "--label", "moorage.health.interva=1s"],
         "unknown label moorage.health.interva"),
        (["--label", "moorage.health.tcp=:80", "--label", "moorage.health.interval=fast"],
         'invalid label moorage.health.interval="fast": time: invalid duration "fast"'),
        (["--label", "moorage.health.tcp=:80", "--health-cmd", "true"],
         "conflicting options: a probe label"),
    ]
    for args, message in cases:
        result = moord.docker("create", *args, "busybox", "true", check=False)
        assert result.returncode != 0, args
        assert message in result.stderr, result.stderr
    assert moord.docker("ps", "-aq").stdout.split() == before  # nothing was created


def test_health_on_failure_restart_acts_on_a_probe(moord: Moord, containers: list[str]) -> None:
    since = f"{time.time() - 1:.3f}"
    cid = _run(moord, containers, "--label", "moorage.health.http=:8080/missing",
               "--label", "moorage.health.retries=1",
               "--label", "moorage.health-on-failure=restart")
    wait_until("a restart by the probe", lambda: int(inspect_container(moord, cid)["RestartCount"]) >= 1,
           moord)
    events = _events(moord, cid, since)
    assert "health_status: unhealthy" in events
    assert "restart" in events
    assert events.index("health_status: unhealthy") < events.index("restart")
    # each start begins again at starting with an empty log, and probes again
    wait_until("unhealthy again after the restart", status_is(moord, cid, "unhealthy"), moord)


def test_moor_flags(moord: Moord, containers: list[str]) -> None:
    result = _moor(moord, "run", "-d", "--health-http", ":8080/healthz",
                   "--health-interval", "1s", "--health-retries", "1",
                   "--health-on-failure", "stop", "busybox", "sh", "-c",
                   SERVE.format(listen="127.0.0.1:8080"))
    assert result.returncode == 0, result.stderr
    cid = result.stdout.strip()
    containers.append(cid)
    config = inspect_container(moord, cid)["Config"]
    assert config["Labels"]["moorage.health.http"] == ":8080/healthz"
    assert config["Labels"]["moorage.health.interval"] == "1s"
    assert config["Labels"]["moorage.health.retries"] == "1"
    assert config["Healthcheck"] == {"Test": [], "OnFailure": "stop"}
    wait_until("healthy", status_is(moord, cid, "healthy"), moord)

    (rootfs(moord, cid) / "www" / "healthz").unlink()
    wait_until("stopped by the probe",
           lambda: bool(inspect_container(moord, cid)["State"]["Status"] == "exited"), moord)
    assert inspect_container(moord, cid)["State"]["StopReason"] == "health"

    result = _moor(moord, "run", "-d", "--health-tcp", ":8080", "--health-cmd", "true", "busybox")
    assert result.returncode != 0
    assert "conflicting options: --health-cmd and --health-http/--health-tcp" in result.stderr
    result = _moor(moord, "create", "--health-http", ":0/", "busybox")
    assert result.returncode != 0
    assert 'invalid argument ":0/" for "--health-http" flag: the port must be between 1 and ' \
        "65535" in result.stderr


def test_probe_label_replaces_the_images_healthcheck(moord: Moord,
                                                     containers: list[str]) -> None:
    tag = f"busybox-probe-{secrets.token_hex(3)}:latest"
    moord.docker("import", "--change", "HEALTHCHECK --interval=1s CMD false",
                 "--change", "LABEL moorage.health.tcp=:8080", "--change", 'CMD ["sh"]',
                 str(moord.root / "busybox.tar"), tag)
    try:
        cid = moord.docker("run", "-d", "--label", "moorage.health.interval=1s", tag, "sh",
                           "-c", SERVE.format(listen="8080")).stdout.strip()
        containers.append(cid)
        wait_until("healthy by the image's probe label", status_is(moord, cid, "healthy"), moord)
        assert inspect_container(moord, cid)["Config"].get("Healthcheck") is None
        # an empty value cancels the image's label; its HEALTHCHECK (false) is back
        plain = moord.docker("run", "-d", "--label", "moorage.health.tcp=", tag,
                             "sleep", "300").stdout.strip()
        containers.append(plain)
        wait_until("unhealthy by the image's HEALTHCHECK", status_is(moord, plain, "unhealthy"),
               moord)
    finally:
        moord.docker("rm", "-f", *containers, check=False)
        containers.clear()
        moord.docker("rmi", tag, check=False)


def test_compose_labels_and_service_healthy(moord: Moord, tmp_path: Path) -> None:
    """compose sets the labels; `depends_on: condition: service_healthy` waits on the
    probe's status."""
    if shutil.which(COMPOSE) is None:
        pytest.fail(f"{COMPOSE} is missing: scripts/test.sh installs Debian's docker-compose")
    (tmp_path / "docker-compose.yml").write_text(f"""\
version: "2.4"
services:
  web:
    image: busybox
    command: ["sh", "-c", "{SERVE.format(listen='127.0.0.1:8080')}"]
    network_mode: none
    labels:
      moorage.health.http: ":8080/healthz"
      moorage.health.interval: "1s"
  after:
    image: busybox
    command: ["sleep", "300"]
    depends_on:
      web:
        condition: service_healthy
""")
    name = f"pr{secrets.token_hex(3)}"

    def compose(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([COMPOSE, "-p", name, *args], cwd=tmp_path, env=moord.env,
                              capture_output=True, text=True, timeout=180)

    try:
        up = compose("up", "-d")
        assert up.returncode == 0, f"{up.stdout}\n{up.stderr}\n{moord.log_tail(30)}"
        web = compose("ps", "-q", "web").stdout.strip()
        assert _health(moord, web)["Status"] == "healthy"  # `after` waited for it
        assert compose("ps", "-q", "after").stdout.strip()
    finally:
        compose("down", "-t", "0")


def test_probes_resume_after_moord_restart(fresh_moord: Callable[[], Moord]) -> None:
    d = fresh_moord()
    d.start()
    d.import_busybox()
    cid = d.docker("run", "-d", "--label", "moorage.health.http=:8080/healthz",
                   "--label", "moorage.health.interval=1s", "--label", "moorage.health.retries=1",
                   "busybox", "sh", "-c", SERVE.format(listen="127.0.0.1:8080")).stdout.strip()
    wait_until("healthy", status_is(d, cid, "healthy"), d)
    d.kill9()
    d.start()
    assert inspect_container(d, cid)["State"]["Running"] is True
    (rootfs(d, cid) / "www" / "healthz").unlink()
    wait_until("unhealthy: the re-adopted container is probed again", status_is(d, cid, "unhealthy"), d)
    assert _health(d, cid)["Log"][-1]["Output"] == "HTTP 404 Not Found"
