"""`NetworkDNS`: one DNS server per network, on its gateway, and the names it answers.

Containers on a network with an address pool resolve each other by name through a server
bound to the network's gateway (engine.networks.dns does the answering). This part starts
and stops those servers as networks come and go, and keeps the `NameBook` in step with
the running containers' endpoints.
"""

from __future__ import annotations

import logging

import attrs
import trio

from engine.networks.catalog import NetworkCatalog
from engine.networks.dns import DNSServer, DNSSockets, HostResolvers, NameBook, parse_upstream
from engine.networks.model import AttachmentRecord, NetworkRecord

log = logging.getLogger(__name__)


@attrs.define(eq=False)
class NetworkDNS:
    catalog: NetworkCatalog
    book: NameBook = attrs.field(factory=NameBook)
    resolvers: HostResolvers = attrs.field(factory=HostResolvers)
    server: DNSServer = attrs.field(init=False)
    #: where the servers run; None until the network service runs (then none start)
    nursery: trio.Nursery | None = None
    _scopes: dict[str, trio.CancelScope] = attrs.field(factory=dict)

    def __attrs_post_init__(self) -> None:
        self.server = DNSServer(self.book, self.resolvers)

    # the servers ---------------------------------------------------------------------------
    async def start(self, record: NetworkRecord) -> None:
        """Bind the network's DNS server on its gateway (a failure is logged: its containers
        then get the host's resolvers in resolv.conf)."""
        pool = self.catalog.pools.get(record.id)
        if pool is None or self.nursery is None or record.id in self._scopes:
            return
        address = str(pool.gateway)
        port = self.catalog.options.dns_port
        try:
            sockets = await self.server.bind(address, port)
        except OSError as exc:
            log.warning("no DNS server for network %s on %s:%d: %s; its containers use the "
                        "host's resolvers", record.name, address, port, exc)
            return
        scope = trio.CancelScope()
        self._scopes[record.id] = scope
        self.nursery.start_soon(self._serve, record.id, sockets, scope)

    async def _serve(self, network_id: str, sockets: DNSSockets, scope: trio.CancelScope) -> None:
        with scope:
            try:
                await self.server.serve_bound(network_id, sockets)
            except Exception:
                log.exception("the DNS server of network %s stopped", network_id[:12])
        if self._scopes.get(network_id) is scope:
            del self._scopes[network_id]

    def serves(self, network_id: str) -> bool:
        return network_id in self._scopes

    def stop(self, network_id: str) -> None:
        scope = self._scopes.pop(network_id, None)
        if scope is not None:
            scope.cancel()

    # the names -----------------------------------------------------------------------------
    def register(self, record: AttachmentRecord) -> None:
        """(Re)publish a running container's names on each network it has an address on."""
        cid = record.container_id
        self.book.remove(cid)
        forwards = False
        for ep in record.endpoints:
            network = self.catalog.records.get(ep.network_id)
            if network is None or not ep.ip:
                continue
            forwards = forwards or not network.internal
            self.book.add(cid, ep.network_id, ep.ip, ep.dns_names, ep.links)
            if ep.ip6:  # AAAA answers (the query still comes in over IPv4)
                self.book.add(cid, ep.network_id, ep.ip6, ep.dns_names, ep.links)
        self.book.configure(cid, upstreams=[parse_upstream(s) for s in record.dns],
                            forwards=forwards)

    def forget(self, container_id: str) -> None:
        self.book.remove(container_id)


__all__ = ["NetworkDNS"]
