"""The distribution as a user gets it: the wheel built from this checkout, once per session."""

from __future__ import annotations

import importlib.metadata
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import ROOT

#: Top-level entries of the checkout that are never part of a build: version control, the venv,
#: npm's tools, run-time state and earlier build output.
_NOT_SOURCE = {
    ".git",
    ".venv",
    "node_modules",
    "var",
    "build",
    "dist",
    ".pytest_cache",
    ".ruff_cache",
    ".import_linter_cache",
}

#: pyproject.toml's build-system requirement (PEP 639 licence metadata).
SETUPTOOLS_MIN = 77


def _ignore(directory: str, names: list[str]) -> set[str]:
    skip = {n for n in names if n == "__pycache__" or n.endswith(".egg-info")}
    if Path(directory) == ROOT:
        skip |= _NOT_SOURCE & set(names)
    return skip


def build_wheel(workdir: Path) -> Path:
    """``pip wheel .`` of a copy of the checkout, with this venv's setuptools: nothing is
    downloaded. A copy, because setuptools builds in the source tree, where it would leave
    ``build/`` (whose stale files can end up in a later wheel) and ``*.egg-info``."""
    version = importlib.metadata.version("setuptools")
    if int(version.split(".")[0]) < SETUPTOOLS_MIN:
        pytest.fail(
            f"this venv's setuptools is {version}; the wheel needs >= {SETUPTOOLS_MIN} "
            "(requirements/dev.txt: run `make test` to install it)"
        )
    source = workdir / "source"
    shutil.copytree(ROOT, source, ignore=_ignore, symlinks=True)
    out = workdir / "wheels"
    argv = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"]
    argv += ["--no-index", "--quiet", "--wheel-dir", str(out), str(source)]
    built = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, f"pip wheel failed:\n{built.stdout}\n{built.stderr}"
    wheels = sorted(out.glob("django_taskhub-*.whl"))
    assert len(wheels) == 1, f"expected one django_taskhub wheel, got {sorted(out.iterdir())}"
    return wheels[0]


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_wheel(tmp_path_factory.mktemp("wheel"))
