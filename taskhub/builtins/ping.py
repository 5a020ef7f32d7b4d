"""``taskhub.ping``: the smallest task there is; answers "pong". Good for checking a deployment."""

from ..definitions.registry import task


@task("taskhub.ping", queue="default")
def ping(payload: dict) -> str:
    return "pong"
