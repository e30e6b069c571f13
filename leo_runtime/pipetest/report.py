"""What `leo test` prints: a line per test as it runs, each miss with its place and both sides;
a JSON document (``--json``); JUnit XML (``--junit FILE``, one ``testcase`` per test)."""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from collections.abc import Sequence
from typing import Any

from ..errors import Problem
from .expect import Miss, shown_items
from .session import Outcome, Session
from .spec import CaseFile, shown_path

_MARKS = {"passed": "PASS", "failed": "FAIL", "skipped": "SKIP"}


def file_header(case_file: CaseFile) -> str:
    return f"{case_file.shown} (testing {shown_path(case_file.pipelines)})"


def outcome_lines(outcome: Outcome) -> list[str]:
    """A test's line, then for a failure each miss: where and what, then the events."""
    took = f" ({outcome.seconds * 1000:.0f} ms)" if outcome.status != "skipped" else f" ({outcome.case.skip})"
    lines = [f"  {_MARKS[outcome.status]}  {outcome.case.name}{took}"]
    for miss in outcome.misses:
        lines.extend(miss_lines(miss))
    return lines


def miss_lines(miss: Miss, indent: str = "    ") -> list[str]:
    lines = [f"{indent}{miss.where}: {miss.message}"]
    inner = indent + "  "
    if miss.diff:
        lines.append(f"{inner}diff (- expected, + actual):")
        lines.extend(f"{inner}  {line}" for line in miss.diff)
        return lines
    if miss.expected is not None:
        lines.append(f"{inner}expected ({len(miss.expected)}):")
        lines.extend(f"{inner}  {line}" for line in shown_items(miss.expected))
    if miss.actual is not None:
        lines.append(f"{inner}actual ({len(miss.actual)}):" if miss.actual else f"{inner}actual: nothing")
        lines.extend(f"{inner}  {line}" for line in shown_items(miss.actual))
    return lines


def summary_line(session: Session) -> str:
    counts = session.counts
    total = len(session.outcomes)
    parts = [f"{counts['passed']} passed", f"{counts['failed']} failed"]
    if counts["skipped"]:
        parts.append(f"{counts['skipped']} skipped")
    noun = "test" if total == 1 else "tests"
    return f"{total} {noun}: {', '.join(parts)} in {session.seconds:.2f} s"


def session_json(session: Session) -> dict[str, Any]:
    files = []
    for case_file in session.files:
        outcomes = [outcome for outcome in session.outcomes if outcome.case.file is case_file]
        files.append({"file": case_file.shown, "pipelines": shown_path(case_file.pipelines),
                      "tests": [outcome.to_dict() for outcome in outcomes]})
    counts = session.counts
    return {"passed": counts["failed"] == 0, "summary": {**counts, "total": len(session.outcomes),
                                                         "seconds": round(session.seconds, 3)},
            "files": files, "updated": session.updated}


def problems_json(problems: list[Problem]) -> dict[str, Any]:
    return {"valid": False, "problems": [
        {"file": p.file, "line": p.line, "column": p.column, "severity": p.severity, "message": p.message}
        for p in problems
    ]}


def junit_xml(session: Session | None, problems: Sequence[Problem] = ()) -> str:
    """JUnit XML: a ``testsuite`` per file, a ``testcase`` per test (``failure`` with the misses,
    ``skipped``); an invalid test file is a ``testcase`` with an ``error``."""
    root = ElementTree.Element("testsuites", name="leo test")
    for case_file_name, outcomes in _by_file(session):
        failures = sum(1 for outcome in outcomes if outcome.status == "failed")
        skipped = sum(1 for outcome in outcomes if outcome.status == "skipped")
        suite = ElementTree.SubElement(root, "testsuite", name=case_file_name, tests=str(len(outcomes)),
                                       failures=str(failures), errors="0", skipped=str(skipped),
                                       time=f"{sum(outcome.seconds for outcome in outcomes):.3f}")
        for outcome in outcomes:
            line, _ = outcome.case.location()
            case = ElementTree.SubElement(suite, "testcase", classname=case_file_name, name=outcome.case.name,
                                          file=case_file_name, line=str(line), time=f"{outcome.seconds:.3f}")
            if outcome.status == "skipped":
                ElementTree.SubElement(case, "skipped", message=outcome.case.skip or "skipped")
            elif outcome.misses:
                failure = ElementTree.SubElement(case, "failure", message=f"{outcome.misses[0].where}: "
                                                 f"{outcome.misses[0].message}")
                failure.text = "\n".join(line for miss in outcome.misses for line in miss_lines(miss, ""))
    if problems:
        by_file: dict[str, list[Problem]] = {}
        for problem in problems:
            by_file.setdefault(problem.file, []).append(problem)
        for name, found in by_file.items():
            suite = ElementTree.SubElement(root, "testsuite", name=name, tests="1", failures="0", errors="1")
            case = ElementTree.SubElement(suite, "testcase", classname=name, name="the test file is valid", file=name)
            error = ElementTree.SubElement(case, "error", message=str(found[0]))
            error.text = "\n".join(map(str, found))
    ElementTree.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ElementTree.tostring(root, encoding="unicode") + "\n"


def _by_file(session: Session | None) -> list[tuple[str, list[Outcome]]]:
    if session is None:
        return []
    return [(case_file.shown, [outcome for outcome in session.outcomes if outcome.case.file is case_file])
            for case_file in session.files]
