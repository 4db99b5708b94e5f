"""Legacy links, `--network container:<x>` and `--mac-address`, through the stock docker
CLI, the docker SDK and moor against a real moord: what the linking container sees
(variables, /etc/hosts, DNS), how links show and go (`inspect`, `ps`, `rm --link`), the
refusals dockerd makes, a web server reached on localhost from a sidecar sharing its
namespace, and the MAC a container's interface gets. Traffic stays between containers
the tests made.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.integration.test_networks import (
    HTTPD,
    containers,
    inspect,
    moor,
    network,
    unique,
    wait_until,
)
from tests.support.daemon import Moord

pytestmark = pytest.mark.integration


def sh(d: Moord, container: str, script: str, check: bool = True) -> str:
    return d.docker("exec", container, "sh", "-c", script, check=check).stdout


def fails(d: Moord, *args: str) -> str:
    result = d.docker(*args, check=False)
    assert result.returncode != 0, result.stdout
    return result.stderr


# --- legacy links on the default bridge --------------------------------------------------------


def test_a_link_gives_variables_hosts_and_a_name(moord: Moord) -> None:
    with containers(moord) as made:
        web, app = unique("web"), unique("app")
        made += [web, app]
        moord.docker("run", "-d", "--name", web, "-e", "FOO=bar", "--expose", "80",
                     "--expose", "81", "--expose", "53/udp", "busybox", "sleep", "300")
        moord.docker("run", "-d", "--name", app, "--link", f"{web}:db", "busybox",
                     "sleep", "300")
        web_ip = inspect(moord, web)["NetworkSettings"]["IPAddress"]  # type: ignore[index]
        env = sh(moord, app, "env").split()
        for wanted in (f"DB_NAME=/{app}/db", "DB_ENV_FOO=bar", f"DB_PORT=tcp://{web_ip}:80",
                       f"DB_PORT_80_TCP_ADDR={web_ip}", "DB_PORT_81_TCP_PORT=81",
                       "DB_PORT_53_UDP_PROTO=udp", f"DB_PORT_80_TCP_END=tcp://{web_ip}:81"):
            assert wanted in env
        assert not [e for e in env if e.startswith(("DB_ENV_PATH=", "DB_ENV_HOME="))]
        web_id = str(inspect(moord, web)["Id"])
        assert f"{web_ip}\tdb {web_id[:12]} {web}" in sh(moord, app, "cat /etc/hosts")
        assert f"Address: {web_ip}" in sh(moord, app, "nslookup db")
        assert f"PING db ({web_ip})" in sh(moord, app, "ping -c1 -W3 db")
        # how dockerd shows it: in the parent's HostConfig, among the child's names
        assert inspect(moord, app)["HostConfig"]["Links"] == [f"/{web}:/{app}/db"]  # type: ignore[index]
        names = moord.docker("ps", "--no-trunc", "--filter", f"id={web_id}",
                             "--format", "{{.Names}}").stdout.strip().split(",")
        assert sorted(names) == sorted([web, f"{app}/db"])
        # rm --link: the link goes, both containers stay; the hosts line and name go too
        moord.docker("rm", "--link", f"{app}/db")
        assert inspect(moord, app)["HostConfig"]["Links"] is None  # type: ignore[index]
        assert "\tdb " not in sh(moord, app, "cat /etc/hosts")
        assert "can't find db" in sh(moord, app, "nslookup db; true")
        assert moord.docker("ps", "-q", "--filter", f"id={web_id}").stdout.strip()


def test_link_refusals_are_dockerds(moord: Moord, docker_client) -> None:  # type: ignore[no-untyped-def]
    import docker

    with containers(moord) as made:
        web, app, host_one = unique("web"), unique("app"), unique("hostnet")
        made += [web, app, host_one]
        moord.docker("run", "-d", "--name", web, "busybox", "sleep", "300")
        missing = unique("missing")
        assert (f"could not get container for {missing}: No such container: {missing}"
                in fails(moord, "create", "--link", f"{missing}:x", "busybox", "true"))
        # the docker CLI checks the form itself; the API says it too
        with pytest.raises(docker.errors.APIError, match="bad format for links: a:b:c"):
            docker_client.api.create_container(
                "busybox", "true", host_config=docker_client.api.create_host_config(
                    links=[("a:b", "c")]))
        assert "host type networking can't be used with links" in fails(
            moord, "create", "--network", "host", "--link", web, "busybox", "true")
        moord.docker("run", "-d", "--name", host_one, "--network", "host", "busybox",
                     "sleep", "300")
        assert "host type networking can't be used with links" in fails(
            moord, "create", "--link", host_one, "busybox", "true")
        # a link to a container that is gone (or stopped) fails the start, as in dockerd
        moord.docker("create", "--name", app, "--link", f"{web}:db", "busybox", "sleep", "300")
        moord.docker("rm", "-f", web)
        assert f"Cannot link to a non running container: /{web} AS /{app}/db" in fails(
            moord, "start", app)
        assert inspect(moord, app)["HostConfig"]["Links"] == [f"/{web}:/{app}/db"]  # type: ignore[index]
        assert "Conflict, cannot remove the default link name of the container" in fails(
            moord, "rm", "--link", app)
        assert f"No such container: {app}/nope" in fails(moord, "rm", "--link", f"{app}/nope")


def test_a_restarted_linked_container_is_followed(moord: Moord) -> None:
    with containers(moord) as made:
        web, app, other = unique("web"), unique("app"), unique("other")
        made += [web, app, other]
        moord.docker("run", "-d", "--name", web, "busybox", "sleep", "300")
        moord.docker("run", "-d", "--name", app, "--link", f"{web}:db", "busybox",
                     "sleep", "300")
        moord.docker("stop", "-t", "0", web)
        # another container may take its address meanwhile
        moord.docker("run", "-d", "--name", other, "busybox", "sleep", "300")
        moord.docker("start", web)
        web_ip = str(inspect(moord, web)["NetworkSettings"]["IPAddress"])  # type: ignore[index]
        hosts = sh(moord, app, "cat /etc/hosts")
        assert [line for line in hosts.splitlines() if "\tdb " in line] == [
            f"{web_ip}\tdb {str(inspect(moord, web)['Id'])[:12]} {web}"]
        assert f"Address: {web_ip}" in sh(moord, app, "nslookup db")


# --- links on user networks: aliases in the network's DNS --------------------------------------


def test_links_on_a_user_network_are_dns_aliases(moord: Moord) -> None:
    with network(moord) as net, containers(moord) as made:
        web, app, late = unique("web"), unique("app"), unique("late")
        made += [web, app, late]
        moord.docker("run", "-d", "--name", web, "--network", net, "busybox", "sleep", "300")
        # the CLI sends the link as the endpoint's Links; dockerd ignores HostConfig.Links here
        moord.docker("run", "-d", "--name", app, "--network", net, "--link", f"{web}:db",
                     "busybox", "sleep", "300")
        data = inspect(moord, app)
        assert data["HostConfig"]["Links"] is None  # type: ignore[index]
        assert data["NetworkSettings"]["Networks"][net]["Links"] == [f"{web}:db"]  # type: ignore[index]
        web_ip = str(inspect(moord, web)["NetworkSettings"]["Networks"][net]["IPAddress"])  # type: ignore[index]
        assert f"Address: {web_ip}" in sh(moord, app, "nslookup db")
        assert not [e for e in sh(moord, app, "env").split() if e.startswith("DB_")]
        # network connect --link, on a running container, to a container made later
        moord.docker("run", "-d", "--name", late, "busybox", "sleep", "300")
        target = unique("target")
        moord.docker("network", "connect", "--link", f"{target}:other", net, late)
        assert "can't find other" in sh(moord, late, "nslookup other; true")
        made.append(target)
        moord.docker("run", "-d", "--name", target, "--network", net, "busybox", "sleep", "300")
        target_ip = str(inspect(moord, target)["NetworkSettings"]["Networks"][net]["IPAddress"])  # type: ignore[index]
        assert f"Address: {target_ip}" in sh(moord, late, "nslookup other")


def test_links_survive_a_moord_restart(fresh_moord) -> None:  # type: ignore[no-untyped-def]
    d = fresh_moord()
    d.start()
    d.import_busybox()
    d.docker("network", "create", "links")
    d.docker("run", "-d", "--name", "web", "--network", "links", "busybox", "sleep", "300")
    d.docker("network", "connect", "bridge", "web")
    d.docker("run", "-d", "--name", "app", "--link", "web:db", "busybox", "sleep", "300")
    d.docker("run", "-d", "--name", "peer", "--network", "links", "--link", "web:db2",
             "busybox", "sleep", "300")
    d.stop()
    d.start()
    assert "Name:\tdb\nAddress: " in d.docker("exec", "app", "nslookup", "db").stdout
    assert "Name:\tdb2\nAddress: " in d.docker("exec", "peer", "nslookup", "db2").stdout
    assert inspect(d, "app")["HostConfig"]["Links"] == ["/web:/app/db"]  # type: ignore[index]


# --- --network container:<x> -----------------------------------------------------------------


def test_a_sidecar_reaches_its_pods_server_on_localhost(moord: Moord) -> None:
    with containers(moord) as made:
        pod, side = unique("pod"), unique("side")
        made += [pod, side]
        moord.docker("run", "-d", "--name", pod, "--hostname", "podhost", "busybox", *HTTPD)
        pod_id = str(inspect(moord, pod)["Id"])
        moord.docker("run", "-d", "--name", side, "--network", f"container:{pod}", "busybox",
                     "sleep", "300")
        page = sh(moord, side, "for i in 1 2 3 4 5 6 7 8 9 10; do wget -qO- http://localhost/ "
                               "&& exit 0; sleep 0.5; done; exit 1")
        assert page.strip() == "hello from podhost"
        # the same interfaces, hostname and /etc files; nothing of its own
        pod_ip = str(inspect(moord, pod)["NetworkSettings"]["IPAddress"])
        assert f"inet {pod_ip}/" in sh(moord, side, "ip -4 addr show eth0")
        assert sh(moord, side, "hostname").strip() == "podhost"
        sh(moord, pod, "echo '10.9.9.9 shared-entry' >> /etc/hosts")
        assert "shared-entry" in sh(moord, side, "cat /etc/hosts")
        data = inspect(moord, side)
        assert data["HostConfig"]["NetworkMode"] == f"container:{pod_id}"  # type: ignore[index]
        assert data["Config"]["Hostname"] == "podhost"  # type: ignore[index]
        assert data["HostsPath"] == inspect(moord, pod)["HostsPath"]
        settings = data["NetworkSettings"]
        assert settings["Networks"] == {}  # type: ignore[index]
        assert settings["IPAddress"] == ""  # type: ignore[index]
        listed = json.loads(moord.docker("ps", "--filter", f"name={side}", "--format",
                                         "{{json .}}").stdout)
        assert listed["Networks"] == ""
        # the pod stops: only lo is left to the sidecar; started again, the sidecar joins
        # the new namespace at its own next start
        moord.docker("stop", "-t", "0", pod)
        wait_until(lambda: "eth0" not in sh(moord, side, "ls /sys/class/net"))
        assert "cannot join network namespace of a non running container: container " \
            f"{pod} is exited" in fails(moord, "restart", "-t", "0", side)
        moord.docker("start", pod)
        moord.docker("start", side)
        assert sh(moord, side, "for i in 1 2 3 4 5 6 7 8 9 10; do wget -qO- http://localhost/ "
                               "&& exit 0; sleep 0.5; done; exit 1").strip() == "hello from podhost"


def test_container_mode_refusals_are_dockerds(moord: Moord) -> None:
    with containers(moord) as made:
        pod, side = unique("pod"), unique("side")
        made += [pod, side]
        moord.docker("run", "-d", "--name", pod, "busybox", "sleep", "300")
        for flags, words in ((("-p", "8080:80"), "port publishing and the container type "
                                                 "network mode"),
                             (("--hostname", "h"), "hostname and the network mode"),
                             (("--dns", "1.1.1.1"), "dns and the network mode"),
                             (("--add-host", "a:1.2.3.4"), "custom host-to-IP mapping"),
                             (("--link", pod), "container type network can't be used with links"),
                             (("--expose", "90"), "port exposing and the container type")):
            assert f"conflicting options: {words}" in fails(
                moord, "create", "--network", f"container:{pod}", *flags, "busybox", "true")
        assert "invalid network mode: invalid container format container:<name|id>" in fails(
            moord, "create", "--network", "container:", "busybox", "true")
        missing = unique("missing")
        made.append(missing)
        moord.docker("create", "--name", missing, "--network", "container:nobody-here",
                     "busybox", "true")
        assert "joining network namespace of container: No such container: nobody-here" in \
            fails(moord, "start", missing)
        moord.docker("create", "--name", side, "--network", f"container:{pod}", "busybox",
                     "sleep", "300")
        assert "cannot be connected to any other network" in fails(
            moord, "network", "connect", "bridge", side)


# --- --mac-address ---------------------------------------------------------------------------


def test_the_mac_address_is_the_interfaces(moord: Moord, docker_client) -> None:  # type: ignore[no-untyped-def]
    import docker

    with network(moord) as net, containers(moord) as made:
        one, two, three = unique("mac"), unique("mac"), unique("mac")
        made += [one, two, three]
        moord.docker("run", "-d", "--name", one, "--mac-address", "02:42:ac:11:00:99",
                     "busybox", "sleep", "300")
        assert sh(moord, one, "cat /sys/class/net/eth0/address").strip() == "02:42:ac:11:00:99"
        data = inspect(moord, one)
        assert data["NetworkSettings"]["MacAddress"] == "02:42:ac:11:00:99"  # type: ignore[index]
        assert data["Config"]["MacAddress"] == "02:42:ac:11:00:99"  # type: ignore[index]
        moord.docker("run", "-d", "--name", two, "--network", net, "--mac-address",
                     "02:42:ac:11:00:98", "busybox", "sleep", "300")
        assert sh(moord, two, "cat /sys/class/net/eth0/address").strip() == "02:42:ac:11:00:98"
        assert inspect(moord, two)["NetworkSettings"]["Networks"][net]["MacAddress"] == \
            "02:42:ac:11:00:98"  # type: ignore[index]
        # the SDK sends the container-wide field; dockerd moves it to the endpoint and warns
        created = docker_client.api.create_container("busybox", ["sleep", "300"], name=three,
                                                     mac_address="02:42:ac:11:00:97")
        assert created["Warnings"] == ["The container-wide MacAddress field is now deprecated. "
                                       "It should be specified in EndpointsConfig instead."]
        docker_client.api.start(three)
        assert sh(moord, three, "cat /sys/class/net/eth0/address").strip() == "02:42:ac:11:00:97"
        assert "is not a valid mac address" in fails(moord, "create", "--mac-address", "zz",
                                                     "busybox", "true")
        old = docker.APIClient(base_url=moord.host, version="1.43")
        try:
            with pytest.raises(docker.errors.APIError,
                               match="conflicting options: mac-address and the network mode"):
                old.create_container("busybox", "true", mac_address="02:42:ac:11:00:96",
                                     host_config=old.create_host_config(network_mode="host"))
        finally:
            old.close()


# --- moor ------------------------------------------------------------------------------------


def test_moor_link_mac_address_and_container_mode(moord: Moord) -> None:
    with containers(moord) as made:
        pod, app = unique("pod"), unique("app")
        made += [pod, app]
        moor(moord, "run", "-d", "--name", pod, "--mac-address", "02:42:ac:11:00:95", "busybox",
             *HTTPD)
        assert sh(moord, pod, "cat /sys/class/net/eth0/address").strip() == "02:42:ac:11:00:95"
        moor(moord, "run", "-d", "--name", app, "--link", f"{pod}:web", "busybox", "sleep", "300")
        assert f"WEB_NAME=/{app}/web" in sh(moord, app, "env")
        out = moor(moord, "run", "--rm", "--network", f"container:{pod}", "busybox", "sh", "-c",
                   "for i in 1 2 3 4 5 6 7 8 9 10; do wget -qO- http://localhost/ && exit 0; "
                   "sleep 0.5; done; exit 1").stdout
        assert out.startswith("hello from ")
        assert moor(moord, "rm", "--link", f"{app}/web").stdout.strip() == f"{app}/web"
        assert inspect(moord, app)["HostConfig"]["Links"] is None  # type: ignore[index]
        bad = moor(moord, "create", "--link", "a:b:c", "busybox", check=False)
        assert bad.returncode != 0
        assert "bad format for links: a:b:c" in bad.stderr


# --- docker-compose: `network_mode: service:x` and `links:` ------------------------------------

SIDECAR_PROJECT = """\
version: "3"
services:
  web:
    image: busybox
    command: ["sh", "-c", "mkdir -p /www && echo composed > /www/index.html
                           && exec httpd -f -p 80 -h /www"]
  side:
    image: busybox
    network_mode: "service:web"
    command: ["sleep", "300"]
  client:
    image: busybox
    links: ["web:backend"]
    command: ["sleep", "300"]
"""


def test_compose_sidecar_and_links(moord: Moord, tmp_path: Path) -> None:
    from tests.integration.test_compose import COMPOSE, compose

    if shutil.which(COMPOSE) is None:
        pytest.fail(f"{COMPOSE} is missing: scripts/test.sh installs Debian's docker-compose")
    (tmp_path / "docker-compose.yml").write_text(SIDECAR_PROJECT)
    project = (tmp_path, unique("lc"))
    try:
        compose(moord, project, "up", "-d")
        fetch = ("sh", "-c", "for i in 1 2 3 4 5 6 7 8 9 10; do wget -qO- http://{}/ && exit 0; "
                             "sleep 0.5; done; exit 1")
        side = compose(moord, project, "exec", "-T", "side", fetch[0], fetch[1],
                       fetch[2].format("localhost")).stdout
        assert side.strip() == "composed"
        client = compose(moord, project, "exec", "-T", "client", fetch[0], fetch[1],
                         fetch[2].format("backend")).stdout
        assert client.strip() == "composed"
        web_id = compose(moord, project, "ps", "-q", "web").stdout.strip()
        side_id = compose(moord, project, "ps", "-q", "side").stdout.strip()
        assert inspect(moord, side_id)["HostConfig"]["NetworkMode"] == f"container:{web_id}"  # type: ignore[index]
    finally:
        compose(moord, project, "down", "-t", "0", check=False)
