"""The SSRF guard refuses every private address class, checked on the address connected to."""

import socket

import pytest

from taskhub.safety.net import (
    BlockedAddress,
    UnsupportedScheme,
    check_url,
    guarded_client,
    is_blocked,
)


@pytest.mark.parametrize(
    "address",
    [
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",  # private
        "127.0.0.1",
        "::1",  # loopback
        "169.254.169.254",
        "fe80::1",  # link-local, cloud metadata
        "100.64.0.1",  # carrier-grade NAT
        "224.0.0.1",
        "ff02::1",  # multicast
        "fd00::1",  # IPv6 unique-local
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",  # IPv4-mapped IPv6
        "0.0.0.0",
    ],
)
def test_each_private_address_class_is_refused(address):
    assert is_blocked(address)


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111"])
def test_public_addresses_are_allowed(address):
    assert not is_blocked(address)


def test_a_host_name_resolving_to_loopback_is_refused_at_connect_time():
    with guarded_client(allow_private=False) as client, pytest.raises(BlockedAddress):
        client.get("http://localhost:9/")


def test_dns_rebinding_is_caught_because_the_checked_address_is_the_one_connected(monkeypatch):
    # First lookup public, every later one loopback: a check-then-connect guard would be fooled.
    answers = iter([[(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", 80))]])
    real = socket.getaddrinfo

    def rebinding(host, *args, **kwargs):
        if host == "rebind.test":
            try:
                return next(answers)
            except StopIteration:
                return real("127.0.0.1", *args, **kwargs)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    socket.getaddrinfo("rebind.test", 80)  # the "validation" lookup, consumed
    with guarded_client(allow_private=False, timeout=1) as client, pytest.raises(BlockedAddress):
        client.get("http://rebind.test/")


def test_only_http_and_https_urls_are_accepted():
    for url in ("file:///etc/passwd", "gopher://x/", "ftp://example.com/"):
        with pytest.raises(UnsupportedScheme):
            check_url(url)
    check_url("https://example.com/")


def test_redirects_are_not_followed(tmp_path):
    from http.server import BaseHTTPRequestHandler, HTTPServer
    from threading import Thread

    class Redirect(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(302)
            self.send_header("Location", "http://169.254.169.254/latest/meta-data")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Redirect)
    Thread(target=server.serve_forever, daemon=True).start()
    try:
        with guarded_client(allow_private=True) as client:
            response = client.get(f"http://127.0.0.1:{server.server_port}/")
        assert response.status_code == 302
    finally:
        server.shutdown()
