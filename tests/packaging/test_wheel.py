"""What ``pip wheel .`` builds: ``django-taskhub``, the ``taskhub`` package and nothing else of
this repository, with every file the engine and the console read at run time."""

from __future__ import annotations

import ast
import importlib.metadata
import sys
import zipfile
from collections import defaultdict
from email.parser import Parser
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

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
    "httpcore",
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
#: Imported by taskhub without being a requirement of the package, and why that is right.
NOT_REQUIRED = {
    "asgiref": "Django's own ASGI layer, installed with Django",
    "pytest": "taskhub.pytest_plugin runs inside the host's own pytest",
    "django-anymail": "imported only when the host's EMAIL_BACKEND is one of anymail's",
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
        ("the Grafana dashboard", "taskhub/console/grafana/taskhub-dashboard.json"),
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


def _third_party_imports() -> dict[str, set[str]]:
    """Top-level modules outside the standard library that taskhub/ imports, anywhere in a
    module (inside functions too), with the files that import them."""
    found: dict[str, set[str]] = defaultdict(set)
    for path in (ROOT / "taskhub").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            for module in modules:
                top = module.partition(".")[0]
                if top != "taskhub" and top not in sys.stdlib_module_names:
                    found[top].add(path.relative_to(ROOT).as_posix())
    return found


def test_every_module_taskhub_imports_is_a_requirement_or_an_extra(wheel):
    """The fresh-venv test borrows this venv's packages, so it cannot see an undeclared
    dependency; this can: each import is mapped to the distribution that provides it here."""
    with zipfile.ZipFile(wheel) as archive:
        metadata = Parser().parsestr(archive.read(f"{_dist_info(wheel)}/METADATA").decode())
    declared = {canonicalize_name(Requirement(r).name) for r in metadata.get_all("Requires-Dist")}
    providers = importlib.metadata.packages_distributions()
    undeclared = {}
    for module, files in sorted(_third_party_imports().items()):
        names = {canonicalize_name(d) for d in providers.get(module, [])}
        assert names, f"no installed distribution provides {module!r} (imported by {files})"
        if not names & (declared | set(NOT_REQUIRED)):
            undeclared[module] = sorted(files)
    assert not undeclared, f"imported by taskhub but not a requirement or extra: {undeclared}"
