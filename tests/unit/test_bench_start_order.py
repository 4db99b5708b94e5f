"""The start-order bench's pure parts: the shapes it creates and the times it reads."""

from __future__ import annotations

import pytest

from bench.start_order import Planned, out_of_order, parse_started_at, plan


def test_flat_has_no_dependencies() -> None:
    shape = plan("flat", 4)
    assert [p.name for p in shape] == ["flat-0", "flat-1", "flat-2", "flat-3"]
    assert all(p.depends_on is None and not p.health for p in shape)


def test_chain_levels_each_on_one_above_created_after_it() -> None:
    shape = plan("chain", 50, depth=5)
    assert len(shape) == 50
    created: set[str] = set()
    for p in shape:
        if p.depends_on:
            name, condition = p.depends_on.split(":")
            assert condition == "started"
            assert name in created
        created.add(p.name)
    assert sum(1 for p in shape if p.depends_on is None) == 10


def test_uneven_count_puts_the_remainder_on_the_first_level() -> None:
    shape = plan("chain", 12, depth=5)
    assert len(shape) == 12
    assert sum(1 for p in shape if p.name.startswith("chain-0-")) == 4


def test_healthy_checks_only_what_is_depended_on() -> None:
    shape = plan("healthy", 10, depth=5)
    assert {p.depends_on.split(":")[1] for p in shape if p.depends_on} == {"healthy"}
    depended_on = [p.name for p in shape if not p.name.startswith("healthy-4-")]
    assert [p.name for p in shape if p.health] == depended_on


def test_started_at_keeps_nanoseconds_and_zones() -> None:
    assert parse_started_at("1970-01-01T00:00:01.5Z") == 1.5
    assert parse_started_at("2026-12-08T01:02:03.123456789Z") == pytest.approx(1796691723.123456789)
    assert parse_started_at("1970-01-01T01:00:02+01:00") == 2.0
    with pytest.raises(ValueError, match="not an RFC 3339 time"):
        parse_started_at("0001-01-01 00:00:00")


def test_out_of_order_names_a_dependent_that_started_first() -> None:
    shape = [Planned("a"), Planned("b", "a:started")]
    assert out_of_order(shape, {"a": 1.0, "b": 2.0}) == []
    assert out_of_order(shape, {"a": 2.0, "b": 1.0}) == ["b before a"]
