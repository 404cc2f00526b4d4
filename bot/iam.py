"""Google's front-end refusal of a private Cloud Run service, told apart from the app's own 401/403. Pure.

Cloud Run checks IAM (``roles/run.invoker``) before a request reaches the container; when it refuses, Google's
front end answers with its own small HTML page, never with the app's body. Seeing that page means the app's
authentication was not even reached, so the fix is IAM or an ID token, never the app's JWT secret.
"""

from __future__ import annotations

from bot.results import Failure, Kind

# Phrases of the front end's 401/403 pages (GFE, Cloud Run): matched in the body, case-sensitively as served.
FRONT_END_PHRASES = (
    "Your client does not have permission to get URL",
    "Your client does not have permission to the requested URL",
    "The request was not authenticated",
)
ID_TOKEN_HEADER = "X-Serverless-Authorization"


def is_front_end_refusal(status: int, body: str) -> bool:
    """True for Google's own IAM refusal page; an app's 401/403 (JSON, its own HTML) is not one."""
    return status in (401, 403) and any(phrase in body for phrase in FRONT_END_PHRASES)


def denied(status: int, *, request: str, evidence: dict[str, str]) -> Failure:
    return Failure(
        Kind.IAM_DENIED,
        f"{request}: Google's front end refused the request with HTTP {status} before it reached the app "
        "(the service requires IAM authentication).",
        detail=str(status),
        evidence=evidence,
        subject=f"HTTP {status}",
    )
