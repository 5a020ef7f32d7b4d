"""A delivery never reaches our own network: every private address class is refused at connect
time (so DNS rebinding can't slip through), and at save time where it can be seen already."""

import socket

import pytest
from django.conf import settings
from django.test import override_settings

from webhooks import services
from webhooks.delivery import attempt_delivery
from webhooks.models import DeliveryAttempt

pytestmark = pytest.mark.django_db

GUARD_ON = {"ALLOW_PRIVATE_TARGETS": False}

ADDRESS_CLASSES = [
    ("private 10/8", "http://10.1.2.3/hook"),
    ("private 172.16/12", "http://172.16.0.1/hook"),
    ("private 192.168/16", "http://192.168.1.10/hook"),
    ("loopback", "http://127.0.0.1:9/hook"),
    ("loopback IPv6", "http://[::1]:9/hook"),
    ("link-local / cloud metadata", "http://169.254.169.254/latest/meta-data"),
    ("carrier-grade NAT", "http://100.64.0.1/hook"),
    ("multicast", "http://224.0.0.1/hook"),
    ("IPv6 unique-local", "http://[fd00::1]/hook"),
    ("IPv6 link-local", "http://[fe80::1]/hook"),
    ("IPv4-mapped IPv6", "http://[::ffff:127.0.0.1]:9/hook"),
    ("unspecified", "http://0.0.0.0:9/hook"),
]


@pytest.mark.parametrize(("address_class", "url"), ADDRESS_CLASSES)
def test_a_delivery_to_each_private_address_class_is_refused_and_never_sent(address_class, url):
    # Saved while private targets were allowed (as in the test settings), then the guard is on.
    services.create_endpoint(url, ["*"])
    [delivery] = services.publish("invoice.paid", {})

    with override_settings(WEBHOOKS=GUARD_ON):
        result = attempt_delivery(str(delivery.id), 1)

    assert result["status"] == "permanently_failed", address_class
    attempt = DeliveryAttempt.objects.get(delivery=delivery)
    assert attempt.response_code is None and attempt.error.startswith("refused")


def test_a_host_name_that_resolves_privately_at_delivery_time_is_refused(monkeypatch, receiver):
    # DNS rebinding: the name was public when saved, and points at loopback when connecting.
    real = socket.getaddrinfo
    answers = {"hooks.example.test": "93.184.216.34"}

    def resolve(host, *args, **kwargs):
        if host in answers:
            return real(answers[host], *args, **kwargs)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    port = receiver.server.server_port
    # The receiver's port allowed, so that only the address can refuse the delivery.
    allowed = {**settings.TASKHUB, "ALLOWED_PORTS": [port]}
    with override_settings(WEBHOOKS=GUARD_ON, TASKHUB=allowed):
        services.create_endpoint(f"http://hooks.example.test:{port}/hook", ["*"])
        [delivery] = services.publish("invoice.paid", {})
        answers["hooks.example.test"] = "127.0.0.1"

        result = attempt_delivery(str(delivery.id), 1)

    assert result["status"] == "permanently_failed"
    assert "refused" in result["error"] and receiver.requests == []


@pytest.mark.parametrize(("address_class", "url"), ADDRESS_CLASSES)
@override_settings(WEBHOOKS=GUARD_ON)
def test_saving_an_endpoint_at_a_private_address_is_refused(address_class, url):
    with pytest.raises(services.InvalidWebhook, match="private"):
        services.create_endpoint(url, ["*"])


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.com/", "gopher://x/"])
def test_only_http_and_https_urls_are_accepted(url):
    with pytest.raises(services.InvalidWebhook):
        services.create_endpoint(url, ["*"])


def test_the_taskhub_wide_setting_applies_when_webhooks_do_not_override_it(settings):
    services.create_endpoint("http://10.0.0.1/hook", ["*"])
    [delivery] = services.publish("invoice.paid", {})
    settings.TASKHUB = {**settings.TASKHUB, "ALLOW_PRIVATE_TARGETS": False}

    result = attempt_delivery(str(delivery.id), 1)

    assert result["status"] == "permanently_failed" and "refused" in result["error"]
