"""The OpenAPI schema at ``/api/schema/`` and Swagger UI at ``/api/docs/`` with its assets served
by the project (drf-spectacular-sidecar).

The schema and the UI need an authenticated user like the rest of the API; a browser without a
session is sent to the admin login and back, instead of being shown a bare 401. Their other errors
take the API's shape, like every taskhub view's.
"""

from django.contrib.auth.views import redirect_to_login
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.exceptions import NotAuthenticated

from .views import TaskhubAPIMixin


class Schema(TaskhubAPIMixin, SpectacularAPIView):
    """drf-spectacular's schema view, its 401 in the API's shape."""


class SwaggerUI(TaskhubAPIMixin, SpectacularSwaggerView):
    def handle_exception(self, exc):
        if isinstance(exc, NotAuthenticated):
            return redirect_to_login(self.request.get_full_path(), login_url="admin:login")
        return super().handle_exception(exc)
