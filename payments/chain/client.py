"""Reading and writing a Safe on chain through JSON-RPC (web3)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from eth_utils import keccak, to_checksum_address
from web3 import Web3

from ..conf import setting
from .contracts import abi

EXECUTION_SUCCESS = "0x" + keccak(text="ExecutionSuccess(bytes32,uint256)").hex()
EXECUTION_FAILURE = "0x" + keccak(text="ExecutionFailure(bytes32,uint256)").hex()


class ChainNotConfigured(Exception):
    """No JSON-RPC URL is configured: Safe work cannot run (a permanent failure, not a retry)."""


def get_web3() -> Web3:
    url = setting("CHAIN_RPC_URL")
    if not url:
        raise ChainNotConfigured(
            "no chain configured: set PAYMENTS['CHAIN_RPC_URL'] (environment variable "
            "TASKHUB_CHAIN_RPC_URL) to a JSON-RPC URL, e.g. the one `taskhub devchain` prints"
        )
    return Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": setting("HTTP_TIMEOUT")}))


@dataclass(frozen=True)
class Execution:
    """An ExecutionSuccess / ExecutionFailure log that carries a given safeTxHash."""

    success: bool
    eth_tx_hash: str
    block_number: int


class SafeOnChain:
    def __init__(self, w3: Web3, address: str):
        self.w3 = w3
        self.address = to_checksum_address(address)

    @cached_property
    def contract(self):
        return self.w3.eth.contract(address=self.address, abi=abi("Safe"))

    def is_deployed(self) -> bool:
        return len(self.w3.eth.get_code(self.address)) > 0

    def owners(self) -> list[str]:
        return [to_checksum_address(o) for o in self.contract.functions.getOwners().call()]

    def threshold(self) -> int:
        return int(self.contract.functions.getThreshold().call())

    def nonce(self) -> int:
        return int(self.contract.functions.nonce().call())

    def find_execution(self, safe_tx_hash: str, from_block: int = 0) -> Execution | None:
        """The log the Safe emitted when it executed our safeTxHash (txHash is indexed)."""
        logs = self.w3.eth.get_logs({
            "address": self.address, "fromBlock": from_block, "toBlock": "latest",
            "topics": [[EXECUTION_SUCCESS, EXECUTION_FAILURE], safe_tx_hash],
        })  # fmt: skip
        if not logs:
            return None
        log = logs[0]
        topic = "0x" + bytes(log["topics"][0]).hex()
        return Execution(
            success=topic == EXECUTION_SUCCESS,
            eth_tx_hash="0x" + bytes(log["transactionHash"]).hex(),
            block_number=int(log["blockNumber"]),
        )

    def exec_call(self, args: list, signatures: bytes):
        return self.contract.functions.execTransaction(*args, signatures)
