"""Network drivers that run CNI plugins: `cni` (a conflist of the user's), `macvlan` and
`ipvlan` (Docker's drivers, made with the CNI plugins of the same names). See
docs/plugins.md, "CNI networks"."""
