"""The deployed revision and what is done with the verdict: Cloud Run coordinates, the version and health
it must report, load, targets, baseline and deadlines, the report, GitHub, the traffic gate and its logs.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from bot import hosts
from bot.settings.base import (
    Section,
    local_path,
    valid_expression,
    valid_path,
)


class CloudRunSettings(Section):
    project: str | None = None
    """The Google Cloud project of the service; project, region and service go together (all or none)."""
    region: str | None = None
    """The Cloud Run region of the service, e.g. us-central1."""
    service: str | None = None
    """The Cloud Run service whose revision is tested; its URL is the tested URL unless `url` or `tag` says
    otherwise."""
    revision: str | None = None
    """The revision to test, by name; default: the service's latest created revision."""
    endpoint: str | None = None
    """A custom Cloud Run Admin API endpoint (scheme and host), e.g. http://127.0.0.1:8123 for a stand-in;
    default: Google's."""
    ready_timeout_s: float = Field(default=300, gt=0, le=3600)
    """Seconds to wait for the revision to become ready; one that fails or is not ready by then is a
    finding."""
    retry_timeout_s: float = Field(default=30, gt=0, le=600)
    """Seconds one Cloud Run API call may spend retrying transient errors (429, 5xx, lost connections),
    honouring Retry-After."""
    tag: str | None = None
    """Select the revision by its traffic tag (e.g. pr-7) and test its tag URL."""
    operation_timeout_s: float = Field(default=300, gt=0, le=3600)
    """Seconds a promote or rollback's long-running operation may take."""
    private: bool = False
    """A private service (no --allow-unauthenticated): send a Google-signed ID token (audience: the service
    URL) as X-Serverless-Authorization. A token passed in GOLDEN_PATH_ID_TOKEN / the id-token input
    turns it on."""
    audience: str | None = None
    """The ID token's audience (private services); default: the service URL (or the tested URL)."""
    min_session_s: float = Field(default=900, ge=0, le=3600)
    """The session length users expect: a request timeout shorter than this is `request-timeout-short` (0:
    off)."""
    rollback_to: str | None = None
    """A known-good traffic tag (e.g. stable) a rollback may send traffic to. Without it a rollback goes
    only to the revision that served before this run (traffic-before), and is refused (exit 3) when
    there is none."""

    @property
    def configured(self) -> bool:
        return bool(self.project or self.region or self.service)

    @field_validator("rollback_to")
    @classmethod
    def _traffic_tag(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"[a-z]([a-z0-9-]{0,44}[a-z0-9])?", v):
            raise ValueError(
                f"expected a Cloud Run traffic tag (lowercase letters, digits and hyphens, starting with a "
                f"letter, e.g. stable), got {v!r}"
            )
        return v

    @model_validator(mode="after")
    def _all_or_nothing(self) -> CloudRunSettings:
        given = {"project": self.project, "region": self.region, "service": self.service}
        if any(given.values()) and not all(given.values()):
            missing = ", ".join(f"cloud_run.{k}" for k, v in given.items() if not v)
            raise ValueError(f"project, region and service go together; missing {missing}")
        if self.tag and not all(given.values()):
            raise ValueError(
                f"tag {self.tag!r} selects a Cloud Run revision: it needs project, region and service"
            )
        if self.tag and self.revision:
            raise ValueError(
                f"give cloud_run.tag ({self.tag!r}) or cloud_run.revision ({self.revision!r}), not both"
            )
        if self.endpoint is not None and not re.match(r"^https?://[^/\s]+/?$", self.endpoint):
            raise ValueError(
                f"endpoint must be a scheme and host like https://run.googleapis.com, got {self.endpoint!r}"
            )
        return self


class VersionSettings(Section):
    expected: str | None = None
    """Default GITHUB_SHA in Actions; compared with the health body's `field`."""
    expected_image: str | None = None
    """An image reference with @sha256:..., or a bare sha256 digest."""
    field: str = "version"
    """Dotted path in the health JSON; `commit` and `git_sha` are tried too."""


