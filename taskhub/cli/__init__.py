"""``manage.py taskhub``: the command line and the processes it runs (``taskhub up``)."""
