"""The provider sandbox: DTR (payments and KYC), Onramp Money KYC and a Safe Transaction Service,
speaking the real signed requests and signed callbacks and deciding deterministically.

It is a separate process (``python -m sandbox`` / ``manage.py taskhub sandbox``); taskhub's
apps reach it only over HTTP and never import it. State is in memory: a restart forgets it.
"""
