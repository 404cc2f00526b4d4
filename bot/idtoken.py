"""Google-signed ID tokens for a private Cloud Run service (audience: the service URL), through google-auth.

Sources, in order: a token the workflow passes (``GOLDEN_PATH_ID_TOKEN`` / the ``id-token`` input, e.g. the
``id_token`` output of google-github-actions/auth with ``token_format: id_token``); the credentials file named
by ``GOOGLE_APPLICATION_CREDENTIALS`` (a service-account key; an ``impersonated_service_account`` file; the
``external_account`` file google-github-actions/auth writes for Workload Identity Federation, through
service-account impersonation); the metadata server (Compute Engine, Cloud Run, Cloud Build). A token is sent
as ``X-Serverless-Authorization: Bearer ...`` so the app's own ``Authorization`` header stays free.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.errors import InfrastructureError, message_of

CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
HOW_TO_FIX = (
    "add a google-github-actions/auth step (with service_account, or token_format: id_token and pass its "
    "id_token output as the id-token input), or set GOOGLE_APPLICATION_CREDENTIALS to a service-account key"
)
_IMPERSONATED_EMAIL = re.compile(r"serviceAccounts/([^/:]+):generateAccessToken")


class IdTokenError(InfrastructureError):
    """No ID token could be obtained: says what was tried and how to fix it (exit code 3)."""


@dataclass(frozen=True)
class IdToken:
    token: str = field(repr=False)
    identity: str | None  # the service account (or principal) the token speaks for, when known
    source: str  # where it came from, for the log ("the id-token input", "service-account key ...")
    audience: str | None = None  # the token's own `aud` claim, when readable


def obtain(*, audience: str, passed: str | None, credentials_file: str | None) -> IdToken:
    """An ID token for ``audience``; raises ``IdTokenError`` naming every source tried."""
    if passed:
        claims = _claims(passed)
        return IdToken(
            passed, _identity(claims), "the id-token input (GOLDEN_PATH_ID_TOKEN)", claims.get("aud")
        )
    import google.auth.transport.requests
    from google.auth import exceptions

    request = google.auth.transport.requests.Request()
    tried = ["id-token input / GOLDEN_PATH_ID_TOKEN: not set"]
    try:
        if credentials_file:
            credentials, identity, source = _from_file(Path(credentials_file), audience)
        else:
            tried.append("GOOGLE_APPLICATION_CREDENTIALS: not set")
            from google.oauth2 import id_token

            # Only the metadata server is left (google-auth pings it first, with a short timeout, and logs a
            # warning per failed attempt: our one error line says it instead).
            with _quiet("google.auth.compute_engine._metadata"):
                credentials = id_token.fetch_id_token_credentials(audience, request=request)  # type: ignore[no-untyped-call]
            identity, source = None, "the metadata server"
        credentials.refresh(request)
    except IdTokenError:
        raise
    except exceptions.DefaultCredentialsError as exc:
        if not credentials_file:
            tried.append(
                "metadata server: not reachable (not on Google Cloud), or no service account attached"
            )
        else:
            tried.append(f"GOOGLE_APPLICATION_CREDENTIALS={credentials_file}: {message_of(exc)}")
        raise IdTokenError(
            f"cannot obtain a Google-signed ID token for {audience} (tried {'; '.join(tried)}): {HOW_TO_FIX}"
        ) from None
    except (exceptions.GoogleAuthError, OSError, ValueError) as exc:
        raise IdTokenError(
            f"cannot obtain a Google-signed ID token for {audience} from "
            f"{credentials_file or 'the metadata server'}: {message_of(exc)}: {HOW_TO_FIX}"
        ) from None
    token = str(credentials.token)
    claims = _claims(token)
    return IdToken(token, identity or _identity(claims), source, claims.get("aud"))


def _from_file(path: Path, audience: str) -> tuple[Any, str | None, str]:
    from google.auth import impersonated_credentials
    from google.oauth2 import service_account

    where = f"GOOGLE_APPLICATION_CREDENTIALS={path}"
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise IdTokenError(f"{where}: the file does not exist: {HOW_TO_FIX}") from None
    except (OSError, ValueError) as exc:
        raise IdTokenError(
            f"{where}: not a readable JSON credentials file ({message_of(exc)}): {HOW_TO_FIX}"
        ) from None
    kind = info.get("type") if isinstance(info, dict) else None
    if kind == "service_account":
        credentials = service_account.IDTokenCredentials.from_service_account_info(  # type: ignore[no-untyped-call]
            info, target_audience=audience
        )
        return credentials, info.get("client_email"), f"the service-account key {path}"
    if kind == "impersonated_service_account":
        target = impersonated_credentials.Credentials.from_impersonated_service_account_info(info)  # type: ignore[no-untyped-call]
        email = _IMPERSONATED_EMAIL.search(info.get("service_account_impersonation_url", ""))
        credentials = impersonated_credentials.IDTokenCredentials(  # type: ignore[no-untyped-call]
            target_credentials=target, target_audience=audience, include_email=True
        )
        return credentials, email.group(1) if email else None, f"impersonation from {path}"
    if kind == "external_account":
        return _from_federation(info, path, audience)
    if kind == "authorized_user":
        raise IdTokenError(
            f"{where} holds user credentials (gcloud auth application-default login), which cannot mint ID "
            f"tokens for another audience: use a service account, or "
            f"`gcloud auth application-default login --impersonate-service-account SA`; or {HOW_TO_FIX}"
        )
    raise IdTokenError(f"{where}: credentials of type {kind!r} cannot mint ID tokens: {HOW_TO_FIX}")


def _from_federation(info: dict[str, Any], path: Path, audience: str) -> tuple[Any, str | None, str]:
    """Workload Identity Federation: federated tokens cannot be ID tokens, so impersonate the service account
    the file names (google-github-actions/auth grants the principal roles/iam.workloadIdentityUser on it)."""
    import google.auth
    from google.auth import impersonated_credentials

    match = _IMPERSONATED_EMAIL.search(info.get("service_account_impersonation_url", ""))
    if match is None:
        raise IdTokenError(
            f"GOOGLE_APPLICATION_CREDENTIALS={path} is Workload Identity Federation without a service account: "
            "federated tokens cannot be ID tokens; set service_account on google-github-actions/auth, or use "
            "its token_format: id_token and pass the id_token output as the id-token input"
        )
    email = match.group(1)
    federated = {k: v for k, v in info.items() if k != "service_account_impersonation_url"}
    source, _project = google.auth.load_credentials_from_dict(  # type: ignore[no-untyped-call]
        federated, scopes=[CLOUD_PLATFORM_SCOPE]
    )
    target = impersonated_credentials.Credentials(  # type: ignore[no-untyped-call]
        source_credentials=source, target_principal=email, target_scopes=[CLOUD_PLATFORM_SCOPE]
    )
    credentials = impersonated_credentials.IDTokenCredentials(  # type: ignore[no-untyped-call]
        target_credentials=target, target_audience=audience, include_email=True
    )
    return credentials, email, f"Workload Identity Federation as {email}"


@contextlib.contextmanager
def _quiet(logger_name: str) -> Iterator[None]:
    logger = logging.getLogger(logger_name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _claims(token: str) -> dict[str, Any]:
    """The token's claims, unverified: only to name the identity in messages (Cloud Run verifies it)."""
    import jwt

    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return {}
    return claims if isinstance(claims, dict) else {}


def _identity(claims: dict[str, Any]) -> str | None:
    value = claims.get("email") or claims.get("sub")
    return str(value) if value else None
