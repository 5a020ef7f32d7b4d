"""The events measure's background streams: ``COUNT`` event streams opened on a web process and
read (and thrown away) as real clients would, from a process of their own.

Raw sockets and one ``select`` loop that reads in rounds, every ``ROUND`` seconds: clients on
other machines would cost the bench's CPUs nothing, and reading each event as it comes took ~30 %
of a CPU here (1,000 ``recv`` per event); a round's ~2 KB per stream is far from filling a socket
buffer. A stream nobody reads stalls once its buffers fill (a few seconds at the measure's rate)
and then costs the web process nothing more, which would hollow out the load.

``python -m bench.sse_drain HOST PORT TOKEN COUNT`` prints ``ready COUNT`` once every stream
answered 200, then reads until it is terminated (or the server closes every stream).
"""

from __future__ import annotations

import selectors
import socket
import sys
import time

ROUND = 0.1  # seconds between reading rounds


def open_stream(host: str, port: int, token: str) -> socket.socket:
    sock = socket.create_connection((host, port), timeout=60)
    request = (
        f"GET /api/events/stream HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Authorization: Token {token}\r\nAccept: text/event-stream\r\n\r\n"
    )
    sock.sendall(request.encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        if not chunk:
            raise RuntimeError("the server closed a stream before answering")
        head += chunk
    status = head.split(b"\r\n", 1)[0]
    if b" 200 " not in status + b" ":
        raise RuntimeError(f"a stream answered {status.decode(errors='replace')}")
    sock.setblocking(False)
    return sock


def main(host: str, port: int, token: str, count: int) -> None:
    selector = selectors.DefaultSelector()
    for _ in range(count):
        selector.register(open_stream(host, port, token), selectors.EVENT_READ)
    print(f"ready {count}", flush=True)
    while selector.get_map():
        time.sleep(ROUND)
        for key, _ in selector.select():
            try:
                data = key.fileobj.recv(1 << 16)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if not data:
                selector.unregister(key.fileobj)
                key.fileobj.close()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]))
