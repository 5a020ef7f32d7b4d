"""Swagger UI at ``/api/docs/`` with its assets served by the project (drf-spectacular-sidecar).

The schema and the UI need an authenticated user like the rest of the API; a browser without a
session is sent to the admin login and back, instead of being shown a bare 401.
"""

from django.contrib.auth.views import redirect_to_login
from drf_spectacular.views import SpectacularSwaggerView
from rest_framework.exceptions import NotAuthenticated


class SwaggerUI(SpectacularSwaggerView):
    def handle_exception(self, exc):
        if isinstance(exc, NotAuthenticated):
            return redirect_to_login(self.request.get_full_path(), login_url="admin:login")
        return super().handle_exception(exc)
