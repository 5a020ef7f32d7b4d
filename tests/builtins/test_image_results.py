"""The image ``image.process`` stores can be opened from its result's url: taskhub serves it at
``/api/images/<name>`` to whoever may read tasks (an API token or the console's session), with
its content type, and nothing outside the images folder.

Before, the url was the default storage's (``/media/images/<id>.webp``), which nothing in the
project serves: a 404. The task runs here in-process (taskhub.testing), on a real PNG downloaded
from a real HTTP server, through the real storage (a temporary MEDIA_ROOT).
"""

from __future__ import annotations

import io

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone
from PIL import Image
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from taskhub.console.roles import create_user
from taskhub.models import Task, TaskStatus
from tests.builtins.test_images import png_bytes

pytestmark = pytest.mark.django_db


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


def client_of(role: str | None) -> APIClient:
    api = APIClient()
    if role:
        _, _, token = create_user(f"{role}-user", role)
        api.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return api


def processed_image(web, taskhub_manual) -> dict:
    """image.process scheduled through the API, run, and its result."""
    url = web.add_file("photo.png", png_bytes(120, 80), "image/png")
    response = client_of("operator").post(
        "/api/tasks",
        {
            "task": "image.process",
            "payload": {
                "url": url,
                "transformations": [{"type": "resize", "options": {"width": 60}}],
            },
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    taskhub_manual.drain()
    task = Task.objects.get(id=response.json()["id"])
    assert task.status == TaskStatus.COMPLETED, task.error
    return task.result


def test_the_result_url_answers_the_stored_image_to_a_viewer(web, media, taskhub_manual):
    result = processed_image(web, taskhub_manual)

    assert result["url"] == f"/api/images/{result['path'].split('/')[-1]}"
    response = client_of("viewer").get(result["url"])

    assert response.status_code == 200
    assert response["Content-Type"] == "image/webp"
    assert response["X-Content-Type-Options"] == "nosniff"
    body = b"".join(response.streaming_content)
    assert body == (media / result["path"]).read_bytes()
    image = Image.open(io.BytesIO(body))
    assert (image.format, image.size) == ("WEBP", (60, 40))


def test_the_console_session_opens_it_too_whatever_the_browser_accepts(web, media, taskhub_manual):
    result = processed_image(web, taskhub_manual)
    user, _, _ = create_user("vera", "viewer")
    browser = Client()
    browser.force_login(user)

    response = browser.get(result["url"], HTTP_ACCEPT="image/avif,image/webp,image/png")

    assert response.status_code == 200 and response["Content-Type"] == "image/webp"


def test_without_credentials_or_a_role_it_is_refused(web, media, taskhub_manual):
    result = processed_image(web, taskhub_manual)
    nobody = get_user_model().objects.create_user("no-role")
    without_role = APIClient()
    without_role.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=nobody).key}")

    anonymous = client_of(None).get(result["url"])
    refused = without_role.get(result["url"])

    assert anonymous.status_code == 401 and refused.status_code == 403
    assert b"RIFF" not in anonymous.content + refused.content  # no image bytes either way


@pytest.mark.parametrize(
    "path",
    [
        "/api/images/../secret.png",
        "/api/images/..%2Fsecret.png",
        "/api/images/%2E%2E%2Fsecret.png",
        "/api/images/..",
        "/api/images/.secret.png",
        "/api/images/not-there.webp",
        "/api/images/settings.py",
    ],
)
def test_nothing_outside_the_images_folder_nor_a_missing_file_is_served(media, path):
    (media / "images").mkdir(parents=True)
    (media / "secret.png").write_bytes(png_bytes(4, 4))
    (media / "images" / "settings.py").write_bytes(b"SECRET_KEY = 'x'")

    response = client_of("viewer").get(path)

    assert response.status_code == 404
    assert response.json() == {"error": "No such image."} or response.json() == {
        "error": "Not found."
    }


def test_a_name_with_a_nul_byte_is_refused_before_any_lookup(media):
    response = client_of("viewer").get("/api/images/secret.png%00.webp")
    assert response.status_code == 400


def test_a_storage_that_serves_its_files_keeps_its_own_url(web, media, settings, taskhub_manual):
    settings.TASKHUB = {**settings.TASKHUB, "IMAGE_URLS_FROM_STORAGE": True}

    result = processed_image(web, taskhub_manual)

    assert result["url"] == f"/media/{result['path']}"


def test_the_task_page_in_the_console_links_to_the_image_and_shows_it(web, media, taskhub_manual):
    result = processed_image(web, taskhub_manual)
    task = Task.objects.get(name="image.process")
    user, _, _ = create_user("vera", "viewer")
    browser = Client()
    browser.force_login(user)

    page = browser.get(f"/admin/taskhub/task/{task.id}/change/").content.decode()

    assert f'<a href="{result["url"]}" target="_blank" rel="noopener">Open the image</a>' in page
    assert f'<img class="th-image-preview" src="{result["url"]}"' in page


@pytest.mark.parametrize("url", ["javascript:alert(1)", "//evil.example/x.png", 42])
def test_a_result_url_that_is_not_a_web_address_is_not_linked(login_viewer, url):
    task = Task.objects.create(
        name="image.process",
        status=TaskStatus.COMPLETED,
        result={"url": url},
        scheduled_at=timezone.now(),
        created_at=timezone.now(),
        updated_at=timezone.now(),
    )

    page = login_viewer.get(f"/admin/taskhub/task/{task.id}/change/").content.decode()

    assert "Open the image" not in page and "th-image-preview" not in page


@pytest.fixture
def login_viewer():
    user, _, _ = create_user("vera", "viewer")
    browser = Client()
    browser.force_login(user)
    return browser
