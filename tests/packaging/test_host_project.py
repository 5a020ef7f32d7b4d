"""docs/install.md, run: the built wheel in a fresh virtualenv, a new ``django-admin startproject``
with the page's two blocks appended verbatim, an app with one ``@task``, ``migrate``, then
``manage.py rundramatiq`` alone — a real worker process on a real database and Redis — runs the
task to its result, and the admin's task list renders.

Nothing is downloaded: the fresh virtualenv gets the wheel (``pip install --no-deps --no-index``)
and borrows its dependencies from this venv's site-packages through a ``.pth`` file. A ``.pth``
line only adds a folder to ``sys.path``; the ``.pth`` files inside it (this venv's editable
install of the checkout among them) are not processed, so ``taskhub`` can only come from the
wheel — which each run asserts.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from tests.support import ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

INSTALL_PAGE = ROOT / "docs" / "install.md"
#: The repository's own project: none of it may be importable in the fresh virtualenv.
PROJECT_PACKAGES = ["config", "webhooks", "notifications", "payments", "kyc", "blockchain"]

#: The app a user adds after reading the page (its "A task" section).
TASKS_MODULE = """\
from taskhub import task


@task("hello.add")
def add(payload: dict) -> int:
    return payload["a"] + payload["b"]
"""

#: Schedules the task as the page shows and waits for a worker to finish it.
SCHEDULE_AND_WAIT = """\
import json, time
from taskhub import TaskStatus, schedule
from hello.tasks import add

row = schedule(add, {"a": 2, "b": 3})
deadline = time.monotonic() + 180
while row.status not in (TaskStatus.COMPLETED, TaskStatus.FAILED) and time.monotonic() < deadline:
    time.sleep(0.2)
    row.refresh_from_db()
print(json.dumps({"id": str(row.id), "status": row.status, "result": row.result,
                  "error": row.error}))
"""

#: The admin's task list and the task through the REST API, requested as a logged-in
#: superuser; and where the console's static files are found.
ADMIN_TASK_LIST = """\
import json, os
from django.contrib.staticfiles import finders
from django.test import Client
from django.test.utils import setup_test_environment
from django.urls import reverse

setup_test_environment()  # lets the test client's host through ALLOWED_HOSTS
client = Client()
assert client.login(username="admin", password="host-project-password")
response = client.get(reverse("admin:taskhub_task_changelist"))
api = client.get(f"/api/tasks/{os.environ['HELLO_TASK_ID']}")
print(json.dumps({
    "status": response.status_code,
    "lists_the_task": "hello.add" in response.content.decode(),
    "console_template": "taskhub/console.css" in response.content.decode(),
    "console_css": finders.find("taskhub/console.css"),
    "api": [api.status_code, api.json().get("result") if api.status_code == 200 else None],
}))
"""

#: The REST API's OpenAPI document (its Swagger UI reads it).
API_SCHEMA = """\
import json
from django.test import Client
from django.test.utils import setup_test_environment

setup_test_environment()
client = Client(raise_request_exception=False)
assert client.login(username="admin", password="host-project-password")
print(json.dumps({"status": client.get("/api/schema/").status_code}))
"""


def fenced_blocks(markdown: str) -> list[str]:
    blocks: list[str] = []
    current: list[str] | None = None
    for line in markdown.splitlines():
        if line.startswith("```"):
            if current is None:
                current = []
            else:
                blocks.append("\n".join(current) + "\n")
                current = None
        elif current is not None:
            current.append(line)
    return blocks


def install_block(name: str) -> str:
    """The fenced block of docs/install.md whose first line is ``# taskhub: <name>``."""
    marker = f"# taskhub: {name}"
    found = [b for b in fenced_blocks(INSTALL_PAGE.read_text()) if b.splitlines()[0] == marker]
    assert len(found) == 1, f"docs/install.md must have one block starting {marker!r}"
    return found[0]


def test_the_install_page_has_one_settings_block_and_one_urls_block():
    assert "INSTALLED_APPS" in install_block("settings")
    assert "taskhub.console.urls" in install_block("urls")


