"""Outside text: bounded JSON parsing and redaction of every form of every secret."""

from __future__ import annotations

import base64
import json

import pytest

from bot.untrusted import REDACTED, Redactor, UntrustedJSONError, json_depth, loads

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
