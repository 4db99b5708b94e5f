"""Managed plugins through the docker CLI and the docker SDK: create from a directory
(config.json + rootfs/), list, inspect, remove; enabling is refused clearly (moord
stores managed plugins but does not run them)."""

from __future__ import annotations

import json
import secrets
import subprocess
import time
from pathlib import Path

import docker
import pytest

from tests.support.daemon import DOCKER_CLI, Moord

pytestmark = pytest.mark.integration


def _plugin_dir(tmp_path: Path) -> Path:
    root = tmp_path / "plugin"
    (root / "rootfs" / "bin").mkdir(parents=True, exist_ok=True)
    (root / "rootfs" / "bin" / "serve").write_text("#!/bin/sh\n")
    (root / "config.json").write_text(json.dumps({
        "description": "a test plugin", "documentation": "https://example.invalid",
        "entrypoint": ["/bin/serve"], "network": {"type": "host"},
        "interface": {"types": ["docker.volumedriver/1.0"], "socket": "test.sock"},
        "env": [{"name": "DEBUG", "settable": ["value"], "value": "0"}],
    }))
    return root


def test_docker_cli_plugin_lifecycle(moord: Moord, tmp_path: Path) -> None:
    name = f"moortest/plug-{secrets.token_hex(3)}"
    out = moord.docker("plugin", "create", name, str(_plugin_dir(tmp_path))).stdout
    assert out.strip() == name
    try:
        listed = moord.docker("plugin", "ls", "--format", "{{.Name}} {{.Enabled}}").stdout
        assert f"{name}:latest false" in listed.splitlines()
        only = moord.docker("plugin", "ls", "-q", "--filter", "capability=volumedriver",
                            "--filter", "enabled=false").stdout.split()
        assert len(only) >= 1
        none = moord.docker("plugin", "ls", "-q", "--filter", "enabled=true").stdout.split()
        assert none == []
        info = json.loads(moord.docker("plugin", "inspect", name).stdout)[0]
        assert info["Name"] == f"{name}:latest"
        assert info["Config"]["Entrypoint"] == ["/bin/serve"]
        assert info["Config"]["Interface"]["Types"] == ["docker.volumedriver/1.0"]
        assert info["Settings"]["Env"] == ["DEBUG=0"]
        assert info["Enabled"] is False
        enable = moord.docker("plugin", "enable", name, check=False)
        assert enable.returncode == 1
        assert "cannot be enabled: moord stores managed plugins but does not run them yet" \
            in enable.stderr
        disable = moord.docker("plugin", "disable", name, check=False)
        assert "plugin is already disabled" in disable.stderr
        again = moord.docker("plugin", "create", name, str(_plugin_dir(tmp_path)), check=False)
        assert f"plugin {name}:latest already exists" in again.stderr
        # `docker info` lists drivers moord runs; a stored, disabled plugin is not one
        plugins = json.loads(moord.docker("info", "-f", "{{json .Plugins}}").stdout)
        assert name not in json.dumps(plugins)
    finally:
        moord.docker("plugin", "rm", name)
    gone = moord.docker("plugin", "inspect", name, check=False)
    assert gone.returncode == 1
    assert f'plugin "{name}" not found' in gone.stderr


def test_docker_sdk_create_plugin_and_events(moord: Moord, tmp_path: Path) -> None:
    name = f"moortest/sdk-{secrets.token_hex(3)}"
    client = docker.DockerClient(base_url=moord.host, timeout=60)
    since = str(int(time.time()) - 1)
    try:
        assert client.api.create_plugin(name, str(_plugin_dir(tmp_path)), gzip=True)
        plugin = client.plugins.get(name)
        assert plugin.name == f"{name}:latest"
        assert not plugin.enabled
        assert plugin.attrs["Config"]["Description"] == "a test plugin"
        assert name + ":latest" in [p.name for p in client.plugins.list()]
        with pytest.raises(docker.errors.APIError) as info:
            plugin.enable()
        assert info.value.status_code == 501
        with pytest.raises(docker.errors.APIError) as info:
            plugin.configure({"DEBUG": "1"})
        assert info.value.status_code == 501
        plugin.remove()
        with pytest.raises(docker.errors.NotFound):
            client.plugins.get(name)
    finally:
        client.close()
    out = subprocess.run([DOCKER_CLI, "events", "--since", since, "--until", str(int(time.time()) + 1),
                          "--filter", "type=plugin", "--format",
                          "{{.Action}} {{.Actor.Attributes.name}}"],
                         env=moord.env, capture_output=True, text=True, timeout=60).stdout
    assert f"create {name}:latest" in out.splitlines()
    assert f"remove {name}:latest" in out.splitlines()
