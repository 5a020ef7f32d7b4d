"""A producer of /api/task-queue/* written as a BullMQ client's code would be: HTTP only (the
standard library, no taskhub import), the task-queue document's payloads verbatim, BullMQ's
option units (delay in milliseconds, priority 1 the highest) and BullMQ's Job fields read back.

tests/e2e/test_bullmq_client.py runs it against ``taskhub up`` (web, workers, scheduler), so
every job below is really run — or really fails — by worker processes.

Usage: ``python bullmq_client.py BASE_URL OPERATOR_TOKEN ADMIN_TOKEN``. Prints one JSON object
of what it saw and exits 0, or stops at the first answer that is not what a BullMQ client
expects, saying which, and exits 1.
"""

from __future__ import annotations

import json
import sys
import time
import urllib.error
import urllib.request

# The document's jobs, as `queue.add(name, data, opts)` would send them.
WELCOME_EMAIL = {
    "to": "user@example.com",
    "subject": "Welcome to Gatherraa!",
    "template": "welcome-email.hbs",
    "context": {"name": "John Doe"},
}
WELCOME_OPTS = {
    "priority": 1,
    "delay": 5000,
    "attempts": 3,
    "backoff": {"type": "exponential", "delay": 2000},
    "removeOnComplete": True,
    "removeOnFail": False,
}
TRACK = {"event": "user_signup", "userId": "u-1", "properties": {"plan": "pro"}}
TRACK_OPTS = {"attempts": 2, "backoff": {"type": "exponential", "delay": 1000}}
IMAGE = {
    "url": "https://example.com/image.jpg",
    "transformations": [
        {"type": "resize", "options": {"width": 800, "height": 600, "fit": "cover"}},
        {"type": "webp", "options": {"quality": 80}},
    ],
}
# One attempt: the document's image URL cannot be fetched from a test machine (no such image,
# or no network), so the job fails for good and becomes a dead letter at once.
IMAGE_OPTS = {"attempts": 1, "backoff": {"type": "exponential", "delay": 2000}}


class Mismatch(Exception):
    pass


class Client:
    def __init__(self, base: str, token: str):
        self.base, self.token = base.rstrip("/"), token

    def call(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        request = urllib.request.Request(
            f"{self.base}/api/task-queue/{path}",
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Token {self.token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"{}")

    def expect(self, method: str, path: str, body: dict | None = None, status: int = 200) -> dict:
        code, answer = self.call(method, path, body)
        if code != status:
            raise Mismatch(f"{method} {path}: {code} (expected {status}): {answer}")
        return answer

    def add(self, kind: str, name: str, data: dict, opts: dict) -> dict:
        """``queue.add(name, data, opts)``: the job as the API reads it back at once."""
        added = self.expect("POST", kind, {"name": name, "data": data, "opts": opts}, 201)
        return self.job(added["queueName"], added["jobId"])

    def job(self, queue: str, job_id: str) -> dict:
        return self.expect("GET", f"{queue}/jobs/{job_id}")

    def wait_finished(self, job: dict, timeout: float = 90) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            now = self.job(job["queueName"], job["id"])
            if now["finishedOn"] is not None or now["status"] == "failed":
                return now
            time.sleep(0.25)
        raise Mismatch(f"job {job['id']} ({job['name']}) not finished in {timeout} s: {now}")


def check(condition: bool, what: str) -> None:
    if not condition:
        raise Mismatch(what)


def run(base: str, operator_token: str, admin_token: str) -> dict:
    queue = Client(base, operator_token)
    admin = Client(base, admin_token)
    seen: dict = {}

    # A delayed job: BullMQ's delay is milliseconds, and the job says so.
    email = queue.add("email", "send-welcome-email", WELCOME_EMAIL, WELCOME_OPTS)
    check(email["delay"] == 5000 and email["opts"]["delay"] == 5000, f"delay: {email}")
    check(email["opts"]["priority"] == 1 and email["maxAttempts"] == 3, f"opts: {email}")
    check(email["data"] == WELCOME_EMAIL and email["attemptsMade"] == 0, f"job: {email}")

    # Jobs run by the workers: analytics' processor, the e-mail after its delay.
    track = queue.wait_finished(queue.add("analytics", "track-event", TRACK, TRACK_OPTS))
    check(track["status"] == "completed" and track["returnvalue"] is not None, f"{track}")
    sent = queue.wait_finished(email)
    check(sent["status"] == "completed", f"the welcome e-mail: {sent}")
    waited = sent["processedOn"] - sent["timestamp"]
    check(waited >= 5000, f"the e-mail started {waited} ms after it was added, before its delay")
    check(sent["attemptsMade"] == 1 and sent["finishedOn"] >= sent["processedOn"], f"{sent}")
    seen["email_started_after_ms"] = waited

    # The same jobId twice is one job, as in BullMQ.
    first = queue.add("email", "digest", WELCOME_EMAIL, {"jobId": "digest-42", "delay": 60_000})
    again = queue.add("email", "digest", WELCOME_EMAIL, {"jobId": "digest-42", "delay": 60_000})
    check(first["id"] == again["id"] and first["opts"]["jobId"] == "digest-42", f"{again}")

    # job.remove() of a delayed job: gone from the queue, never run.
    queue.expect("DELETE", f"{first['queueName']}/jobs/{first['id']}")
    removed = queue.job(first["queueName"], first["id"])
    check(removed["status"] == "cancelled" and removed["processedOn"] is None, f"{removed}")

    # A job that fails for good is a dead letter: listed, retried, removed over REST.
    image = queue.wait_finished(queue.add("image-processing", "process-image", IMAGE, IMAGE_OPTS))
    check(image["status"] == "failed" and image["failedReason"], f"the image job: {image}")
    letters = queue.expect("GET", f"{image['queueName']}/dead-letters")
    mine = [j for j in letters["jobs"] if j["jobId"] == image["id"]]
    check(len(mine) == 1 and mine[0]["data"] == IMAGE, f"dead letters: {letters}")
    check(mine[0]["attemptsMade"] == 1 and mine[0]["failedReason"], f"dead letter: {mine[0]}")
    letter = mine[0]["id"]
    queue.expect("POST", f"{image['queueName']}/dead-letters/{letter}/retry")
    retried = queue.wait_finished(queue.job(image["queueName"], image["id"]))
    check(retried["status"] == "failed" and retried["attempts"] == 2, f"the retry: {retried}")
    letters = queue.expect("GET", f"{image['queueName']}/dead-letters")
    again = [j for j in letters["jobs"] if j["jobId"] == image["id"]]
    check(len(again) == 1 and again[0]["id"] != letter, f"after the retry: {letters}")
    queue.expect("DELETE", f"{image['queueName']}/dead-letters/{again[0]['id']}", status=403)
    admin.expect("DELETE", f"{image['queueName']}/dead-letters/{again[0]['id']}")
    letters = queue.expect("GET", f"{image['queueName']}/dead-letters")
    check(all(j["jobId"] != image["id"] for j in letters["jobs"]), f"removed: {letters}")

    seen["jobs"] = {"email": sent["id"], "analytics": track["id"], "image": image["id"]}
    seen["removed"] = first["id"]
    return seen


if __name__ == "__main__":
    try:
        print(json.dumps(run(*sys.argv[1:4])))
    except Mismatch as mismatch:
        print(f"not what a BullMQ client expects: {mismatch}", file=sys.stderr)
        sys.exit(1)
