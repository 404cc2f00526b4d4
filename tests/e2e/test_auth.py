"""Identities for simulated users: per-user credentials, logins at another service, shared answers and expiry."""

from __future__ import annotations

import asyncio
import json
import time
import warnings
from typing import Any

import httpx
import jwt
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bot import auth
from bot.config import build_settings
from bot.errors import UsageError
from tests.standins.asgi import AsgiServer


def test_parse_users__json_objects_and_lines_both_give_one_entry_per_user():
    entries = auth.parse_users(
        '[{"client_id": "a", "client_secret": "x"}, {"client_id": "b", "client_secret": "y"}]', "E"
    )
    assert entries == ({"client_id": "a", "client_secret": "x"}, {"client_id": "b", "client_secret": "y"})
    assert auth.parse_users("alice:pa:ss\n\nbob:pw\n", "E") == (
        {"user": "alice", "password": "pa:ss"},
        {"user": "bob", "password": "pw"},
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[1, 2]", "E: entry 0 must be an object of non-empty text values"),
        ('[{"user": "a", "password": "hunter2"', "E is not a JSON list"),
        ("alice-hunter2", "E: line 1 is not `user:password`"),
        ("[]", "E must hold a non-empty JSON list of objects"),
    ],
)
def test_parse_users__a_bad_list_names_the_variable_and_entry_never_a_value(text: str, expected: str):
    with pytest.raises(UsageError) as caught:
        auth.parse_users(text, "E")
    assert str(caught.value).startswith(expected)
    assert "hunter2" not in str(caught.value)


def test_credentials_secrets__per_user_secrets_are_redacted_names_are_not():
    credentials = auth.Credentials(password="pw", users=({"client_id": "a", "client_secret": "x"},))
    assert credentials.secrets() == ["pw", "x"]


@pytest.mark.parametrize(
    ("claims", "key"),
    [
        ({"sub": "u-1", "iat": 1, "exp": 901, "jti": "ab"}, "s" * 40),
        (
            {
                "role": "tester",
                "sub": 'ü-✓ "q"',
                "iat": 1,
                "exp": 2,
                "jti": "x",
                "iss": "ci",
                "aud": ["a", "b"],
            },
            "short",
        ),
    ],
)
def test_hs256__is_byte_for_byte_what_pyjwt_encodes_and_what_a_backend_verifies(
    claims: dict[str, Any], key: str
):
    unchecked = {"verify_exp": False, "verify_aud": False, "verify_iat": False}
    with warnings.catch_warnings():
        # PyJWT warns about the short key; golden-path signs with the key it is given, as the backend verifies.
        warnings.simplefilter("ignore", jwt.warnings.InsecureKeyLengthWarning)
        expected = jwt.encode(claims, key, algorithm="HS256")
        decoded = jwt.decode(auth.hs256(claims, key), key, algorithms=["HS256"], options=unchecked)
    assert auth.hs256(claims, key) == expected
    assert decoded == claims
    assert auth.hs256(claims, key + "x") != expected  # signed with the key given, never a cached one


def test_mint__hs256_tokens_are_distinct_per_call_and_carry_the_configured_claims():
    settings = build_settings(
        {"auth": {"issuer": "ci", "audience": "chat", "claims": {"role": "tester"}}}
    ).auth
    first, second = (auth.mint(settings, key="k" * 32, algorithm="HS256", subject="u-7") for _ in range(2))
    assert first != second  # a jti per token
    claims = jwt.decode(first, "k" * 32, algorithms=["HS256"], audience="chat", issuer="ci")
    assert (claims["sub"], claims["role"], claims["exp"] - claims["iat"]) == ("u-7", "tester", settings.ttl_s)


def test_check_credentials__a_placeholder_no_credential_gives_is_a_usage_error():
    settings = build_settings(
        {"auth": {"mode": "login", "login": {"users_env": "CLIENTS", "body": {"id": "{client_id}"}}}}
    )
    with pytest.raises(UsageError) as caught:
        auth.check_credentials(settings.auth, auth.Credentials(users=({"user": "a", "password": "p"},)))
    assert "auth.login uses {client_id}" in str(caught.value)
    with pytest.raises(UsageError) as caught:
        auth.check_credentials(settings.auth, auth.Credentials(password="p"))
    assert "CLIENTS" in str(caught.value)


