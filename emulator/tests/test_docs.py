"""The README's permission table is the one the server enforces."""

import re
from pathlib import Path

from graph_emulator.identity import ALL_OF_PERMISSIONS, ROUTE_PERMISSIONS

README = Path(__file__).resolve().parent.parent / "README.md"


def documented_permissions():
    rows = {}
    for line in README.read_text().splitlines():
        match = re.match(r"^\| `((?:GET|POST|PATCH|DELETE) /(?:v1\.0|beta)/[^`]*)` \| (.*) \| (.*) \|$", line)
        if match:
            rows[match.group(1)] = (re.findall(r"`([^`]+)`", match.group(2)), re.findall(r"`([^`]+)`", match.group(3)))
    return rows


def test_readme_permission_table_matches_the_enforced_table():
    rows = documented_permissions()
    assert set(rows) == set(ROUTE_PERMISSIONS)
    for route, (least, higher) in ROUTE_PERMISSIONS.items():
        if route in ALL_OF_PERMISSIONS:
            assert rows[route][0] == list(ALL_OF_PERMISSIONS[route])
        else:
            assert rows[route] == ([least], list(higher)), route


def test_readme_links_the_tenant_format():
    assert "(docs/tenant-format.md)" in README.read_text()
