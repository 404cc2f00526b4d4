"""Fixtures shared by the end-to-end tests that meet Cloud Run: the Admin API stand-in, the real client on it,
and the clock and progress lines the code under test is handed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bot import cloudrun
from tests.cloudrun_support import FakeTime
from tests.standins.cloudrun_api import CloudRunStandIn


@pytest.fixture
def api() -> Iterator[CloudRunStandIn]:
    """The Cloud Run Admin API stand-in of project p, region r, with no service yet."""
    with CloudRunStandIn(project="p", region="r") as standin:
        yield standin


@pytest.fixture
def clients(api: CloudRunStandIn) -> Iterator[cloudrun.CloudRunClients]:
    """The real google-cloud-run clients, reaching the stand-in over REST."""
    made = cloudrun.make_clients(endpoint=api.url)
    yield made
    made.close()


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def lines() -> list[str]:
    """The progress lines the code under test writes."""
    return []
