"""email.send end to end: real workers, a real SMTP server (aiosmtpd)."""

import pytest

from taskhub import InvalidTaskRequest, schedule
from taskhub.builtins.mail import SendEmail, build_message
from taskhub.models import Task
from tests.support import wait_for, wait_status

pytestmark = [pytest.mark.e2e]


def test_a_welcome_email_arrives_with_text_and_escaped_html_parts(e2e, smtp):
    task = schedule(
        "email.send",
        {
            "to": "ada@example.com",
            "subject": "Welcome aboard",
            "template": "welcome",
            "context": {"name": "Ada <script>alert(1)</script>", "action_url": "https://x.test/go"},
            "cc": ["cc@example.com"],
            "replyTo": ["help@example.com"],
            "from": "Team <team@x.test>",
        },
    )

    done = wait_status(task.id, "completed", timeout=60)

    message = wait_for(lambda: smtp.handler.to("ada@example.com"), message="the e-mail")[0]
    assert message["Subject"] == "Welcome aboard"
    assert message["From"] == "Team <team@x.test>"
    assert message["Reply-To"] == "help@example.com"
    assert message["Message-ID"] == done.result["message_id"]
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert "Hello Ada" in text and "https://x.test/go" in text
    assert "&lt;script&gt;" in html and "<script>" not in html
    assert smtp.handler.to("cc@example.com")


def test_an_unknown_template_is_refused_when_scheduling_and_nothing_is_stored(db):
    with pytest.raises(InvalidTaskRequest) as refused:
        schedule("email.send", {"to": ["a@example.com"], "subject": "Hi", "template": "nope"})

    assert "unknown e-mail template 'nope'" in str(refused.value)
    assert "payload.template" in refused.value.errors
    assert not Task.objects.exists()


def test_an_invalid_address_is_refused_when_scheduling(db):
    with pytest.raises(InvalidTaskRequest) as refused:
        schedule("email.send", {"to": ["not-an-address"], "subject": "Hi", "template": "welcome"})

    assert "not a valid e-mail address" in str(refused.value)


def test_a_4xx_reply_is_retried_until_the_server_accepts_the_message(e2e, smtp):
    task = schedule(
        "email.send",
        {
            "to": "tempfail-1@example.com",
            "subject": "Receipt",
            "template": "payment_receipt",
            "context": {"amount": "10.00", "currency": "USD", "reference": "R-1"},
        },
    )

    done = wait_status(task.id, "completed", timeout=60)

    assert done.attempt == 2
    assert smtp.handler.tried["tempfail-1@example.com"] == 2
    (message,) = smtp.handler.to("tempfail-1@example.com")
    assert "R-1" in message.get_body(("plain",)).get_content()


def test_a_5xx_reply_fails_the_task_at_once_without_retrying(e2e, smtp):
    task = schedule(
        "email.send", {"to": "reject-1@example.com", "subject": "Hi", "template": "welcome"}
    )

    failed = wait_status(task.id, "failed", timeout=60)

    assert failed.attempt == 1
    assert "550" in failed.error and "refused" in failed.error
    assert smtp.handler.tried["reject-1@example.com"] == 1


@pytest.mark.parametrize(
    ("template", "context", "expected"),
    [
        ("welcome", {"name": "Ada"}, "Welcome"),
        ("kyc_status_changed", {"status": "approved"}, "approved"),
        ("payment_receipt", {"amount": "5", "currency": "EUR", "reference": "P9"}, "P9"),
        ("task_failure_alert", {"count": 3, "task_name": "x.y", "error": "boom"}, "3 tasks"),
    ],
)
def test_every_shipped_template_renders_text_and_html(template, context, expected):
    payload = SendEmail.model_validate(
        {"to": ["a@example.com"], "subject": "S", "template": template, "context": context}
    )

    message = build_message(payload)

    assert expected in message.body
    ((html, mimetype),) = message.alternatives
    assert mimetype == "text/html" and expected in html