class HealthSettings(Section):
    paths: tuple[str, ...] = ("/health",)
    """The health endpoints requested, each a path starting with '/'; every one must answer healthy."""
    ok_statuses: tuple[str, ...] = ("healthy", "ok", "ready")
    """Values of the health body's `status` that mean healthy (when `healthy` is not set)."""
    expected_service: str | None = None
    """The service name the health body should carry, when it names one. When unset, a body naming a front
    end ("frontend", "web", "ui") is reported as the host routing to the wrong service."""
    latency_samples: int = Field(default=3, ge=1, le=50)
    """Warm requests per health path for the API latency metric."""
    timeout_s: float = Field(default=10, gt=0, le=120)
    """Seconds for one health request in total, body included (timeouts.request_s bounds each read, so a
    body sent a byte a second never trips it); a slow health endpoint costs health this much, never the
    journey's time."""
    healthy: str | None = None
    """JMESPath on the health body that must be true for healthy; default: `status` is one of ok_statuses."""
    version: str | None = None
    """JMESPath on the health body to the deployed version; default: version.field, then version, commit,
    git_sha, sha."""
    service: str | None = "service"
    """JMESPath on the health body to the service's own name (compared with expected_service); null: not
    read."""

    @field_validator("paths")
    @classmethod
    def _paths(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(valid_path(p) for p in v)

    @field_validator("healthy", "version", "service")
    @classmethod
    def _expressions(cls, v: str | None) -> str | None:
        return valid_expression(v)


class LoadSettings(Section):
    users: int = Field(default=0, ge=0, le=10_000)
    """Extra load users after the journey users (or with them: concurrent); 0: no load phase."""
    concurrent: bool = False
    """Run the load users at the same time as the journey users, not after them."""


class TargetsSettings(Section):
    """Metric targets in milliseconds, compared with each metric's p95."""

    api_ms: float = Field(default=100, gt=0)
    """Target for the API (health) latency: warm health requests (ms, p95)."""
    handshake_ms: float = Field(default=50, gt=0)
    """Target for the connection handshake, e.g. the WebSocket upgrade (ms, p95)."""
    agent_startup_ms: float = Field(default=500, gt=0)
    """Target for agent startup: from sending the message to the first expected event (ms, p95)."""
    processing_ms: float = Field(default=200, gt=0)
    """Target for processing: from the first expected event to the completion event (ms, p95)."""
    total_ms: float = Field(default=1000, gt=0)
    """Target for the whole journey, login to answer (ms, p95)."""


class ImpactSettings(Section):
    journey: str | None = None
    """The journey's name in the impact statement; default: journey.name."""
    arr_at_risk: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    """Annual recurring revenue that depends on this journey, stated in the impact line; null: not stated."""
    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")
    """ISO 4217 code of arr_at_risk, e.g. USD."""
    users_description: str = "users"
    """Who is affected, as the impact statement names them (e.g. paying customers)."""


class ReportSettings(Section):
    templates_dir: Path | None = None
    """A directory of Jinja templates that replace the built-in report templates of the same name; null:
    built-in only."""
    max_comment_chars: int = Field(default=65_000, ge=5_000, le=65_536)
    """Longest PR comment or issue body written (GitHub's limit is 65,536 characters); a longer report
    drops detail until it fits."""
    history: int = Field(default=10, ge=0, le=50)
    """Past runs shown in the sticky comment's history table (0: none)."""

    @field_validator("templates_dir", mode="before")
    @classmethod
    def _templates_dir(cls, v: Any) -> Any:
        return local_path(v)


class GitHubSettings(Section):
    publish: bool = False
    """Publish to GitHub: the sticky PR comment and P0 issues (needs a token)."""
    pr: int | None = Field(default=None, ge=1)
    """The pull request to comment on; default: the event's pull request."""
    comment: bool = True
    """Write the sticky PR comment."""
    issues: bool = True
    """File, update, reopen and close P0 issues."""
    labels: tuple[str, ...] = ("P0", "golden-path")
    """Labels put on filed issues."""
    assignees: tuple[str, ...] = ()
    """GitHub users assigned to filed issues."""
    close_after_passes: int = Field(default=1, ge=1, le=100)
    """Passing runs in a row on the issue's track before an issue is closed."""
    max_retries: int = Field(default=3, ge=0, le=10)
    """Retries of a GitHub API request after a 429, a 5xx or a connection/read error, with backoff."""
    reopen_window_days: int = Field(default=30, ge=1, le=365)
    """Days after closing within which a recurrence reopens an issue; older ones stay closed and a new one
    is filed."""
    settle_s: float = Field(default=1.0, ge=0, le=30)
    """Seconds to wait after editing the sticky comment before reading it again: a concurrent run's edit
    that landed meanwhile is merged instead of lost (GitHub has no conditional edit)."""
    track: str | None = None
    """The incident track: only a pass on the same track closes its issue. Default: the tested Cloud Run
    tag, else pr-N for pull_request events, else the branch (the default branch is `production`)."""
    reopen_after_runs: int = Field(default=3, ge=1, le=100)
    """Failing runs in a row before a new issue is filed for one a person closed as not planned (or
    duplicate); that issue is never reopened, the new one links it."""
    max_list_requests: int = Field(default=30, ge=1, le=1000)
    """Requests one listing of issues may make (100 issues each); reaching it is a warning naming this key."""

    @field_validator("track")
    @classmethod
    def _track(cls, v: str | None) -> str | None:
        if v is None:
            return v
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,99}", v):
            raise ValueError(
                f"expected a track name of letters, digits, '.', '_', '-' or '/' (at most 100, e.g. production, "
                f"canary, pr-42), got {v!r}"
            )
        return v


