"""Safe{Wallet} transactions without a node: the EIP-712 safeTxHash, owner signatures, ordering.

Facts this relies on (Safe >= 1.3.0): the domain is ``EIP712Domain(uint256 chainId,address
verifyingContract)``; every owner signature is 65 bytes ``r ‖ s ‖ v`` with v 27/28 for a signature
over safeTxHash and v 31/32 for an ``eth_sign`` signature (submitted as v + 4); signatures are
concatenated sorted ascending by owner address, or the Safe reverts with GS026.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass

from eth_account import Account
from eth_account.messages import encode_defunct, encode_typed_data
from eth_utils import is_address, keccak, to_checksum_address

ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"
UINT256_MAX = 2**256 - 1

SAFE_TX_TYPES = {
    "EIP712Domain": [
        {"name": "chainId", "type": "uint256"},
        {"name": "verifyingContract", "type": "address"},
    ],
    "SafeTx": [
        {"name": "to", "type": "address"},
        {"name": "value", "type": "uint256"},
        {"name": "data", "type": "bytes"},
        {"name": "operation", "type": "uint8"},
        {"name": "safeTxGas", "type": "uint256"},
        {"name": "baseGas", "type": "uint256"},
        {"name": "gasPrice", "type": "uint256"},
        {"name": "gasToken", "type": "address"},
        {"name": "refundReceiver", "type": "address"},
        {"name": "nonce", "type": "uint256"},
    ],
}


class InvalidSafeTx(ValueError):
    """A SafeTx field or signature is malformed; ``field`` names it."""

    def __init__(self, message: str, field: str):
        super().__init__(message)
        self.field = field


@dataclass(frozen=True, kw_only=True)
class SafeTx:
    """The fields a Safe owner signs, in the Safe contract's own (camelCase) names."""

    to: str
    value: int
    data: str
    operation: int
    safeTxGas: int
    baseGas: int
    gasPrice: int
    gasToken: str
    refundReceiver: str
    nonce: int

    def as_message(self) -> dict:
        message = asdict(self)
        message["data"] = bytes.fromhex(self.data[2:])
        return message

    def exec_args(self) -> list:
        """execTransaction's arguments before ``signatures``."""
        return [
            self.to,
            self.value,
            bytes.fromhex(self.data[2:]),
            self.operation,
            self.safeTxGas,
            self.baseGas,
            self.gasPrice,
            self.gasToken,
            self.refundReceiver,
        ]


def checksum(value: object, field: str) -> str:
    if not isinstance(value, str) or not is_address(value):
        raise InvalidSafeTx(f"{field} is not a valid address: {value!r}", field)
    return to_checksum_address(value)


def _uint(value: object, field: str, maximum: int = UINT256_MAX) -> int:
    if isinstance(value, bool):
        raise InvalidSafeTx(f"{field} must be a whole number", field)
    try:
        number = int(value, 0) if isinstance(value, str) else int(value)
    except (TypeError, ValueError):
        raise InvalidSafeTx(f"{field} must be a whole number", field) from None
    if isinstance(value, float) and value != number:
        raise InvalidSafeTx(f"{field} must be a whole number", field)
    if not 0 <= number <= maximum:
        raise InvalidSafeTx(f"{field} is out of range", field)
    return number


def _hex_data(value: object, field: str) -> str:
    text = "0x" if value in (None, "") else value
    if not isinstance(text, str) or not text.startswith("0x") or len(text) % 2:
        raise InvalidSafeTx(f"{field} must be 0x-prefixed hex with whole bytes", field)
    try:
        bytes.fromhex(text[2:])
    except ValueError:
        raise InvalidSafeTx(f"{field} must be 0x-prefixed hex with whole bytes", field) from None
    return text.lower()


