"""Running one CNI plugin binary: the environment and stdin the spec prescribes, its
answer or its error, under a deadline (trio's process API: never on the trio thread).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import attrs
import trio

from plugins.network_contract import NetworkDriverError

Command = Literal["ADD", "DEL", "CHECK"]
#: where plugin binaries are looked for (Debian's containernetworking-plugins, then the
#: upstream release tarball's place)
DEFAULT_CNI_PATH = ("/usr/lib/cni", "/opt/cni/bin")
#: seconds one plugin may run
PLUGIN_DEADLINE = 20.0


class PluginFailed(NetworkDriverError):
    """A CNI plugin exited non-zero (its `msg` and `details` are in the message)."""


@attrs.frozen
class Invocation:
    """Who a plugin is run for: the CNI_* variables other than the command."""

    container_id: str
    netns: str
    ifname: str
    args: str = ""  # CNI_ARGS, "K=V;K2=V2"
    search_path: Sequence[str] = DEFAULT_CNI_PATH


def find_plugin(kind: str, search_path: Sequence[str]) -> str:
    for directory in search_path:
        candidate = os.path.join(directory, kind)
        if os.access(candidate, os.X_OK):
            return candidate
    raise PluginFailed(f"CNI plugin {kind!r} not found in {':'.join(search_path)} "
                             "(Debian: apt-get install containernetworking-plugins)")


def environment(command: Command, who: Invocation) -> dict[str, str]:
    """moord's environment (as libcni passes its caller's) plus the spec's variables."""
    return {
        **os.environ,
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": who.container_id,
        "CNI_NETNS": who.netns,
        "CNI_IFNAME": who.ifname,
        "CNI_ARGS": who.args,
        "CNI_PATH": ":".join(who.search_path),
    }


def _error_text(stdout: bytes, stderr: bytes, returncode: int) -> str:
    """The plugin's error object (`code`, `msg`, `details`) in words, else its output."""
    try:
        error = json.loads(stdout)
        text = str(error.get("msg") or "")
        if error.get("details"):
            text += f": {error['details']}"
        if text:
            return f"{text} (code {error.get('code', '?')})"
    except (ValueError, AttributeError):
        pass
    output = (stderr or stdout).decode(errors="replace").strip()
    return output or f"exit status {returncode}"


async def run_plugin(command: Command, who: Invocation, config: Mapping[str, Any],
                     deadline: float = PLUGIN_DEADLINE) -> dict[str, Any] | None:
    """Run the plugin `config["type"]`; ADD returns its result, DEL and CHECK None."""
    kind = str(config["type"])
    path = find_plugin(kind, who.search_path)
    try:
        with trio.fail_after(deadline):
            done = await trio.run_process(
                [path], stdin=json.dumps(config).encode(), capture_stdout=True,
                capture_stderr=True, check=False, env=environment(command, who))
    except trio.TooSlowError:
        raise PluginFailed(f"CNI plugin {kind} {command}: no answer within {deadline:g} s") from None
    except OSError as exc:
        raise PluginFailed(f"CNI plugin {kind} {command}: {exc}") from None
    if done.returncode != 0:
        raise PluginFailed(f"CNI plugin {kind} {command}: "
                           f"{_error_text(done.stdout, done.stderr, done.returncode)}")
    if command != "ADD":
        return None
    try:
        result = json.loads(done.stdout)
    except ValueError:
        raise PluginFailed(f"CNI plugin {kind} ADD: its result is not JSON: "
                           f"{done.stdout[:200]!r}") from None
    if not isinstance(result, dict):
        raise PluginFailed(f"CNI plugin {kind} ADD: its result is not a JSON object")
    return result


__all__ = ["DEFAULT_CNI_PATH", "Command", "Invocation", "PluginFailed", "find_plugin",
           "run_plugin"]
