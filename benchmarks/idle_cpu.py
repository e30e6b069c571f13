"""CPU used by an idle `leo run` (bundled example, HTTP API on), as a share of one core.

Target: under 2% of one core. Reads the process's own CPU time from /proc (Linux), so the
figure does not depend on how busy the rest of the machine is.

    python benchmarks/idle_cpu.py [--seconds 20]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LIMIT = 0.02
REPO = Path(__file__).resolve().parents[1]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    leo = shutil.which("leo", path=str(Path(sys.executable).parent)) or "leo"
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp) / "idle"
        subprocess.run([leo, "init", str(project)], check=True, capture_output=True)
        log = (Path(tmp) / "run.log").open("wb")
        proc = subprocess.Popen([leo, "run", "--port", "0"], cwd=project, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 60
            while "running " not in (Path(tmp) / "run.log").read_text():
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise SystemExit("leo run did not start:\n" + (Path(tmp) / "run.log").read_text())
                time.sleep(0.1)
            time.sleep(3)  # let the sample data flow through; then it is idle
            start_cpu, start = cpu_seconds(proc.pid), time.monotonic()
            time.sleep(args.seconds)
            used = cpu_seconds(proc.pid) - start_cpu
            elapsed = time.monotonic() - start
        finally:
            proc.terminate()
            proc.wait(30)
            log.close()
    share = used / elapsed
    print(f"idle leo run: {used:.3f}s CPU in {elapsed:.1f}s = {share:.2%} of one core "
          f"(limit {LIMIT:.0%}) -> ratio {share / LIMIT:.2f} of the limit -> {'PASS' if share < LIMIT else 'FAIL'}")


if __name__ == "__main__":
    main()
