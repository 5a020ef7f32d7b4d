"""``manage.py taskhub sandbox`` and ``manage.py taskhub devchain``; the sandbox joins ``up``.

The sandbox runs as its own process (``python -m sandbox``): the apps reach it only over HTTP.
"""

from __future__ import annotations

import os
import sys
from urllib.parse import urlsplit

from django.conf import settings

from taskhub.cli import launcher
from taskhub.cli.subcommands import fail, subcommand


def sandbox_selected() -> bool:
    """True while any provider URL points at the sandbox (the default)."""
    base = getattr(settings, "SANDBOX_URL", "")
    urls = [
        settings.PAYMENTS.get("DTR_BASE_URL", ""),
        *(settings.KYC.get(k, "") for k in ("DTR_BASE_URL", "ONRAMP_BASE_URL")),
    ]
    return bool(base) and any(u.startswith(base) for u in urls)


def sandbox_env() -> dict[str, str]:
    """The secrets the sandbox must share with us, handed over through its environment."""
    p, k = settings.PAYMENTS, settings.KYC
    return {
        "SANDBOX_DTR_API_KEY": p["DTR_API_KEY"],
        "SANDBOX_DTR_API_SECRET": p["DTR_API_SECRET"],
        "SANDBOX_DTR_WEBHOOK_SECRET": p["DTR_WEBHOOK_SECRET"],
        "SANDBOX_ONRAMP_API_KEY": k["ONRAMP_API_KEY"],
        "SANDBOX_ONRAMP_API_SECRET": k["ONRAMP_API_SECRET"],
        "SANDBOX_CHAIN_RPC_URL": p.get("CHAIN_RPC_URL", ""),
    }


def _sandbox_arguments(parser) -> None:
    parser.add_argument("--host", default=None, help="default: the host of SANDBOX_URL")
    parser.add_argument("--port", type=int, default=None, help="default: the port of SANDBOX_URL")


@subcommand(
    "sandbox",
    "run the provider sandbox (DTR, onramp, Safe Transaction Service)",
    _sandbox_arguments,
)
def run_sandbox(args) -> int:
    url = urlsplit(settings.SANDBOX_URL)
    host = args.host or url.hostname or "127.0.0.1"
    port = args.port or url.port or 8100
    env = {**os.environ, **sandbox_env()}
    argv = [sys.executable, "-m", "sandbox", "--host", host, "--port", str(port)]
    # Become the sandbox (exec, not a child): a SIGTERM from `taskhub up` then reaches it.
    os.chdir(settings.BASE_DIR)
    os.execve(sys.executable, argv, env)


def _devchain_arguments(parser) -> None:
    parser.add_argument("--port", type=int, default=8545)
    parser.add_argument("--chain-id", type=int, default=31337)


@subcommand(
    "devchain",
    "start anvil, deploy a 2-of-3 Safe and print the settings to use",
    _devchain_arguments,
)
def run_devchain(args) -> int:
    import signal

    from .chain import devchain

    def stop(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)  # so that anvil is stopped with us
    try:
        chain = devchain.start(port=args.port, chain_id=args.chain_id)
    except devchain.AnvilMissing as exc:
        raise fail(str(exc)) from None
    try:
        safe = devchain.deploy_safe(chain)
        print(devchain.describe(chain, safe), flush=True)
        chain.process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        chain.stop()
    return 0


if sandbox_selected():
    # `taskhub up` starts the sandbox beside web, workers and dispatcher.
    launcher.EXTRA_PROCESSES["sandbox"] = ["taskhub", "sandbox"]


def _safe_sign_arguments(parser) -> None:
    parser.add_argument("--safe", required=True, help="the Safe's address")
    parser.add_argument("--to", required=True)
    parser.add_argument("--value", default="0", help="in wei")
    parser.add_argument("--data", default="0x")
    parser.add_argument("--key", required=True, help="the signing owner's private key (dev only)")
    parser.add_argument("--nonce", type=int, default=None, help="default: the Safe's nonce now")


@subcommand(
    "safe-sign",
    "sign a SafeTx as an owner and print the safe_transaction JSON "
    "(a development helper for the walkthrough)",
    _safe_sign_arguments,
)
def run_safe_sign(args) -> int:
    import json

    from eth_account import Account

    from .chain.client import ChainNotConfigured, SafeOnChain, get_web3
    from .chain.safe_tx import InvalidSafeTx, parse_safe_tx, safe_tx_hash

    try:
        w3 = get_web3()
        nonce = args.nonce if args.nonce is not None else SafeOnChain(w3, args.safe).nonce()
        fields = {"to": args.to, "value": args.value, "data": args.data, "nonce": nonce}
        tx_hash = safe_tx_hash(parse_safe_tx(fields), int(w3.eth.chain_id), args.safe)
        signature = bytes(Account.unsafe_sign_hash(tx_hash, args.key).signature)
    except (ChainNotConfigured, InvalidSafeTx, ValueError) as exc:
        raise fail(str(exc)) from None
    print(
        json.dumps(
            {
                "safe_address": args.safe,
                "chain_id": int(w3.eth.chain_id),
                "transaction": fields,
                "user_signature": "0x" + signature.hex(),
            }
        )
    )
    return 0
