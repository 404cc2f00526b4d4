"""bot.idtoken: where a private service's ID token comes from, and one clear line when it cannot come."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot import idtoken
from bot.errors import ExitCode
from tests.standins.google_front_end import TokenEndpoint, id_token_for, service_account_key

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
