"""The SSRF guard's remaining gaps: IPv6 ranges that embed or reach IPv4 / internal networks,
and a port policy (only TASKHUB["ALLOWED_PORTS"], by default 80 and 443, unless private targets
are allowed, as the test suite and local development do)."""

import pytest

from taskhub.safety.net import BlockedAddress, BlockedPort, guarded_client, is_blocked, port_allowed


@pytest.mark.parametrize(
    "address",
    [
        "::a00:1",  # ::/96 IPv4-compatible 10.0.0.1
        "::7f00:1",  # ::/96 IPv4-compatible 127.0.0.1
        "2002:7f00:1::1",  # 6to4 of 127.0.0.1
        "2002:a9fe:a9fe::1",  # 6to4 of 169.254.169.254 (cloud metadata)
        "64:ff9b:1::a00:1",  # local-use NAT64
        "fec0::1",  # deprecated site-local
    ],
)
def test_ipv6_ranges_reaching_internal_networks_are_refused(address):
    assert is_blocked(address)


def test_the_default_ports_are_http_and_https():
    assert port_allowed(80) and port_allowed(443)
    assert not port_allowed(22) and not port_allowed(6379) and not port_allowed(8080)


def test_more_ports_can_be_allowed_explicitly(settings):
    settings.TASKHUB = {**settings.TASKHUB, "ALLOWED_PORTS": [80, 443, 8443]}
    assert port_allowed(8443) and not port_allowed(8080)


def test_a_public_address_on_a_refused_port_is_refused_before_connecting(monkeypatch):
    import socket

    def no_connection(*args, **kwargs):
        raise AssertionError("connected despite the port policy")

    monkeypatch.setattr(socket, "create_connection", no_connection)
    client = guarded_client(allow_private=False, timeout=1)
    with client, pytest.raises(BlockedPort, match="port 6379"):
        client.get("http://93.184.216.34:6379/")
    assert issubclass(BlockedPort, BlockedAddress)  # callers treat it as a refusal


def test_an_explicitly_allowed_port_is_connected_to(settings, monkeypatch):
    import socket

    class Connected(Exception):
        pass

    def connect(address, *args, **kwargs):
        raise Connected(address)

    monkeypatch.setattr(socket, "create_connection", connect)
    settings.TASKHUB = {**settings.TASKHUB, "ALLOWED_PORTS": [80, 443, 6379]}
    client = guarded_client(allow_private=False, timeout=1)
    with client, pytest.raises(Connected, match="6379"):
        client.get("http://93.184.216.34:6379/")


def test_a_private_address_is_refused_as_such_whatever_its_port():
    client = guarded_client(allow_private=False, timeout=1)
    with client, pytest.raises(BlockedAddress, match="refused address"):
        client.get("http://127.0.0.1:6379/")


def test_with_private_targets_allowed_any_port_is_reached(tmp_path):
    from http.server import BaseHTTPRequestHandler, HTTPServer
    from threading import Thread

    class Ok(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Ok)
    Thread(target=server.serve_forever, daemon=True).start()
    try:
        with guarded_client(allow_private=True) as client:
            assert client.get(f"http://127.0.0.1:{server.server_port}/").status_code == 204
    finally:
        server.shutdown()


@pytest.mark.django_db
def test_a_webhook_endpoint_on_a_refused_port_is_refused_when_saved(settings):
    from webhooks.models import WebhookEndpoint
    from webhooks.services import InvalidWebhook, create_endpoint

    settings.TASKHUB = {**settings.TASKHUB, "ALLOW_PRIVATE_TARGETS": False}
    with pytest.raises(InvalidWebhook, match="port 2375"):
        create_endpoint("https://93.184.216.34:2375/hook", ["task.*"])
    assert not WebhookEndpoint.objects.exists()
