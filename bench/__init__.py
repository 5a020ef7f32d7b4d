"""Benchmarks and fault drills for taskhub (``make bench``); not part of the test suite.

Every measure is a module here with a ``run(ctx)`` function returning table rows; ``bench.run``
is the command line that runs them, prints one table, writes ``bench/results/<date>.json`` and a
chart, and exits non-zero when a target is missed.
"""
