"""golden-path: verify a freshly deployed Cloud Run revision of a real-time AI chat backend."""

from __future__ import annotations

import sys
from pathlib import Path


def tool_version() -> str:
    # The installed distribution's directory names its version: found without importlib.metadata (~40 ms).
    for entry in sys.path:
        for found in Path(entry or ".").glob("golden_path-*.dist-info"):
            return found.name.removeprefix("golden_path-").removesuffix(".dist-info")
    from importlib import metadata

    try:
        return metadata.version("golden-path")
    except metadata.PackageNotFoundError:
        return "0+unknown"
