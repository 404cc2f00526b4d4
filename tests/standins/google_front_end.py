"""Stand-ins for Google's side of a private Cloud Run service: the front end that checks IAM before the app sees a
request, and the OAuth 2.0 token endpoint that turns a service-account key's signed assertion into an ID token.

The front end wraps the reference backend's ASGI app (the app itself is unchanged): a request without a valid
``X-Serverless-Authorization: Bearer <ID token>`` gets the front end's own 403 HTML page, on plain HTTP and on
the WebSocket upgrade alike; an accepted request reaches the app with its ``Authorization`` header untouched.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from bot.reference.server import ReferenceServer
from tests.standins.loopback import LoopbackServer

# What Google's front end serves when IAM refuses (recorded from a private *.run.app service).
FRONT_END_403 = (
    '\n<html><head>\n<meta http-equiv="content-type" content="text/html;charset=utf-8">\n'
    "<title>403 Forbidden</title>\n</head>\n<body text=#000000 bgcolor=#ffffff>\n"
    "<h1>Error: Forbidden</h1>\n<h2>Your client does not have permission to get URL <code>{path}</code> "
    "from this server.</h2>\n<h2></h2>\n</body></html>\n"
)
ID_TOKEN_SIGNING_KEY = "stand-in-google-signing-key-0123456789abcdef"  # HS256: only our stand-ins read it


@dataclass(frozen=True)
class Seen:
    kind: str  # "http" | "websocket"
    path: str
    id_token: str | None  # the bearer value of X-Serverless-Authorization
    authorization: str | None  # the app's own header, passed through


class IamFrontEnd:
    """ASGI middleware: only requests bearing an ID token ``accepts`` approves reach the app."""

    def __init__(self, app: Any, accepts: Callable[[str | None], bool]) -> None:
        self.app, self.accepts = app, accepts
        self.seen: list[Seen] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode().lower(): v.decode() for k, v in scope.get("headers", [])}
        bearer = headers.get("x-serverless-authorization", "")
        token = bearer.removeprefix("Bearer ") if bearer.startswith("Bearer ") else None
        self.seen.append(Seen(scope["type"], scope["path"], token, headers.get("authorization")))
        if self.accepts(token):
            await self.app(scope, receive, send)
            return
        page = FRONT_END_403.format(path=scope["path"]).encode()
        start = {"status": 403, "headers": [(b"content-type", b"text/html; charset=UTF-8")]}
        if scope["type"] == "http":
            await send({"type": "http.response.start", **start})
            await send({"type": "http.response.body", "body": page})
            return
        await receive()  # websocket.connect
        await send({"type": "websocket.http.response.start", **start})
        await send({"type": "websocket.http.response.body", "body": page})


def private(server: ReferenceServer, accepts: Callable[[str | None], bool]) -> IamFrontEnd:
    """Put the front end in front of a reference backend that has not started yet."""
    front = IamFrontEnd(server.app, accepts)
    server.app = front
    return front


def id_token_for(*, audience: str, email: str, ttl_s: int = 3600) -> str:
    now = int(time.time())
    claims = {"iss": "https://accounts.google.com", "aud": audience, "email": email, "sub": "1234567890"}
    return jwt.encode({**claims, "iat": now, "exp": now + ttl_s}, ID_TOKEN_SIGNING_KEY, algorithm="HS256")


def valid_for(audience: str | Callable[[], str]) -> Callable[[str | None], bool]:
    """Like Cloud Run: a token signed by "Google", unexpired, whose audience is the service URL (given, or
    read when a request comes, for a backend whose port is known once started)."""

    def accepts(token: str | None) -> bool:
        if not token:
            return False
        expected = audience if isinstance(audience, str) else audience()
        try:
            jwt.decode(token, ID_TOKEN_SIGNING_KEY, algorithms=["HS256"], audience=expected)
        except jwt.PyJWTError:
            return False
        return True

    return accepts


class TokenEndpoint(LoopbackServer):
    """``token_uri`` of a service-account key: a JWT-bearer grant with ``target_audience`` -> ``id_token``."""

    thread_name = "google-token-standin"

    def __init__(self) -> None:
        self.assertions: list[dict[str, Any]] = []
        super().__init__(_token_handler(self))

    @property
    def token_uri(self) -> str:
        return f"{self.origin}/token"


def _token_handler(endpoint: TokenEndpoint) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            form = {k: v[-1] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
            claims = jwt.decode(form.get("assertion", ""), options={"verify_signature": False})
            endpoint.assertions.append(claims)
            if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" or not claims.get(
                "target_audience"
            ):
                status, body = 400, {"error": "invalid_grant", "error_description": "Invalid grant."}
            else:
                token = id_token_for(audience=claims["target_audience"], email=claims["iss"])
                status, body = 200, {"id_token": token}
            _write(self, status, json.dumps(body), "application/json")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


def _write(
    handler: BaseHTTPRequestHandler,
    status: int,
    text: str,
    content_type: str,
    headers: dict[str, str] | None = None,
) -> None:
    data = text.encode()
    handler.send_response(status)
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


def service_account_key(path: Path, *, token_uri: str, email: str) -> Path:
    """A freshly generated service-account key file, shaped like the ones the IAM console downloads."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    path.write_text(
        json.dumps(
            {
                "type": "service_account",
                "project_id": "p",
                "private_key_id": "0123456789abcdef",
                "private_key": pem,
                "client_email": email,
                "client_id": "1234567890",
                "token_uri": token_uri,
            }
        )
    )
    return path


CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"


class MetadataServer(LoopbackServer):
    """The metadata server of Compute Engine, Cloud Run and Cloud Build, as google-auth reaches it through
    ``GCE_METADATA_HOST``/``GCE_METADATA_IP``: the ping on ``/``, the default service account (read first, for
    its email) and its identity endpoint. Like the real one, it answers only requests with
    ``Metadata-Flavor: Google`` (403 otherwise) and says ``Metadata-Flavor: Google`` back; ``identity=False``
    models a runtime with no service account (404)."""

    thread_name = "metadata-standin"

    def __init__(self, *, email: str, identity: bool = True) -> None:
        self.email, self.identity = email, identity
        self.requests: list[tuple[str, dict[str, str]]] = []
        super().__init__(_metadata_handler(self))

    @property
    def host(self) -> str:
        return self.origin.removeprefix("http://")


def _metadata_handler(server: MetadataServer) -> type[BaseHTTPRequestHandler]:
    account_path = "/computeMetadata/v1/instance/service-accounts/default/"
    identity_path = account_path + "identity"

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path, _, query = self.path.partition("?")
            params = {k: v[-1] for k, v in parse_qs(query).items()}
            server.requests.append((path, params))
            if self.headers.get("Metadata-Flavor") != "Google":
                self._answer(403, "Missing required header: Metadata-Flavor\n")
            elif path == "/":
                self._answer(200, "computeMetadata/\n")
            elif path in (account_path, identity_path) and not server.identity:
                self._answer(404, "Not Found\n")
            elif path == account_path and params.get("recursive") == "true":
                # google-auth reads the account (its email) before it asks for an identity token
                account = {"aliases": ["default"], "email": server.email, "scopes": [CLOUD_PLATFORM]}
                self._answer(200, json.dumps(account), "application/json")
            elif path == identity_path and not params.get("audience"):
                self._answer(400, "non-empty audience parameter required\n")
            elif path == identity_path:
                self._answer(200, id_token_for(audience=params["audience"], email=server.email))
            else:
                self._answer(404, "Not Found\n")

        def _answer(self, status: int, text: str, content_type: str = "application/text") -> None:
            _write(self, status, text, content_type, {"Metadata-Flavor": "Google"})

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler
