"""`--cache-from`: which images' steps a build may reuse (chains, and history matches)."""

from __future__ import annotations

import datetime as dt
from typing import Any, cast

from engine.build.cachefrom import CacheSources, layers_in
from engine.errors import NotFound
from engine.images.model import HistoryEntry, Image, ImageConfig

T = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


def _image(image_id: str, history: list[tuple[str, bool]], diff_ids: list[str],
           parent: str = "") -> Image:
    return Image(id=image_id, config=ImageConfig(), diff_ids=diff_ids, created=T,
                 parent=parent,
                 history=[HistoryEntry(created=T, created_by=c, empty_layer=e) for c, e in history])


class _Store:
    """The two look-ups CacheSources makes of the image store."""

    def __init__(self, *images: Image, names: dict[str, str] | None = None) -> None:
        self.images = {i.id: i for i in images}
        self.names = names or {}

    def get(self, image_id: str) -> Image | None:
        return self.images.get(image_id)

    def resolve(self, name: str) -> Image:
        image = self.images.get(self.names.get(name, name))
        if image is None:
            raise NotFound(f"No such image: {name}")
        return image


BASE = _image("base", [("import", False)], ["l0"])
ENV = _image("env", [("import", False), ("ENV A=1", True)], ["l0"], parent="base")
RUN = _image("run", [("import", False), ("ENV A=1", True), ("RUN x", False)], ["l0", "l1"],
             parent="env")


def _sources(store: _Store, *names: str) -> CacheSources:
    return CacheSources.resolve(cast(Any, store), names)


def test_the_chain_of_each_named_image_and_missing_names_skipped() -> None:
    sources = _sources(_Store(BASE, ENV, RUN, names={"app": "run"}), "nosuch", "app")
    assert [i.id for i in sources.images] == ["run"]
    assert all(sources.allows(i) for i in ("run", "env", "base"))
    assert not sources.allows("other")
    assert not _sources(_Store(BASE), "nosuch").allows("base")


def test_history_match_continues_from_the_parent() -> None:
    loaded = _image("loaded", [(h.created_by, h.empty_layer) for h in RUN.history],
                    ["l0", "l1"])
    sources = _sources(_Store(BASE, loaded), "loaded")
    assert sources.continuing(BASE, "ENV A=1") == (loaded, 2)
    assert sources.continuing(BASE, "ENV A=2") is None
    assert layers_in(loaded, 2) == ["l0"]  # the ENV entry has no layer of its own
    assert layers_in(loaded, 3) == ["l0", "l1"]
    restored_env = _image("env2", [("import", False), ("ENV A=1", True)], ["l0"])
    assert sources.continuing(restored_env, "RUN x") == (loaded, 3)
    # a parent whose layers differ is no prefix of the image
    other = _image("other", [("import", False), ("ENV A=1", True)], ["lX"])
    assert sources.continuing(other, "RUN x") is None


def test_following_one_image_drops_the_others() -> None:
    a = _image("a", [("import", False), ("ENV A=1", True)], ["l0"])
    b = _image("b", [("import", False), ("ENV B=1", True)], ["l0"])
    sources = _sources(_Store(BASE, a, b), "a", "b")
    assert sources.continuing(BASE, "ENV B=1") == (b, 2)
    sources.follow(a)
    assert sources.continuing(BASE, "ENV B=1") is None
