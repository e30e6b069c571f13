"""Schemathesis against a real `leo run`: requests generated from /openapi.json (valid and not)
never get a 5xx, and every status they get is one the document lists for the route. Bounded: a
fixed seed and a few examples per route (about ten seconds on a quiet machine)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from ..conftest import Project, leo
from .test_webhooks_e2e import PARTNER_PROJECT

ADMIN = "fuzz-admin-token"
SCHEMATHESIS = str(Path(sys.executable).with_name("st"))


def fuzz(base: str, token: str, where: str, cwd: Path, *selection: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SCHEMATHESIS, "run", f"{base}/openapi.json", "--checks", "not_a_server_error,status_code_conformance",
         "-H", f"Authorization: Bearer {token}", "--max-examples", "8", "--seed", "17",
         "--request-timeout", "70", "--no-color", "--warnings", "off", "--generation-database", "none",
         "--report-dir", str(cwd / where), *selection],
        cwd=cwd, capture_output=True, text=True, timeout=400,
    )


@pytest.mark.timeout(400)
def test_generated_requests_never_get_a_5xx_or_an_undocumented_status(project: Project, leo_run, tmp_path: Path) -> None:
    project.write(PARTNER_PROJECT)
    run = leo_run(project, "--port", "0", env={"LEO_ADMIN_TOKEN": ADMIN})
    run.wait_ready()
    made = leo("partners", "create", "acme", "--json", "-f", str(project.file))
    token = json.loads(made.stdout)["token"]
    with httpx.Client(base_url=run.http, headers={"Authorization": f"Bearer {ADMIN}"}) as admin:
        assert admin.post("/v1/admin/objects/inventory", json=[{"sku": "SKU-1", "quantity": 1}]).status_code == 200
    partner = fuzz(run.http, token, "partner", tmp_path, "--exclude-path-regex", "^/v1/admin")
    assert partner.returncode == 0, partner.stdout[-6000:] + partner.stderr[-2000:]
    # The operator's routes last: they may revoke the partner whose token the pass above used.
    operator = fuzz(run.http, ADMIN, "admin", tmp_path, "--include-path-regex", "^/v1/admin")
    assert operator.returncode == 0, operator.stdout[-6000:] + operator.stderr[-2000:]
    assert "passed" in partner.stdout and "passed" in operator.stdout
    assert run.stop() == 0
