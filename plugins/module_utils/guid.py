# -*- coding: utf-8 -*-
# Copyright (c) 2025, entraops contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""GUIDs: the one rule for what is a GUID and its canonical (lower-case) form.

Shared by the licensing logic and the record files (reports, plans, journals), which otherwise
do not import each other. Each keeps its own error type (and that type's message) by passing it to
``normalize_guid``; code that only needs a yes/no or a canonical form uses ``canonical_guid``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

GUID_EXAMPLE = "6fd2c87f-b296-42f0-b197-1e91e994b900"

# 8-4-4-4-12 hex, optionally in braces (as PowerShell and .NET print them); surrounding whitespace is stripped.
_GUID_RE = re.compile(r"^\{?([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})\}?$")


# The message of a refused value; an error type may carry its own as ``guid_message`` (same fields).
GUID_MESSAGE = "{value!r} is not a valid {what}: expected a GUID like {example}"


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


def normalize_guid(value, what="GUID", error=GuidError):
    """Return ``value`` as a canonical GUID, or raise ``error`` naming ``what`` and the value.

    ``what`` names the kind of id in the message (``'SKU id'``, ``'group id'``...). Surrounding
    whitespace and braces are accepted; anything else is refused, so a typo never silently becomes
    a different id. The message is ``error.guid_message`` when the error type has one, else GUID_MESSAGE.
    """
    guid = canonical_guid(value)
    if guid is None:
        message = getattr(error, "guid_message", GUID_MESSAGE)
        raise error(message.format(value=value, what=what, example=GUID_EXAMPLE))
    return guid
