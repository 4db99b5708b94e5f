"""The conformance runner's bookkeeping: junit outcomes, the expected list, the verdict."""

from __future__ import annotations

from pathlib import Path

from tests.conformance.runner import Expected, Outcome, judge, load_expected, read_junit, table

JUNIT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="docker-py">
<testcase classname="tests.integration.api_exec_test.ExecTest" name="test_ok" time="0.1"/>
<testcase classname="tests.integration.api_exec_test.ExecTest" name="test_bad" time="0.1">
  <failure message="AssertionError: assert 1 == 2&#10;more">trace</failure></testcase>
<testcase classname="tests.integration.api_swarm_test.SwarmTest" name="test_init" time="0.1">
  <error message="failed on setup with 503">trace</error></testcase>
<testcase classname="tests.integration.api_exec_test.ExecTest" name="test_skip" time="0">
  <skipped message="needs 1.99"/></testcase>
</testsuite></testsuites>
"""


def test_read_junit_names_tests_by_file_class_and_name(tmp_path: Path) -> None:
    path = tmp_path / "junit.xml"
    path.write_text(JUNIT)
    outcomes = read_junit(path)
    assert [(o.test, o.status) for o in outcomes] == [
        ("api_exec_test::ExecTest::test_ok", "passed"),
        ("api_exec_test::ExecTest::test_bad", "failed"),
        ("api_swarm_test::SwarmTest::test_init", "error"),
        ("api_exec_test::ExecTest::test_skip", "skipped"),
    ]
    assert outcomes[1].message == "AssertionError: assert 1 == 2"


def test_the_verdict_fails_on_unlisted_failures_and_on_listed_passes() -> None:
    outcomes = [Outcome("f::C::a", "f", "failed"), Outcome("f::C::b", "f", "failed"),
                Outcome("f::C::c", "f", "passed"), Outcome("f::C::d", "f", "passed")]
    expected = {"f::C::b": Expected("swarm"), "f::C::c": Expected("docker-hub"),
                "f::C::d": Expected("racy-upstream", flaky=True), "f::C::e": Expected("swarm")}
    verdict = judge(outcomes, expected, {"f"})
    assert [o.test for o in verdict.unexpected] == ["f::C::a"]
    assert verdict.fixed == ["f::C::c"]  # the flaky one may pass
    assert verdict.missing == ["f::C::e"]
    assert not verdict.ok
    assert judge(outcomes[1:2], expected, {"f"}).ok


def test_the_table_counts_per_file() -> None:
    outcomes = [Outcome("f::C::a", "f", "failed"), Outcome("f::C::b", "f", "failed"),
                Outcome("g::C::c", "g", "passed")]
    text = table(outcomes, {"f::C::b": Expected("swarm")})
    assert "f                                 2       0        0         1           1" in text
    assert "swarm mode is not offered: 1" in text


def test_the_committed_list_loads_with_known_reasons() -> None:
    expected = load_expected()
    assert expected
    assert {e.reason for e in expected.values()} <= {
        "docker-hub", "credential-helper", "busybox-image", "shared-root", "websocket",
        "racy-upstream", "swarm", "on-purpose"}
