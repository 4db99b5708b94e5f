"""Removing everything a daemon's networking made on the host, by its prefix.

For test fixtures and for an operator retiring a moord: links named with the prefix
(bridges and veths), the nftables tables of that name (ip and ip6), and the namespace files under
`<exec-root>/netns`. moord itself never needs this: it cleans up per container and per
network, and rebuilds from its records at start-up.

    python -m engine.networks.cleanup PREFIX [EXEC_ROOT]
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from engine.kernel import netlink, netns


def purge_host_state(prefix: str, exec_root: Path | None = None) -> list[str]:
    """Blocking. Returns what was removed, in words."""
    removed: list[str] = []
    if exec_root is not None:
        ns_dir = exec_root / "netns"
        if ns_dir.is_dir():
            for entry in sorted(ns_dir.iterdir()):
                try:
                    netns.delete_netns(entry)
                    removed.append(f"netns {entry}")
                except OSError:
                    pass
    for name in sorted(netlink.links_with_prefix(prefix), key=lambda n: n[len(prefix):][:1] == "-"):
        try:
            netlink.delete_link(name)
            removed.append(f"link {name}")
        except OSError:
            pass
    for family in ("ip", "ip6"):
        result = subprocess.run(["nft", "delete", "table", family, prefix], capture_output=True,
                                check=False)
        if result.returncode == 0:
            removed.append(f"nft table {family} {prefix}")
    return removed


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if not args:
        sys.exit("usage: python -m engine.networks.cleanup PREFIX [EXEC_ROOT]")
    for line in purge_host_state(args[0], Path(args[1]) if len(args) > 1 else None):
        print(line)


if __name__ == "__main__":
    main()
