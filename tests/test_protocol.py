import base64

from bot import protocol
from bot.settings import JourneySettings, WebSocketSettings


def test_offer__token_as_subprotocol_and_header_by_default():
    offer = protocol.offer("https://api.example.com/base/", WebSocketSettings(), "tok.en")
    assert offer.url == "wss://api.example.com/base/ws"
    encoded = base64.urlsafe_b64encode(b"tok.en").decode().rstrip("=")
    assert offer.subprotocols == ("jwt-auth", f"jwt.{encoded}")
    assert offer.headers == (("Authorization", "Bearer tok.en"),)


def test_offer__without_token_offers_no_credentials():
    offer = protocol.offer(
        "http://127.0.0.1:9", WebSocketSettings(offer_token=("query", "subprotocol")), None
    )
    assert offer.url == "ws://127.0.0.1:9/ws"
    assert offer.subprotocols == ("jwt-auth",)
    assert offer.headers == ()


def test_offer__query_parameter():
    offer = protocol.offer("http://h", WebSocketSettings(offer_token=("query",), query_param="access"), "t")
    assert offer.url == "ws://h/ws?access=t"
    assert offer.subprotocols == ("jwt-auth",)


def test_build_message__follows_the_profile():
    journey = JourneySettings.model_validate({"profile": "user-message"})
    message = protocol.build_message(journey, text="hi", thread_id="t1")
    assert message == {"type": "user_message", "payload": {"content": "hi", "thread_id": "t1"}}


def test_parse_frame__reads_root_data_and_payload_shapes():
    root = protocol.parse_frame('{"type": "agent_started", "run_id": "r1"}')
    data = protocol.parse_frame('{"type": "agent_thinking", "data": {"run_id": "r2"}}')
    payload = protocol.parse_frame(b'{"type": "tool_executing", "payload": {"run_id": "r3"}}')
    assert [f.field("run_id") for f in (root, data, payload)] == ["r1", "r2", "r3"]
    assert root.field("missing") is None


def test_parse_frame__rejects_non_json_and_untyped():
    for raw in ("not json", "[1, 2]", '{"data": {}}'):
        try:
            protocol.parse_frame(raw)
        except protocol.FrameError:
            continue
        raise AssertionError(f"{raw!r} was accepted")


def test_answer_text__finds_result_in_every_shape():
    fields = JourneySettings().answer_fields
    frames = [
        '{"type": "agent_completed", "data": {"result": " 4 "}}',
        '{"type": "agent_completed", "final_response": "4"}',
        '{"type": "agent_completed", "payload": "4"}',
        '{"type": "agent_completed", "data": {"result": {"content": "4"}}}',
    ]
    assert [protocol.answer_text(protocol.parse_frame(f), fields) for f in frames] == ["4", "4", "4", "4"]
    assert protocol.answer_text(protocol.parse_frame('{"type": "agent_completed"}'), fields) == ""


def test_canned_match__default_patterns():
    patterns = JourneySettings().canned_patterns
    assert protocol.canned_match("Agent response for: hello", patterns) == patterns[0]
    assert protocol.canned_match("The answer is 4.", patterns) is None


def test_foreign_owner__absent_fields_prove_nothing_present_ones_must_match():
    mine = protocol.parse_frame('{"type": "x", "data": {"user_id": "u1", "thread_id": "t1"}}')
    theirs = protocol.parse_frame('{"type": "x", "payload": {"user_id": "u2"}}')
    unmarked = protocol.parse_frame('{"type": "x"}')
    assert protocol.foreign_owner(mine, user_id="u1", run_id=None, thread_id="t1") is None
    assert protocol.foreign_owner(unmarked, user_id="u1", run_id="r", thread_id="t1") is None
    assert (
        protocol.foreign_owner(theirs, user_id="u1", run_id=None, thread_id="t1")
        == "user_id=u2 (expected u1)"
    )
