"""taskhub leaves the host's names and settings alone: its URLs live in the namespace `taskhub`
(from its own urlconf, wherever the host mounts it), and its API views answer errors in their own
shape whatever the host's REST_FRAMEWORK says, without changing the host's views' errors."""

import pytest
from django.test import override_settings
from django.urls import NoReverseMatch, URLResolver, get_resolver, include, path, reverse
from rest_framework.exceptions import NotFound
from rest_framework.permissions import AllowAny
from rest_framework.views import APIView

from taskhub.console.api.errors import handle_exception
from taskhub.models import Task


class HostView(APIView):
    """A view of the host's own API, on DRF's defaults."""

    permission_classes = [AllowAny]

    def get(self, request):
        raise NotFound()


# A host that mounts taskhub under a prefix of its own, without naming a namespace.
urlpatterns = [
    path("ops/", include("taskhub.console.urls")),
    path("host/thing", HostView.as_view()),
]


def test_taskhubs_urls_reverse_in_the_taskhub_namespace_at_the_paths_clients_know():
    assert reverse("taskhub:task-list") == "/api/tasks"
    assert reverse("taskhub:task-events", kwargs={"task_id": "t-1"}) == "/api/tasks/t-1/events"
    assert reverse("taskhub:event-stream") == "/api/events/stream"
    assert reverse("taskhub:schema") == "/api/schema/"
    assert reverse("taskhub:healthz") == "/healthz"
    assert reverse("taskhub:prometheus-metrics") == "/metrics"
    with pytest.raises(NoReverseMatch):
        reverse("api:task-list")  # taskhub no longer takes the name `api`


@pytest.mark.django_db
@override_settings(ROOT_URLCONF=__name__)
def test_a_host_mounting_taskhub_under_a_prefix_gets_links_under_it(operator, viewer):
    assert reverse("taskhub:task-list") == "/ops/api/tasks"
    created = operator.post("/ops/api/tasks", {"task": "taskhub.ping"}, format="json")
    assert created.status_code == 201, created.content
    task_id = created.json()["id"]
    detail = viewer.get(f"/ops/api/tasks/{task_id}").json()
    assert detail["events_url"].endswith(f"/ops/api/tasks/{task_id}/events")


def _routes(resolver: URLResolver, prefix: str = ""):
    for pattern in resolver.url_patterns:
        if isinstance(pattern, URLResolver):
            yield from _routes(pattern, prefix + str(pattern.pattern))
        else:
            yield prefix + str(pattern.pattern), pattern.callback


def test_every_drf_view_of_taskhub_and_the_domain_apps_answers_in_taskhubs_shape():
    checked = []
    for route, callback in _routes(get_resolver()):
        view = getattr(callback, "cls", None)
        if view is not None and issubclass(view, APIView):
            assert view().get_exception_handler() is handle_exception, route
            checked.append(route)
    # taskhub's API, the schema, /metrics and the domain apps' APIs are all DRF views.
    assert len(checked) > 50 and "api/schema/" in checked and "metrics" in checked, checked


@pytest.mark.django_db
@pytest.mark.parametrize(
    "host_handler", [None, "rest_framework.views.exception_handler"], ids=["unset", "drf-default"]
)
def test_error_bodies_keep_taskhubs_shape_whatever_the_host_sets(settings, as_role, host_handler):
    rest = {k: v for k, v in settings.REST_FRAMEWORK.items() if k != "EXCEPTION_HANDLER"}
    if host_handler:
        rest["EXCEPTION_HANDLER"] = host_handler
    settings.REST_FRAMEWORK = rest
    operator, viewer, anonymous = as_role("operator"), as_role("viewer"), as_role(None)

    bad = operator.post(
        "/api/tasks", {"task": "taskhub.ping", "priority": "urgent-ish"}, format="json"
    )
    assert bad.status_code == 400
    assert set(bad.json()) == {"error", "errors"} and "priority" in bad.json()["errors"]
    assert anonymous.get("/api/tasks").json().keys() == {"error"}
    weak = viewer.post("/api/task-queue/default/pause")
    assert weak.status_code == 403
    # the established task-queue API keeps its envelope on failures
    assert weak.json() == {
        "success": False,
        "message": "This needs the operator role.",
        "error": "This needs the operator role.",
    }
    missing = viewer.get("/api/tasks/00000000-0000-0000-0000-000000000000")
    assert missing.status_code == 404 and missing.json().keys() == {"error"}
    assert not Task.objects.exists()


@override_settings(ROOT_URLCONF=__name__)
def test_the_hosts_own_api_views_keep_drfs_error_shape(client):
    response = client.get("/host/thing")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}
