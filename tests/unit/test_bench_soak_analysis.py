"""The soak's arithmetic (bench/soak_analysis.py, bench/soak_report.py): sequence gaps, slopes
and flatness per moord lifetime, leak diffs, the totals."""

from __future__ import annotations

import pytest

from bench.soak_analysis import (
    SequenceCheck,
    counted,
    leak_diff,
    lifetimes,
    marker_row,
    parse_line,
    slope_per_minute,
    sparkline,
    trend,
)
from bench.soak_report import WARMUP_S, summary_text, totals, trends


def fed(streams: list[list[int]]) -> SequenceCheck:
    check = SequenceCheck()
    for stream in streams:
        check.new_stream()
        for seq in stream:
            check.feed(seq)
    return check


def test_parse_line_reads_timestamp_and_sequence() -> None:
    ts = "2026-12-08T00:20:01.123456789Z"
    assert parse_line(f"{ts} soak 17 xxxx\n") == (ts, 17)
    assert parse_line(f"{ts} soak 3") == (ts, 3)
    assert parse_line("2026-12-08T00:20:01Z some other line") is None
    assert parse_line("soak 3 without a timestamp") is None


def test_an_unbroken_sequence_loses_nothing() -> None:
    check = fed([list(range(100))])
    assert (check.received, check.lost, check.duplicates, check.gaps) == (100, 0, 0, [])


def test_a_gap_counts_every_missing_line() -> None:
    check = fed([[0, 1, 2, 6, 7, 9]])
    assert check.lost == 4
    assert check.gaps == [(3, 3), (8, 1)]
    assert check.received == 6


def test_a_missing_first_line_is_a_gap() -> None:
    assert fed([[2, 3]]).gaps == [(0, 2)]


def test_repeats_at_a_reconnect_seam_are_not_losses_nor_duplicates() -> None:
    # the second stream resumes with `since` = the last timestamp: lines 4 and 5 come again
    check = fed([[0, 1, 2, 3, 4, 5], [4, 5, 6, 7]])
    assert (check.lost, check.duplicates, check.seam_duplicates, check.received) == (0, 0, 2, 8)


def test_a_repeat_inside_a_stream_is_a_duplicate() -> None:
    check = fed([[0, 1, 2, 3], [3, 4, 5, 4, 6]])
    assert (check.seam_duplicates, check.duplicates, check.lost) == (1, 1, 0)


def test_a_gap_across_a_reconnect_is_a_loss() -> None:
    check = fed([[0, 1, 2], [2, 5, 6]])
    assert check.lost == 2
    assert check.gaps == [(3, 2)]


def test_a_late_line_fills_its_gap_and_counts_as_reordered() -> None:
    check = fed([[0, 1, 3, 2, 4]])
    assert (check.lost, check.reordered, check.received, check.duplicates) == (0, 1, 5, 0)


def test_lines_written_after_the_last_one_seen_are_lost_at_the_tail() -> None:
    check = fed([[0, 1, 2]])
    assert check.finish(5) == 3
    assert check.lost == 3
    assert check.gaps == [(3, 3)]
    assert fed([[0, 1, 2]]).finish(2) == 0
    assert fed([[0, 1, 2]]).finish(None) == 0


def test_slope_is_per_minute_and_zero_without_two_points() -> None:
    times = [0.0, 10.0, 20.0, 30.0]
    assert slope_per_minute(times, [100.0, 110.0, 120.0, 130.0]) == pytest.approx(60.0)
    assert slope_per_minute(times, [5.0, 5.0, 5.0, 5.0]) == 0.0
    assert slope_per_minute([3.0], [1.0]) == 0.0
    assert slope_per_minute([3.0, 3.0], [1.0, 2.0]) == 0.0


def test_noise_around_a_level_is_flat() -> None:
    times = [float(t) for t in range(0, 600, 10)]
    values = [70_000.0 + (400.0 if i % 2 else -400.0) for i in range(len(times))]
    t = trend(times, values, tolerance=0.05, floor=2048)
    assert t.flat
    assert (t.minimum, t.maximum, t.samples) == (69_600.0, 70_400.0, 60)


