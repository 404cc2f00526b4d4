"""bot.iam: Google's front-end refusal told apart from the app's own 401/403."""

from __future__ import annotations

import pytest

from bot import iam
from bot.results import Kind
from tests.standins.google_front_end import FRONT_END_403

FRONT_END_401 = (
    "<html><head><title>401 Unauthorized</title></head><body><h1>Error: Unauthorized</h1>"
    "<h2>Your client does not have permission to the requested URL <code>/ws</code>.</h2></body></html>"
)


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (403, FRONT_END_403.format(path="/health")),
        (401, FRONT_END_401),
        (
            401,
            "The request was not authenticated. Either allow unauthenticated invocations or set the proper "
            "Authorization header.",
        ),
    ],
)
def test_is_front_end_refusal__googles_pages(status: int, body: str) -> None:
    assert iam.is_front_end_refusal(status, body)


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (403, '{"detail": "Not authenticated"}'),  # FastAPI's own refusal
        (401, '{"error": "invalid_token"}'),
        (403, ""),  # Starlette closing before accept
        (200, FRONT_END_403.format(path="/")),  # a page *about* the error is not a refusal
        (502, FRONT_END_403.format(path="/")),
    ],
)
def test_is_front_end_refusal__the_apps_own_answers_are_not(status: int, body: str) -> None:
    assert not iam.is_front_end_refusal(status, body)


def test_denied__is_its_own_kind_with_the_status() -> None:
    failure = iam.denied(403, request="GET /health", evidence={"status": "403"})

    assert (failure.kind, failure.detail) == (Kind.IAM_DENIED, "403")
    assert "before it reached the app" in failure.message
