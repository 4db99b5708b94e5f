"""The labels that tune one container's restart back-off and its restart-loop breaker.

Labels, so that the docker CLI, compose and the SDKs can set them (`moor run` has
matching flags). Each overrides the daemon's setting of the same meaning:

- `moorage.restart.delay-initial`, `.delay-max`, `.reset-after`: Go durations
  (`500ms`, `2s`, `1m30s`), positive;
- `moorage.restart.jitter`: a fraction from 0 to 1 (`0.2`) or a percentage (`20%`); each
  delay is shortened by a random part of it up to that share, so that many containers
  failing together don't all come back at the same instant;
- `moorage.restart.max-quick-failures`: after this many quick failures in a row the
  restart policy gives up (0: never, the default).

Checked at create (a 400 in words); a record that somehow holds a bad value later is
run with the daemon's defaults rather than not at all.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import attrs

from engine.durations import SECOND, DurationError, format_duration, parse_duration
from engine.errors import InvalidParameter

log = logging.getLogger(__name__)

PREFIX = "moorage.restart."
DELAY_INITIAL_LABEL = PREFIX + "delay-initial"
DELAY_MAX_LABEL = PREFIX + "delay-max"
RESET_AFTER_LABEL = PREFIX + "reset-after"
JITTER_LABEL = PREFIX + "jitter"
MAX_QUICK_FAILURES_LABEL = PREFIX + "max-quick-failures"
KNOWN_LABELS = (DELAY_INITIAL_LABEL, DELAY_MAX_LABEL, RESET_AFTER_LABEL, JITTER_LABEL,
                MAX_QUICK_FAILURES_LABEL)
#: more than a day between restarts is a typo, not a back-off
LONGEST = 24 * 3600.0


def _share(_: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{attribute.name} must be between 0 and 1")


@attrs.frozen
class RestartTuning:
    """One container's overrides (None: the daemon's setting), in seconds."""

    delay_initial: float | None = None
    delay_max: float | None = None
    reset_after: float | None = None
    jitter: float = attrs.field(default=0.0, validator=_share)
    max_quick_failures: int = attrs.field(default=0, validator=attrs.validators.ge(0))

    def delays(self, initial: float, maximum: float, reset_after: float) -> tuple[float, float, float]:
        """The back-off's three numbers: these overrides over the daemon's (given). The
        maximum is never below the initial delay, even when the daemon's maximum is."""
        first = self.delay_initial if self.delay_initial is not None else initial
        cap = self.delay_max if self.delay_max is not None else maximum
        reset = self.reset_after if self.reset_after is not None else reset_after
        return first, max(cap, first), reset


def parse_restart_labels(labels: Mapping[str, str]) -> RestartTuning:
    """The tuning a container's labels ask for; InvalidParameter naming the bad label."""
    initial = _duration(labels, DELAY_INITIAL_LABEL)
    maximum = _duration(labels, DELAY_MAX_LABEL)
    if initial is not None and maximum is not None and maximum < initial:
        raise InvalidParameter(
            f"invalid label {DELAY_MAX_LABEL}={labels[DELAY_MAX_LABEL]}: the maximum delay "
            f"cannot be shorter than {DELAY_INITIAL_LABEL}={labels[DELAY_INITIAL_LABEL]}")
    return RestartTuning(delay_initial=initial, delay_max=maximum,
                         reset_after=_duration(labels, RESET_AFTER_LABEL),
                         jitter=_jitter(labels), max_quick_failures=_count(labels))


def check_restart_labels(labels: Mapping[str, str], daemon_max: float) -> None:
    """Refuse at create what can't work: a bad value, or a first delay beyond the maximum
    (the container's own, else the daemon's at this moment)."""
    tuning = parse_restart_labels(labels)
    if tuning.delay_initial is not None and tuning.delay_max is None \
            and tuning.delay_initial > daemon_max:
        raise InvalidParameter(
            f"invalid label {DELAY_INITIAL_LABEL}={labels[DELAY_INITIAL_LABEL]}: longer than the "
            f"daemon's maximum restart delay ({format_duration(round(daemon_max * SECOND))}); "
            f"set {DELAY_MAX_LABEL} too")


def tuning_of(labels: Mapping[str, str]) -> RestartTuning:
    """The tuning to run with: the labels', or none when they are bad (a record written
    before they were checked); never an error, so supervision goes on."""
    try:
        return parse_restart_labels(labels)
    except InvalidParameter as exc:
        log.warning("ignoring the restart labels: %s", exc.message)
        return RestartTuning()


def _duration(labels: Mapping[str, str], key: str) -> float | None:
    text = labels.get(key)
    if text is None:
        return None
    try:
        ns = parse_duration(text.strip())
    except DurationError as exc:
        raise InvalidParameter(f"invalid label {key}={text}: {exc.message}") from None
    if ns <= 0:
        raise InvalidParameter(f"invalid label {key}={text}: the duration must be positive")
    seconds = ns / SECOND
    if seconds > LONGEST:
        raise InvalidParameter(f"invalid label {key}={text}: at most 24h")
    return seconds


def _jitter(labels: Mapping[str, str]) -> float:
    text = labels.get(JITTER_LABEL)
    if text is None:
        return 0.0
    raw = text.strip()
    percent = raw.endswith("%")
    try:
        value = float(raw[:-1] if percent else raw)
    except ValueError:
        value = -1.0
    if percent:
        value /= 100.0
    if not 0.0 <= value <= 1.0:  # also refuses nan
        raise InvalidParameter(
            f"invalid label {JITTER_LABEL}={text}: a fraction from 0 to 1 (0.2) or a "
            "percentage from 0% to 100% (20%)")
    return value


def _count(labels: Mapping[str, str]) -> int:
    text = labels.get(MAX_QUICK_FAILURES_LABEL)
    if text is None:
        return 0
    raw = text.strip()
    if not raw.isdigit() or not raw.isascii() or int(raw) > 1_000_000:
        raise InvalidParameter(
            f"invalid label {MAX_QUICK_FAILURES_LABEL}={text}: a whole number of failures, "
            "0 (never give up) or more")
    return int(raw)
