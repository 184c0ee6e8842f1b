"""The JSON API at /api/tasks/: views, parameters, serializers, routes."""
