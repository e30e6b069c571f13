"""`leo test` speed: a test file of 50 tests over the bundled pipelines, CLI start included.

Target: under 2 s of wall-clock time for the whole command (a real `leo test` process, as an
integrator or CI runs it). The tests are the bundled example's own (a filter, a change detector
over steps, a CSV fixture, a chain with a custom bot, a batcher with a recorded webhook_sender,
a partner webhook), repeated to 50. Also printed, measured in the same run: the CLI's start
alone (`leo version`) and wall-clock vs CPU time (on a shared machine the difference is waiting).

    python benchmarks/leo_test_speed.py [--tests 50] [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

LIMIT_SECONDS = 2.0
REPO = Path(__file__).resolve().parents[1]


def test_file(count: int, folder: Path) -> Path:
    """The bundled tests repeated to `count`, in `folder`, testing the bundled pipelines.yaml."""
    text = (REPO / "pipelines.leo-test.yaml").read_text()
    fixture = REPO / "leo_runtime" / "scaffold" / "fixtures" / "inventory-export.csv"
    text = text.replace("leo_runtime/scaffold/fixtures/inventory-export.csv", str(fixture))
    tests = yaml.safe_load(text)["tests"]
    body = text.split("tests:\n", 1)[1]
    entries = re.split(r"\n(?=  - name: )", body.strip("\n"))
    assert len(entries) == len(tests)
    lines = [f"pipelines: {os.path.relpath(REPO / 'pipelines.yaml', folder)}", "tests:"]
    for number in range(count):
        entry = entries[number % len(entries)]
        lines.append(entry.replace("  - name: ", f"  - name: {number + 1:02d}. ", 1))
    path = folder / "speed.leo-test.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def timed(command: list[str], cwd: Path) -> tuple[float, float, subprocess.CompletedProcess[str]]:
    """Wall-clock and CPU seconds (user + system, of the child) of one run of `command`."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests", type=int, default=50)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    leo = shutil.which("leo", path=str(Path(sys.executable).parent)) or "leo"
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        path = test_file(args.tests, folder)
        starts, walls, cpus = [], [], []
        for _ in range(args.runs):
            starts.append(timed([leo, "version"], folder)[0])
            wall, cpu, result = timed([leo, "test", str(path)], folder)
            if result.returncode != 0 or f"{args.tests} tests: {args.tests} passed" not in result.stdout:
                sys.exit(f"leo test failed ({result.returncode}):\n{result.stdout}{result.stderr}")
            walls.append(wall)
            cpus.append(cpu)
    best, median = min(walls), statistics.median(walls)
    print(f"leo test, {args.tests} tests over the bundled pipelines ({args.runs} runs, CLI start included):")
    print(f"  wall clock: best {best:.2f} s, median {median:.2f} s   (limit {LIMIT_SECONDS:.1f} s)")
    print(f"  CPU time:   best {min(cpus):.2f} s, median {statistics.median(cpus):.2f} s")
    print(f"  baseline, the CLI starting alone (leo version): median {statistics.median(starts):.2f} s")
    print(f"  per test, start excluded: {(median - statistics.median(starts)) / args.tests * 1000:.1f} ms")
    print("  " + ("OK: under the limit" if median < LIMIT_SECONDS else "OVER the limit (is the machine busy? see CPU time)"))


if __name__ == "__main__":
    main()
