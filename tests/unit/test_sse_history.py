"""``sse.history``: the earlier turns of a conversation in the body of a stateless server's request. Pure."""

import json

from bot.config import build_settings
from bot.probe.sse_session import stream_request, with_history
from bot.probe.steps import UserValues
from bot.settings import SseHistorySettings

HISTORY = SseHistorySettings(
    at="input.messages",
    turn='[{"role": "user", "content": "{message}"}, {"role": "assistant", "content": "{answer}"}]',
)
BODY = '{"model": "m", "input": {"messages": [{"role": "user", "content": "third"}]}}'


def test_with_history__earlier_turns_go_before_the_current_message_in_order_and_escaped():
    earlier = [
        {"message": "first", "answer": 'said "one"\nthen a line'},
        {"message": "second", "answer": "two"},
    ]
    body = json.loads(with_history(BODY, HISTORY, earlier))
    assert body["model"] == "m"
    assert body["input"]["messages"] == [
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": 'said "one"\nthen a line'},
        {"role": "user", "content": "second"},
        {"role": "assistant", "content": "two"},
        {"role": "user", "content": "third"},
    ]


def test_stream_request__the_first_turn_sends_the_body_as_rendered_and_a_later_one_its_history():
    settings = build_settings({"journey": {"profile": "openai-chat"}, "url": "http://127.0.0.1:1"})
    user = UserValues({"message": "Which word?", "nonce": "n-1", "model": "m", "thread_id": "t"})
    first = stream_request(settings, "http://127.0.0.1:1", user, "tok")
    assert first.body is not None and json.loads(first.body)["messages"] == [
        {"role": "user", "content": "[n-1] Which word?"}
    ]
    later = stream_request(
        settings, "http://127.0.0.1:1", user, "tok", earlier=[{"message": "Remember x.", "answer": "OK, x."}]
    )
    assert later.body is not None and [m["content"] for m in json.loads(later.body)["messages"]] == [
        "[n-1] Remember x.",
        "OK, x.",
        "[n-1] Which word?",
    ]
