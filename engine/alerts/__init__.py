"""Alerts: webhooks that moord POSTs when a supervised container is in trouble
(unhealthy, OOM-killed, dead under a restart policy, its restart loop broken).

`labels` is pure (moor uses it too); `dispatch` turns bus events into alerts;
`delivery` sends them, each destination with its own bounded queue and retries.
"""
