"""contrib/daemon.toml.example, the documented example, against engine/config.py: every key of
DaemonConfig is there, with its default, described, and marked [live] exactly when a HUP
applies it (engine/daemon_reload.py)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import attrs
import pytest

from engine.config import DaemonConfig, load_config, read_config_file
from engine.daemon_reload import RELOADABLE
from tests.support.daemon import REPO

EXAMPLE = REPO / "contrib" / "daemon.toml.example"


def _keys() -> list[str]:
    return [f.name.replace("_", "-") for f in attrs.fields(DaemonConfig)]


def test_every_key_of_the_configuration_is_in_the_example() -> None:
    with open(EXAMPLE, "rb") as f:
        documented = set(tomllib.load(f))
    missing = [k for k in _keys() if k not in documented]
    assert missing == [], f"add these keys to {EXAMPLE.relative_to(REPO)}: {missing}"
    assert documented <= set(_keys())


def test_the_example_holds_the_defaults() -> None:
    """Copied as it is, the example changes nothing."""
    assert DaemonConfig(**read_config_file(EXAMPLE)) == DaemonConfig()


def _blocks() -> dict[str, tuple[bool, str]]:
    """Each key with (marked [live], its description): the comment block above it."""
    found: dict[str, tuple[bool, str]] = {}
    comment: list[str] = []
    previous_was_comment = False
    for line in EXAMPLE.read_text().splitlines():
        if line.startswith("#"):
            if not previous_was_comment:
                comment = []
            comment.append(line.lstrip("# "))
            previous_was_comment = True
            continue
        previous_was_comment = False
        if "=" in line:
            text = " ".join(comment)
            found[line.split("=", 1)[0].strip()] = ("[live]" in text, text)
    return found


def test_every_key_is_described_and_live_keys_are_marked() -> None:
    blocks = _blocks()
    assert [k for k in _keys() if not blocks[k][1]] == []
    live = {k for k, (marked, _) in blocks.items() if marked}
    assert live == {name.replace("_", "-") for name in RELOADABLE}


def test_a_bad_value_is_a_clear_error(tmp_path: Path) -> None:
    config = tmp_path / "daemon.toml"
    config.write_text('log-file-max-size = "lots"\n')
    with pytest.raises(SystemExit, match="log-file-max-size: 'lots' is not a size"):
        load_config(["--config-file", str(config)])
    config.write_text('log-target = "syslog"\n')
    with pytest.raises(SystemExit, match=r"invalid configuration.*log_target"):
        load_config(["--config-file", str(config)])


def test_log_levels_are_read_as_dockerd_reads_them() -> None:
    assert load_config(["--log-level", "WARN", "--config-file", str(EXAMPLE)]).log_level == "warning"
