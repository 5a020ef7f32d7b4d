"""Where owner confirmations are collected before execution, chosen by ``PAYMENTS["SAFE_BACKEND"]``.

* ``rpc`` — confirmations live in taskhub's database (the user's from the request, the server's
  signed here); execution goes straight to the chain.
* ``tx_service`` — the SafeTx is proposed to a Safe Transaction Service with the user's
  signature and confirmed there with the server's; the service's answer is checked (its
  safeTxHash is recomputed from the fields it returns) and its confirmations are executed.
"""

from __future__ import annotations

import httpx
from eth_utils import to_checksum_address

from .chain.safe_tx import SafeTx, parse_safe_tx, recover_owner, safe_tx_hash
from .conf import payments_settings
from .models import SafeTransaction


class ConfirmationError(Exception):
    """The confirmation backend misbehaved in a way no retry fixes."""


class RpcBackend:
    name = "rpc"

    def confirmations(self, row: SafeTransaction, tx: SafeTx, server_signature: str):
        return [(c.owner, c.signature) for c in row.confirmation_set.all()]


class TxServiceBackend:
    """Client for the Safe Transaction Service REST API (v1 endpoints)."""

    name = "tx_service"

    def __init__(self) -> None:
        self.base_url = payments_settings.SAFE_TX_SERVICE_URL.rstrip("/")
        if not self.base_url:
            raise ConfirmationError("set PAYMENTS['SAFE_TX_SERVICE_URL']")

    def _call(self, method: str, path: str, body: dict | None = None) -> httpx.Response:
        response = httpx.request(
            method, f"{self.base_url}{path}", json=body, timeout=payments_settings.HTTP_TIMEOUT
        )
        if response.status_code >= 500:
            response.raise_for_status()  # transient: the task retries
        return response

    def confirmations(self, row: SafeTransaction, tx: SafeTx, server_signature: str):
        from .safe import SafeExecutionFailed

        user = row.confirmation_set.exclude(signature=server_signature).first()
        state = self._call("GET", f"/api/v1/multisig-transactions/{row.safe_tx_hash}/")
        if state.status_code == 404:
            proposal = {
                "to": tx.to,
                "value": str(tx.value),
                "data": tx.data if tx.data != "0x" else None,
                "operation": tx.operation,
                "gasToken": tx.gasToken,
                "safeTxGas": str(tx.safeTxGas),
                "baseGas": str(tx.baseGas),
                "gasPrice": str(tx.gasPrice),
                "refundReceiver": tx.refundReceiver,
                "nonce": tx.nonce,
                "contractTransactionHash": row.safe_tx_hash,
                "sender": user.owner,
                "signature": user.signature,
                "origin": "taskhub",
            }
            created = self._call(
                "POST", f"/api/v1/safes/{row.safe_address}/multisig-transactions/", proposal
            )
            if created.status_code not in (200, 201):
                raise SafeExecutionFailed(
                    f"the transaction service refused the proposal "
                    f"({created.status_code}): {created.text[:200]}"
                )
        confirmed = self._call(
            "POST",
            f"/api/v1/multisig-transactions/{row.safe_tx_hash}/confirmations/",
            {"signature": server_signature},
        )
        if confirmed.status_code not in (200, 201, 409):
            raise SafeExecutionFailed(
                f"the transaction service refused the confirmation "
                f"({confirmed.status_code}): {confirmed.text[:200]}"
            )
        state = self._call("GET", f"/api/v1/multisig-transactions/{row.safe_tx_hash}/")
        state.raise_for_status()
        return self._verified_confirmations(row, state.json())

    def _verified_confirmations(self, row: SafeTransaction, data: dict):
        """Recompute the hash from what the service returned; keep only signatures that recover."""
        from .safe import SafeExecutionFailed

        try:
            returned = parse_safe_tx({**data, "data": data.get("data") or "0x"})
            recomputed = "0x" + safe_tx_hash(returned, row.chain_id, data["safe"]).hex()
        except Exception as exc:
            raise SafeExecutionFailed(
                f"the transaction service returned a malformed transaction: {exc}"
            ) from None
        if recomputed != row.safe_tx_hash or data.get("safeTxHash") != row.safe_tx_hash:
            raise SafeExecutionFailed(
                f"the transaction service's transaction hashes to {recomputed} "
                f"(it says {data.get('safeTxHash')}), not our {row.safe_tx_hash}"
            )
        pairs = []
        tx_hash = bytes.fromhex(row.safe_tx_hash[2:])
        for item in data.get("confirmations") or []:
            owner, _, signature = recover_owner(tx_hash, item.get("signature"))
            if owner == to_checksum_address(item.get("owner")):
                pairs.append((owner, signature))
        return pairs


BACKENDS = {"rpc": RpcBackend, "tx_service": TxServiceBackend}
