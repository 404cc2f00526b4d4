"""Outside text: bounded JSON parsing and redaction of every form of every secret."""

from __future__ import annotations

import base64
import html
import json
from urllib.parse import quote, quote_plus

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.untrusted import REDACTED, Redactor, UntrustedJSONError, json_depth, loads, show_controls

SECRET = 's3cr/et"é-0123456789'


def test_loads__nested_arrays_are_an_error_not_a_crash() -> None:
    frame = "[" * 1200 + "]" * 1200  # 2.4 KB: the frame that raised RecursionError
    with pytest.raises(UntrustedJSONError, match="nested deeper than 64"):
        loads(frame)


def test_loads__deep_brackets_inside_strings_do_not_count() -> None:
    text = json.dumps({"type": "x", "text": "[" * 5000})
    assert loads(text)["text"] == "[" * 5000


def test_loads__invalid_utf8_and_bad_json_are_one_error_type() -> None:
    with pytest.raises(UntrustedJSONError, match="not UTF-8"):
        loads(b'{"type": "\xff"}')
    with pytest.raises(UntrustedJSONError, match="not JSON"):
        loads("{nope")


def _as_json_reads(text: str) -> tuple[str, object]:
    try:
        return "value", json.loads(text)
    except json.JSONDecodeError as exc:
        return "error", f"not JSON ({exc.msg} at position {exc.pos})"


def _as_loads_reads(text: str) -> tuple[str, object]:
    try:
        return "value", loads(text)
    except UntrustedJSONError as exc:
        return "error", str(exc)


