"""The human `Status` column of `docker ps`, worded as Docker's go-units does."""

from __future__ import annotations

import datetime as dt

from engine.containers.model import Container, HealthStatus, Status
from engine.units import human_duration


def status_text(c: Container, now: dt.datetime | None = None) -> str:
    now = now or dt.datetime.now(dt.timezone.utc)
    st = c.state
    if st.status is Status.RUNNING or st.status is Status.PAUSED:
        since = st.started_at or c.created
        text = f"Up {human_duration((now - since).total_seconds())}"
        if st.status is Status.PAUSED:
            text += " (Paused)"
        elif st.health is not None:
            health = st.health.status
            text += " (health: starting)" if health is HealthStatus.STARTING else f" ({health.value})"
        return text
    if st.status is Status.RESTARTING:
        since = st.finished_at or now
        return f"Restarting ({st.exit_code}) {human_duration((now - since).total_seconds())} ago"
    if st.status is Status.REMOVING:
        return "Removal In Progress"
    if st.status is Status.DEAD:
        return "Dead"
    if st.status is Status.EXITED and st.finished_at is not None:
        ago = human_duration((now - st.finished_at).total_seconds())
        return f"Exited ({st.exit_code}) {ago} ago"
    return "Created"
