"""Event ABIs from a human-readable signature, topics, and JSON-safe decoded values."""

from __future__ import annotations

import re
from typing import Any

from eth_utils import keccak

_SIGNATURE = re.compile(r"^\s*(?:event\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*\((.*)\)\s*;?\s*$")
_TYPE = re.compile(
    r"^(address|bool|string|bytes([1-9]|[12][0-9]|3[0-2])?|u?int(8|16|24|32|40|48|"
    r"56|64|72|80|88|96|104|112|120|128|136|144|152|160|168|176|184|192|200|208|"
    r"216|224|232|240|248|256)?)(\[[0-9]*\])*$"
)


def parse_event_signature(signature: str) -> dict:
    """``"Transfer(address indexed from, address indexed to, uint256 value)"`` → ABI entry."""
    match = _SIGNATURE.match(signature)
    if not match:
        raise ValueError(f"not an event signature: {signature!r}")
    name, params = match.group(1), match.group(2).strip()
    inputs = []
    for position, part in enumerate([p.strip() for p in params.split(",")] if params else []):
        words = part.split()
        if not words or not _TYPE.match(words[0]):
            raise ValueError(f"unsupported parameter {part!r} in {signature!r}")
        indexed = "indexed" in words[1:]
        names = [w for w in words[1:] if w != "indexed"]
        inputs.append(
            {
                "type": _canonical(words[0]),
                "indexed": indexed,
                "name": names[0] if names else f"arg{position}",
            }
        )
    return {"type": "event", "name": name, "anonymous": False, "inputs": inputs}


def _canonical(type_: str) -> str:
    if type_.startswith("uint") and type_[4:5] in ("", "["):
        return "uint256" + type_[4:]
    if type_.startswith("int") and type_[3:4] in ("", "["):
        return "int256" + type_[3:]
    return type_


def validate_event_abi(abi: dict) -> dict:
    if not isinstance(abi, dict) or abi.get("type") != "event" or not abi.get("name"):
        raise ValueError("event ABI must be an object with type 'event' and a name")
    for item in abi.get("inputs", []):
        if not _TYPE.match(str(item.get("type", ""))):
            raise ValueError(f"unsupported ABI input type {item.get('type')!r}")
    return abi


def topic0(abi: dict) -> str:
    types = ",".join(i["type"] for i in abi.get("inputs", []))
    return "0x" + keccak(text=f"{abi['name']}({types})").hex()


def jsonable(value: Any) -> Any:
    """Integers as decimal strings, bytes as 0x-hex, containers recursively."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    if isinstance(value, dict) or hasattr(value, "items"):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value
