"""SIGHUP's registry part: new mirrors and insecure registries reach the live client, and
what it found with the old ones is forgotten."""

from __future__ import annotations

from pathlib import Path

import attrs

from engine.config import DaemonConfig
from engine.images.store import ImageStore
from engine.registry.service import RegistryService


async def test_reconfigure_rehosts_the_live_client(tmp_path: Path) -> None:
    config = DaemonConfig(data_root=tmp_path)
    service = RegistryService(config, await ImageStore.open(tmp_path / "images", durable=False))
    client = service.client
    before = await client.endpoints("docker.io")
    assert not any(e.mirror for e in before)
    new = attrs.evolve(config, registry_mirrors=("https://mirror.invalid",),
                       insecure_registries=("10.0.0.0/8",))
    service.reconfigure(new)
    assert service.client is client  # same pool, tokens and connections kept
    assert client.hosts.mirrors == ("https://mirror.invalid",)
    assert client.hosts.is_insecure("10.1.2.3:5000")
    after = await client.endpoints("docker.io")
    assert after[0].mirror
    await service.aclose()
