import base64
import json

import pytest

from bot import expressions, protocol
from bot.config import build_settings
from bot.settings import DeprecatedKey, OwnerSettings, WebSocketSettings


def test_offer__token_as_subprotocol_and_header_by_default():
    offer = protocol.offer("https://api.example.com/base/", WebSocketSettings(), "tok.en")
    assert offer.url == "wss://api.example.com/base/ws"
    encoded = base64.urlsafe_b64encode(b"tok.en").decode().rstrip("=")
    assert offer.subprotocols == ("jwt-auth", f"jwt.{encoded}")
    assert offer.headers == (("Authorization", "Bearer tok.en"),)


def test_offer__without_token_offers_no_credentials():
    settings = WebSocketSettings.model_validate({"token": {"query": "token"}})
    offer = protocol.offer("http://127.0.0.1:9", settings, None)
    assert offer.url == "ws://127.0.0.1:9/ws"
    assert offer.subprotocols == ("jwt-auth",)
    assert offer.headers == ()


def test_offer__each_way_is_independent():
    settings = WebSocketSettings.model_validate(
        {
            "token": {
                "subprotocols": [],
                "header": {"name": "X-Api-Key", "format": "{token}"},
                "query": "access",
            }
        }
    )
    offer = protocol.offer("http://h", settings, "t")
    assert offer.url == "ws://h/ws?access=t"
    assert offer.subprotocols == ()
    assert offer.headers == (("X-Api-Key", "t"),)


def test_offer__legacy_header_only_offers_no_static_subprotocol():
    with pytest.warns(DeprecatedKey, match="websocket.token"):
        settings = WebSocketSettings.model_validate({"offer_token": ["header"]})
    offer = protocol.offer("http://h", settings, "t")
    assert offer.subprotocols == ()
    assert offer.headers == (("Authorization", "Bearer t"),)


def test_offer__legacy_query_parameter_keeps_working():
    with pytest.warns(DeprecatedKey):
        settings = WebSocketSettings.model_validate({"offer_token": ["query"], "query_param": "access"})
    assert protocol.offer("http://h", settings, "t").url == "ws://h/ws?access=t"


def test_render__inserts_values_json_escaped():
    template = '{"type": "m", "text": "[{nonce}] {message}", "thread": "{thread_id}"}'
    frame = expressions.render(template, {"message": 'say "hi"\n', "nonce": "n1", "thread_id": "t"})
    assert json.loads(frame) == {"type": "m", "text": '[n1] say "hi"\n', "thread": "t"}


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ('{"text": "{mesage}"}', "unknown placeholder {mesage} at position 10"),
        ('{"text": {message}}', "not valid JSON after substitution"),
        ('["{message}"]', "a frame must be a JSON object"),
    ],
)
def test_template_problem__names_what_and_where(template: str, expected: str):
    problem = expressions.template_problem(template)
    assert problem is not None and expected in problem


def test_expression_problem__gives_the_position():
    problem = expressions.expression_problem("response.output[0.content")
    assert problem is not None and "at position" in problem
    assert expressions.expression_problem("response.output[0].content[0].text") is None


def test_parse_frame__reads_the_event_name_where_the_profile_says():
    frame = protocol.parse_frame('{"event": {"name": "done"}}', event_name="event.name")
    assert frame.name == "done"
    for raw in (
        "not json",
        "[1, 2]",
        '{"data": {}}',
        '{"type": 7}',
        b'{"type": "\xff"}',
        "[" * 100 + "]" * 100,
    ):
        with pytest.raises(protocol.FrameError):
            protocol.parse_frame(raw)


def test_answer_text__text_or_why_not():
    assert protocol.answer_text(" 4 ") == ("4", "")
    assert protocol.answer_text(["The ", "answer"]) == ("The answer", "")
    assert protocol.answer_text({"content": "4"}) == ("4", "")
    assert protocol.answer_text(None) == ("", "the configured path matched nothing")
    assert "an object, not text" in protocol.answer_text({"id": "r1", "output": []})[1]


def test_answer_expression__reference_profile_finds_result_in_every_shape():
    expression = build_settings({}).journey.answer.expression
    bodies = [
        {"type": "agent_completed", "data": {"result": " 4 "}},
        {"type": "agent_completed", "final_response": "4"},
        {"type": "agent_completed", "payload": {"content": "4"}},
        {"type": "agent_completed", "data": {"result": {"content": "4"}}},
    ]
    assert [protocol.answer_text(expressions.search(expression, b))[0] for b in bodies] == ["4"] * 4


