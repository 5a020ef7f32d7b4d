"""Copy the Safe contracts' ABI and creation bytecode out of the npm package's build artifacts.

Usage: ``python -m payments.chain.contracts.extract node_modules/@safe-global/safe-contracts``
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from . import HERE

SOURCES = {
    "Safe": "Safe.sol/Safe.json",
    "SafeProxyFactory": "proxies/SafeProxyFactory.sol/SafeProxyFactory.json",
    "CompatibilityFallbackHandler": (
        "handler/CompatibilityFallbackHandler.sol/CompatibilityFallbackHandler.json"
    ),
}


def main(package_dir: str) -> None:
    package = Path(package_dir)
    version = json.loads((package / "package.json").read_text())["version"]
    for name, relative in SOURCES.items():
        built = json.loads((package / "build/artifacts/contracts" / relative).read_text())
        out = {
            "contractName": name,
            "version": version,
            "source": f"@safe-global/safe-contracts@{version} build/artifacts/contracts/{relative}",
            "abi": built["abi"],
            "bytecode": built["bytecode"],
        }
        (HERE / f"{name}.json").write_text(json.dumps(out, indent=1) + "\n")
        print(f"wrote {name}.json ({len(built['bytecode']) // 2 - 1} bytes of bytecode)")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "node_modules/@safe-global/safe-contracts")
