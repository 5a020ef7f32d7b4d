"""A fake Safe Transaction Service (v1 endpoints) for the ``tx_service`` Safe backend.

It recomputes each proposal's safeTxHash (422 "Invalid safeTxHash" on mismatch), checks that
signatures recover to the sender / an owner (owners read over JSON-RPC when a chain is
configured), and stores confirmations. ``POST /_sandbox/safe-tx-service/tamper`` makes it return
altered transactions, so a test can prove taskhub checks the hash it gets back.
"""

from __future__ import annotations

import json
import re
import threading
import urllib.request

from eth_abi import decode
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import is_address, keccak, to_checksum_address

from .server import Config, HttpError, Outbox, Request

PREFIX = "/safe-tx-service/api/v1"
ZERO = "0x0000000000000000000000000000000000000000"
TYPES = {
    "EIP712Domain": [
        {"name": "chainId", "type": "uint256"},
        {"name": "verifyingContract", "type": "address"},
    ],
    "SafeTx": [
        {"name": n, "type": t}
        for n, t in [
            ("to", "address"),
            ("value", "uint256"),
            ("data", "bytes"),
            ("operation", "uint8"),
            ("safeTxGas", "uint256"),
            ("baseGas", "uint256"),
            ("gasPrice", "uint256"),
            ("gasToken", "address"),
            ("refundReceiver", "address"),
            ("nonce", "uint256"),
        ]
    ],
}


def _rpc(url: str, method: str, params: list):
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())["result"]


class TxServiceState:
    def __init__(self, config: Config):
        self.config = config
        self.lock = threading.Lock()
        self.txs: dict[str, dict] = {}
        self.tamper = False

    def chain_id(self) -> int:
        if not self.config.chain_rpc_url:
            raise HttpError(503, "the sandbox has no chain configured (SANDBOX_CHAIN_RPC_URL)")
        return int(_rpc(self.config.chain_rpc_url, "eth_chainId", []), 16)

    def owners(self, safe: str) -> list[str]:
        raw = _rpc(
            self.config.chain_rpc_url, "eth_call", [{"to": safe, "data": "0xa0e67e2b"}, "latest"]
        )  # getOwners()
        return [to_checksum_address(o) for o in decode(["address[]"], bytes.fromhex(raw[2:]))[0]]

    def tx_hash(self, safe: str, tx: dict) -> str:
        message = {
            "to": tx["to"],
            "value": int(tx["value"]),
            "data": bytes.fromhex((tx.get("data") or "0x")[2:]),
            "operation": int(tx["operation"]),
            "safeTxGas": int(tx["safeTxGas"]),
            "baseGas": int(tx["baseGas"]),
            "gasPrice": int(tx["gasPrice"]),
            "gasToken": tx.get("gasToken") or ZERO,
            "refundReceiver": tx.get("refundReceiver") or ZERO,
            "nonce": int(tx["nonce"]),
        }
        typed = {
            "types": TYPES,
            "primaryType": "SafeTx",
            "message": message,
            "domain": {"chainId": self.chain_id(), "verifyingContract": safe},
        }
        signable = encode_typed_data(full_message=typed)
        return "0x" + keccak(b"\x19" + signable.version + signable.header + signable.body).hex()

    @staticmethod
    def recover(tx_hash: str, signature: str) -> str:
        raw = bytes.fromhex((signature or "0x")[2:])
        if len(raw) != 65 or raw[64] not in (27, 28):
            raise HttpError(422, "Invalid signature")
        return to_checksum_address(Account._recover_hash(bytes.fromhex(tx_hash[2:]), signature=raw))

    def propose(self, request: Request):
        safe = request.match["safe"]
        if not is_address(safe):
            raise HttpError(422, "Invalid ethereum address")
        safe = to_checksum_address(safe)
        body = request.json()
        try:
            computed = self.tx_hash(safe, body)
        except (KeyError, ValueError, TypeError):
            raise HttpError(422, "Invalid transaction fields") from None
        if computed != body.get("contractTransactionHash"):
            raise HttpError(422, "Invalid safeTxHash")
        signer = self.recover(computed, body.get("signature"))
        if signer != to_checksum_address(body.get("sender") or ZERO):
            raise HttpError(422, "Invalid signature")
        if signer not in self.owners(safe):
            raise HttpError(422, "User is not an owner")
        with self.lock:
            tx = self.txs.setdefault(
                computed,
                {
                    **{
                        k: body.get(k)
                        for k in (
                            "to",
                            "value",
                            "data",
                            "operation",
                            "gasToken",
                            "safeTxGas",
                            "baseGas",
                            "gasPrice",
                            "refundReceiver",
                            "nonce",
                        )
                    },
                    "safe": safe,
                    "safeTxHash": computed,
                    "proposer": signer,
                    "isExecuted": False,
                    "confirmations": [],
                },
            )
            self._confirm(tx, signer, body["signature"])
        return 201, {}

    @staticmethod
    def _confirm(tx: dict, owner: str, signature: str) -> None:
        if all(c["owner"] != owner for c in tx["confirmations"]):
            tx["confirmations"].append(
                {"owner": owner, "signature": signature, "signatureType": "EOA"}
            )

    def confirm(self, request: Request):
        tx = self.txs.get(request.match["hash"])
        if tx is None:
            raise HttpError(404, "No MultisigTransaction matches the given query.")
        signature = request.json().get("signature")
        owner = self.recover(tx["safeTxHash"], signature)
        if owner not in self.owners(tx["safe"]):
            raise HttpError(422, "Signer is not an owner")
        with self.lock:
            self._confirm(tx, owner, signature)
        return 201, {"signature": signature}

    def get(self, request: Request):
        tx = self.txs.get(request.match["hash"])
        if tx is None:
            raise HttpError(404, "No MultisigTransaction matches the given query.")
        shown = dict(tx)
        if self.tamper:
            shown["value"] = str(int(tx["value"]) + 1)
        return 200, shown

    def set_tamper(self, request: Request):
        self.tamper = bool(request.json().get("tamper", True))
        return 200, {"tamper": self.tamper}


def routes(config: Config, outbox: Outbox):
    state = TxServiceState(config)
    return [
        (
            "POST",
            re.compile(PREFIX + r"/safes/(?P<safe>0x[0-9a-fA-F]+)/multisig-transactions/"),
            state.propose,
        ),
        (
            "POST",
            re.compile(
                PREFIX + r"/multisig-transactions/(?P<hash>0x[0-9a-f]{64})/"
                r"confirmations/"
            ),
            state.confirm,
        ),
        (
            "GET",
            re.compile(PREFIX + r"/multisig-transactions/(?P<hash>0x[0-9a-f]{64})/"),
            state.get,
        ),
        ("POST", re.compile(r"/_sandbox/safe-tx-service/tamper"), state.set_tamper),
    ]
