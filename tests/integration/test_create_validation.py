"""Create-time validation as dockerd does it, through the docker SDK and the docker CLI:
numbers outside their Go types or dockerd's ranges are 400s in dockerd's words (never a
stored value that breaks `inspect` afterwards), and names and hostnames as dockerd
limits them."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import docker
import pytest

from tests.support.daemon import Moord

pytestmark = pytest.mark.integration


@pytest.fixture
def api(moord: Moord) -> Iterator[docker.APIClient]:
    client = docker.APIClient(base_url=moord.host, timeout=60)
    try:
        yield client
    finally:
        client.close()


def _refused(api: docker.APIClient, **host: object) -> str:
    with pytest.raises(docker.errors.APIError) as info:
        api.create_container("busybox", "true", host_config=api.create_host_config(**host))
    assert info.value.status_code == 400, info.value
    return str(info.value.explanation)


def test_out_of_range_resources_are_400s(api: docker.APIClient, moord: Moord) -> None:
    before = set(moord.docker("ps", "-aq").stdout.split())
    assert _refused(api, cpu_shares=2**63) == (
        "invalid JSON: json: cannot unmarshal number 9223372036854775808 into Go struct "
        "field HostConfig.CpuShares of type int64")
    assert _refused(api, cpu_shares=-5) == \
        "invalid CPU shares (-5): value must be a positive integer"
    assert _refused(api, mem_limit=1000) == "Minimum memory limit allowed is 6MB"
    assert _refused(api, mem_reservation=1000) == "Minimum memory reservation allowed is 6MB"
    assert _refused(api, cpu_period=10) == (
        "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)")
    assert _refused(api, cpu_quota=10) == "CPU cfs quota can not be less than 1ms (i.e. 1000)"
    assert _refused(api, blkio_weight=5) == "Range of blkio weight is from 10 to 1000"
    assert _refused(api, oom_score_adj=2000) == \
        "Invalid value 2000, range for oom score adj is [-1000, 1000]"
    assert _refused(api, mem_swappiness=200) == \
        "Invalid value: 200, valid memory swappiness range is 0-100"
    assert _refused(api, pids_limit=2**63).endswith("HostConfig.PidsLimit of type int64")
    assert _refused(api, shm_size=-1) == "SHM size can not be less than 0"
    assert _refused(api, ulimits=[docker.types.Ulimit(name="nofile", soft=2**63, hard=1)]) \
        .endswith("Go struct field HostConfig.Ulimits.Soft of type int64")
    with pytest.raises(docker.errors.APIError) as info:
        api.create_container("busybox", "true", stop_timeout=2**63)
    assert info.value.status_code == 400
    assert set(moord.docker("ps", "-aq").stdout.split()) == before  # nothing was created


def test_the_largest_values_are_stored_and_inspect_still_works(api: docker.APIClient,
                                                               moord: Moord) -> None:
    c = api.create_container("busybox", "true", host_config=api.create_host_config(
        cpu_shares=2**63 - 1, pids_limit=2**63 - 1, oom_score_adj=1000))
    try:
        assert api.inspect_container(c)["HostConfig"]["CpuShares"] == 2**63 - 1
        out = moord.docker("inspect", "-f", "{{.HostConfig.CpuShares}} {{.HostConfig.PidsLimit}}",
                           c["Id"]).stdout.split()
        assert out == [str(2**63 - 1), str(2**63 - 1)]
    finally:
        api.remove_container(c)


def test_names_and_hostnames(moord: Moord) -> None:
    name = "n" + secrets.token_hex(3) + "x" * 293  # 300 characters: dockerd takes them too
    moord.docker("create", "--name", name, "busybox", "true")
    try:
        assert moord.docker("inspect", "-f", "{{.Name}}", name).stdout.strip() == f"/{name}"
    finally:
        moord.docker("rm", name)
    long_host = "h" * 65
    refused = moord.docker("create", "--hostname", long_host, "busybox", "true", check=False)
    assert refused.returncode == 1
    assert f'hostname "{long_host}" is too long (maximum 64 bytes)' in refused.stderr
    bad = moord.docker("create", "--name", "-bad name", "busybox", "true", check=False)
    assert bad.returncode == 1
    assert "Invalid container name" in bad.stderr
    # a 300-character volume name is a 400 in words, not an error naming a host directory
    client = docker.APIClient(base_url=moord.host, timeout=60)
    try:
        with pytest.raises(docker.errors.APIError) as info:
            client.create_volume("v" * 300)
        assert info.value.status_code == 400
        assert str(info.value.explanation).endswith(
            "volume name is too long, names can be at most 236 bytes")
        assert "/" not in str(info.value.explanation)
    finally:
        client.close()


def test_more_of_dockerds_checks(api: docker.APIClient, moord: Moord) -> None:
    """Restart policies, cpuset nodes, Windows-only numbers, ports, signals and terminal
    sizes: each refused as dockerd 28 refuses it, before anything is created or changed."""
    before = set(moord.docker("ps", "-aq").stdout.split())
    assert _refused(api, restart_policy={"Name": "on-failure", "MaximumRetryCount": -1}) == \
        "invalid restart policy: maximum retry count cannot be negative"
    assert _refused(api, restart_policy={"Name": "always", "MaximumRetryCount": -2}) == (
        "invalid restart policy: maximum retry count can only be used with 'on-failure' "
        "and cannot be negative")
    assert _refused(api, restart_policy={"Name": "sometimes"}) == (
        "invalid restart policy: unknown policy 'sometimes'; use one of 'no', 'always', "
        "'on-failure', or 'unless-stopped'")
    assert _refused(api, cpuset_mems="99").startswith(
        "Requested memory nodes are not available - requested 99, available: ")
    assert _refused(api, cpuset_mems="x") == "Invalid value x for cpuset mems"
    assert _refused(api, port_bindings={80: 70000}) == 'invalid port specification: "70000"'
    assert _refused(api, port_bindings={80: "9000-8000"}) == \
        'invalid port specification: "9000-8000"'
    raw = {"Image": "busybox", "Cmd": ["true"]}
    for extra, message in [
        ({"HostConfig": {"IOMaximumIOps": 5}},
         "Invalid QoS settings: linux does not support Maximum IO Bandwidth or Maximum IO IOps"),
        ({"HostConfig": {"ConsoleSize": [-1, 80]}},
         "invalid JSON: json: cannot unmarshal number -1 into Go struct field "
         "HostConfig.ConsoleSize of type uint"),
        ({"StopSignal": "SIGBOGUS"}, "Invalid signal: SIGBOGUS"),
    ]:
        response = api._post_json(api._url("/containers/create"), data={**raw, **extra})
        assert response.status_code == 400, (extra, response.text)
        assert response.json()["message"] == message
    created = api._post_json(api._url("/containers/create"),
                             data={**raw, "HostConfig": {"CpuPercent": 50, "OomKillDisable": True}})
    assert created.status_code == 201, created.text
    assert created.json()["Warnings"] == [
        "OOM killer is disabled for the container, but no memory limit is set, this can result "
        "in the system running out of resources.",
        "linux does not support CPU percent. Percent discarded."]
    cid = created.json()["Id"]
    # an update refused for its restart policy changes nothing, limits included
    with pytest.raises(docker.errors.APIError) as info:
        api.update_container(cid, mem_limit="64m",
                             restart_policy={"Name": "on-failure", "MaximumRetryCount": -1})
    assert info.value.status_code == 400
    assert info.value.explanation == "invalid restart policy: maximum retry count cannot be negative"
    host = api.inspect_container(cid)["HostConfig"]
    assert (host["Memory"], host["RestartPolicy"]["Name"]) == (0, "no")
    for query, message in [("h=-1&w=80", 'invalid resize height "-1"'),
                           ("h=24&w=99999999999", 'invalid resize width "99999999999"')]:
        response = api._post(api._url(f"/containers/{cid}/resize?{query}"))
        assert response.status_code == 400, response.text
        assert response.json()["message"] == message
    api.remove_container(cid, force=True)
    assert set(moord.docker("ps", "-aq").stdout.split()) == before
