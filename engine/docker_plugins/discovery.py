"""Where a Docker plugin listens: its socket, or the address in its spec file.

dockerd looks, in order, for `NAME.sock` and `NAME/NAME.sock` in the socket directory
(`/run/docker/plugins`), then for `NAME.spec`, `NAME.json` (and the same under `NAME/`)
in each spec directory (`/etc/docker/plugins`, `/usr/lib/docker/plugins`). A `.spec`
holds one address (`unix:///path` or `tcp://host:port`); a `.json` holds
`{"Name", "Addr", "TLSConfig"}`. Everything here reads the file system: call it on a
worker thread.
"""

from __future__ import annotations

import json
import re
import stat
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

import attrs

#: dockerd's rule for a legacy plugin's name (it is a file name).
_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
SPEC_SUFFIXES = (".spec", ".json")


class PluginSpecError(ValueError):
    """A spec file that names no usable address (the message says which file and why)."""


@attrs.frozen
class Endpoint:
    """How to reach one plugin: a unix socket path, or an http://host:port base URL."""

    name: str
    socket: str = ""
    url: str = ""
    source: str = ""  # the file it was found through, for messages

    def __attrs_post_init__(self) -> None:
        if bool(self.socket) == bool(self.url):
            raise ValueError("an endpoint has either a socket or a url")

    @property
    def address(self) -> str:
        return f"unix://{self.socket}" if self.socket else self.url


@attrs.frozen
class PluginDirs:
    """The directories searched (private ones in tests)."""

    socket_dir: Path = Path("/run/docker/plugins")
    spec_dirs: Sequence[Path] = (Path("/etc/docker/plugins"), Path("/usr/lib/docker/plugins"))


def valid_name(name: str) -> bool:
    return bool(_NAME.match(name)) and ".." not in name


def _is_socket(path: Path) -> bool:
    try:
        return stat.S_ISSOCK(path.stat().st_mode)
    except OSError:
        return False


def _parse_address(address: str, name: str, source: Path) -> Endpoint:
    address = address.strip()
    parts = urlsplit(address)
    if parts.scheme == "unix" and parts.path:
        return Endpoint(name=name, socket=parts.path, source=str(source))
    if parts.scheme in ("tcp", "http") and parts.netloc:
        return Endpoint(name=name, url=f"http://{parts.netloc}", source=str(source))
    if parts.scheme == "https" and parts.netloc:
        raise PluginSpecError(f"{source}: TLS plugin addresses are not supported ({address!r})")
    raise PluginSpecError(f"{source}: {address!r} is not a unix:// or tcp:// address")


def read_spec(path: Path, name: str) -> Endpoint:
    """The endpoint a `.spec` or `.json` file names."""
    text = path.read_text()
    if path.suffix != ".json":
        return _parse_address(text, name, path)
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PluginSpecError(f"{path}: not JSON: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("Addr"), str):
        raise PluginSpecError(f"{path}: no Addr")
    return _parse_address(doc["Addr"], name, path)


def find(name: str, dirs: PluginDirs) -> Endpoint | None:
    """The plugin called `name`, or None if no file names it (yet)."""
    if not valid_name(name):
        return None
    for sock in (dirs.socket_dir / f"{name}.sock", dirs.socket_dir / name / f"{name}.sock"):
        if _is_socket(sock):
            return Endpoint(name=name, socket=str(sock), source=str(sock))
    for spec_dir in dirs.spec_dirs:
        for base in (spec_dir, spec_dir / name):
            for suffix in SPEC_SUFFIXES:
                path = base / f"{name}{suffix}"
                if path.is_file():
                    return read_spec(path, name)
    return None


def scan(dirs: PluginDirs) -> list[str]:
    """The names of every plugin a file announces, sorted (for `docker info`)."""
    names: set[str] = set()
    try:
        for entry in dirs.socket_dir.iterdir():
            if entry.suffix == ".sock" and _is_socket(entry):
                names.add(entry.stem)
            elif entry.is_dir() and _is_socket(entry / f"{entry.name}.sock"):
                names.add(entry.name)
    except OSError:
        pass
    for spec_dir in dirs.spec_dirs:
        try:
            entries = list(spec_dir.iterdir())
        except OSError:
            continue
        for entry in entries:
            if entry.suffix in SPEC_SUFFIXES and entry.is_file():
                names.add(entry.stem)
            elif entry.is_dir() and any((entry / f"{entry.name}{s}").is_file()
                                        for s in SPEC_SUFFIXES):
                names.add(entry.name)
    return sorted(n for n in names if valid_name(n))
