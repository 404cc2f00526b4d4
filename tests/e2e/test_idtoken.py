"""bot.idtoken: where a private service's ID token comes from, and one clear line when it cannot come."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot import idtoken
from bot.errors import ExitCode
from bot.reference.server import ReferenceServer
from tests.standins.google_front_end import (
    MetadataServer,
    TokenEndpoint,
    id_token_for,
    private,
    service_account_key,
    valid_for,
)

AUDIENCE = "https://chat-abc-ew.a.run.app"
EMAIL = "golden-path@p.iam.gserviceaccount.com"


def test_obtain__a_passed_token_is_used_as_is_and_names_its_identity() -> None:
    token = id_token_for(audience=AUDIENCE, email=EMAIL)

    got = idtoken.obtain(audience=AUDIENCE, passed=token, credentials_file=None)

    assert (got.token, got.identity, got.audience) == (token, EMAIL, AUDIENCE)
    assert token not in repr(got)


def test_obtain__a_service_account_key_mints_a_token_for_the_audience(tmp_path: Path) -> None:
    with TokenEndpoint() as google:
        key = service_account_key(tmp_path / "sa.json", token_uri=google.token_uri, email=EMAIL)
        got = idtoken.obtain(audience=AUDIENCE, passed=None, credentials_file=str(key))

    (assertion,) = google.assertions
    assert (assertion["iss"], assertion["target_audience"]) == (EMAIL, AUDIENCE)
    assert (got.identity, got.audience) == (EMAIL, AUDIENCE)
    assert got.source == f"the service-account key {key}"


def test_obtain__an_unreachable_token_endpoint_is_one_line(tmp_path: Path) -> None:
    google = TokenEndpoint().start()
    token_uri = google.token_uri
    google.stop()  # nothing listens there any more
    key = service_account_key(tmp_path / "sa.json", token_uri=token_uri, email=EMAIL)

    with pytest.raises(idtoken.IdTokenError) as caught:
        idtoken.obtain(audience=AUDIENCE, passed=None, credentials_file=str(key))

    assert caught.value.exit_code is ExitCode.INFRASTRUCTURE
    assert "google-github-actions/auth" in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            {"type": "authorized_user", "client_id": "x", "client_secret": "y", "refresh_token": "z"},
            "user credentials",
        ),
        (
            {
                "type": "external_account",
                "audience": "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/gh",
                "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
                "token_url": "https://sts.googleapis.com/v1/token",
                "credential_source": {"file": "/nonexistent"},
            },
            "Workload Identity Federation without a service account",
        ),
        ("not json", "not a readable JSON credentials file"),
    ],
)
def test_obtain__credentials_that_cannot_mint_id_tokens_say_why(
    tmp_path: Path, content: object, message: str
) -> None:
    path = tmp_path / "adc.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))

    with pytest.raises(idtoken.IdTokenError, match=message) as caught:
        idtoken.obtain(audience=AUDIENCE, passed=None, credentials_file=str(path))

    assert "GOOGLE_APPLICATION_CREDENTIALS" in str(caught.value)


# -- the metadata server (Cloud Run, Compute Engine, Cloud Build, self-hosted runners on GCE) ----------------------
# google-auth reads GCE_METADATA_HOST when it is imported, so these runs are processes of their own, pointed at a
# stand-in on 127.0.0.1 (the suite's own processes point it at a closed port: tests/conftest.py).

SECRET = "metadata-test-secret-0123456789abcdefgh"


def _check_on_google_cloud(url: str, metadata: str, out: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "GOOGLE_APPLICATION_CREDENTIALS"}
    env |= {"GCE_METADATA_HOST": metadata, "GCE_METADATA_IP": metadata, "JWT_SECRET_KEY": SECRET}
    argv = [sys.executable, "-m", "bot", "check", "--url", url, "--private", "--no-publish", "--users", "1"]
    return subprocess.run(
        [*argv, "--output-dir", str(out)], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_main__on_google_cloud_the_metadata_server_gives_the_id_token_a_private_service_accepts(
    tmp_path: Path,
) -> None:
    backend = ReferenceServer(secret=SECRET)
    front = private(backend, valid_for(lambda: backend.url))
    with backend, MetadataServer(email=EMAIL) as metadata:
        done = _check_on_google_cloud(backend.url, metadata.host, tmp_path)

    assert done.returncode == 0, done.stderr
    assert "from the metadata server" in done.stderr and f"(audience {backend.url})" in done.stderr
    identity = [q for p, q in metadata.requests if p.endswith("/service-accounts/default/identity")]
    assert identity and identity[0]["audience"] == backend.url and identity[0]["format"] == "full"
    assert front.seen and all(s.id_token for s in front.seen)  # health and the upgrade both carried it
    assert {s.kind for s in front.seen} == {"http", "websocket"}
    saved = (tmp_path / "results.json").read_text() + (tmp_path / "report.md").read_text()
    assert front.seen[0].id_token not in saved  # the ID token is a secret: redacted from everything kept


def test_main__a_metadata_server_without_a_service_account_is_one_line_exit_3(tmp_path: Path) -> None:
    backend = ReferenceServer(secret=SECRET)
    front = private(backend, valid_for(lambda: backend.url))
    with backend, MetadataServer(email=EMAIL, identity=False) as metadata:
        done = _check_on_google_cloud(backend.url, metadata.host, tmp_path)

    assert done.returncode == ExitCode.INFRASTRUCTURE, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("golden-path: error:")]
    assert len(errors) == 1 and "metadata server" in errors[0] and "google-github-actions/auth" in errors[0]
    assert "Traceback" not in done.stderr and front.seen == []  # nothing probed without a token
