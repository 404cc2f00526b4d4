"""Configuration pieces shared by tests: the README's worked examples, read from the README so the two never
drift apart, and timing targets kept out of the way.

``QUIET_TARGETS``: for tests that judge behaviour, not speed (a shared 2-core machine is noisy; timing targets
live in benchmarks/). ``QUIET_TARGETS_YAML`` is the same as a config file's line.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

README = Path(__file__).parent.parent / "README.md"
QUIET_TARGETS = {
    "api_ms": 60000,
    "handshake_ms": 60000,
    "agent_startup_ms": 60000,
    "processing_ms": 60000,
    "total_ms": 60000,
}
QUIET_TARGETS_YAML = f"targets: {json.dumps(QUIET_TARGETS)}\n"  # a JSON mapping is YAML flow style


def readme_yaml(title: str) -> str:
    """The text of the YAML block that follows ``title`` in the README."""
    after = README.read_text(encoding="utf-8").split(title, 1)[1]
    return after.split("```yaml\n", 1)[1].split("```", 1)[0]


def readme_example(title: str) -> dict[str, Any]:
    """The YAML block that follows ``title`` in the README, loaded."""
    data = yaml.safe_load(readme_yaml(title))
    assert isinstance(data, dict)
    return data


def merged(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``extra`` merged in, mapping by mapping (a config file over a profile's defaults)."""
    out = dict(base)
    for key, value in extra.items():
        out[key] = (
            merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
        )
    return out
