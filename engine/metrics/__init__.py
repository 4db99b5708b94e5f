"""moord's Prometheus metrics: the families (`catalog`), the format (`registry`) and the
`/metrics` endpoint on `metrics-addr` (`server`)."""
