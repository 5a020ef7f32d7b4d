"""Integrations with other frameworks, fenced off from the engine: the engine never imports them."""