def _run(argv: list, *, cwd: Path, env: dict[str, str], timeout: float = 300):
    done = subprocess.run(
        [str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, (
        f"{' '.join(map(str, argv))} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    )
    return done


@pytest.fixture(scope="module")
def fresh_python(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new virtualenv with the wheel installed, its dependencies borrowed from this venv."""
    venv = tmp_path_factory.mktemp("fresh") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    # This venv's pip installs into the new one; before the .pth below exists, so that pip sees
    # an empty environment (this venv's editable django-taskhub would otherwise count as
    # installed already).
    install = [sys.executable, "-m", "pip", "--python", python, "install"]
    _run([*install, "--no-deps", "--no-index", "--quiet", wheel], cwd=venv, env=dict(os.environ))
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    borrowed = sorted({sysconfig.get_path("purelib"), sysconfig.get_path("platlib")})
    (Path(site) / "_borrowed_dependencies.pth").write_text("\n".join(borrowed) + "\n")
    # What `pip install dramatiq` would have put in bin/: rundramatiq runs the `dramatiq` next to
    # its Python (or the first on PATH, which must not be this venv's).
    dramatiq = venv / "bin" / "dramatiq"
    dramatiq.write_text(
        f"#!{python}\nimport sys\nfrom dramatiq.__main__ import main\nsys.exit(main())\n"
    )
    dramatiq.chmod(0o755)
    return python


def test_the_fresh_virtualenv_imports_taskhub_from_the_wheel_and_nothing_of_the_project(
    fresh_python: Path,
):
    probe = "import importlib.util, json, taskhub; print(json.dumps([taskhub.__file__, " + (
        f"[m for m in {PROJECT_PACKAGES!r} if importlib.util.find_spec(m)]]))"
    )
    env = _clean_env(fresh_python)
    done = _run([fresh_python, "-c", probe], cwd=fresh_python.parent, env=env)
    taskhub_file, importable = json.loads(done.stdout)
    assert Path(taskhub_file).is_relative_to(fresh_python.parent.parent)
    assert importable == []


def _clean_env(python: Path, **extra: str) -> dict[str, str]:
    """The environment of a user's shell: nothing of this test session's settings, and only the
    fresh virtualenv's bin/ of any venv on PATH."""
    ours = (sys.prefix, str(ROOT))
    path = [str(python.parent)] + [
        p for p in os.environ.get("PATH", "").split(os.pathsep) if p and not p.startswith(ours)
    ]
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "TASKHUB_", "PYTHON", "DATABASE_", "REDIS_", "BROKER_"))
        and k not in ("VIRTUAL_ENV", "PATH")
    }
    env.update(PATH=os.pathsep.join(path), PYTHONUNBUFFERED="1", **extra)
    return env


@contextmanager
def _postgres_database() -> Iterator[dict[str, str]]:
    """A database of this test's own on the server of DATABASE_URL, dropped afterwards."""
    import psycopg

    url = urlsplit(os.environ["DATABASE_URL"])
    name = f"taskhub_host_{uuid.uuid4().hex[:8]}"
    server = {
        "host": url.hostname or "127.0.0.1",
        "port": str(url.port or 5432),
        "user": unquote(url.username or ""),
        "password": unquote(url.password or ""),
    }
    # The maintenance database: the one DATABASE_URL names may not exist (tests use test_<name>).
    admin = dict(server, dbname="postgres", autocommit=True)
    with psycopg.connect(**admin) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": name,
            "HOST": server["host"],
            "PORT": server["port"],
            "USER": server["user"],
            "PASSWORD": server["password"],
        }
    finally:
        with psycopg.connect(**admin) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["embedded", "postgres"])
def backing(request) -> Iterator[tuple[dict[str, str] | None, str]]:
    """(the host's DATABASES["default"] or None for startproject's SQLite, its REDIS_URL or ""
    for the embedded Redis)."""
    if request.param == "embedded":
        yield None, ""
        return
    if not os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://")):
        pytest.skip("PostgreSQL: set DATABASE_URL=postgres://… (CI does)")
    with _postgres_database() as database:
        yield database, os.environ.get("REDIS_URL", "")


