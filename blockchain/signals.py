"""``blockchain_event`` — sent for every newly stored chain event (indexed or reported), with
``event``: ``{"type": "blockchain.event", "data": {…}}``. Receivers (the webhooks app) run inside
the transaction that stores the event, so work they schedule with ``taskhub.schedule`` commits
exactly when the event does — an event indexed twice is stored, and signalled, once."""

from django.dispatch import Signal

blockchain_event = Signal()
