"""The partner API against a real `leo run` process, driven by the real CLI beside it."""

from __future__ import annotations

import json

import httpx
import pytest

from ..conftest import OBJECTS_PIPELINE, STORES, Project, leo, wait_until

ADMIN = "e2e-admin-token-7f3a"
NDJSON = {"Content-Type": "application/x-ndjson"}
PROJECT = OBJECTS_PIPELINE


@pytest.mark.parametrize("project", STORES, indirect=True)
def test_partner_created_by_the_cli_reads_objects_sees_304_and_429_and_is_refused_once_revoked(
    project: Project, leo_run
) -> None:
    project.write(PROJECT)
    run = leo_run(project, "--port", "0", env={"LEO_ADMIN_TOKEN": ADMIN})
    run.wait_ready()
    base = run.http
    admin = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {ADMIN}"})
    items = [{"sku": "SKU-1", "quantity": 4, "warehouse": "NYC"}, {"sku": "SKU-2", "quantity": 9, "warehouse": "SFO"}]
    # A malformed body first: refused with its line, nothing written, the runtime stays healthy.
    bad = admin.post("/v1/admin/objects/inventory", content=b'{"sku": "SKU-1"}\n{"sku": \n', headers=NDJSON)
    assert bad.status_code == 422 and bad.json()["detail"].startswith("body:2: not JSON")
    assert httpx.get(f"{base}/healthz").json()["status"] == "ok"
    assert admin.post("/v1/admin/objects/inventory", json=items).json() == {"created": 2, "updated": 0, "unchanged": 0}
    # The pipeline reads the change records the ingest wrote.
    store = project.store()
    wait_until(lambda: [e.payload["key"] for e in store.read("inventory.low_stock", 0)] == ["SKU-1"], what="the filter")

    created = leo("partners", "create", "acme", "--scope", '{"warehouse": "NYC"}', "--json", "-f", str(project.file))
    assert created.returncode == 0, created.stderr
    token = json.loads(created.stdout)["token"]
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}) as partner:
        first = partner.get("/v1/objects/inventory/SKU-1")
        assert first.status_code == 200
        assert first.json()["data"] == {"sku": "SKU-1", "quantity": 4, "warehouse": "NYC"}
        assert first.headers["ratelimit-limit"] == "10"
        again = partner.get("/v1/objects/inventory/SKU-1", headers={"If-None-Match": first.headers["etag"]})
        assert again.status_code == 304
        assert partner.get("/v1/objects/inventory/SKU-2").status_code == 404  # outside the scope

        # Real time: keep calling until the bucket is empty (no timing is asserted).
        answers: list[httpx.Response] = []
        wait_until(lambda: answers.append(partner.get("/v1/objects/inventory/SKU-1")) or answers[-1].status_code == 429,
                   what="a 429")
        refused = answers[-1]
        assert refused.headers["content-type"] == "application/problem+json"
        assert int(refused.headers["retry-after"]) >= 1
        assert refused.headers["ratelimit-remaining"] == "0"

        revoked = leo("partners", "revoke", "acme", "-f", str(project.file))
        assert revoked.returncode == 0, revoked.stderr
        # Refused on the very next request: no cache outlives a revocation by another process.
        assert partner.get("/v1/objects/inventory/SKU-1").status_code == 401

    made = admin.post("/v1/admin/partners", json={"name": "globex"})
    assert made.status_code == 201
    listed = leo("partners", "list", "--json", "-f", str(project.file))
    assert [p["name"] for p in json.loads(listed.stdout)] == ["acme", "globex"]
    admin.close()
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {made.json()['token']}"}) as globex:
        assert globex.get("/v1/objects/inventory/SKU-2").status_code == 200
    assert run.stop() == 0
    assert ADMIN not in run.log() and token not in run.log()


def test_admin_routes_are_off_when_leo_run_has_no_admin_token(project: Project, leo_run) -> None:
    project.write(PROJECT)
    run = leo_run(project, "--port", "0", env={"LEO_ADMIN_TOKEN": ""})
    run.wait_ready()
    answer = httpx.post(f"{run.http}/v1/admin/partners", json={"name": "x"}, headers={"Authorization": "Bearer x"})
    assert answer.status_code == 403
    assert "set LEO_ADMIN_TOKEN" in answer.json()["detail"]
    assert run.stop() == 0


def test_a_reload_that_changes_object_types_is_served_by_the_api(project: Project, leo_run) -> None:
    # The API takes object types (and their key fields) from the file it runs with: a reload
    # that adds a type, or changes a key field, is what the next request sees.
    project.write(PROJECT)
    run = leo_run(project, "--port", "0", env={"LEO_ADMIN_TOKEN": ADMIN})
    run.wait_ready()
    admin = {"Authorization": f"Bearer {ADMIN}", **NDJSON}
    before = httpx.post(f"{run.http}/v1/admin/objects/invoice", headers=admin, content=b'{"number": "I-1"}\n')
    assert before.status_code == 422 and "unknown object type 'invoice'" in before.text
    project.file.write_text(PROJECT.replace("  inventory: {key: sku}\n", "  inventory: {key: code}\n  invoice: {key: number}\n"))
    wait_until(lambda: "reloaded" in run.log(), what="the reload")
    after = httpx.post(f"{run.http}/v1/admin/objects/invoice", headers=admin, content=b'{"number": "I-1"}\n')
    assert after.status_code == 200, after.text
    keyed = httpx.post(f"{run.http}/v1/admin/objects/inventory", headers=admin, content=b'{"sku": "A"}\n')
    assert keyed.status_code == 422 and "code" in keyed.text  # the new key field
