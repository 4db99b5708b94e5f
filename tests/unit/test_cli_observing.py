"""`moor top|diff|stats|cp` without a daemon: docker's arithmetic, columns and path rules."""

from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path
from typing import Any

import pytest

from engine.cli.copying import (
    CopyError,
    CopyInfo,
    check_member,
    go_base,
    go_clean,
    go_dir,
    local_destination,
    local_source,
    plan_copy,
    preserve_trailing,
    rebase_name,
    rebaser,
    split_cp_arg,
    split_path_dir_entry,
    unpack_on_host,
    validate_output_path,
    write_source_archive,
)
from engine.cli.observing import (
    StatsBoard,
    StatsEntry,
    block_io,
    cpu_percent,
    diff_text,
    entry_from_stats,
    memory_usage,
    network_io,
    render_stats,
    stats_objects,
    top_text,
)

GiB = 1024**3
MiB = 1024**2

# --- top / diff -------------------------------------------------------------------------


def test_top_is_a_tabwriter_table_with_min_width_20() -> None:
    text = top_text(["UID", "PID", "CMD"], [["root", "4242", "sleep 300"]])
    assert text == (
        "UID" + " " * 17 + "PID" + " " * 17 + "CMD\n"
        "root" + " " * 16 + "4242" + " " * 16 + "sleep 300\n")


def test_top_widens_a_column_for_a_long_cell() -> None:
    long = "x" * 25
    lines = top_text(["A", "B"], [[long, "1"]]).splitlines()
    assert lines[0] == "A" + " " * 27 + "B"
    assert lines[1] == long + "   1"


def test_diff_lines_name_the_kind() -> None:
    changes = [{"Path": "/etc", "Kind": 0}, {"Path": "/added", "Kind": 1},
               {"Path": "/bin/vi", "Kind": 2}]
    assert diff_text(changes) == "C /etc\nA /added\nD /bin/vi\n"
    assert diff_text([]) == ""


# --- stats arithmetic -------------------------------------------------------------------

def _sample(**over: Any) -> dict[str, Any]:
    """A stats object shaped like moby's (cgroup v2 host), values easy to check."""
    sample: dict[str, Any] = {
        "name": "/web", "id": "a" * 64,
        "cpu_stats": {"cpu_usage": {"total_usage": 3_000_000_000},
                      "system_cpu_usage": 108_000_000_000, "online_cpus": 4},
        "precpu_stats": {"cpu_usage": {"total_usage": 2_000_000_000},
                         "system_cpu_usage": 100_000_000_000, "online_cpus": 4},
        "memory_stats": {"usage": 60 * MiB, "limit": 2 * GiB,
                         "stats": {"inactive_file": 10 * MiB, "file": 30 * MiB}},
        "networks": {"eth0": {"rx_bytes": 1500, "tx_bytes": 648},
                     "eth1": {"rx_bytes": 500, "tx_bytes": 0}},
        "blkio_stats": {"io_service_bytes_recursive": [
            {"major": 8, "minor": 0, "op": "read", "value": 4096},
            {"major": 8, "minor": 0, "op": "write", "value": 1_000_000},
            {"major": 8, "minor": 16, "op": "Read", "value": 4096},
            {"major": 8, "minor": 16, "op": "Total", "value": 1}]},
        "pids_stats": {"current": 3, "limit": 50},
    }
    sample.update(over)
    return sample


def test_cpu_percent_is_delta_ratio_times_online_cpus() -> None:
    s = _sample()
    # 1e9 ns of container time over 8e9 ns of host time, 4 CPUs: 50 %
    assert cpu_percent(s["precpu_stats"], s["cpu_stats"]) == pytest.approx(50.0)


def test_cpu_percent_cgroup_v1_counts_percpu_when_online_cpus_missing() -> None:
    pre = {"cpu_usage": {"total_usage": 100, "percpu_usage": [50, 50]}, "system_cpu_usage": 1000}
    cur = {"cpu_usage": {"total_usage": 300, "percpu_usage": [150, 150]},
           "system_cpu_usage": 2000}
    assert cpu_percent(pre, cur) == pytest.approx(200 / 1000 * 2 * 100)


def test_cpu_percent_is_zero_without_a_previous_sample_or_progress() -> None:
    cur = _sample()["cpu_stats"]
    empty = {"cpu_usage": {"total_usage": 0}}
    assert cpu_percent(empty, cur) > 0  # docker: a zero precpu still gives a (big) ratio
    assert cpu_percent(cur, cur) == 0.0
    assert cpu_percent({}, {}) == 0.0


