"""Safe 1.4.1 contract ABIs and bytecode from the npm package ``@safe-global/safe-contracts``.

The JSON files beside this module are committed so that nothing is downloaded at run time;
``make safe-artifacts`` regenerates them from ``node_modules`` (see ``extract.py``).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

HERE = Path(__file__).resolve().parent
NAMES = ("Safe", "SafeProxyFactory", "CompatibilityFallbackHandler")


@cache
def artifact(name: str) -> dict:
    """``{"contractName", "abi", "bytecode", "version"}`` for one of :data:`NAMES`."""
    if name not in NAMES:
        raise KeyError(name)
    return json.loads((HERE / f"{name}.json").read_text())


def abi(name: str) -> list:
    return artifact(name)["abi"]
