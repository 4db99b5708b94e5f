"""The environment of a process run inside a live container: `docker exec` and health probes.

It starts from the container's own process env (its bundle's `config.json`), with what
moord added for the container's own run taken back out, and put in again for the
process at hand, as dockerd builds an exec's env afresh for each one:

- `TERM=xterm` belongs to a terminal: the container's when it has a TTY, the exec's
  when `exec -t` asks for one (a probe never has one); a TERM the user set stays;
- `HOME` is the home of the user the process runs as (`exec -u postgres` gets
  postgres's, not root's); a HOME the user set stays;
- then the exec's own `Env` replaces or adds.
"""

from __future__ import annotations

from collections.abc import Sequence


def _keys(env: Sequence[str]) -> set[str]:
    return {e.partition("=")[0] for e in env}


def exec_environment(container_env: Sequence[str], *, user_env: Sequence[str],
                     terminal: bool, home: str | None, extra: Sequence[str] = ()) -> list[str]:
    """The env for a process in the container.

    `container_env` is the container's process env as run; `user_env` the env its
    creator set (the record's, image's included), which wins over what moord adds;
    `home` is the process user's home (None: keep the container's HOME); `extra` the
    exec's own `Env`.
    """
    chosen = _keys(user_env)
    merged: dict[str, str] = {}
    for entry in container_env:
        key, _, value = entry.partition("=")
        if key in ("TERM", "HOME") and key not in chosen:
            continue  # moord's, for the container's run: decided again below
        merged[key] = value
    if terminal and "TERM" not in chosen:
        merged["TERM"] = "xterm"
    if "HOME" not in chosen:
        previous = _value_of(container_env, "HOME")
        chosen_home = home if home is not None else previous
        if chosen_home is not None:
            merged["HOME"] = chosen_home
    for entry in extra:
        key, sep, value = entry.partition("=")
        if sep:
            merged[key] = value
        else:
            merged.pop(key, None)  # "NAME" alone unsets it, as in a container's Env
    return [f"{k}={v}" for k, v in merged.items()]


def _value_of(env: Sequence[str], key: str) -> str | None:
    for entry in env:
        name, sep, value = entry.partition("=")
        if sep and name == key:
            return value
    return None


__all__ = ["exec_environment"]
