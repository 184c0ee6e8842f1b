"""HTML pages and fragments, one module per page family; the routes are in taskboard/urls.py."""
