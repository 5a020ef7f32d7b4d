"""Running a long-lived loop in the foreground with clean SIGINT/SIGTERM handling."""

from __future__ import annotations

import signal
from typing import Protocol


class Service(Protocol):
    def run_forever(self) -> None: ...
    def stop(self) -> None: ...


def run_until_signalled(service: Service) -> None:
    def handle(signum, frame):
        service.stop()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
    service.run_forever()
