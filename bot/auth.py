"""Tokens for simulated users: minted (HS256/RS256 with pyjwt), given as a secret, or fetched from a login endpoint.

A login endpoint may be the backend's own path or another service's URL (``auth.login.url``), answer JSON or a
form post (OAuth2 client credentials and password grants), and give the token at a JMESPath. Users whose login
request is the same (one client-credentials login for every user) share one answer until its token expires; a
login body with ``{user}`` or a list of credentials (``auth.login.users_env``) gives each user its own identity.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import hmac
import json
import re
import secrets
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from bot import expressions, untrusted
from bot.errors import UsageError
from bot.probe.http_probe import BodyTooLarge, Incomplete, fetch
from bot.settings import AuthSettings, LoginSettings

# Fields of a per-user credential that name the user rather than prove it: not redacted.
PUBLIC_FIELDS = frozenset({"user", "username", "email", "client_id", "name"})
EXPIRY_MARGIN_S = 30.0  # a shared token this close to its expiry is fetched again


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
    expires_at: float | None = None  # epoch seconds, when known (login `expires_in`, the JWT's `exp`)


@dataclass(frozen=True, slots=True)
class Credentials:
    """Secret material read by the entry point; never printed."""

    secret: str | None = field(default=None, repr=False)  # HS256
    private_key: str | None = field(default=None, repr=False)  # RS256 PEM
    token: str | None = field(default=None, repr=False)  # a given token
    password: str | None = field(default=None, repr=False)  # login endpoint
    # One credential per simulated user (auth.login.users_env), each a mapping of placeholder -> value.
    users: tuple[Mapping[str, str], ...] = field(default=(), repr=False)

    def secrets(self) -> list[str]:
        """Every secret value, for redaction and masks: a per-user entry's fields except the ones naming it."""
        values = [self.secret, self.private_key, self.token, self.password]
        values += [v for entry in self.users for k, v in entry.items() if k not in PUBLIC_FIELDS]
        return [v for v in values if v]


