"""A local HTTP server whose every answer takes 100 ms (threaded): the I/O-bound measure's target.

Run as ``python -m bench.httpserver PORT [DELAY_S]``; it runs in its own process so the harness's
GIL never slows it.
"""

from __future__ import annotations

import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class SlowHandler(BaseHTTPRequestHandler):
    delay = 0.1
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        time.sleep(self.delay)
        body = b'{"ok": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:  # noqa: A002
        return


def main() -> None:
    port = int(sys.argv[1])
    SlowHandler.delay = float(sys.argv[2]) if len(sys.argv) > 2 else 0.1
    server = ThreadingHTTPServer(("127.0.0.1", port), SlowHandler)
    server.daemon_threads = True
    server.request_queue_size = 128
    server.serve_forever()


if __name__ == "__main__":
    main()