class TokenService:
    """A login endpoint answering each request with a fresh JWT that lives ``lifetime`` seconds."""

    def __init__(self, lifetime: int) -> None:
        self.lifetime = lifetime
        self.requests: list[dict[str, Any]] = []

        async def token(request: Request) -> JSONResponse:
            form = dict(await request.form())
            self.requests.append({"form": form, "authorization": request.headers.get("authorization")})
            now = int(time.time())
            claims = {"sub": form.get("username", "svc"), "exp": now + self.lifetime, "iat": now}
            body = {"data": {"token": jwt.encode(claims, "k" * 32, algorithm="HS256")}, "ttl": self.lifetime}
            return JSONResponse(body)

        self.app = Starlette(routes=[Route("/token", token, methods=["POST"])])


def _identities(
    settings_data: dict[str, Any], credentials: auth.Credentials, users: int, url: str
) -> list[auth.Identity]:
    settings = build_settings(settings_data)

    async def main() -> list[auth.Identity]:
        logins = auth.Logins()
        async with httpx.AsyncClient(trust_env=False) as http:
            return list(
                await asyncio.gather(
                    *(
                        auth.identity_for(
                            user,
                            settings=settings.auth,
                            credentials=credentials,
                            run_tag="t",
                            http=http,
                            base_url=url,
                            logins=logins,
                        )
                        for user in range(1, users + 1)
                    )
                )
            )

    return asyncio.run(main())


def test_identity_for__form_login_per_user_with_a_header_template_and_jmespath_token():
    service = TokenService(lifetime=600)
    login = {
        "url": "",
        "encoding": "form",
        "body": {"grant_type": "password", "username": "{user}", "password": "{password}"},
        "headers": {"Authorization": "Basic {api_key}"},
        "users_env": "USERS",
        "token_expression": "data.token",
        "expires_in": "ttl",
    }
    users = (
        {"user": "ann", "password": "p1", "api_key": "k1"},
        {"user": "bob", "password": "p2", "api_key": "k2"},
    )
    with AsgiServer(service.app) as server:
        login["url"] = f"{server.url}/token"
        identities = _identities(
            {"auth": {"mode": "login", "login": login}}, auth.Credentials(users=users), 3, ""
        )
    assert [i.subject for i in identities] == ["ann", "bob", "ann"]  # user 3 wraps to entry 1
    forms = sorted(
        (r["form"]["username"], r["form"]["password"], r["authorization"]) for r in service.requests
    )
    assert forms == [("ann", "p1", "Basic k1"), ("bob", "p2", "Basic k2")]  # user 3 shares ann's answer
    assert all(i.expires_at is not None and i.expires_at > time.time() + 500 for i in identities)


def test_identity_for__a_shared_answer_is_fetched_again_once_it_nears_expiry():
    service = TokenService(lifetime=20)  # under the 30 s margin: never reused
    login = {"url": "", "encoding": "form", "body": {"client_id": "c"}, "token_expression": "data.token"}
    with AsgiServer(service.app) as server:
        login["url"] = f"{server.url}/token"
        _identities({"auth": {"mode": "login", "login": login}}, auth.Credentials(), 3, "")
    assert len(service.requests) == 3


def test_identity_for__an_answer_that_has_already_expired_is_a_login_error():
    service = TokenService(lifetime=-5)
    login = {"url": "", "body": {"client_id": "c"}, "encoding": "form", "token_expression": "data.token"}
    with AsgiServer(service.app) as server, pytest.raises(auth.LoginError) as caught:
        login["url"] = f"{server.url}/token"
        _identities({"auth": {"mode": "login", "login": login}}, auth.Credentials(), 1, "")
    assert "already expired" in str(caught.value)
    assert json.dumps(caught.value.evidence).count("eyJ") == 0  # the token itself is not evidence
