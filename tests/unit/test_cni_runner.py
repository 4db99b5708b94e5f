"""network_drivers.cni: the conflist rules and the ADD/DEL/CHECK order, with a fake
plugin (a shell script that records its environment and stdin) standing in for the
binaries; the real plugins are exercised by tests/integration/test_cni.py."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from network_drivers.cni import runner
from network_drivers.cni.attach import CNIAttachments
from network_drivers.cni.cache import CachedAttachment, ResultCache
from network_drivers.cni.conflist import ConfList, parse, port_mappings
from network_drivers.cni.invoke import Invocation, PluginFailed
from plugins.network_contract import Endpoint, InvalidNetworkOption, NetworkConfig

FAKE = """#!/bin/sh
input=$(cat)
n=$(ls "$LOG" | wc -l)
printf '%s\\n%s\\n' "$CNI_COMMAND $CNI_CONTAINERID $CNI_NETNS $CNI_IFNAME" "$input" \
    > "$LOG/$(printf %03d "$n")-$TAG"
if [ "$TAG" = "$FAIL" ]; then
    echo '{"cniVersion":"1.0.0","code":11,"msg":"no luck","details":"try again"}'; exit 1
fi
ip="{\\"address\\":\\"10.0.0.$n/24\\"}"
[ "$CNI_COMMAND" = ADD ] && echo "{\\"cniVersion\\":\\"1.0.0\\",\\"ips\\":[$ip],\\"by\\":\\"$TAG\\"}"
exit 0
"""


def _plugins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fail: str = "") -> Path:
    bin_dir, log = tmp_path / "bin", tmp_path / "log"
    bin_dir.mkdir()
    log.mkdir()
    for tag in ("one", "two", "ports"):
        script = bin_dir / tag
        script.write_text(FAKE.replace("$TAG", tag))
        os.chmod(script, 0o755)
    monkeypatch.setenv("LOG", str(log))
    monkeypatch.setenv("FAIL", fail)
    return bin_dir


CONF = parse(json.dumps({"cniVersion": "1.0.0", "name": "t", "plugins": [
    {"type": "one", "ipam": {"type": "x"}}, {"type": "two"},
    {"type": "ports", "capabilities": {"portMappings": True}}]}))


def _calls(tmp_path: Path) -> list[tuple[str, dict[str, object]]]:
    out = []
    for f in sorted((tmp_path / "log").iterdir()):
        head, body = f.read_text().split("\n", 1)
        out.append((f"{head.split()[0]} {f.name[4:]}", json.loads(body)))
    return out


def _who(bin_dir: Path) -> Invocation:
    return Invocation(container_id="c1", netns="/run/netns/x", ifname="eth0",
                      search_path=(str(bin_dir),))


async def test_add_chains_prev_results_and_gives_capabilities_only_to_who_asks(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = _plugins(tmp_path, monkeypatch)
    runtime = {"portMappings": port_mappings([("tcp", "0.0.0.0", 8080, 80)])}
    result = await runner.add(CONF, _who(bin_dir), runtime)
    calls = _calls(tmp_path)
    assert [c for c, _ in calls] == ["ADD one", "ADD two", "ADD ports"]
    assert "prevResult" not in calls[0][1]
    assert calls[1][1]["prevResult"] == {"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.0/24"}],
                                         "by": "one"}
    assert calls[1][1]["name"] == "t"
    assert "runtimeConfig" not in calls[1][1]
    assert calls[2][1]["runtimeConfig"] == {
        "portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]}
    assert result["by"] == "ports"
    await runner.delete(CONF, _who(bin_dir), runtime, result)
    await runner.check(CONF, _who(bin_dir), runtime, result)
    assert [c for c, _ in _calls(tmp_path)][3:] == ["DEL ports", "DEL two", "DEL one",
                                                      "CHECK one", "CHECK two", "CHECK ports"]


async def test_a_failing_plugin_undoes_the_ones_before_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = _plugins(tmp_path, monkeypatch, fail="two")
    with pytest.raises(PluginFailed, match=r"CNI plugin two ADD: no luck: try again \(code 11\)"):
        await runner.add(CONF, _who(bin_dir), {})
    assert [c for c, _ in _calls(tmp_path)] == ["ADD one", "ADD two", "DEL two", "DEL one"]


async def test_a_missing_plugin_says_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(PluginFailed, match="not found in /nowhere"):
        await runner.add(CONF, Invocation("c", "/n", "eth0", search_path=("/nowhere",)), {})


async def test_the_cache_keeps_what_del_needs(tmp_path: Path) -> None:
    cache = ResultCache(tmp_path / "results")
    entry = CachedAttachment(conflist=CONF, container_id="c1", ifname="eth0", netns="/n",
                             runtime_config={"portMappings": []}, result={"ips": []})
    await cache.save("k", entry)
    assert await cache.load("k") == entry
    await cache.forget("k")
    assert await cache.load("k") is None


@pytest.mark.parametrize(("text", "message"), [
    ("{", "not JSON"),
    ('{"cniVersion": "1.0.0", "name": "t", "plugins": []}', "non-empty list"),
    ('{"cniVersion": "9.9", "name": "t", "plugins": [{"type": "a"}]}', "cniVersion '9.9'"),
    ('{"cniVersion": "1.0.0", "name": "a b", "plugins": [{"type": "a"}]}', '"name" must be'),
    ('{"cniVersion": "1.0.0", "name": "t", "plugins": [{"type": "../x"}]}', 'no valid "type"'),
])
def test_bad_conflists_are_refused_with_the_reason(text: str, message: str) -> None:
    with pytest.raises(InvalidNetworkOption, match=message):
        parse(text)


def test_a_single_plugin_conf_is_a_list_of_one() -> None:
    conf = parse('{"cniVersion": "0.4.0", "name": "t", "type": "bridge", "bridge": "b0"}')
    assert conf.plugins == ({"type": "bridge", "bridge": "b0"},)


async def test_attachments_cache_add_and_del_without_a_cache_still_runs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = _plugins(tmp_path, monkeypatch)

    async def conflist_for(network: NetworkConfig, endpoint: Endpoint) -> ConfList:
        return CONF

    attachments = CNIAttachments(tmp_path / "state", conflist_for,
                                 search_path=(str(bin_dir),))
    network = NetworkConfig(id="n" * 64, name="n")
    endpoint = Endpoint(id="e" * 64, container_id="c1", netns="/run/netns/x", ifname="eth0")
    await attachments.join(network, endpoint)
    assert attachments.endpoint_options(network, endpoint) == {"cni.address": "10.0.0.2/24"}
    await attachments.join(network, endpoint)  # a re-join after a restart: CHECK, no ADD
    await attachments.leave(network, endpoint)
    await attachments.leave(network, endpoint)  # nothing cached: DEL without prevResult
    calls = _calls(tmp_path)
    assert [c for c, _ in calls] == ["ADD one", "ADD two", "ADD ports",
                                     "CHECK one", "CHECK two", "CHECK ports",
                                     "DEL ports", "DEL two", "DEL one",
                                     "DEL ports", "DEL two", "DEL one"]
    assert "prevResult" in calls[6][1]
    assert "prevResult" not in calls[9][1]
    assert not list((tmp_path / "state" / "results").iterdir())
