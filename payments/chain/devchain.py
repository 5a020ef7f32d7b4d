"""A local chain for development and tests: anvil (from node_modules) with a 2-of-3 Safe 1.4.1.

The accounts are anvil's well-known development accounts (mnemonic "test test … junk"):
never use these keys anywhere real.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from eth_account import Account
from web3 import Web3
from web3.logs import DISCARD

from .contracts import abi, artifact

ROOT = Path(__file__).resolve().parents[2]
ANVIL_IN_PROJECT = ROOT / "node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil"
DEV_MNEMONIC = "test test test test test test test test test test test junk"
ZERO = "0x0000000000000000000000000000000000000000"


class AnvilMissing(Exception):
    pass


def anvil_binary() -> str:
    for candidate in (os.environ.get("ANVIL_BIN"), str(ANVIL_IN_PROJECT), shutil.which("anvil")):
        if candidate and Path(candidate).is_file():
            return candidate
    raise AnvilMissing(
        "anvil is not installed: run `make chain-tools` (npm install of @foundry-rs/anvil)"
    )


def dev_key(index: int) -> str:
    Account.enable_unaudited_hdwallet_features()
    account = Account.from_mnemonic(DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}")
    return "0x" + bytes(account.key).hex()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Chain:
    process: subprocess.Popen
    url: str
    chain_id: int
    relayer_key: str = dev_key(0)
    server_key: str = dev_key(1)
    user_key: str = dev_key(2)
    backup_key: str = dev_key(3)

    @property
    def w3(self) -> Web3:
        return Web3(Web3.HTTPProvider(self.url))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()


def start(port: int | None = None, chain_id: int = 31337, log=subprocess.DEVNULL) -> Chain:
    port = port or free_port()
    process = subprocess.Popen(
        [anvil_binary(), "--host", "127.0.0.1", "--port", str(port), "--chain-id", str(chain_id)],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    chain = Chain(process=process, url=f"http://127.0.0.1:{port}", chain_id=chain_id)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if chain.w3.eth.chain_id == chain_id:
                return chain
        except Exception:
            time.sleep(0.1)
    chain.stop()
    raise RuntimeError(f"anvil did not answer on {chain.url}")


def _deploy(w3: Web3, name: str, sender: str) -> str:
    contract = w3.eth.contract(abi=abi(name), bytecode=artifact(name)["bytecode"])
    receipt = w3.eth.wait_for_transaction_receipt(
        contract.constructor().transact({"from": sender}), timeout=30
    )
    return receipt["contractAddress"]


def deploy_safe(chain: Chain, threshold: int = 2, fund_wei: int = 10**19) -> str:
    """Deploy the Safe singleton, the proxy factory and a Safe (user, server, backup owners)."""
    w3 = chain.w3
    deployer = Account.from_key(chain.relayer_key).address
    singleton = _deploy(w3, "Safe", deployer)
    factory_address = _deploy(w3, "SafeProxyFactory", deployer)
    handler = _deploy(w3, "CompatibilityFallbackHandler", deployer)
    owners = [
        Account.from_key(k).address for k in (chain.user_key, chain.server_key, chain.backup_key)
    ]
    setup = w3.eth.contract(abi=abi("Safe")).encode_abi(
        "setup", [owners, threshold, ZERO, b"", handler, ZERO, 0, ZERO]
    )
    factory = w3.eth.contract(address=factory_address, abi=abi("SafeProxyFactory"))
    tx = factory.functions.createProxyWithNonce(singleton, setup, int(time.time_ns()))
    receipt = w3.eth.wait_for_transaction_receipt(tx.transact({"from": deployer}), timeout=30)
    proxy = factory.events.ProxyCreation().process_receipt(receipt, errors=DISCARD)[0]["args"][
        "proxy"
    ]
    w3.eth.wait_for_transaction_receipt(
        w3.eth.send_transaction({"from": deployer, "to": proxy, "value": fund_wei}), timeout=30
    )
    return Web3.to_checksum_address(proxy)


def describe(chain: Chain, safe_address: str) -> str:
    return "\n".join(
        [
            f"anvil is running at {chain.url} (chain id {chain.chain_id}); Ctrl-C stops it.",
            f"A 2-of-3 Safe 1.4.1 is deployed at {safe_address}, funded with 10 ETH.",
            f"Owners: user {Account.from_key(chain.user_key).address}, "
            f"server {Account.from_key(chain.server_key).address}, "
            f"backup {Account.from_key(chain.backup_key).address}.",
            "Development keys only (anvil's well-known accounts). Settings for taskhub:",
            "",
            f"export TASKHUB_CHAIN_RPC_URL={chain.url}",
            f"export TASKHUB_CHAIN_ID={chain.chain_id}",
            f"export TASKHUB_SAFE_SERVER_KEY={chain.server_key}",
            f"export TASKHUB_SAFE_RELAYER_KEY={chain.relayer_key}",
            f"export SAFE_ADDRESS={safe_address}",
            f"export USER_KEY={chain.user_key}  # the user owner key, for the walkthrough",
        ]
    )