def test_memory_leaves_out_the_page_cache() -> None:
    v2 = {"usage": 100, "stats": {"inactive_file": 30}}
    v1 = {"usage": 100, "stats": {"total_inactive_file": 40, "inactive_file": 30}}
    assert memory_usage(v2) == 70
    assert memory_usage(v1) == 60
    assert memory_usage({"usage": 10, "stats": {"inactive_file": 30}}) == 10
    assert memory_usage({"usage": 10, "stats": {"total_inactive_file": 30,
                                                "inactive_file": 4}}) == 6
    assert memory_usage({"usage": 10}) == 10


def test_io_sums() -> None:
    s = _sample()
    assert block_io(s["blkio_stats"]) == (8192, 1_000_000)
    assert network_io(s["networks"]) == (2000, 648)
    assert network_io(None) == (0, 0)


def test_default_table_row_as_docker_prints_it() -> None:
    entry = entry_from_stats("web", _sample())
    text = render_stats(None, [entry])
    header, row = text.splitlines()
    assert [c.strip() for c in header.split("  ") if c.strip()] == [
        "CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "NET I/O", "BLOCK I/O",
        "PIDS"]
    cells = [c.strip() for c in row.split("   ") if c.strip()]
    assert cells == ["a" * 12, "web", "50.00%", "50MiB / 2GiB", "2.44%", "2kB / 648B",
                     "8.19kB / 1MB", "3"]


def test_header_columns_start_where_the_rows_do() -> None:
    entry = entry_from_stats("web", _sample())
    header, row = render_stats(None, [entry]).splitlines()
    for title, value in (("NAME", "web"), ("CPU %", "50.00%"), ("PIDS", "3")):
        assert header.index(title) == row.index(value)


def test_custom_templates_and_json() -> None:
    entry = entry_from_stats("web", _sample())
    assert render_stats("{{.Name}}: {{.CPUPerc}} {{.MemPerc}}", [entry]) == "web: 50.00% 2.44%\n"
    assert render_stats("table {{.Container}}\t{{.PIDs}}", [entry]).splitlines() == [
        "CONTAINER   PIDS", "web         3"]
    doc = json.loads(render_stats("json", [entry]))
    assert sorted(doc) == ["BlockIO", "CPUPerc", "Container", "ID", "MemPerc", "MemUsage",
                           "Name", "NetIO", "PIDs"]
    assert doc["MemUsage"] == "50MiB / 2GiB"
    full = render_stats("{{.ID}}", [entry], trunc=False)
    assert full == "a" * 64 + "\n"


def test_invalid_rows_show_dashes() -> None:
    text = render_stats("{{.Name}}|{{.CPUPerc}}|{{.MemUsage}}|{{.NetIO}}|{{.PIDs}}",
                        [StatsEntry("gone", invalid=True)])
    assert text == "--|--|-- / --|--|--\n"


def test_stats_objects_split_lines_across_chunks() -> None:
    body = [b'{"a": 1}\n{"b"', b': 2}\n', b'{"c": 3}']
    assert list(stats_objects(body)) == [{"a": 1}, {"b": 2}, {"c": 3}]


# --- cp: Go path helpers and arguments ----------------------------------------------------

@pytest.mark.parametrize(("arg", "expected"), [
    ("web:/etc/hosts", ("web", "/etc/hosts")),
    ("web:", ("web", "")),
    ("/abs/file:name", ("", "/abs/file:name")),
    ("./file:name", ("", "./file:name")),
    ("relative", ("", "relative")),
    ("-", ("", "-")),
])
def test_split_cp_arg(arg: str, expected: tuple[str, str]) -> None:
    assert split_cp_arg(arg) == expected


def test_go_path_helpers() -> None:
    assert go_clean("//a/./b/../c/") == "/a/c"
    assert go_clean("") == "."
    assert (go_base("/a/b/"), go_base("/"), go_base("/a/."), go_base("")) == ("b", "/", ".", ".")
    assert (go_dir("/a/b"), go_dir("a"), go_dir("/a")) == ("/a", ".", "/")
    assert preserve_trailing("/x/d", "d/.") == "/x/d/."
    assert preserve_trailing("/x/d", "d/") == "/x/d/"
    assert preserve_trailing("/", "/") == "/"
    assert split_path_dir_entry("/a/d/.") == ("/a/d", ".")
    assert split_path_dir_entry("/a/d/") == ("/a", "d")
    assert rebase_name("/a/link", "/a/target") == ("/a/target", "link")
    assert rebase_name("/a/link/.", "/a/target") == ("/a/target/.", "")
    assert rebase_name("/a/same", "/b/same") == ("/b/same", "")


