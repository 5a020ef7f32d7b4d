"""``manage.py taskhub webhook-add | webhook-publish | deliveries | webhooks | …``."""

from __future__ import annotations

import sys

from taskhub.cli.subcommands import fail, parse_json, print_json, subcommand
from taskhub.errors import InvalidTransition

from . import services
from .models import WebhookDelivery, WebhookEndpoint


def _add_args(p) -> None:
    p.add_argument("url")
    p.add_argument("--events", required=True, help='comma-separated, wildcards allowed: "task.*"')
    p.add_argument("--secret", help="whsec_… (default: a new random secret)")
    p.add_argument("--description", default="")


@subcommand("webhook-add", "add a webhook endpoint; prints its id and secret", _add_args)
def webhook_add(args) -> None:
    events = [e for e in args.events.split(",") if e.strip()]
    try:
        endpoint, secret = services.create_endpoint(
            args.url, events, secret=args.secret, description=args.description
        )
    except services.InvalidWebhook as exc:
        raise fail(str(exc)) from None
    # The one time the secret is shown.
    sys.stdout.write(f"endpoint {endpoint.id}\nsecret {secret}\n")


def _publish_args(p) -> None:
    p.add_argument("event", help="event type, e.g. invoice.paid")
    p.add_argument("--payload", default="{}", help="JSON object")


@subcommand("webhook-publish", "publish an event to subscribed endpoints", _publish_args)
def webhook_publish(args) -> None:
    try:
        deliveries = services.publish(args.event, parse_json(args.payload, "--payload"))
    except services.InvalidWebhook as exc:
        raise fail(str(exc)) from None
    for delivery in deliveries:
        sys.stdout.write(f"{delivery.id}\n")
    if not deliveries:
        sys.stderr.write("no active endpoint is subscribed to this event\n")


def delivery_as_json(d: WebhookDelivery) -> dict:
    return {
        "id": str(d.id),
        "endpoint": str(d.endpoint_id),
        "url": d.endpoint.url,
        "event_type": d.event_type,
        "message_id": d.message_id,
        "status": d.status,
        "attempts": d.attempts,
        "next_attempt_at": d.next_attempt_at,
        "last_response_code": d.last_response_code,
        "last_error": d.last_error or None,
        "created_at": d.created_at,
        "delivered_at": d.delivered_at,
        "task_id": str(d.task_id) if d.task_id else None,
        "log": [
            {
                "number": a.number,
                "at": a.at,
                "response_code": a.response_code,
                "duration": round(a.duration, 4),
                "error": a.error or None,
            }
            for a in d.log.all()
        ],
    }


def _deliveries_args(p) -> None:
    p.add_argument("--json", action="store_true")
    p.add_argument("--status", choices=["pending", "succeeded", "failed", "permanently_failed"])
    p.add_argument("--limit", type=int, default=50)


@subcommand("deliveries", "list recent webhook deliveries", _deliveries_args)
def deliveries(args) -> None:
    query = WebhookDelivery.objects.select_related("endpoint").prefetch_related("log")
    if args.status:
        query = query.filter(status=args.status)
    rows = [delivery_as_json(d) for d in query.order_by("-created_at")[: args.limit]]
    if args.json:
        print_json(rows)
        return
    for r in rows:
        code = r["last_response_code"] or r["last_error"] or "-"
        sys.stdout.write(
            f"{r['id']}  {r['event_type']}  {r['url']}  {r['status']}  "
            f"attempts={r['attempts']}  last={code}\n"
        )


@subcommand(
    "webhooks",
    "list webhook endpoints (secrets are never shown)",
    lambda p: p.add_argument("--json", action="store_true"),
)
def endpoints(args) -> None:
    rows = [
        {
            "id": str(e.id),
            "url": e.url,
            "event_types": e.event_types,
            "active": e.active,
            "disabled_reason": e.disabled_reason or None,
            "description": e.description,
        }
        for e in WebhookEndpoint.objects.order_by("created_at")
    ]
    if args.json:
        print_json(rows)
        return
    for r in rows:
        state = "active" if r["active"] else f"disabled ({r['disabled_reason']})"
        sys.stdout.write(f"{r['id']}  {r['url']}  {','.join(r['event_types'])}  {state}\n")


@subcommand("webhook-redeliver", "send a delivery again now", lambda p: p.add_argument("id"))
def webhook_redeliver(args) -> None:
    try:
        delivery = services.redeliver(args.id)
    except (services.DeliveryNotFound, InvalidTransition) as exc:
        raise fail(str(exc)) from None
    sys.stdout.write(f"{delivery.id} {delivery.status}\n")


@subcommand("webhook-retry-failed", "redeliver every failed delivery now")
def webhook_retry_failed(args) -> None:
    sys.stdout.write(f"redelivering {services.retry_all_failed()} deliveries\n")
