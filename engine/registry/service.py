"""The registry side of the daemon: one client pool, one puller, one pusher.

httpx is imported on first use, not at start-up: moord's start-up time is how long a
host waits to get its containers adopted after a restart, and most start-ups pull
nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.config import DaemonConfig
from engine.images.store import ImageStore

if TYPE_CHECKING:
    from engine.registry.auth import Credentials
    from engine.registry.client import RegistryClient
    from engine.registry.distribution import DistributionInspector
    from engine.registry.pull import Puller
    from engine.registry.push import Pusher
    from engine.registry.sources import BlobSources


class RegistryService:
    def __init__(self, config: DaemonConfig, store: ImageStore) -> None:
        self.config = config
        self.store = store
        self._client: RegistryClient | None = None
        self._puller: Puller | None = None
        self._pusher: Pusher | None = None
        self._sources: BlobSources | None = None
        self._distribution: DistributionInspector | None = None

    def reconfigure(self, config: DaemonConfig) -> None:
        """SIGHUP: new mirrors and insecure registries count from the next request on."""
        self.config = config
        if self._client is not None:
            from engine.registry.endpoints import RegistryHosts

            self._client.rehost(RegistryHosts(config.registry_mirrors, config.insecure_registries))

    @property
    def sources(self) -> BlobSources:
        if self._sources is None:
            from engine.registry.sources import BlobSources

            self._sources = BlobSources(self.store.root / "blob-sources.json")
        return self._sources

    @property
    def client(self) -> RegistryClient:
        if self._client is None:
            from engine.registry.client import RegistryClient
            from engine.registry.endpoints import RegistryHosts

            hosts = RegistryHosts(self.config.registry_mirrors, self.config.insecure_registries)
            self._client = RegistryClient(hosts)
        return self._client

    @property
    def puller(self) -> Puller:
        if self._puller is None:
            from engine.registry.pull import Puller

            self._puller = Puller(self.client, self.store, sources=self.sources,
                                  max_concurrent=self.config.max_concurrent_downloads)
        return self._puller

    @property
    def pusher(self) -> Pusher:
        if self._pusher is None:
            from engine.registry.push import Pusher

            self._pusher = Pusher(self.client, self.store, self.sources,
                                  max_concurrent=self.config.max_concurrent_uploads)
        return self._pusher

    @property
    def distribution(self) -> DistributionInspector:
        if self._distribution is None:
            from engine.registry.distribution import DistributionInspector

            self._distribution = DistributionInspector(self.client)
        return self._distribution

    async def login(self, server: str, credentials: Credentials) -> str:
        """Check credentials against a registry (`docker login`); its identity token, if any."""
        from engine.registry.login import login

        return await login(self.client, server, credentials)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()


__all__ = ["RegistryService"]
