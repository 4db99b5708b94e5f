"""The human `Status` column of `docker ps`, worded as Docker's go-units does."""

from __future__ import annotations

import datetime as dt

from engine.containers.model import Container, Status


def human_duration(seconds: float) -> str:
    """go-units HumanDuration: "Less than a second", "About a minute", "3 hours"…"""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    minutes = int(seconds / 60)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = round(seconds / 3600)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{hours // 24 // 365} years"


def status_text(c: Container, now: dt.datetime | None = None) -> str:
    now = now or dt.datetime.now(dt.timezone.utc)
    st = c.state
    if st.status is Status.RUNNING or st.status is Status.PAUSED:
        since = st.started_at or c.created
        text = f"Up {human_duration((now - since).total_seconds())}"
        if st.status is Status.PAUSED:
            text += " (Paused)"
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
