# -*- coding: utf-8 -*-
# Copyright (c) 2025, entraops contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""GUIDs: the one rule for what is a GUID and its canonical (lower-case) form.

Shared by the licensing logic and the record files (reports, plans, journals), which otherwise
do not import each other. Each keeps its own error type by wrapping ``canonical_guid``.
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import re

GUID_EXAMPLE = '6fd2c87f-b296-42f0-b197-1e91e994b900'

# 8-4-4-4-12 hex, optionally in braces (as PowerShell and .NET print them); surrounding whitespace is stripped.
_GUID_RE = re.compile(r'^\{?([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})\}?$')


class GuidError(ValueError):
    """A value that is not a GUID; the message names the value and what was expected."""


def canonical_guid(value):
    """``value`` as a lower-case GUID without braces, or None when it is not a GUID string."""
    if not isinstance(value, str):
        return None
    match = _GUID_RE.match(value.strip())
    return match.group(1).lower() if match else None


def is_guid(value):
    """True if ``value`` is a string holding a GUID (8-4-4-4-12 hex, optionally in braces)."""
    return canonical_guid(value) is not None


def normalize_guid(value, what='GUID'):
    """Return ``value`` as a canonical GUID, or raise GuidError naming ``what`` and the value."""
    guid = canonical_guid(value)
    if guid is None:
        raise GuidError('{0!r} is not a valid {1}: expected a GUID like {2}'.format(value, what, GUID_EXAMPLE))
    return guid
