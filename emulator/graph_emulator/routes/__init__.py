"""The Graph v1.0 route handlers, one module per resource; importing this package registers them all.

The import order below is the order routes are matched in (see registry.py).
"""

from . import users, groups, licensing, organization, audit, beta  # noqa: F401 - registers the routes
from .registry import ID, ROUTES, match_route, route

__all__ = ["ID", "ROUTES", "match_route", "route"]