def parse_users(text: str, env: str) -> tuple[dict[str, str], ...]:
    """The per-user credentials in ``env``: a JSON list of objects of text, or lines ``user:password``.

    Raises:
        UsageError: neither shape; the message names the variable and the entry, never a value.
    """
    text = text.strip()
    if text.startswith("["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UsageError(f"{env} is not a JSON list ({exc.msg} at position {exc.pos})") from None
        if not isinstance(data, list) or not data:
            raise UsageError(f"{env} must hold a non-empty JSON list of objects")
        out = []
        for index, entry in enumerate(data):
            if not isinstance(entry, dict) or not all(
                isinstance(k, str) and isinstance(v, str) and v for k, v in entry.items()
            ):
                raise UsageError(f"{env}: entry {index} must be an object of non-empty text values")
            out.append(dict(entry))
        return tuple(out)
    entries = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        user, colon, password = line.strip().partition(":")
        if not colon or not user or not password:
            raise UsageError(f"{env}: line {number} is not `user:password` (or give a JSON list of objects)")
        entries.append({"user": user, "password": password})
    if not entries:
        raise UsageError(f"{env} is empty: give one `user:password` per line, or a JSON list of objects")
    return tuple(entries)


def mint(settings: AuthSettings, *, key: str, algorithm: str, subject: str, now: float | None = None) -> str:
    issued = int(now if now is not None else time.time())
    claims: dict[str, Any] = {
        **settings.claims,
        "sub": subject,
        "iat": issued,
        "exp": issued + settings.ttl_s,
        "jti": secrets.token_hex(16),
    }
    if settings.issuer:
        claims["iss"] = settings.issuer
    if settings.audience:
        claims["aud"] = settings.audience
    if algorithm == "HS256":
        return hs256(claims, key)
    jwt = _jwt()
    with warnings.catch_warnings():
        # The backend's secret is what it is; a short one is the backend's problem, not a reason to stop.
        warnings.simplefilter("ignore", jwt.warnings.InsecureKeyLengthWarning)
        encoded: str = jwt.encode(claims, key, algorithm=algorithm)
        return encoded


def _jwt() -> Any:
    """PyJWT, imported when first needed: with cryptography it costs about 70 ms and several MB at start-up, and
    an HS256 run (the default) signs with ``hs256`` and never needs it. RS256 and reading a given token do."""
    import jwt

    return jwt


_HS256_HEADER = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT"}').rstrip(b"=")


@functools.lru_cache(maxsize=8)
def _hs256_key(key: str) -> Any:
    return hmac.new(key.encode(), digestmod=hashlib.sha256)


def hs256(claims: Mapping[str, Any], key: str) -> str:
    """The HS256 JWT of ``claims``: byte for byte what ``jwt.encode(claims, key, algorithm="HS256")`` gives (a test
    holds them equal), in a fifth of its CPU. PyJWT parses the algorithm, checks the key for PEM shapes and sorts
    the header again for every token; at 1,000 users that was 45 µs of each journey's CPU. The keyed HMAC is built
    once per secret and copied per token. PyJWT still signs RS256 and decodes."""
    payload = base64.urlsafe_b64encode(json.dumps(claims, separators=(",", ":")).encode()).rstrip(b"=")
    signing_input = _HS256_HEADER + b"." + payload
    mac = _hs256_key(key).copy()
    mac.update(signing_input)
    signature = base64.urlsafe_b64encode(mac.digest()).rstrip(b"=")
    return (signing_input + b"." + signature).decode()


def check_credentials(settings: AuthSettings, credentials: Credentials) -> None:
    """Fail before probing when the tool itself is misconfigured (exit 2), rather than blame the backend with a
    P0 'login failed': a missing credential, or a key that cannot sign a token."""
    missing = missing_credential(settings, credentials)
    if missing:
        raise UsageError(f"auth.mode is '{settings.mode}' but no credential was given: set {missing}")
    if settings.mode == "login":
        names = sorted(
            _login_names(settings.login) - set(_login_values(1, "preflight", settings, credentials))
        )
        if names:
            given = f"the entries of {settings.login.users_env}" if settings.login.users_env else "the login"
            raise UsageError(
                f"auth.login uses {{{names[0]}}}, but {given} provide no such value: expected one of "
                + ", ".join(
                    "{" + n + "}" for n in sorted(_login_values(1, "preflight", settings, credentials))
                )
            )
    if settings.mode == "rs256":
        try:
            mint(settings, key=credentials.private_key or "", algorithm="RS256", subject="preflight")
        except (ValueError, TypeError, _jwt().exceptions.PyJWTError) as exc:
            raise UsageError(
                f"{settings.private_key_env} is not a usable RS256 private key (PEM): {type(exc).__name__}"
            ) from None


def _login_need(settings: AuthSettings, credentials: Credentials) -> tuple[str | None, str]:
    """What a login needs from the environment: the users list when configured, else the password when a
    template uses it (a form with only a client id and a given token needs none)."""
    login = settings.login
    if login.users_env:
        return ("given" if credentials.users else None), login.users_env
    if "password" in _login_names(login):
        return credentials.password, login.password_env
    if {"token", "token_b64"} & _login_names(login):
        return credentials.token, settings.token_env
    return "not needed", login.password_env


def missing_credential(settings: AuthSettings, credentials: Credentials) -> str | None:
    """Which credential the mode needs and lacks, as (env var, mode) advice; None when all is there."""
    needs = {
        "hs256": (credentials.secret, settings.secret_env),
        "rs256": (credentials.private_key, settings.private_key_env),
        "token": (credentials.token, settings.token_env),
        "login": _login_need(settings, credentials),
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
    logins: Logins | None = None,
) -> Identity:
    """A distinct identity per simulated user. ``on_token`` lets the entry point mask every token it sees.
    ``logins``: answers shared by users whose login request is the same (one per probe)."""
    subject = f"{settings.subject_prefix}-{user}-{run_tag}"
    token: str | None
    expires_at: float | None = None
    if settings.mode == "none":
        token = None
    elif settings.mode == "hs256":
        token = mint(
            settings, key=_need(credentials.secret, settings.secret_env), algorithm="HS256", subject=subject
        )
        expires_at = time.time() + settings.ttl_s
    elif settings.mode == "rs256":
        key = _need(credentials.private_key, settings.private_key_env)
        try:
            token = mint(settings, key=key, algorithm="RS256", subject=subject)
        except (ValueError, TypeError, _jwt().exceptions.PyJWTError) as exc:
            raise LoginError(
                f"the RS256 private key in {settings.private_key_env} is not a usable PEM key ({exc})"
            ) from None
        expires_at = time.time() + settings.ttl_s
    elif settings.mode == "token":
        token = _need(credentials.token, settings.token_env)
        subject = _subject_of(token) or ""
        expires_at = _expiry_of(token)
    else:
        token, expires_at = await _login(
            user=user,
            subject=subject,
            settings=settings,
            credentials=credentials,
            http=http,
            base_url=base_url,
            logins=logins or Logins(),
            on_secret=on_token,
        )
        subject = _subject_of(token) or ""
    if token:
        on_token(token)
    return Identity(user=user, subject=subject, token=token, expires_at=expires_at)


class Logins:
    """Login answers shared by the users whose login request is the same, each until its token nears expiry: a
    thousand users behind one client-credentials login make one request, not a thousand."""

    __slots__ = ("_answers", "_locks")

    def __init__(self) -> None:
        self._answers: dict[str, tuple[str, float | None]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def token(self, key: str, fetch_token: Callable[[], Any]) -> tuple[str, float | None]:
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            known = self._answers.get(key)
            if known is not None and _fresh(known[1]):
                return known
            answer: tuple[str, float | None] = await fetch_token()
            self._answers[key] = answer
            return answer


def _fresh(expires_at: float | None) -> bool:
    return expires_at is None or expires_at - time.time() > EXPIRY_MARGIN_S


def _need(value: str | None, env: str) -> str:
    if not value:
        raise LoginError(f"no credential: set the environment variable {env}")
    return value


def _claims_of(token: str) -> dict[str, Any]:
    jwt = _jwt()
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.exceptions.PyJWTError:
        return {}
    return claims if isinstance(claims, dict) else {}


def _subject_of(token: str) -> str | None:
    sub = _claims_of(token).get("sub")
    return str(sub) if sub is not None else None


def _expiry_of(token: str) -> float | None:
    exp = _claims_of(token).get("exp")
    return float(exp) if isinstance(exp, int | float) and not isinstance(exp, bool) else None


def _login_names(login: LoginSettings) -> set[str]:
    """Every placeholder the login's body and headers use."""
    names: set[str] = set()
    for value in _strings(login.body):
        names |= {name for name, _ in expressions.placeholders(value)}
    for value in login.headers.values():
        names |= {name for name, _ in expressions.placeholders(value)}
    return names


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def _login_values(
    user: int, subject: str, settings: AuthSettings, credentials: Credentials
) -> dict[str, str]:
    """The placeholders of user ``user``'s login: {user} (its own subject, or its entry's name), {password},
    the given token, and every field of its entry in ``auth.login.users_env``."""
    values = {"user": subject}
    if credentials.password:
        values["password"] = credentials.password
    if credentials.token:
        values |= expressions.token_values(credentials.token)
    if credentials.users:
        entry = credentials.users[(user - 1) % len(credentials.users)]
        values["user"] = entry.get("user") or entry.get("username") or subject
        values |= entry
    return values


def _filled(value: Any, values: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        return expressions.render_text(value, values)
    if isinstance(value, dict):
        return {k: _filled(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [_filled(v, values) for v in value]
    return value


async def _login(
    *,
    user: int,
    subject: str,
    settings: AuthSettings,
    credentials: Credentials,
    http: httpx.AsyncClient,
    base_url: str,
    logins: Logins,
    on_secret: Callable[[str], None],
) -> tuple[str, float | None]:
    login = settings.login
    values = _login_values(user, subject, settings, credentials)
    missing = sorted(_login_names(login) - values.keys())
    if missing:
        raise LoginError(f"auth.login uses {{{missing[0]}}} but no credential gives it")
    body = _filled(login.body, values)
    headers = {name: expressions.render_text(value, values) for name, value in login.headers.items()}
    for name, value in login.headers.items():
        if expressions.placeholders(value):
            on_secret(headers[name])  # e.g. Basic base64(id:secret): a form no single secret's forms cover
    url = login.url or base_url.rstrip("/") + login.path
    key = json.dumps([url, login.method, login.encoding, body, headers], sort_keys=True)

    async def fetch_token() -> tuple[str, float | None]:
        return await _request(login, url=url, body=body, headers=headers, http=http)

    token, expires_at = await logins.token(key, fetch_token)
    return token, expires_at


async def _request(
    login: LoginSettings, *, url: str, body: dict[str, Any], headers: dict[str, str], http: httpx.AsyncClient
) -> tuple[str, float | None]:
    """One login request; the token and when it expires (epoch seconds), or a LoginError saying why not."""
    where = login.where
    if login.method == "GET":
        request: dict[str, Any] = {"params": {k: str(v) for k, v in body.items()}}
    elif login.encoding == "form":
        request = {"data": {k: str(v) for k, v in body.items()}}
    else:
        request = {"json": body}
    try:
        response = await fetch(
            http, login.method, url, deadline_s=login.timeout_s, headers=headers, **request
        )
    except httpx.HTTPError as exc:
        raise LoginError(
            f"login request to {where} failed: {type(exc).__name__}", evidence={"url": url}
        ) from None
    except Incomplete as exc:
        raise LoginError(f"login at {where}: {exc}", evidence={"url": url}) from None
    except BodyTooLarge as exc:
        raise LoginError(
            f"login at {where} answered with a body over {exc.limit // 1024} KiB (the rest was not read)",
            evidence={"status": str(exc.response.status_code), "url": url, "body": exc.response.text[:2000]},
        ) from None
    evidence = {"status": str(response.status_code), "url": url}
    if response.status_code != 200:
        evidence["body"] = response.text[:2000]
        raise LoginError(f"login at {where} answered HTTP {response.status_code}", evidence=evidence)
    try:
        document: Any = untrusted.loads(response.content)
    except untrusted.UntrustedJSONError as exc:
        evidence["body"] = response.text[:2000]
        raise LoginError(f"login answer is not a JSON document we accept: {exc}", evidence=evidence) from None
    value = expressions.search(login.token_path, document)
    shown = login.token_expression or login.token_field
    if value is None:
        raise LoginError(f"login answer has nothing at '{shown}' (the token)", evidence=evidence)
    if not isinstance(value, str) or not value:
        raise LoginError(f"login answer's '{shown}' is not a token", evidence=evidence)
    if not _HEADER_SAFE.fullmatch(value):
        # It goes into an Authorization header and a subprotocol: CR/LF there would forge header lines.
        raise LoginError(
            f"login answer's '{shown}' has characters a token cannot carry (spaces, CR/LF, ...)",
            evidence=evidence,
        )
    lifetime = expressions.search(login.expires_in, document) if login.expires_in else None
    now = time.time()
    if isinstance(lifetime, int | float) and not isinstance(lifetime, bool):
        expires_at: float | None = now + float(lifetime)
    else:
        expires_at = _expiry_of(value)
    if expires_at is not None and expires_at <= now:
        raise LoginError(
            f"login at {where} answered a token that has already expired (expires_in / exp); check the "
            "auth service's clock and token lifetime",
            evidence=evidence,
        )
    return value, expires_at


_HEADER_SAFE = re.compile(r"[\x21-\x7e]{1,16384}")