def test_answer_fields__legacy_key_becomes_an_expression():
    with pytest.warns(DeprecatedKey, match="journey.answer.expression"):
        settings = build_settings({"journey": {"answer_fields": ["reply"]}})
    assert expressions.search(settings.journey.answer.expression, {"payload": {"reply": "hi"}}) == "hi"


def test_canned_match__default_patterns():
    patterns = build_settings({}).journey.canned_patterns
    assert protocol.canned_match("Agent response for: hello", patterns) == patterns[0]
    assert protocol.canned_match("The answer is 4.", patterns) is None


def test_foreign_owner__absent_fields_prove_nothing_present_ones_must_match():
    owner = OwnerSettings()
    ours = protocol.Owners(user="u1", run=None, thread="t1")

    def named(raw: str) -> dict[str, str]:
        return protocol.owner_values(protocol.parse_frame(raw), owner)

    assert (
        protocol.foreign_owner(named('{"type": "x", "data": {"user_id": "u1", "thread_id": "t1"}}'), ours)
        is None
    )
    assert protocol.foreign_owner(named('{"type": "x"}'), ours) is None
    theirs = named('{"type": "x", "payload": {"user_id": "u2"}}')
    assert protocol.foreign_owner(theirs, ours) == "user=u2 (expected u1)"


def test_nonces__finds_only_other_users_nonces():
    mine, theirs, stranger = protocol.new_nonce(), protocol.new_nonce(), protocol.new_nonce()
    nonces = protocol.Nonces(mine, [mine, theirs])
    assert nonces.foreign_in(f"hello {theirs} there") == theirs
    assert nonces.foreign_in(f"only {mine} here, and {stranger}, which is no user's of this run") is None
    assert nonces.own_in(f"[{mine}] hi")


# -- expressions: the direct evaluator agrees with jmespath's interpreter ---------------------------------------

import jmespath  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_KEYS = st.sampled_from(["type", "data", "user_id", "content", "output", "0", "a b"])
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-2, 2) | st.sampled_from(["", "x", "0"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_KEYS, inner, max_size=4),
    max_leaves=12,
)


def _field(key: str) -> str:
    return json.dumps(key) if not key.isidentifier() else key


_STEP = _KEYS.map(_field) | st.integers(-3, 3).map(lambda i: f"[{i}]")
_PATH = st.lists(_STEP, min_size=1, max_size=4).map(
    lambda steps: (
        "".join(s if s.startswith("[") or i == 0 else f".{s}" for i, s in enumerate(steps))
        if not steps[0].startswith("[")
        else "@" + "".join(s if s.startswith("[") else f".{s}" for s in steps)
    )
)
_LITERAL = st.sampled_from(["'error'", "''", "'x'", "`0`", "`1`", "`null`", "`false`", "`true`", "`[]`"])
# `a && 'name'` and `a == 'x' && 'name'`: how the SSE and Socket.IO profiles name an event.
_COMPARISON = st.tuples(_PATH, st.sampled_from([" == ", " != "]), _LITERAL | _PATH).map("".join)
_TERM = _PATH | st.tuples(_PATH | _COMPARISON, _LITERAL).map(" && ".join) | _LITERAL | _COMPARISON
_EXPRESSION = st.lists(_TERM, min_size=1, max_size=3).map(" || ".join)


@settings(max_examples=400, derandomize=True, deadline=None)
@given(expression=_EXPRESSION, document=_JSON)
def test_search__profile_expressions_agree_with_jmespath_on_any_document(
    expression: str, document: object
) -> None:
    assert expressions.expression_problem(expression) is None
    assert expressions.is_fast(expression)  # the fast path is the one under test
    assert expressions.search(expression, document) == jmespath.search(expression, document)


def _profile_expressions() -> list[tuple[str, str]]:
    from bot import profiles

    found = []
    for name in profiles.names():
        journey = build_settings({"journey": {"profile": name}}, {"url": "http://127.0.0.1:9"}).journey
        owner = journey.owner
        for expression in (
            journey.event_name,
            journey.answer.expression,
            owner.user,
            owner.run,
            owner.thread,
        ):
            if expression:
                found.append((name, expression))
    return found


