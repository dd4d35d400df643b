"""The route table: handlers register with ``@route``; ``match_route`` finds the one for a method and path.

A handler is ``handler(app, call, params, ctx) -> Outcome``; the pipeline runs it under the directory lock.
Routes are tried in the order they registered (the order ``routes/__init__.py`` imports the resource modules,
then the order within each module): ``/users/$count`` must come before ``/users/{id}``.
"""

import re

ID = r"(?P<id>[^/]+)"
ROUTES = []


def route(method, pattern, template):
    def register(handler):
        ROUTES.append((method, re.compile(f"^{pattern}$", re.IGNORECASE), template, handler))
        return handler

    return register


def match_route(method, path):
    """(template, handler, params) for method+path; template without method for 405 detection."""
    path_matched = None
    for route_method, pattern, template, handler in ROUTES:
        found = pattern.match(path)
        if not found:
            continue
        if route_method == method:
            return template, handler, found.groupdict()
        path_matched = template
    return path_matched, None, None
