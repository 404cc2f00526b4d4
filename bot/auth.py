"""Tokens for simulated users: minted (HS256/RS256 with pyjwt), given as a secret, or fetched from a login endpoint."""

from __future__ import annotations

import re
import time
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt
from jwt.warnings import InsecureKeyLengthWarning

from bot import untrusted
from bot.errors import UsageError
from bot.probe.http_probe import BodyTooLarge, Incomplete, fetch
from bot.settings import AuthSettings


class LoginError(Exception):
    """No token could be had for a user; the message is one line in our words, safe to show."""

    def __init__(self, message: str, *, evidence: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.evidence = evidence or {}


@dataclass(frozen=True, slots=True)
class Identity:
    user: int  # 1-based simulated user
    subject: str  # the JWT `sub` the server should attribute events to; "" when unknown
    token: str | None = field(repr=False)


@dataclass(frozen=True, slots=True)
class Credentials:
    """Secret material read by the entry point; never printed."""

    secret: str | None = field(default=None, repr=False)  # HS256
    private_key: str | None = field(default=None, repr=False)  # RS256 PEM
    token: str | None = field(default=None, repr=False)  # a given token
    password: str | None = field(default=None, repr=False)  # login endpoint


def mint(settings: AuthSettings, *, key: str, algorithm: str, subject: str, now: float | None = None) -> str:
    issued = int(now if now is not None else time.time())
    claims: dict[str, Any] = {
        **settings.claims,
        "sub": subject,
        "iat": issued,
        "exp": issued + settings.ttl_s,
        "jti": uuid.uuid4().hex,
    }
    if settings.issuer:
        claims["iss"] = settings.issuer
    if settings.audience:
        claims["aud"] = settings.audience
    with warnings.catch_warnings():
        # The backend's secret is what it is; a short one is the backend's problem, not a reason to stop.
        warnings.simplefilter("ignore", InsecureKeyLengthWarning)
        return jwt.encode(claims, key, algorithm=algorithm)


def check_credentials(settings: AuthSettings, credentials: Credentials) -> None:
    """Fail before probing when the tool itself is misconfigured (exit 2), rather than blame the backend with a
    P0 'login failed': a missing credential, or a key that cannot sign a token."""
    missing = missing_credential(settings, credentials)
    if missing:
        raise UsageError(f"auth.mode is '{settings.mode}' but no credential was given: set {missing}")
    if settings.mode == "rs256":
        try:
            mint(settings, key=credentials.private_key or "", algorithm="RS256", subject="preflight")
        except (ValueError, TypeError, jwt.exceptions.PyJWTError) as exc:
            raise UsageError(
                f"{settings.private_key_env} is not a usable RS256 private key (PEM): {type(exc).__name__}"
            ) from None


def missing_credential(settings: AuthSettings, credentials: Credentials) -> str | None:
    """Which credential the mode needs and lacks, as (env var, mode) advice; None when all is there."""
    needs = {
        "hs256": (credentials.secret, settings.secret_env),
        "rs256": (credentials.private_key, settings.private_key_env),
        "token": (credentials.token, settings.token_env),
        "login": (credentials.password, settings.login.password_env),
    }
    if settings.mode not in needs:
        return None
    value, env = needs[settings.mode]
    return None if value else env


async def identity_for(
    user: int,
    *,
    settings: AuthSettings,
    credentials: Credentials,
    run_tag: str,
    http: httpx.AsyncClient,
    base_url: str,
    on_token: Callable[[str], None] = lambda _token: None,
) -> Identity:
    """A distinct identity per simulated user. ``on_token`` lets the entry point mask every token it sees."""
    subject = f"{settings.subject_prefix}-{user}-{run_tag}"
    token: str | None
    if settings.mode == "none":
        token = None
    elif settings.mode == "hs256":
        token = mint(
            settings, key=_need(credentials.secret, settings.secret_env), algorithm="HS256", subject=subject
        )
    elif settings.mode == "rs256":
        key = _need(credentials.private_key, settings.private_key_env)
        try:
            token = mint(settings, key=key, algorithm="RS256", subject=subject)
        except (ValueError, TypeError, jwt.exceptions.PyJWTError) as exc:
            raise LoginError(
                f"the RS256 private key in {settings.private_key_env} is not a usable PEM key ({exc})"
            ) from None
    elif settings.mode == "token":
        token = _need(credentials.token, settings.token_env)
        subject = _subject_of(token) or ""
    else:
        token = await _login(
            subject=subject, settings=settings, credentials=credentials, http=http, base_url=base_url
        )
        subject = _subject_of(token) or ""
    if token:
        on_token(token)
    return Identity(user=user, subject=subject, token=token)


def _need(value: str | None, env: str) -> str:
    if not value:
        raise LoginError(f"no credential: set the environment variable {env}")
    return value


def _subject_of(token: str) -> str | None:
    try:
        sub = jwt.decode(token, options={"verify_signature": False}).get("sub")
    except jwt.exceptions.PyJWTError:
        return None
    return str(sub) if sub is not None else None


async def _login(
    *,
    subject: str,
    settings: AuthSettings,
    credentials: Credentials,
    http: httpx.AsyncClient,
    base_url: str,
) -> str:
    login = settings.login
    password = _need(credentials.password, login.password_env)
    body = {
        k: (v.format(user=subject, password=password) if isinstance(v, str) else v)
        for k, v in login.body.items()
    }
    url = base_url.rstrip("/") + login.path
    if login.method == "POST":
        request: dict[str, Any] = {"json": body}
    else:
        request = {"params": {k: str(v) for k, v in body.items()}}
    try:
        response = await fetch(http, login.method, url, deadline_s=login.timeout_s, **request)
    except httpx.HTTPError as exc:
        raise LoginError(f"login request to {login.path} failed: {type(exc).__name__}") from None
    except Incomplete as exc:
        raise LoginError(f"login at {login.path}: {exc}", evidence={"url": url}) from None
    except BodyTooLarge as exc:
        raise LoginError(
            f"login at {login.path} answered with a body over {exc.limit // 1024} KiB (the rest was not read)",
            evidence={"status": str(exc.response.status_code), "url": url, "body": exc.response.text[:2000]},
        ) from None
    evidence = {"status": str(response.status_code), "url": url}
    if response.status_code != 200:
        evidence["body"] = response.text[:2000]
        raise LoginError(f"login at {login.path} answered HTTP {response.status_code}", evidence=evidence)
    try:
        value: Any = untrusted.loads(response.content)
    except untrusted.UntrustedJSONError as exc:
        evidence["body"] = response.text[:2000]
        raise LoginError(f"login answer is not a JSON document we accept: {exc}", evidence=evidence) from None
    try:
        for part in login.token_field.split("."):
            value = value[part]
    except (KeyError, TypeError, IndexError):
        raise LoginError(
            f"login answer has no '{login.token_field}' field holding the token", evidence=evidence
        ) from None
    if not isinstance(value, str) or not value:
        raise LoginError(f"login answer's '{login.token_field}' is not a token", evidence=evidence)
    if not _HEADER_SAFE.fullmatch(value):
        # It goes into an Authorization header and a subprotocol: CR/LF there would forge header lines.
        raise LoginError(
            f"login answer's '{login.token_field}' has characters a token cannot carry (spaces, CR/LF, ...)",
            evidence=evidence,
        )
    return value


_HEADER_SAFE = re.compile(r"[\x21-\x7e]{1,16384}")