def test_rebaser_renames_the_top_entry_and_below_it_only() -> None:
    rename = rebaser("data", "copy")
    assert [rename(n) for n in ("data", "data/x", "database", "other")] == [
        "copy", "copy/x", "database", "other"]
    contents = rebaser(".", "new")
    assert [contents(n) for n in (".", "./x", "x", "sub/y")] == ["new", "new/x", "new/x",
                                                                 "new/sub/y"]


# --- cp: docker's naming rules ------------------------------------------------------------

def _top(src: CopyInfo, dst: CopyInfo) -> tuple[str, str]:
    """Where the archive goes and what its top entry is then called."""
    plan = plan_copy(src, dst)
    return plan.dest_dir, plan.renamer()(src.rebase or split_path_dir_entry(src.path)[1])


def test_dir_into_existing_dir_nests() -> None:
    assert _top(CopyInfo("/data", True, True), CopyInfo("/out", True, True)) == ("/out", "data")


def test_dir_into_missing_path_takes_its_name() -> None:
    assert _top(CopyInfo("/data", True, True), CopyInfo("/out/new")) == ("/out", "new")


def test_dir_dot_copies_contents() -> None:
    assert _top(CopyInfo("/data/.", True, True), CopyInfo("/out", True, True)) == ("/out", ".")
    assert _top(CopyInfo("/data/.", True, True), CopyInfo("/out/new")) == ("/out", "new")


def test_file_onto_existing_dir_goes_inside_and_onto_a_file_replaces_it() -> None:
    assert _top(CopyInfo("/a.txt", True), CopyInfo("/tmp", True, True)) == ("/tmp", "a.txt")
    assert _top(CopyInfo("/a.txt", True), CopyInfo("/tmp/b.txt", True)) == ("/tmp", "b.txt")
    assert _top(CopyInfo("/a.txt", True), CopyInfo("/tmp/new")) == ("/tmp", "new")


def test_followed_link_keeps_the_name_given() -> None:
    src = CopyInfo("/real/target", True, False, rebase="link")
    assert _top(src, CopyInfo("/out", True, True)) == ("/out", "link")


def test_impossible_copies_fail_in_dockers_words() -> None:
    with pytest.raises(CopyError, match=r"^cannot copy directory$"):
        plan_copy(CopyInfo("/data", True, True), CopyInfo("/out/file", True))
    with pytest.raises(CopyError, match=r"^no such directory$"):
        plan_copy(CopyInfo("/a.txt", True), CopyInfo("/out/missing/"))


def test_local_destination_follows_links_and_needs_a_parent(tmp_path: Path) -> None:
    (tmp_path / "dir").mkdir()
    (tmp_path / "link").symlink_to("dir")
    assert local_destination(str(tmp_path / "link")) == CopyInfo(str(tmp_path / "dir"), True,
                                                                  True)
    assert local_destination(str(tmp_path / "new")) == CopyInfo(str(tmp_path / "new"))
    with pytest.raises(CopyError, match="no such file or directory"):
        local_destination(str(tmp_path / "no" / "new"))
    (tmp_path / "file").write_text("x")
    with pytest.raises(CopyError, match=r"^lstat .*/file/new: not a directory$"):
        local_destination(str(tmp_path / "file" / "new"))  # Go's Lstat fails the same way


def test_local_source_links(tmp_path: Path) -> None:
    (tmp_path / "target.txt").write_text("x")
    (tmp_path / "link").symlink_to("target.txt")
    plain = local_source(str(tmp_path / "link"), follow_link=False)
    assert (plain.path, plain.rebase) == (str(tmp_path / "link"), "")
    followed = local_source(str(tmp_path / "link"), follow_link=True)
    assert (followed.path, followed.rebase) == (str(tmp_path / "target.txt"), "link")
    with pytest.raises(CopyError, match=r"^lstat .*/missing: no such file or directory$"):
        local_source(str(tmp_path / "missing"), follow_link=False)


def test_validate_output_path(tmp_path: Path) -> None:
    validate_output_path(str(tmp_path / "new"))
    with pytest.raises(CopyError, match=r'directory ".*/nope" does not exist'):
        validate_output_path(str(tmp_path / "nope" / "x"))
    with pytest.raises(CopyError, match="got a device"):
        validate_output_path("/dev/null")


