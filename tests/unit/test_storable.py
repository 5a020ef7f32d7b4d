"""taskhub.safety.storable: the one rule for values from outside (U+FFFD for NUL and lone
surrogates), and payloads holding such characters refused at schedule time with nothing written."""

import pytest

from taskhub import InvalidTaskRequest, schedule, schedule_many
from taskhub.models import Task, TaskEvent
from taskhub.safety.storable import REPLACEMENT, storable_json, storable_text, unstorable_reason


@pytest.mark.parametrize(
    ("text", "stored"),
    [
        ("a\x00b", f"a{REPLACEMENT}b"),
        ("\ud800 and \udfff", f"{REPLACEMENT} and {REPLACEMENT}"),
        ("\x00\x00", REPLACEMENT * 2),
    ],
)
def test_nul_and_lone_surrogates_become_the_replacement_character(text, stored):
    assert storable_text(text) == stored
    stored.encode("utf-8")  # encodable now


@pytest.mark.parametrize("text", ["plain", "😀 a whole pair", "\\u0000 spelled out", "\x01\x7f"])
def test_storable_text_is_kept_exactly_and_not_copied(text):
    assert storable_text(text) is text


def test_storable_json_replaces_in_keys_and_nested_values_and_keeps_the_rest():
    value = {"a\x00": [1, "x\ud800", {"k": None, "n": 2.5}], "clean": True}

    assert storable_json(value) == {
        f"a{REPLACEMENT}": [1, f"x{REPLACEMENT}", {"k": None, "n": 2.5}],
        "clean": True,
    }


def test_a_clean_json_value_is_returned_as_it_is():
    value = {"text": "\\u0000 is six characters here", "emoji": "😀", "list": [1, {"a": "b"}]}

    assert storable_json(value) is value
    assert unstorable_reason(value) is None


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ({"body": "a\x00b"}, "payload contains a NUL character"),
        ({"a\x00b": 1}, "payload contains a NUL character"),
        ({"deep": [{"x": ["\ud800"]}]}, "payload contains a lone surrogate"),
    ],
)
def test_a_payload_that_cannot_be_stored_is_refused_and_nothing_is_written(db, payload, reason):
    with pytest.raises(InvalidTaskRequest, match=reason) as refused:
        schedule("test.noop", payload)
    assert refused.value.field == "payload"
    with pytest.raises(InvalidTaskRequest, match="item 1"):
        schedule_many("test.noop", [{"fine": 1}, payload])

    assert (Task.objects.count(), TaskEvent.objects.count()) == (0, 0)


@pytest.mark.parametrize("option", ["correlation_id", "user_id", "dedup_key"])
def test_options_that_cannot_be_stored_are_refused(db, option):
    with pytest.raises(InvalidTaskRequest, match=f"{option} contains a NUL character"):
        schedule("test.noop", {}, **{option: "a\x00b"})

    assert Task.objects.count() == 0


def test_text_that_only_looks_like_an_escape_is_stored_exactly(db):
    payload = {"text": "\\u0000 and \\ud800 spelled out", "emoji": "😀"}

    task = schedule("test.noop", payload)

    assert Task.objects.get(id=task.id).payload == payload
