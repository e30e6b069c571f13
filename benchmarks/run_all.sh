#!/bin/bash
# Every benchmark, one after the other, each with the load average it started under (what
# benchmarks/README.md's "Latest figures" are). Needs the project's venv with the bench extras
# (pip install -e '.[bench]'), and PostgreSQL on 127.0.0.1:5432 for the --store postgresql runs.
#   benchmarks/run_all.sh > figures.txt
cd "$(dirname "$0")/.." || exit 1
python=${PYTHON:-.venv/bin/python}
run() {
  echo "=== python benchmarks/$*"
  echo "(load average: $(cut -d' ' -f1-3 /proc/loadavg))"
  timeout 900 "$python" benchmarks/"$@" 2>&1 | grep -v "^py-spy>" | tail -40
  echo
}
run cli_startup.py
run run_ready.py --runs 7
run queue_throughput.py --repeat 3
run webhooks.py --only delivery --rounds 5
run stream_costs.py
run streams.py
run combined.py --workers 2 --profile
run combined.py --profile
run combined.py --workers 2 --partners 5
run wakeups.py
run wakeups.py --store postgresql
run get_object.py
run idle_cpu.py
run edge_flood.py
run change_detection.py
run failover.py --store postgresql --other-host --ttl 3
run pg_pipeline.py --objects 300000
run cluster_scale.py
run leo_test_speed.py
