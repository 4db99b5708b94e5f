"""Container networking: network records, IPAM, host ports, DNS, /etc files, and
`NetworkService`, which runs the network drivers for the daemon (docs/networks.md)."""