def test_a_steady_rise_is_not_flat() -> None:
    times = [float(t) for t in range(0, 600, 10)]
    values = [70_000.0 + 200.0 * i for i in range(len(times))]  # +1.2 MB/min, +12 MB in 10 min
    t = trend(times, values, tolerance=0.05, floor=2048)
    assert not t.flat
    assert t.slope_per_min == pytest.approx(1200.0)


def test_a_fall_is_flat_and_no_values_is_flat() -> None:
    assert trend([0.0, 60.0], [100.0, 50.0], tolerance=0.0, floor=0.0).flat
    assert trend([], [], tolerance=0.0, floor=0.0).flat


def test_lifetimes_split_at_each_new_pid() -> None:
    assert lifetimes([7, 7, 7, 9, 9, 4]) == [(7, 0, 3), (9, 3, 5), (4, 5, 6)]
    assert lifetimes([]) == []


def test_leak_diff_names_only_what_is_new() -> None:
    before = {"links": {"ms0"}, "mounts": set(), "processes": {"conmon[5]"}}
    after = {"links": {"ms0", "ms-abc"}, "mounts": set(), "processes": set(), "cgroups": {"cpu/x"}}
    assert leak_diff(before, after) == {"links": ["ms-abc"], "cgroups": ["cpu/x"]}
    assert leak_diff(before, before) == {}


def test_counted_keeps_repeated_lines_apart() -> None:
    before = counted(["ip: rule a", "ip: rule b"])
    after = counted(["ip: rule a", "ip: rule b", "ip: rule a"])
    assert leak_diff({"nft": before}, {"nft": after}) == {"nft": ["ip: rule a (2)"]}


def test_sparkline_spans_the_ramp_and_squeezes_to_width() -> None:
    line = sparkline([float(v) for v in range(100)], 10)
    assert len(line) == 10
    assert (line[0], line[-1]) == ("_", "@")
    assert sparkline([3.0, 3.0, 3.0], 10) == "___"
    assert sparkline([], 10) == ""


def test_marker_row_puts_letters_where_events_happened() -> None:
    row = marker_row([0.0, 50.0, 100.0], [(0.0, "K"), (100.0, "T")], 10)
    assert row == "K T"
    assert marker_row([float(t) for t in range(0, 100)], [(50.0, "K")], 10).index("K") == 5


def sample(t: float, pid: int, rss: int, event: str = "") -> dict[str, object]:
    return {"t_s": t, "pid": pid, "rss_kb": rss, "fds": 60, "threads": 14, "event": event}


def test_trends_split_by_lifetime_and_skip_each_warm_up() -> None:
    first = [sample(t, 10, 200_000 if t < WARMUP_S else 70_000) for t in range(0, 180, 10)]
    second = [sample(t, 11, 70_000 + 500 * (t - 180)) for t in range(180, 360, 10)]  # +30 MB/min
    rows = trends([*first, *second])
    assert [r["pid"] for r in rows] == [10, 11]
    assert rows[0]["rss_kb"]["flat"]  # the warm-up's 200 MB is not in it
    assert rows[0]["rss_kb"]["max"] == 70_000
    assert not rows[1]["rss_kb"]["flat"]
    assert rows[1]["fds"]["flat"]


def test_totals_count_losses_restarts_and_leaks() -> None:
    result = {
        "workers": [{"name": "follow0", "received": 10, "lost": 2, "duplicates": 0, "seam_duplicates": 3,
                     "reconnects": 1, "stalls": 0},
                    {"name": "exec0", "ok": 5, "failed_while_up": 1, "failed_while_down": 2}],
        "last_written": {"follow0": 11},
        "restarts": [{"how": "kill", "not_adopted": []}, {"how": "term", "not_adopted": ["chatty0"]}],
        "leaks": {"links": ["mb12345-ab"]},
        "samples": [],
    }
    t = totals(result)
    assert (t["lines_written"], t["lines_followed"], t["lines_lost"]) == (12, 10, 2)
    assert (t["kills"], t["restarts"], t["not_readopted"], t["leaks"]) == (1, 1, 1, 1)
    assert (t["execs_ok"], t["execs_failed_while_up"]) == (5, 1)
    text = summary_text(result)
    assert "LOST 2" in text
    assert "LEAKS" in text
    assert "mb12345-ab" in text
