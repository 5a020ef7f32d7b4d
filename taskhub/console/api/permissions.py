"""Role-based access for the API: viewer reads, operator steers, admin destroys.

A view declares the role each action needs, by viewset action or by HTTP method::

    class ScheduleViewSet(TaskhubAPIMixin, viewsets.ModelViewSet):
        permission_classes = [RolePermission]
        roles = {"list": VIEWER, "retrieve": VIEWER, "run_now": OPERATOR, "create": ADMIN,
                 "update": ADMIN, "partial_update": ADMIN, "destroy": ADMIN}

    class PauseQueue(TaskhubAPIView):
        roles = {"POST": OPERATOR}

Anything not declared needs viewer for safe methods and admin otherwise. No credentials (or
wrong ones) → 401; authenticated without the role → 403.
"""

from __future__ import annotations

from rest_framework.permissions import SAFE_METHODS, BasePermission

from ..roles import ADMIN, OPERATOR, VIEWER, has_role

__all__ = ["ADMIN", "OPERATOR", "VIEWER", "RolePermission", "required_role"]


def required_role(view, request) -> str:
    roles = getattr(view, "roles", {}) or {}
    action = getattr(view, "action", None)
    if action and action in roles:
        return roles[action]
    if request.method in roles:
        return roles[request.method]
    if request.method == "HEAD" and "GET" in roles:
        return roles["GET"]
    return VIEWER if request.method in SAFE_METHODS else ADMIN


class RolePermission(BasePermission):
    message = "Your role does not allow this."

    def has_permission(self, request, view) -> bool:
        user = request.user
        if not user or not user.is_authenticated:
            return False  # DRF answers 401, since the request carried no valid credentials
        role = required_role(view, request)
        self.message = f"This needs the {role} role."
        return has_role(user, role)
