from django.urls import path

from . import api

urlpatterns = [
    path("notifications", api.NotificationList.as_view(), name="notification-list"),
    path("notifications/<int:pk>/read", api.MarkRead.as_view(), name="notification-read"),
]
