"""`server.limits` in pipelines.yaml: defaults, sizes with units, located errors, the schema."""

from __future__ import annotations

from pathlib import Path

import pytest

from leo_runtime.config import PipelinesFile, json_schema, load_config
from leo_runtime.errors import ConfigError


def test_the_defaults_bound_every_partner() -> None:
    limits = PipelinesFile(version=1).server.limits
    assert (limits.streams, limits.webhooks, limits.partitions, limits.all_mode_min_interval, limits.batch_bytes) == (
        20, 100, 64, 300.0, 1024**3)


@pytest.mark.parametrize(("given", "bytes_"), [
    (1024, 1024), ("500MB", 500_000_000), ("1GiB", 1024**3), ("1.5 KiB", 1536), ("10 kb", 10_000), ("0", 0),
])
def test_batch_bytes_takes_bytes_or_a_size_with_a_unit(given: object, bytes_: int) -> None:
    model = PipelinesFile.model_validate({"version": 1, "server": {"limits": {"batch_bytes": given}}})
    assert model.server.limits.batch_bytes == bytes_


@pytest.mark.parametrize(("limits", "where", "says"), [
    ("{batch_bytes: 12XB}", "server.limits.batch_bytes", "is not a size"),
    ("{partitions: 65}", "server.limits.partitions", "64"),
    ("{streams: -1}", "server.limits.streams", "0"),
    ("{all_mode_min_interval: P8D}", "server.limits.all_mode_min_interval", "604800"),
    ("{stream: 5}", "server.limits", "stream"),
])
def test_a_bad_limit_is_a_located_error(tmp_path: Path, limits: str, where: str, says: str) -> None:
    (tmp_path / "pipelines.yaml").write_text(f"version: 1\nserver:\n  limits: {limits}\n")
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "pipelines.yaml")
    message = str(info.value)
    assert "pipelines.yaml:3:" in message and where in message and says in message, message


def test_the_schema_describes_the_limits() -> None:
    limits = json_schema()["$defs"]["LimitsConfig"]["properties"]
    assert set(limits) == {"streams", "webhooks", "partitions", "all_mode_min_interval", "batch_bytes"}
    assert {"type": "string", "description": "a size with a unit: 500MB, 1GiB"} in limits["batch_bytes"]["anyOf"]
