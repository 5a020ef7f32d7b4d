"""Leaf helpers for values crossing taskhub's edges: outgoing HTTP (net), what the database can
store (storable), secrets masked out of what is shown (masking)."""
