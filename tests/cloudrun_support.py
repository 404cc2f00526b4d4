"""Helpers shared by the tests of bot.cloudrun and bot.rollout (real google-cloud-run client, Admin API stand-in)."""

from __future__ import annotations

from typing import Any

from bot import cloudrun
from bot.results import Target
from bot.settings import CloudRunSettings, VersionSettings
from tests.standins.cloudrun_api import CloudRunStandIn, Route

OLD = "chat-00001-old"
NEW = "chat-00002-new"
SERVICE_URL = "https://chat-abc123xyz-ew.a.run.app"
TAG_URL = "https://pr-7---chat-abc123xyz-ew.a.run.app"
REPO = "europe-docker.pkg.dev/p/repo/chat"
DIGEST_A = "sha256:" + "a" * 64
DIGEST_B = "sha256:" + "b" * 64


class FakeTime:
    """A clock that only moves when the code under test sleeps; records the backoff sequence."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now


def cloud_run_flags(api: CloudRunStandIn) -> list[str]:
    """The command line's flags naming service chat of project p, region r, on the stand-in."""
    return ["--project", "p", "--region", "r", "--service", "chat", "--cloud-run-endpoint", api.url]


def settings(**overrides: Any) -> CloudRunSettings:
    values: dict[str, Any] = {
        "project": "p",
        "region": "r",
        "service": "chat",
        "ready_timeout_s": 60,
        "retry_timeout_s": 2,
    }
    return CloudRunSettings(**{**values, **overrides})


def resolve(
    clients: cloudrun.CloudRunClients,
    fake_time: FakeTime,
    lines: list[str],
    *,
    version: VersionSettings | None = None,
    **overrides: Any,
) -> cloudrun.Resolution:
    return cloudrun.resolve(
        clients=clients,
        settings=settings(**overrides),
        version=version or VersionSettings(expected="0123abc"),
        progress=lines.append,
        sleep=fake_time.sleep,
        clock=fake_time.clock,
    )


def deploy_tagged(api: CloudRunStandIn, **new: Any) -> None:
    """The usual preview deploy: the old revision serves 100%, the new one 0% behind tag pr-7."""
    api.add_revision("chat", OLD, image=f"{REPO}@{DIGEST_A}")
    api.add_revision("chat", NEW, **{"image": f"{REPO}@{DIGEST_B}", **new})
    api.set_traffic("chat", [Route(OLD, 100), Route(NEW, 0, tag="pr-7", uri=TAG_URL)])


def deploy_revisions(api: CloudRunStandIn, *revisions: str, traffic: list[Route]) -> None:
    """The service chat's revisions, created oldest first, and its traffic."""
    for revision in revisions:
        api.add_revision("chat", revision)
    api.set_traffic("chat", traffic)


def resolved(api: CloudRunStandIn, clients: cloudrun.CloudRunClients) -> Target:
    return resolve(clients, FakeTime(), []).target
