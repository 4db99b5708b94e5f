"""CNI networks through the stock docker CLI against a real moord, with Debian's
containernetworking-plugins (/usr/lib/cni): a conflist of bridge + host-local + portmap
with a published port that answers on the host's loopback, DEL after a moord restart
(from the cached result); and Docker's macvlan and ipvlan drivers on a veth parent the
test makes, two containers talking by address and by name.

Traffic goes only to loopback and to the containers the tests made.
"""

from __future__ import annotations

import json
import secrets
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.integration.test_networks import HTTPD, free_port, http_get
from tests.support.daemon import Moord

pytestmark = pytest.mark.integration

CNI_BIN = Path("/usr/lib/cni")


def _require_plugins(*names: str) -> None:
    missing = [n for n in names if not (CNI_BIN / n).exists()]
    if missing:
        raise AssertionError(f"CNI plugins missing from {CNI_BIN}: {', '.join(missing)} "
                             "(apt-get install containernetworking-plugins)")


def _conflist(d: Moord, subnet: str) -> dict[str, object]:
    return {
        "cniVersion": "1.0.0",
        "name": f"moortest-{secrets.token_hex(3)}",
        "plugins": [
            {"type": "bridge", "bridge": f"{d.network_prefix}c0", "isGateway": True,
             "ipMasq": False,
             "ipam": {"type": "host-local", "subnet": subnet,
                      "dataDir": str(d.root / "cni-ipam"),
                      "routes": [{"dst": "0.0.0.0/0"}]}},
            {"type": "portmap", "capabilities": {"portMappings": True}, "snat": True},
        ],
    }


def _endpoint(d: Moord, container: str, network: str) -> dict[str, object]:
    data = json.loads(d.docker("inspect", container).stdout)[0]
    return dict(data["NetworkSettings"]["Networks"][network])


def test_conflist_network_publishes_a_port_and_deletes_after_restart(
        fresh_moord: Callable[[], Moord]) -> None:
    _require_plugins("bridge", "host-local", "portmap")
    d = fresh_moord()
    try:
        d.start()
        d.import_busybox()
        conf = _conflist(d, "10.213.77.0/24")
        path = d.root / "web.conflist"
        path.write_text(json.dumps(conf))

        bad = d.docker("network", "create", "-d", "cni", "nope", check=False)
        assert "cni: -o conflist=/path/to/file.conflist is required" in bad.stderr
        d.docker("network", "create", "-d", "cni", "-o", f"conflist={path}", "cn")
        assert json.loads(d.docker("network", "inspect", "cn").stdout)[0]["Driver"] == "cni"

        port = free_port()
        d.docker("run", "-d", "--name", "web", "--network", "cn", "-p", f"127.0.0.1:{port}:80",
                 "busybox", *HTTPD)
        address = str(_endpoint(d, "web", "cn")["DriverOpts"]["cni.address"])  # type: ignore[index]
        assert address.startswith("10.213.77.")
        ip = address.split("/")[0]
        assert http_get(f"http://127.0.0.1:{port}/").startswith("hello from ")

        reserved = d.root / "cni-ipam" / str(conf["name"]) / ip
        assert reserved.exists(), "host-local reserved the address"
        results = d.data_root / "state" / "network-drivers" / "cni" / "results"
        assert len(list(results.glob("*.json"))) == 2  # the join's ADD and the ports' ADD

        # moord goes away and comes back: DEL still has what the ADD had (the cache)
        d.stop()
        d.start()
        assert http_get(f"http://127.0.0.1:{port}/").startswith("hello from ")
        # the re-join CHECKed the cached result and kept it (a new ADD would take the next address)
        assert _endpoint(d, "web", "cn")["DriverOpts"] == {"cni.address": address}
        assert "CNI CHECK" not in d.log_path.read_text()

        # while moord is down the container loses its interface: at the next start CHECK
        # fails, and the attachment is deleted and added again
        d.stop()
        netns_file = next((d.exec_root / "netns").iterdir())
        subprocess.run(["nsenter", f"--net={netns_file}", "ip", "link", "del", "eth0"], check=True)
        d.start()
        assert "CNI CHECK of" in d.log_path.read_text()
        assert http_get(f"http://127.0.0.1:{port}/").startswith("hello from ")
        readded = str(_endpoint(d, "web", "cn")["DriverOpts"]["cni.address"])  # type: ignore[index]
        assert readded.startswith("10.213.77.")
        assert not reserved.exists() or readded == address  # the old address was released
        ip = readded.split("/")[0]
        reserved = d.root / "cni-ipam" / str(conf["name"]) / ip
        d.docker("rm", "-f", "web")
        assert not reserved.exists(), "DEL released the address"
        assert not list(results.glob("*.json"))
        rules = subprocess.run(["iptables-save", "-t", "nat"], capture_output=True, text=True).stdout
        assert f"dport {port} " not in rules
        assert f"--dport {port} " not in rules
        d.docker("network", "rm", "cn")
    finally:
        d.cleanup()  # also removes the plugin's bridge: it is named with moord's prefix