def test_source_archive_names(tmp_path: Path) -> None:
    src = tmp_path / "d"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "f").write_text("x")
    names = {}
    for top in ("d", ".", "renamed"):
        buf = io.BytesIO()
        length = write_source_archive(CopyInfo(str(src), True, True), top, buf)
        assert length == len(buf.getvalue())
        assert length % tarfile.RECORDSIZE != 0  # no record padding, as Go writes it
        buf.seek(0)
        with tarfile.open(fileobj=buf) as tf:
            names[top] = sorted(tf.getnames())
    assert names["d"] == ["d", "d/sub", "d/sub/f"]
    assert names["."] == [".", "./sub", "./sub/f"]
    assert names["renamed"] == ["renamed", "renamed/sub", "renamed/sub/f"]


# --- cp: a container's tar on the host ----------------------------------------------------

def _tar(*members: tuple[str, str, str]) -> io.BytesIO:
    """(kind, name, data-or-link) members: kind is f(ile), d(ir), s(ymlink), h(ardlink)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for kind, name, extra in members:
            info = tarfile.TarInfo(name)
            info.mode = 0o755 if kind == "d" else 0o644
            if kind == "d":
                info.type = tarfile.DIRTYPE
                tf.addfile(info)
            elif kind == "f":
                data = extra.encode()
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
            else:
                info.type = tarfile.SYMTYPE if kind == "s" else tarfile.LNKTYPE
                info.linkname = extra
                tf.addfile(info)
    buf.seek(0)
    return buf


def test_unpack_renames_and_writes(tmp_path: Path) -> None:
    archive = _tar(("d", "data", ""), ("f", "data/a", "A"), ("s", "data/abs", "/etc/passwd"),
                   ("s", "data/rel", "a"), ("h", "data/hard", "data/a"))
    src = CopyInfo("/data", True, True)
    plan = plan_copy(src, local_destination(str(tmp_path / "copy")))
    unpack_on_host(archive, plan)
    out = tmp_path / "copy"
    assert (out / "a").read_text() == "A"
    assert os.readlink(out / "abs") == "/etc/passwd"  # kept as a link, never followed
    assert (out / "rel").read_text() == "A"
    assert (out / "hard").stat().st_ino == (out / "a").stat().st_ino


@pytest.mark.parametrize(("members", "message"), [
    ((("f", "/etc/evil", "x"),), r'^invalid entry name "/etc/evil"$'),
    ((("f", "../evil", "x"),), r'^invalid entry name "../evil"$'),
    ((("f", "a/../../evil", "x"),), "invalid entry name"),
    ((("s", "up", "../../outside"),), r'^invalid symlink ".*/up" -> "../../outside"$'),
    ((("d", "d", ""), ("s", "d/up", "../../x")), "invalid symlink"),
    ((("h", "hard", "../outside"),), r'^invalid hardlink target "../outside"$'),
    ((("h", "hard", "/etc/passwd"),), "invalid hardlink target"),
])
def test_unpack_refuses_escapes(tmp_path: Path, members: tuple[tuple[str, str, str], ...],
                                message: str) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(CopyError, match=message):
        unpack_on_host(_tar(*members), plan_copy(CopyInfo("/x", True, True),
                                                 CopyInfo(str(dest), True, True)))
    assert not (tmp_path / "evil").exists()
    assert list(dest.iterdir()) == []


def test_unpack_will_not_swap_files_and_directories(tmp_path: Path) -> None:
    (tmp_path / "adir").mkdir()
    (tmp_path / "afile").write_text("keep")
    plan = plan_copy(CopyInfo("/x", True, True), CopyInfo(str(tmp_path), True, True))
    with pytest.raises(CopyError, match=r'^cannot overwrite directory "adir" with non-directory'):
        unpack_on_host(_tar(("f", "adir", "x")), plan)
    with pytest.raises(CopyError, match=r'^cannot overwrite non-directory "afile" with directory'):
        unpack_on_host(_tar(("d", "afile", "")), plan)
    assert (tmp_path / "afile").read_text() == "keep"
    assert (tmp_path / "adir").is_dir()


def test_check_member_through_a_symlinked_parent_stays_inside(tmp_path: Path) -> None:
    (tmp_path / "escape").symlink_to("/")
    member = tarfile.TarInfo("escape/etc")
    member.type = tarfile.REGTYPE
    check_member(tmp_path, member)  # resolved inside tmp_path: /etc is not looked at


def test_stats_board_rows_and_errors() -> None:
    board = StatsBoard(stream=False)
    assert board.add("web")
    assert not board.add("web")
    board.add("gone")
    board.started("web")
    board.sample("web", _sample())
    board.failed("gone", "Error response from daemon: No such container: gone")
    board.wait_first()
    web, gone = board.snapshot()
    assert (web.name, web.invalid, gone.invalid) == ("/web", False, True)
    assert board.errors() == ["Error response from daemon: No such container: gone"]
    board.remove("gone")
    assert [e.container for e in board.snapshot()] == ["web"]
