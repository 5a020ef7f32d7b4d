"""What ``pip wheel .`` builds: ``django-taskhub``, the ``taskhub`` package and nothing else of
this repository, with every file the engine and the console read at run time."""

from __future__ import annotations

import zipfile
from email.parser import Parser
from pathlib import Path

from packaging.requirements import Requirement

from tests.support import ROOT

#: What the engine itself imports (pyproject.toml's dependencies).
CORE = {
    "django",
    "dramatiq",
    "django-dramatiq",
    "redis",
    "psycopg",
    "djangorestframework",
    "drf-spectacular",
    "apscheduler",
    "pydantic",
    "httpx",
    "prometheus-client",
}
EXTRAS = {"postgres", "embedded", "server", "images", "rabbitmq", "django52"}
#: Used by this repository's own project only: never a requirement of the package.
PROJECT_ONLY = {
    "web3",
    "eth-account",
    "babel",
    "django-anymail",
    "dj-database-url",
    "servestatic",
    "drf-spectacular-sidecar",
}
#: Top-level packages of this repository that are not part of the distribution.
PROJECT_PACKAGES = {"config", "webhooks", "notifications", "payments", "kyc", "blockchain"}
PROJECT_PACKAGES |= {"sandbox", "tests", "bench"}


def _dist_info(wheel: Path) -> str:
    name, version = wheel.name.split("-")[:2]
    return f"{name}-{version}.dist-info"


def _names(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as archive:
        return archive.namelist()


def _package_files() -> set[str]:
    """Every file of the checkout's ``taskhub/``, as wheel paths (no bytecode)."""
    return {
        path.relative_to(ROOT).as_posix()
        for path in (ROOT / "taskhub").rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }


def test_the_wheel_holds_only_the_taskhub_package_and_its_metadata(wheel):
    top_level = {name.split("/")[0] for name in _names(wheel)}
    assert top_level == {"taskhub", _dist_info(wheel)}
    assert not top_level & PROJECT_PACKAGES


def test_the_wheel_holds_every_file_of_the_package(wheel):
    in_wheel = {name for name in _names(wheel) if name.startswith("taskhub/")}
    missing, extra = _package_files() - in_wheel, in_wheel - _package_files()
    assert not missing, f"files of taskhub/ missing from the wheel: {sorted(missing)}"
    assert not extra, f"files in the wheel that taskhub/ does not have: {sorted(extra)}"
    # The kinds a build configuration forgets: data files, read at run time.
    for kind, prefix in [
        ("type marker", "taskhub/py.typed"),
        ("Lua scripts (read when taskhub.engine.claims is imported)", "taskhub/engine/lua/"),
        ("console templates", "taskhub/templates/admin/taskhub/"),
        ("static files", "taskhub/static/taskhub/"),
        ("migrations", "taskhub/migrations/0001_initial.py"),
        ("built-ins' migrations", "taskhub/builtins/migrations/0001_initial.py"),
    ]:
        assert any(name.startswith(prefix) for name in in_wheel), f"no {kind} in the wheel"


def test_the_metadata_names_the_distribution_its_licence_and_its_dependencies(wheel):
    dist_info = _dist_info(wheel)
    with zipfile.ZipFile(wheel) as archive:
        metadata = Parser().parsestr(archive.read(f"{dist_info}/METADATA").decode())
        licence = archive.read(f"{dist_info}/licenses/LICENSE").decode()
    assert metadata["Name"] == "django-taskhub"
    assert metadata["License-Expression"] == "MIT"
    assert "MIT License" in licence and "taskhub maintainers" in licence
    assert "Framework :: Django" in metadata.get_all("Classifier")

    requirements = [Requirement(r) for r in metadata.get_all("Requires-Dist")]
    core = {r.name.lower() for r in requirements if r.marker is None}
    assert core == CORE
    assert set(metadata.get_all("Provides-Extra")) == EXTRAS
    named = {r.name.lower() for r in requirements}
    assert not named & PROJECT_ONLY, f"project-only requirements: {named & PROJECT_ONLY}"
    # psycopg's binary build is the host's choice (the [postgres] extra), never forced.
    binary = [r for r in requirements if r.name == "psycopg" and "binary" in r.extras]
    assert binary and all(r.marker is not None for r in binary)