@pytest.fixture
def veth_parent() -> Iterator[tuple[str, str]]:
    """A veth pair: one end is the networks' parent, the other holds the gateway's
    address on the host (so moord's DNS server for the network is reachable from it)."""
    tag = secrets.token_hex(2)
    parent, peer = f"mvp{tag}", f"mvq{tag}"
    subprocess.run(["ip", "link", "add", parent, "type", "veth", "peer", "name", peer], check=True)
    try:
        for link in (parent, peer):
            subprocess.run(["ip", "link", "set", link, "up"], check=True)
        yield parent, peer
    finally:
        subprocess.run(["ip", "link", "del", parent], capture_output=True, check=False)


def _require_kernel_link(kind: str, parent: str) -> None:
    """Fail with the reason when this kernel cannot make a `kind` child link at all."""
    probe = f"probe{secrets.token_hex(2)}"
    made = subprocess.run(["ip", "link", "add", "link", parent, "name", probe, "type", kind],
                          capture_output=True, text=True, check=False)
    subprocess.run(["ip", "link", "del", probe], capture_output=True, check=False)
    if made.returncode != 0:
        raise AssertionError(f"this kernel cannot make {kind} links ({made.stderr.strip()}): "
                             f"it needs CONFIG_{kind.upper()} (modprobe {kind})")


@pytest.mark.parametrize(("driver", "mode"), [
    ("macvlan", "macvlan_mode=bridge"),
    # CI's host kernel has no ipvlan: this one runs in the cgroup v2 guest (scripts/test.sh)
    pytest.param("ipvlan", "ipvlan_mode=l2", marks=pytest.mark.guest_kernel),
])
def test_link_network_containers_talk_by_address_and_name(
        fresh_moord: Callable[[], Moord], veth_parent: tuple[str, str], driver: str,
        mode: str) -> None:
    _require_plugins(driver, "static")
    parent, peer = veth_parent
    _require_kernel_link(driver, parent)
    subnet, gateway = "10.213.78.0/24", "10.213.78.1"
    subprocess.run(["ip", "addr", "add", f"{gateway}/24", "dev", peer], check=True)
    d = fresh_moord()
    d.start()
    d.import_busybox()
    missing = d.docker("network", "create", "-d", driver, "-o", "parent=nosuch0", "--subnet",
                       subnet, "x", check=False)
    assert "-o parent interface was not found on the host: nosuch0" in missing.stderr
    d.docker("network", "create", "-d", driver, "-o", f"parent={parent}", "-o", mode,
             "--subnet", subnet, "--gateway", gateway, "lan")
    options = json.loads(d.docker("network", "inspect", "lan").stdout)[0]["Options"]
    assert options["parent"] == parent

    d.docker("run", "-d", "--name", "alpha", "--network", "lan", "--ip", "10.213.78.10",
             "busybox", "sh", "-c", "while true; do echo pong | nc -l -p 7000; done")
    out = d.docker("run", "--rm", "--name", "beta", "--network", "lan", "busybox", "sh", "-c",
                   "ip -o link show eth0; ping -c 1 -W 5 10.213.78.10 && "
                   "echo hi | nc -w 5 10.213.78.10 7000 && echo hi | nc -w 5 alpha 7000")
    parent_index = Path(f"/sys/class/net/{parent}/ifindex").read_text().strip()
    assert f"eth0@if{parent_index}:" in out.stdout  # a macvlan / ipvlan child of the parent
    assert "1 packets received" in out.stdout
    assert out.stdout.count("pong") == 2, out.stdout  # by address, then by name
    alpha = _endpoint(d, "alpha", "lan")
    assert alpha["IPAddress"] == "10.213.78.10"
    if driver == "macvlan":  # the MAC moord chose is the link's
        link = d.docker("exec", "alpha", "cat", "/sys/class/net/eth0/address").stdout.strip()
        assert link == alpha["MacAddress"]
    d.docker("rm", "-f", "alpha")
    results = d.data_root / "state" / "network-drivers" / driver / "results"
    assert not list(results.glob("*.json"))
    d.docker("network", "rm", "lan")
    d.cleanup()