def _same(a: object, b: object) -> bool:
    """Equal with the same types all the way down (1 and 1.0 differ; NaN equals NaN)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        assert isinstance(b, dict)
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        assert isinstance(b, list)
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float):
        return a == b or (a != a and b != b) or repr(a) == repr(b)
    return a == b


EDGES = [
    '{"a":1,"a":2}',
    "-0",
    "-0.0",
    "1e400",
    "-1e400",
    "NaN",
    "Infinity",
    '"\\ud800"',
    '"\\ud83d\\ude00"',
    "1.5e-400",
    "123456789012345678901234567890",
    "18446744073709551615",
    "18446744073709551616",
    "-9223372036854775809",
    '{"id": 99999999999999999999, "n": 0.1, "e": 1E2}',
    '"\\u0000"',
    "[1,2,]",
    "\ufeff{}",
    " {} ",
    '{"a":1}x',
    "01",
    ".5",
    '"a\tb"',
    "",
    "   ",
    '{"type":"chunk","x":[true,false,null]}',
    "[" * 64 + "]" * 64,
]


@pytest.mark.parametrize("text", EDGES)
def test_loads__reads_what_json_reads_as_json_reads_it(text: str) -> None:
    kind, value = _as_loads_reads(text)
    expected_kind, expected = _as_json_reads(text)
    assert kind == expected_kind
    assert _same(value, expected) if kind == "value" else value == expected


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**80), max_value=2**80) | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=12,
)


@given(_JSON, st.booleans())
def test_loads__any_document_json_writes_is_read_back_as_json_reads_it(
    document: object, ascii_only: bool
) -> None:
    text = json.dumps(document, ensure_ascii=ascii_only)
    kind, value = _as_loads_reads(text)
    assert kind == "value" and _same(value, json.loads(text))


def test_json_depth__counts_the_deepest_nesting() -> None:
    assert json_depth('{"a": [1, {"b": [2]}], "c": "]]]"}') == 4
    assert json_depth("42") == 0


@pytest.mark.parametrize(
    "form",
    [
        SECRET,
        json.dumps(SECRET)[1:-1],  # \" and \u00e9
        json.dumps(SECRET)[1:-1].replace("/", "\\/"),  # \/ as some encoders write it
        json.dumps(SECRET, ensure_ascii=False)[1:-1],
        base64.urlsafe_b64encode(SECRET.encode()).decode().rstrip("="),
        base64.b64encode(SECRET.encode()).decode(),
        base64.b64encode(SECRET.encode()).decode().rstrip("="),  # standard alphabet, padding dropped
        quote(SECRET, safe="").lower(),  # lower-case percent escapes (%2f)
        html.escape(SECRET).replace("&#x27;", "&#39;"),  # the other spelling of an escaped quote
        json.dumps(SECRET)[1:-1].replace("\\u00e9", "\\u00E9"),  # upper-case \u escapes (JavaScript)
    ],
)
def test_clean__redacts_every_encoding(form: str) -> None:
    text = f"server said: {form} (end)"
    cleaned = Redactor([SECRET]).clean(text)
    assert form not in cleaned
    assert cleaned == f"server said: {REDACTED} (end)"


def test_clip__redacts_before_cutting() -> None:
    token = "eyJhbGciOiJIUzI1NiJ9.payload-part.signature-part"
    text = "x" * 90 + token
    clipped = Redactor([token]).clip(text, 100)
    assert "eyJhbGciOi" not in clipped  # the cut would have kept the first half of the token
    assert clipped.startswith("x" * 90 + REDACTED[:10])


def test_clean__many_tokens_sharing_a_prefix_are_all_found() -> None:
    tokens = [
        f"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.user-{i:04d}.sig{i * 7919 % 10007:05d}" for i in range(1000)
    ]
    redactor = Redactor(tokens)
    text = " | ".join(tokens[::97]) + " eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.user-9999.unknown"
    cleaned = redactor.clean(text)
    assert all(t not in cleaned for t in tokens)
    assert cleaned.endswith("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.user-9999.unknown")  # not a secret: kept


def test_clean__longest_form_wins_over_its_prefix() -> None:
    assert Redactor(["abcd", "abcdefgh"]).clean("xabcdefghx") == f"x{REDACTED}x"


def test_repr__never_shows_a_secret() -> None:
    assert SECRET not in repr(Redactor([SECRET]))


def test_clean__short_values_are_not_secrets() -> None:
    assert Redactor(["ab", None, ""]).clean("ab ab") == "ab ab"


def test_redact_strings__walks_a_run_and_keeps_enums() -> None:
    from dataclasses import dataclass

    from bot.results import Kind
    from bot.untrusted import redact_strings

    @dataclass(frozen=True, slots=True)
    class Inner:
        kind: Kind
        evidence: dict[str, str]

    @dataclass(frozen=True, slots=True)
    class Outer:
        name: str
        items: tuple[Inner, ...]
        count: int

    secret = "s3cr3t-value-123"
    value = Outer(f"a {secret}", (Inner(Kind.TIMEOUT, {secret: f"x{secret}y", "b64": _b64(secret)}),), 3)
    cleaned = redact_strings(value, Redactor([secret]))
    assert cleaned.name == f"a {REDACTED}" and cleaned.count == 3
    assert cleaned.items[0].kind is Kind.TIMEOUT
    assert cleaned.items[0].evidence == {REDACTED: f"x{REDACTED}y", "b64": REDACTED}


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_repr__credentials_settings_and_context_never_show_secrets() -> None:
    from bot.actions import ActionsContext
    from bot.auth import Credentials, Identity
    from bot.config import build_settings

    secret = "repr-secret-0123456789"
    shown = repr(Credentials(secret=secret, private_key=secret, token=secret, password=secret))
    shown += repr(Identity(user=1, subject="u", token=secret))
    shown += repr(ActionsContext(token=secret)) + repr(Redactor([secret]))
    shown += repr(build_settings({"url": "https://chat.example.com", "auth": {"mode": "login"}}))
    assert secret not in shown


def test_clean__tokens_added_during_the_run_are_redacted_across_generations() -> None:
    redactor = Redactor(["configured-secret-0123"])
    tokens = [f"eyJhbGciOiJIUzI1NiJ9.user-{i:04d}.signature-{i * 31:06d}" for i in range(300)]
    for token in tokens:
        redactor.add(token)
        assert redactor.clean(f"echo {token}!") == f"echo {REDACTED}!"  # each token as soon as it is known
    text = " ".join([*tokens[::7], "configured-secret-0123"])
    assert all(t not in redactor.clean(text) for t in tokens) and "configured" not in redactor.clean(text)


def test_clean__minted_jwts_in_every_form_even_run_together_and_unknown_ones_kept() -> None:
    header = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"
    tokens = [f"{header}.eyJzdWIiOiJ1c2VyLXtpfSJ9{i}.c2lnbmF0dXJl-{i * 7919:07d}_x" for i in range(1, 1001)]
    redactor = Redactor(["configured-secret-0123"])
    for token in tokens:
        redactor.add(token)
    one, two = tokens[41], tokens[999]
    forms = [
        base64.b64encode(one.encode()).decode(),
        base64.urlsafe_b64encode(one.encode()).decode().rstrip("="),
    ]
    text = f"{one}{two}|{forms[0]}|{forms[1]}x|Bearer {one}&next={two}Zz|{header}.unknown.sig-not-minted-here"
    cleaned = redactor.clean(text)
    assert cleaned == (
        f"{REDACTED}{REDACTED}|{REDACTED}|{REDACTED}x|Bearer {REDACTED}&next={REDACTED}Zz|"
        f"{header}.unknown.sig-not-minted-here"
    )
    assert redactor.clean("configured-secret-0123 and " + one) == f"{REDACTED} and {REDACTED}"


def test_jwt_forms__are_every_form_secret_forms_finds_for_a_jwt() -> None:
    from bot.auth import mint
    from bot.settings import AuthSettings
    from bot.untrusted import jwt_forms, secret_forms

    header = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"
    tokens = [f"{header}.eyJzdWIiOiJ1LTEifQ.{'-_' * i}sig{i}" for i in range(8)]
    tokens.append(
        mint(AuthSettings(), key="k" * 32, algorithm="HS256", subject="user-1")
    )  # a real minted one
    for token in tokens:
        assert jwt_forms(token) == secret_forms(token)


@pytest.mark.parametrize(
    ("text", "multiline", "shown"),
    [
        ("a\x1b[2Jb", False, "a\\x1b[2Jb"),
        ("\x9b\x85\x7f", False, "\\x9b\\x85\\x7f"),
        ("line\n\tindented\r", True, "line\n\tindented\\x0d"),
        ("line\n\tindented", False, "line\\x0a\\x09indented"),
        ("\u202eevil\u2066", False, "\\u202eevil\\u2066"),
        ("é ✓ plain", False, "é ✓ plain"),
    ],
)
def test_show_controls__every_control_is_shown_as_its_escape(text: str, multiline: bool, shown: str) -> None:
    assert show_controls(text, multiline=multiline) == shown


# A secret every escaping changes: quote, backslash, slash, percent, plus, space, non-ASCII, astral, HTML.
DEEP = "deep\"sec\\ret/%41+ Ωé😀<&>'-tail"


def _json(text: str, times: int, *, ascii_only: bool = True) -> str:
    for _ in range(times):
        text = json.dumps(text, ensure_ascii=ascii_only)[1:-1]
    return text


def _url(text: str, times: int, *, plus: bool = False) -> str:
    for _ in range(times):
        text = quote_plus(text) if plus else quote(text, safe="")
    return text


@pytest.mark.parametrize(
    "form",
    [
        pytest.param(_json(DEEP, n, ascii_only=a), id=f"json-{n}{'' if a else '-utf8'}")
        for n in range(1, 6)
        for a in (True, False)
    ]
    + [
        pytest.param(_url(DEEP, n, plus=p), id=f"url-{n}{'-plus' if p else ''}")
        for n in range(1, 5)
        for p in (0, 1)
    ]
    + [
        pytest.param(_url(_json(DEEP, 2), 2), id="json-twice-then-url-twice"),
        pytest.param(_json(_url(DEEP, 1), 3), id="url-then-json-three-times"),
        pytest.param(_json(html.escape(DEEP), 2), id="html-then-json-twice"),
        pytest.param(html.escape(html.escape(DEEP)), id="html-twice"),
        pytest.param(_json(DEEP, 2).replace("/", "\\/"), id="json-twice-escaped-slash"),
        pytest.param(_url(DEEP, 2).lower(), id="url-twice-lower-case-hex"),
    ],
)
def test_redactor__a_secret_escaped_any_number_of_times_is_found(form: str) -> None:
    assert DEEP not in form or form == DEEP
    frame = json.dumps({"type": "error", "message": f"echo {form} end"})  # and once more inside the frame
    assert Redactor([DEEP]).clean(frame) == json.dumps({"type": "error", "message": f"echo {REDACTED} end"})


def test_redactor__a_secret_nested_in_json_strings_inside_a_frame_is_found() -> None:
    """Regression (#19): a secret with `"` or `\\` echoed inside a JSON string inside a frame leaked."""
    inner = json.dumps({"password": DEEP})
    frame = json.dumps({"type": "error", "message": json.dumps({"request": inner})})
    cleaned = Redactor([DEEP]).clean(frame)
    assert "deep" not in cleaned and "tail" not in cleaned and REDACTED in cleaned
    assert json.loads(json.loads(json.loads(cleaned)["message"])["request"]) == {"password": REDACTED}


def test_redactor__a_run_of_backslashes_before_a_secret_is_redacted_with_it() -> None:
    text = "\\" * 50_000 + _json('"lead-secret', 3)
    cleaned = Redactor(['"lead-secret']).clean(text)
    assert cleaned.endswith(REDACTED) and "lead-secret" not in cleaned


def test_redactor__a_secret_no_escaping_changes_has_no_pattern_of_its_own() -> None:
    from bot.untrusted import deep_pattern

    assert deep_pattern("plain-token_0123456789.~") is None
    anchor, _ = deep_pattern(DEEP) or (None, None)
    assert anchor == "-tail"
