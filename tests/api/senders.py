"""A sender for the SENDERS setting test."""


def echo(payload, ctx):
    return {"echo": payload.to}
