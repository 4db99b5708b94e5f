"""Image records: what an image is to the engine, apart from any wire format.

The OCI image config blob (JSON) is the stored truth and the image ID is its sha256;
these records are what the rest of the engine reads from it.
"""

from __future__ import annotations

import datetime as dt

import attrs


@attrs.frozen
class Healthcheck:
    """A health check as the image or `--health-*` flags give it; durations in ns."""

    test: tuple[str, ...] = ()
    interval: int = 0
    timeout: int = 0
    start_period: int = 0
    start_interval: int = 0
    retries: int = 0


@attrs.define
class ImageConfig:
    """The defaults an image gives the containers made from it."""

    user: str = ""
    env: list[str] = attrs.field(factory=list)
    cmd: list[str] | None = None
    entrypoint: list[str] | None = None
    working_dir: str = ""
    labels: dict[str, str] = attrs.field(factory=dict)
    exposed_ports: list[str] = attrs.field(factory=list)
    volumes: list[str] = attrs.field(factory=list)
    stop_signal: str = ""
    healthcheck: Healthcheck | None = None
    shell: list[str] | None = None
    on_build: list[str] = attrs.field(factory=list)
    args_escaped: bool = False


@attrs.frozen
class HistoryEntry:
    created: dt.datetime | None = None
    created_by: str = ""
    comment: str = ""
    empty_layer: bool = False
    author: str = ""


@attrs.define
class Image:
    """One stored image. `id` is `sha256:<hex>` of its config blob."""

    id: str
    config: ImageConfig
    diff_ids: list[str]
    created: dt.datetime
    architecture: str = "amd64"
    os: str = "linux"
    variant: str = ""
    author: str = ""
    comment: str = ""
    parent: str = ""
    size: int = 0
    history: list[HistoryEntry] = attrs.field(factory=list)
    repo_tags: list[str] = attrs.field(factory=list)
    repo_digests: list[str] = attrs.field(factory=list)

    @property
    def short_id(self) -> str:
        return self.id.removeprefix("sha256:")[:12]
