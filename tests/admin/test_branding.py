"""The host's admin site keeps its name: the console's titles are opt-in (brand_admin_site)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.admin import AdminSite

from taskhub.console.admin import brand_admin_site

ROOT = Path(__file__).resolve().parents[2]


def test_loading_taskhub_leaves_the_host_admin_site_named_as_django_names_it():
    # A fresh process that loads every app (taskhub's admin modules included) but not this
    # project's URLconf, which is where this project opts in.
    probe = (
        "import django; django.setup()\n"
        "from django.contrib import admin\n"
        "import taskhub.console.admin, taskhub.console.workflow_admin\n"
        "print(admin.site.site_header, admin.site.site_title, admin.site.index_title, sep='|')\n"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": settings.SETTINGS_MODULE}
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    default = AdminSite()
    expected = f"{default.site_header}|{default.site_title}|{default.index_title}"
    assert done.stdout.strip() == expected


def test_brand_admin_site_gives_a_site_the_console_titles():
    site = AdminSite(name="elsewhere")
    assert brand_admin_site(site) is site
    assert (site.site_header, site.site_title) == ("taskhub console", "taskhub")


@pytest.mark.django_db
def test_this_project_opts_in_so_its_console_looks_as_before(login):
    page = login("viewer").get("/admin/").content.decode()
    assert "taskhub console" in page and "Tasks, queues and operators" in page