@pytest.mark.parametrize(("profile", "expression"), _profile_expressions())
def test_search__every_bundled_profile_expression_takes_the_direct_path(
    profile: str, expression: str
) -> None:
    assert expressions.is_fast(expression), profile
    frame = {"type": "t", "data": {"user_id": 7}, "response": {"output": [{"content": [{"text": "hi"}]}]}}
    assert expressions.search(expression, frame) == jmespath.search(expression, frame)


def test_search__other_expressions_keep_the_interpreter() -> None:
    assert (
        expressions.search(
            "items[?kind=='delta'].text | join('', @)",
            {
                "items": [
                    {"kind": "delta", "text": "a"},
                    {"kind": "x", "text": "b"},
                    {"kind": "delta", "text": "c"},
                ]
            },
        )
        == "ac"
    )


def test_render__double_braces_are_literal_and_a_json_ending_stays_two_braces():
    template = '{"q": "subscription {{ chat {{type}} }} {message}", "p": {"t": "{token}"}}'
    rendered = expressions.render(template, {"message": 'a "b"', "token": "tok"})
    assert json.loads(rendered) == {"q": 'subscription { chat {type} } a "b"', "p": {"t": "tok"}}


def test_render__a_value_is_never_read_as_a_template():
    assert (
        expressions.render('{"m": "{message}"}', {"message": "{{nonce}} {user}"})
        == '{"m": "{{nonce}} {user}"}'
    )


def test_template_problem__unknown_placeholder_names_its_position_and_the_escape():
    problem = expressions.template_problem('{"q": "{type}"}')
    assert problem is not None
    assert problem.startswith("unknown placeholder {type} at position 7")
    assert "{{ and }}" in problem
    assert expressions.template_problem('{"q": "{{type}}", "t": "{token_b64}"}') is None


def test_websocket_url__the_path_query_and_the_token_parameter_are_merged():
    url = protocol.websocket_url(
        "https://h.example/base/", "/v1/realtime?model=gpt-4o-mini", query={"token": "a+b"}
    )
    assert url == "wss://h.example/base/v1/realtime?model=gpt-4o-mini&token=a%2Bb"
    # a parameter the path already names takes the token's value once, never twice
    assert (
        protocol.websocket_url("http://h", "/ws?token=old&x=1", query={"token": "t"})
        == "ws://h/ws?x=1&token=t"
    )


def test_sibling_path__keeps_the_query_on_another_path():
    assert protocol.sibling_path("/v1/realtime?model=m", "-nope") == "/v1/realtime-nope?model=m"
    assert protocol.sibling_path("/ws/", "-nope") == "/ws-nope"


def test_offer__evidence_url_shows_the_query_with_the_token_hidden():
    settings = WebSocketSettings.model_validate(
        {
            "path": "/rt?model=m",
            "token": {"subprotocols": ["bearer.{token}"], "header": None, "query": "access"},
        }
    )
    offer = protocol.offer(
        "http://127.0.0.1:9", settings, "s3cr+t", frames=['{"type": "init", "t": "{token}"}']
    )
    assert offer.url == "ws://127.0.0.1:9/rt?model=m&access=s3cr%2Bt"
    assert offer.display_url == "ws://127.0.0.1:9/rt?model=m&access=<token>"
    assert offer.shown_subprotocols == ("bearer.<token>",)
    assert offer.token_travel == "subprotocol `bearer.<token>`, query parameter `access`, the `init` frame"


def test_new_uuid__is_a_canonical_random_version_4_uuid_each_time():
    import uuid

    made = [protocol.new_uuid() for _ in range(2000)]
    assert len(set(made)) == len(made)
    for text in made:
        parsed = uuid.UUID(text)
        assert str(parsed) == text  # canonical: lower-case hex, 8-4-4-4-12
        assert (parsed.version, parsed.variant) == (4, uuid.RFC_4122)
    # every other bit is random: each of the 122 free bits is seen both set and clear
    bits = [uuid.UUID(t).int for t in made]
    fixed = (0xF000 << 64) | (0xC000 << 48)
    free = [b for b in range(128) if not fixed >> b & 1]
    assert len(free) == 122
    assert all(any(n >> b & 1 for n in bits) and not all(n >> b & 1 for n in bits) for b in free)
