"""URL routes: the admin and the engine's API. Domain apps add theirs here."""

from django.contrib import admin
from django.urls import include, path

from taskhub.console.admin import brand_admin_site

# This project's admin is the taskhub console: it opts in to the console's titles.
brand_admin_site(admin.site)

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("taskhub.console.urls")),
    path("api/", include("notifications.urls")),
    path("", include("payments.urls")),
    path("", include("kyc.urls")),
    path("", include("webhooks.urls")),
]

# JSON for unknown URLs under /api/, the HTML page elsewhere.
handler404 = "taskhub.console.api.errors.not_found"
