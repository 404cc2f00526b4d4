"""The built-in protocol profiles: YAML data files shipped in the package, readable and copyable by users.

A profile holds the ``health``, ``journey`` and transport keys (``websocket``, or ``transport`` and ``sse``) of
a config file; a config names one with
``journey.profile`` and overrides only what differs.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

import yaml

from bot.errors import UsageError

DEFAULT = "reference"
ALIASES = {"start-agent": "reference"}  # the reference profile's earlier name


def names() -> tuple[str, ...]:
    """Every built-in profile, the default first."""
    found = sorted(
        p.name.removesuffix(".yml") for p in resources.files(__name__).iterdir() if p.name.endswith(".yml")
    )
    return (DEFAULT, *(n for n in found if n != DEFAULT))


def canonical(name: str) -> str | None:
    """The profile's file name for ``name`` (aliases resolved), None when there is no such profile."""
    name = ALIASES.get(name, name)
    return name if name in names() else None


def text(name: str) -> str:
    """The profile as its YAML text, to print or write out (``golden-path profile show NAME``).

    Raises:
        KeyError: no such profile.
    """
    found = canonical(name)
    if found is None:
        raise KeyError(name)
    return resources.files(__name__).joinpath(f"{found}.yml").read_text(encoding="utf-8")


def load(name: str) -> dict[str, Any]:
    """The profile as config data (health, websocket and journey sections)."""
    data = yaml.safe_load(text(name))
    assert isinstance(data, dict), f"built-in profile {name} is not a mapping"
    return data


def show(name: str | None) -> str:
    """``golden-path profile show [NAME]``: the profile's YAML text, or the list of profiles without a name.

    Raises:
        UsageError: no such profile, naming the ones there are.
    """
    if name is None:
        return "".join(f"{found}\n" for found in names())
    try:
        return text(name)
    except KeyError:
        raise UsageError(f"unknown profile {name!r}; expected one of: {', '.join(names())}") from None
