"""Reading and writing a Safe on chain through JSON-RPC (web3)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from eth_utils import keccak, to_checksum_address
from web3 import Web3

from ..conf import payments_settings
from .contracts import abi

EXECUTION_SUCCESS = "0x" + keccak(text="ExecutionSuccess(bytes32,uint256)").hex()
EXECUTION_FAILURE = "0x" + keccak(text="ExecutionFailure(bytes32,uint256)").hex()


class ChainNotConfigured(Exception):
    """No JSON-RPC URL is configured: Safe work cannot run (a permanent failure, not a retry)."""


def get_web3() -> Web3:
    url = payments_settings.CHAIN_RPC_URL
    if not url:
        raise ChainNotConfigured(
            "no chain configured: set PAYMENTS['CHAIN_RPC_URL'] (environment variable "
            "TASKHUB_CHAIN_RPC_URL) to a JSON-RPC URL, e.g. the one `taskhub devchain` prints"
        )
    return Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": payments_settings.HTTP_TIMEOUT}))


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

    def nonce(self, block: int | str = "latest") -> int:
        return int(self.contract.functions.nonce().call(block_identifier=block))

    def nonce_at(self, block: int) -> int:
        """The Safe's nonce after ``block``; 0 before the Safe was deployed."""
        if not self.w3.eth.get_code(self.address, block_identifier=block):
            return 0
        return self.nonce(block)

    def last_block_before_nonce_passed(self, nonce: int, high: int) -> int:
        """The last block after which the Safe's nonce was still at most ``nonce``, given that it
        is past it after ``high``: the Safe used ``nonce`` in the block right after this one.

        Steps back from ``high`` by doubling distances, then bisects: about 2·log2(distance)
        eth_calls on the Safe's past state, as far back as needed and no further (a node that
        no longer has that state answers with an error, and the caller retries)."""
        step = 1
        low = high - step
        while low > 0 and self.nonce_at(low) > nonce:
            high, step = low, step * 2
            low = max(0, high - step)
        if low <= 0 and self.nonce_at(0) > nonce:
            return 0
        low = max(low, 0)
        while high - low > 1:
            middle = (low + high) // 2
            if self.nonce_at(middle) > nonce:
                high = middle
            else:
                low = middle
        return low

    def find_execution(
        self, safe_tx_hash: str, from_block: int, to_block: int | None = None
    ) -> Execution | None:
        """The log the Safe emitted when it executed our safeTxHash (txHash is indexed), searched
        from ``from_block`` through ``to_block`` (the head by default) in ranges of at most
        ``PAYMENTS["LOG_SEARCH_BLOCKS"]`` blocks: hosted nodes refuse wider log queries."""
        last = int(self.w3.eth.block_number) if to_block is None else to_block
        size = max(1, int(payments_settings.LOG_SEARCH_BLOCKS))
        for low in range(max(0, from_block), last + 1, size):
            logs = self.w3.eth.get_logs(
                {
                    "address": self.address,
                    "fromBlock": low,
                    "toBlock": min(low + size - 1, last),
                    "topics": [[EXECUTION_SUCCESS, EXECUTION_FAILURE], safe_tx_hash],
                }
            )
            if logs:
                return _execution(logs[0])
        return None

    def exec_call(self, args: list, signatures: bytes):
        return self.contract.functions.execTransaction(*args, signatures)


def _execution(log) -> Execution:
    topic = "0x" + bytes(log["topics"][0]).hex()
    return Execution(
        success=topic == EXECUTION_SUCCESS,
        eth_tx_hash="0x" + bytes(log["transactionHash"]).hex(),
        block_number=int(log["blockNumber"]),
    )