@pytest.fixture
def host_dir() -> Iterator[Path]:
    # Not tmp_path: the embedded Redis listens on <project>/var/redis.sock, and a unix socket's
    # path must stay under ~100 bytes.
    path = Path(tempfile.mkdtemp(prefix="th-host-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def make_host_project(
    fresh_python: Path,
    host_dir: Path,
    *,
    database: dict[str, str] | None = None,
    redis_url: str = "",
    key_prefix: str = "",
) -> tuple[list[str], dict[str, str]]:
    """``startproject`` + an app with one task + the page's two blocks, migrated, with a
    superuser; returns the ``manage.py`` command and the environment to run it in."""
    env = _clean_env(
        fresh_python,
        DJANGO_SETTINGS_MODULE="hostsite.settings",
        DJANGO_SUPERUSER_PASSWORD="host-project-password",
        **({"REDIS_URL": redis_url} if redis_url else {}),
    )
    python = str(fresh_python)
    _run([python, "-m", "django", "startproject", "hostsite", host_dir], cwd=host_dir, env=env)
    manage = [python, "manage.py"]
    _run([*manage, "startapp", "hello"], cwd=host_dir, env=env)
    (host_dir / "hello" / "tasks.py").write_text(TASKS_MODULE)

    # The host's own lines (its database, its app, a Redis key prefix of this test's own on a
    # shared Redis), then the page's blocks exactly as written.
    settings_py = host_dir / "hostsite" / "settings.py"
    own = ["", "# --- the host project's own settings (this test) ---"]
    if database is not None:
        own.append(f"DATABASES = {{'default': {database!r}}}")
    own.append('INSTALLED_APPS += ["hello"]')
    if key_prefix:
        own.append(f"TASKHUB = {{'KEY_PREFIX': {key_prefix!r}}}")
    settings_py.write_text(
        settings_py.read_text() + "\n".join(own) + "\n\n" + install_block("settings")
    )
    urls_py = host_dir / "hostsite" / "urls.py"
    urls_py.write_text(urls_py.read_text() + "\n" + install_block("urls"))

    _run([*manage, "migrate", "--noinput"], cwd=host_dir, env=env)
    superuser = ["createsuperuser", "--noinput", "--username", "admin"]
    _run([*manage, *superuser, "--email", "admin@example.com"], cwd=host_dir, env=env)
    return manage, env


def test_a_fresh_project_with_the_install_page_blocks_runs_a_task_with_rundramatiq_alone(
    fresh_python: Path, backing, host_dir: Path
):
    database, redis_url = backing
    key_prefix = f"th-host-{uuid.uuid4().hex[:8]}"
    worker = None
    try:
        manage, env = make_host_project(
            fresh_python, host_dir, database=database, redis_url=redis_url, key_prefix=key_prefix
        )
        log = open(host_dir / "worker.log", "wb")  # noqa: SIM115 (closed in finally)
        worker = subprocess.Popen(
            [*manage, "rundramatiq", "--processes", "1", "--threads", "2"]
            + ["--worker-shutdown-timeout", "5000"],
            cwd=host_dir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        done = _run([*manage, "shell", "-c", SCHEDULE_AND_WAIT], cwd=host_dir, env=env)
        outcome = json.loads(done.stdout.strip().splitlines()[-1])
        assert worker.poll() is None, "rundramatiq exited:\n" + _tail(host_dir / "worker.log")
        assert (outcome["status"], outcome["result"]) == ("completed", 5), (
            f"{outcome}\nworker log:\n{_tail(host_dir / 'worker.log')}"
        )

        env_with_id = {**env, "HELLO_TASK_ID": outcome["id"]}
        done = _run([*manage, "shell", "-c", ADMIN_TASK_LIST], cwd=host_dir, env=env_with_id)
        page = json.loads(done.stdout.strip().splitlines()[-1])
        assert page["status"] == 200
        assert page["lists_the_task"]
        assert page["console_template"], "the admin list did not use taskhub's template"
        assert page["console_css"] and Path(page["console_css"]).is_relative_to(
            fresh_python.parent.parent
        ), page["console_css"]
        assert page["api"] == [200, 5]
    finally:
        if worker is not None:
            _stop(worker)
            log.close()
        if redis_url:
            _delete_keys(redis_url, key_prefix)
        else:
            _stop_embedded_redis(host_dir / "var" / "redis.pid")


def test_a_fresh_project_serves_the_api_schema(fresh_python: Path, host_dir: Path):
    manage, env = make_host_project(fresh_python, host_dir)
    done = _run([*manage, "shell", "-c", API_SCHEMA], cwd=host_dir, env=env)
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"status": 200}


def _tail(path: Path, lines: int = 60) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM to rundramatiq (it execs dramatiq's main process, which stops its workers),
    then SIGKILL to the whole session if it is still there."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    process.wait()


def _stop_embedded_redis(pid_file: Path) -> None:
    """The embedded Redis the worker started for this project (daemonised, so not its child)."""
    try:
        os.kill(int(pid_file.read_text().strip()), signal.SIGTERM)
    except (OSError, ValueError):
        pass


def _delete_keys(redis_url: str, key_prefix: str) -> None:
    """This test's keys on the shared Redis: taskhub's (prefix:…) and Dramatiq's (prefix-dq:…)."""
    import redis

    client = redis.Redis.from_url(redis_url)
    for name in client.scan_iter(match=f"{key_prefix}*", count=1000):
        client.delete(name)