def parse_safe_tx(fields: dict, prefix: str = "transaction") -> SafeTx:
    """Validate the SafeTx fields of an API request (camelCase, or snake_case aliases)."""
    if not isinstance(fields, dict):
        raise InvalidSafeTx(f"{prefix} must be an object", prefix)

    def get(name: str, snake: str, default: object = None) -> object:
        return fields.get(name, fields.get(snake, default))

    operation = _uint(get("operation", "operation", 0), f"{prefix}.operation", 1)
    return SafeTx(
        to=checksum(get("to", "to"), f"{prefix}.to"),
        value=_uint(get("value", "value", 0), f"{prefix}.value"),
        data=_hex_data(get("data", "data", "0x"), f"{prefix}.data"),
        operation=operation,
        safeTxGas=_uint(get("safeTxGas", "safe_tx_gas", 0), f"{prefix}.safeTxGas"),
        baseGas=_uint(get("baseGas", "base_gas", 0), f"{prefix}.baseGas"),
        gasPrice=_uint(get("gasPrice", "gas_price", 0), f"{prefix}.gasPrice"),
        gasToken=checksum(get("gasToken", "gas_token", ZERO_ADDRESS), f"{prefix}.gasToken"),
        refundReceiver=checksum(
            get("refundReceiver", "refund_receiver", ZERO_ADDRESS), f"{prefix}.refundReceiver"
        ),
        nonce=_uint(get("nonce", "nonce"), f"{prefix}.nonce"),
    )


def typed_data(tx: SafeTx, chain_id: int, safe_address: str) -> dict:
    return {
        "types": SAFE_TX_TYPES,
        "primaryType": "SafeTx",
        "domain": {"chainId": chain_id, "verifyingContract": to_checksum_address(safe_address)},
        "message": tx.as_message(),
    }


def safe_tx_hash(tx: SafeTx, chain_id: int, safe_address: str) -> bytes:
    """keccak256(0x19 ‖ 0x01 ‖ domainSeparator ‖ hashStruct(SafeTx)) — what owners sign."""
    signable = encode_typed_data(full_message=typed_data(tx, chain_id, safe_address))
    return keccak(b"\x19" + signable.version + signable.header + signable.body)


def _signature_bytes(signature: object) -> bytes:
    if not isinstance(signature, str) or not signature.startswith("0x"):
        raise InvalidSafeTx("signature must be 0x-prefixed hex", "user_signature")
    try:
        raw = bytes.fromhex(signature[2:])
    except ValueError:
        raise InvalidSafeTx("signature must be 0x-prefixed hex", "user_signature") from None
    if len(raw) != 65:
        raise InvalidSafeTx("signature must be 65 bytes (r, s, v)", "user_signature")
    return raw


def recover_owner(tx_hash: bytes, signature: str) -> tuple[str, str, str]:
    """Who signed: ``(owner, signature type, signature as submitted on chain)``.

    v 27/28 is a signature over safeTxHash itself (EIP-712); v 31/32 an eth_sign signature
    (over the "Ethereum Signed Message" prefix), which the Safe expects with v + 4 — as given.
    v 0/1 (contract signatures, approved hashes) are not accepted from users here.
    """
    raw = _signature_bytes(signature)
    v = raw[64]
    try:
        if v in (27, 28):
            owner = Account._recover_hash(tx_hash, signature=raw)
            kind = "EOA"
        elif v in (31, 32):
            fixed = raw[:64] + bytes([v - 4])
            owner = Account.recover_message(encode_defunct(primitive=tx_hash), signature=fixed)
            kind = "ETH_SIGN"
        else:
            raise InvalidSafeTx(f"unsupported signature type v={v}", "user_signature")
    except InvalidSafeTx:
        raise
    except Exception:  # eth-keys raises several types for a point that is not on the curve
        raise InvalidSafeTx("signature does not recover to an address", "user_signature") from None
    return to_checksum_address(owner), kind, "0x" + raw.hex()


def sign_hash(private_key: str, tx_hash: bytes) -> tuple[str, str]:
    """The server owner's EIP-712 signature: ``(owner address, 0x signature)``."""
    signed = Account.unsafe_sign_hash(tx_hash, private_key)
    owner = Account.from_key(private_key).address
    return owner, "0x" + bytes(signed.signature).hex()


def combine_signatures(signatures: Iterable[tuple[str, str]]) -> bytes:
    """Concatenate ``(owner, signature)`` pairs sorted ascending by owner address (GS026)."""
    ordered = sorted(signatures, key=lambda pair: int(pair[0], 16))
    return b"".join(bytes.fromhex(sig[2:]) for _, sig in ordered)
