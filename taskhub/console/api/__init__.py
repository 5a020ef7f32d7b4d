"""The REST API (Django REST framework): tasks, the established task-queue API, metrics and
failure analysis, health. Views are thin: a serializer validates, one service call acts."""
