"""How long `leo --help` and `leo status` take, each a whole process, on the bundled project.

Targets (issue 15): `leo --help` < 0.3 s and `leo status` < 0.5 s, median of 7. Printed beside
`python -c pass` (the interpreter's own start) and `python -c "import fastapi, uvicorn"` (what
the CLI paid for the server before its imports were made lazy), all measured in the same run,
interleaved so that a busy machine slows each alike. The CPU seconds of each process are printed
too: on a loaded machine they move less than the wall time.

    python benchmarks/cli_startup.py [--runs 7]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

from harness import bundled_project, leo_command, start_leo_project, stop, timed_process, user_env

LIMITS = {"leo --help": 0.3, "leo status": 0.5}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    runs = parser.parse_args().runs
    with tempfile.TemporaryDirectory() as tmp:
        project = bundled_project(Path(tmp))
        proc, _ = start_leo_project(project)  # the store as `leo run` leaves it: bots, checkpoints, queues
        stop(proc)
        env = user_env()
        leo = leo_command()
        commands = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "python -c 'import fastapi, uvicorn'": [sys.executable, "-c", "import fastapi, uvicorn"],
            "leo --help": [*leo, "--help"],
            "leo status": [*leo, "status"],
        }
        for argv in commands.values():  # warm-up: bytecode written, files in the page cache
            timed_process(argv, project, env)
        walls: dict[str, list[float]] = {name: [] for name in commands}
        cpus: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(runs):
            for name, argv in commands.items():
                wall, cpu = timed_process(argv, project, env)
                walls[name].append(wall)
                cpus[name].append(cpu)
    print(f"median of {runs} whole processes on the bundled project (leo init), wall and CPU seconds:")
    for name in commands:
        wall, cpu = statistics.median(walls[name]), statistics.median(cpus[name])
        limit = LIMITS.get(name)
        verdict = f"  limit {limit:.2f} s: {'ok' if wall < limit else 'OVER'}" if limit else ""
        print(f"  {name:<38} {wall:6.3f} s wall  {cpu:6.3f} s cpu{verdict}")


if __name__ == "__main__":
    main()
