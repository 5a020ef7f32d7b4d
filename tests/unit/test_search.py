"""The task search language read without a database: terms, quotes, and a clear refusal of
anything it can't read (what the API answers 400 and the admin shows as a message)."""

import pytest

from taskhub.console.search import MAX_LENGTH, MAX_TERMS, SearchError, Term, json_values, parse


def test_qualifiers_and_bare_words_become_terms_in_order():
    terms = parse(
        "name:emails.send error:timeout payload.user_id:42 status:failed,cancelled "
        "queue:email id:6f0c refund"
    ).terms

    assert terms == (
        Term("name", "emails.send"),
        Term("error", "timeout"),
        Term("payload", "42", ("user_id",)),
        Term("status", "failed,cancelled"),
        Term("queue", "email"),
        Term("id", "6f0c"),
        Term("text", "refund"),
    )


def test_quotes_keep_spaces_and_make_a_word_with_a_colon_a_bare_word():
    assert parse('error:"connection refused"  "https://example.com/x"').terms == (
        Term("error", "connection refused"),
        Term("text", "https://example.com/x"),
    )


def test_nested_payload_keys_and_exact_qualifiers():
    assert parse("payload.a.b:x correlation_id:order-7 user_id:u1 dedup_key:k").terms == (
        Term("payload", "x", ("a", "b")),
        Term("correlation_id", "order-7"),
        Term("user_id", "u1"),
        Term("dedup_key", "k"),
    )


def test_qualifier_names_and_statuses_ignore_case_payload_keys_keep_it():
    assert parse("Status:FAILED").terms == (Term("status", "failed"),)
    assert parse("Payload.Order-Id:A1").terms == (Term("payload", "A1", ("Order-Id",)),)
    assert not parse("   ")


def test_a_dash_turns_a_term_round_and_a_quoted_dash_is_part_of_a_word():
    assert parse('-status:completed -timeout -payload.a:1 "-x" - name:emails').terms == (
        Term("status", "completed", negated=True),
        Term("text", "timeout", negated=True),
        Term("payload", "1", ("a",), negated=True),
        Term("text", "-x"),
        Term("text", "-"),
        Term("name", "emails"),
    )
    with pytest.raises(SearchError, match="Unknown qualifier colour:"):
        parse("-colour:red")
    with pytest.raises(SearchError, match="3 letters or digits"):
        parse("-name:ab")


def test_a_short_bare_word_is_allowed_it_is_compared_exactly():
    assert parse("u-9").terms == (Term("text", "u-9"),)


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("colour:red", "Unknown qualifier colour:"),
        ("https://example.com", "Unknown qualifier https:"),
        ("status:done", "status:done is not a status"),
        ("status:failed,nope", "status:nope is not a status"),
        ("name:", "name: needs a value"),
        ('error:"', "not closed"),
        ('name:x "oops', "not closed"),
        ("id:xyz", "id:xyz is not the start of a task id"),
        ("id:" + "a" * 33, "not the start of a task id"),
        ("payload:42", "names no payload key"),
        ("payload..a:1", "names no payload key"),
        ("payload.a.:1", "names no payload key"),
        ("9lives:x", "not a qualifier"),
        ("name:ab", "3 letters or digits in a row"),
        ("error:a.b.c", "3 letters or digits in a row"),
        ('""', "searches for nothing"),
        ("x" * (MAX_LENGTH + 1), f"longer than {MAX_LENGTH}"),
        (" ".join(["word"] * (MAX_TERMS + 1)), f"more than {MAX_TERMS} terms"),
    ],
)
def test_what_it_cannot_read_is_refused_with_a_message_saying_why(query, message):
    with pytest.raises(SearchError, match=message):
        parse(query)


def test_a_payload_value_may_be_the_string_or_the_json_scalar_it_spells():
    assert json_values("42") == ["42", 42]
    assert json_values("-1.5") == ["-1.5", -1.5]
    assert json_values("true") == ["true", True]
    assert json_values("null") == ["null", None]
    assert json_values("abc") == ["abc"]
    assert json_values("042") == ["042"]  # not a JSON number
    assert json_values("[1]") == ["[1]"]  # not a scalar
    # JSON numbers no database stores: the string only
    assert json_values("1e999") == ["1e999"]
    assert json_values("NaN") == ["NaN"]