class GateSettings(Section):
    fail_on: Literal["correctness", "any", "p0"] = "correctness"
    """Which findings fail the run (exit 1). correctness: every finding except a missed performance target
    (a warning: shared runners are noisy); any: performance too; p0: only P0 findings. Version skew
    fails under every value."""
    on_pass: Literal["none", "promote"] = "none"
    """What a passing run does to traffic: none, or promote the tested revision to 100%."""
    on_fail: Literal["none", "rollback"] = "none"
    """What a failing run does to traffic: none, or roll back to the revision that served before (or
    rollback_to)."""


class LogsSettings(Section):
    """The revision's own logs (Cloud Logging) under each finding; needs Cloud Run coordinates."""

    mode: Literal["auto", "always", "never"] = "auto"
    """When to read the revision's logs: auto (only on runs with findings), always, or never."""
    endpoint: str | None = None
    """A custom Cloud Logging API endpoint (scheme and host), e.g. http://127.0.0.1:8124 for a stand-in;
    default: Google's."""
    page_size: int = Field(default=200, ge=1, le=1000)
    """Log entries per call (at most two calls per run)."""
    budget_s: float = Field(default=10, gt=0, le=60)
    """Seconds of wall time for both calls together."""
    top_groups: int = Field(default=5, ge=1, le=20)
    """Log groups shown per finding and for the run."""
    settle_s: float = Field(default=3, ge=0, le=30)
    """Seconds to wait before reading: Logging ingests entries seconds after they are written."""

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^https?://[^/\s]+/?$", v):
            raise ValueError(
                f"endpoint must be a scheme and host like https://logging.googleapis.com, got {v!r}"
            )
        if v and v.startswith("http://") and not hosts.is_local_http(v):
            raise ValueError(
                f"plain http:// is only allowed for a local stand-in on loopback (127.0.0.1, localhost, [::1]); "
                f"use https:// for {v!r}"
            )
        return v


class BaselineSettings(Section):
    """The serving revision measured in the same run: the honest performance signal on shared runners."""

    enabled: bool = True
    """Measure the serving revision too, when the new revision is tested at its tag URL and receives no
    traffic."""
    url: str | None = None
    """The serving revision's URL; default: the service URL (while the new revision has 0% of traffic)."""
    max_ratio: float = Field(default=1.5, ge=1)
    """A p95 beyond this factor of the baseline's is a regression (if also min_delta_ms slower)."""
    min_delta_ms: float = Field(default=50, ge=0)
    """A regression must also be at least this many milliseconds slower than the baseline's p95."""

    @field_validator("url")
    @classmethod
    def _baseline_url(cls, v: str | None) -> str | None:
        if v is None:
            return v
        parts = urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"expected an http:// or https:// URL with a host, got {v!r}")
        return v.rstrip("/")


class TimeoutSettings(Section):
    connect_s: float = Field(default=10, gt=0, le=120)
    """Seconds allowed to open a TCP/TLS connection."""
    request_s: float = Field(default=10, gt=0, le=120)
    """Seconds allowed per HTTP read (each read of a body, not the whole request)."""
    run_s: float = Field(default=300, gt=0, le=3600)
    """Seconds for the whole probe: one deadline over every step."""
