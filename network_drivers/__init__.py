"""Network drivers: `bridge` (Linux bridge, veth pairs, nftables), `host` and `none`.

`network_drivers.builtins` registers them through the `moorage_network_drivers` hook;
`netns` and `netlink` are the fork-free, trio-safe namespace and netlink helpers a
third-party driver may use too (see docs/networks.md).
"""
