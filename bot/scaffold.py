"""`golden-path init`: a commented config file and an example workflow in a repository, never overwriting."""

from __future__ import annotations

from pathlib import Path

from bot import profiles
from bot.errors import UsageError

CONFIG_PATH = Path(".github/golden-path.yml")
WORKFLOW_PATH = Path(".github/workflows/golden-path.yml")

CONFIG = """\
# yaml-language-server: $schema=https://raw.githubusercontent.com/your-org/golden-path/main/schema/golden-path.schema.json
# golden-path configuration. Every key has a default from the reference protocol: keep only what differs.
# Check it without touching the network: `golden-path validate`. Every key: `golden-path schema`.

service: chat-backend            # the name in reports, markers and fingerprints

cloud_run:                       # the revision under test (or give `url:` instead)
  project: my-project
  region: us-central1
  service: chat-backend
  # tag: pr-42                   # the workflow usually passes the tag input instead
  ready_timeout_s: 300           # how long to wait for the revision to become ready

auth:
  mode: hs256                    # hs256 | rs256 | token | login | none
  secret_env: JWT_SECRET_KEY     # secrets come from the environment, never from this file

# The protocol (health, the WebSocket and its token, the frames sent, the events expected, the answer) comes from
# a built-in profile: `golden-path profile show {profile}` prints every key. Override here only what differs, e.g.
# health: {{paths: [/healthz]}}
# websocket: {{path: /ws, token: {{subprotocols: [], header: {{name: Authorization, format: "Bearer {{token}}"}}}}}}
journey:
  profile: {profile}{padding}# {profiles}
  users: 5                       # simulated users at once; any event delivered to the wrong one is P0
  sla_s: 45

targets:                         # p95 targets in ms; a miss warns unless gate.fail_on is `any`
  api_ms: 100
  handshake_ms: 50
  total_ms: 1000

impact:
  journey: AI chat
  # arr_at_risk: 1200000         # revenue that depends on this journey, for the impact line

github:
  publish: true                  # the PR comment and P0 issues
  comment: true
  issues: true
  labels: [P0, golden-path]
  close_after_passes: 2

gate:
  fail_on: correctness           # correctness | any | p0 (version skew always fails)
  on_pass: none                  # promote: send 100% of traffic to the tested revision
  on_fail: none                  # rollback: keep traffic on the previous ready revision
"""

WORKFLOW = """\
# Runs golden-path against the revision a pull request deployed (tagged, without traffic).
name: golden-path

on:
  pull_request:

concurrency:
  group: golden-path-chat-backend
  cancel-in-progress: false

permissions:
  contents: read
  pull-requests: write
  issues: write
  id-token: write

jobs:
  verify:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - uses: google-github-actions/auth@v2
        with:
          workload_identity_provider: ${{ vars.WIF_PROVIDER }}
          service_account: ${{ vars.DEPLOY_SA }}
      - id: golden-path
        uses: your-org/golden-path@v1
        with:
          tag: pr-${{ github.event.pull_request.number }}
          jwt-secret: ${{ secrets.JWT_SECRET_KEY }}
      - if: always()
        run: echo "golden-path verdict ${{ steps.golden-path.outputs.verdict }}"
"""


def config_text(profile: str) -> str:
    """The commented config, starting from the built-in ``profile`` (``UsageError`` for an unknown one)."""
    found = profiles.canonical(profile)
    if found is None:
        raise UsageError(f"unknown profile {profile!r}; expected one of: {', '.join(profiles.names())}")
    padding = " " * max(1, 22 - len(found))
    return CONFIG.format(profile=found, padding=padding, profiles=" | ".join(profiles.names()))


def init(root: Path, *, profile: str | None = None) -> list[Path]:
    """Write both files under ``root``; when either exists, write nothing and say which (``UsageError``)."""
    files = {CONFIG_PATH: config_text(profile or profiles.DEFAULT), WORKFLOW_PATH: WORKFLOW}
    existing = [root / path for path in files if (root / path).exists()]
    if existing:
        names = ", ".join(str(path) for path in existing)
        raise UsageError(f"not overwriting {names}: nothing was changed (move it away to start again)")
    written = []
    for path, text in files.items():
        target = root / path
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot write {target}: {exc.strerror or exc}") from None
        written.append(target)
    return written
