# -*- coding: utf-8 -*-
# Copyright (c) 2025, entraops contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""One GUID rule for the licensing logic and the record files, each keeping its own error type and message."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.entraops.licensing.plugins.module_utils import assignments, directory, guid, journal, licensing, plan, powershell, reports, waiter
from ansible_collections.entraops.licensing.plugins.modules import sku_info
from ansible_collections.entraops.licensing.plugins.module_utils.guid import GuidError, canonical_guid, is_guid, normalize_guid

E3 = "6fd2c87f-b296-42f0-b197-1e91e994b900"


@pytest.mark.parametrize(
    "value, expected",
    [
        (E3, E3),
        (E3.upper(), E3),
        ("{%s}" % E3.upper(), E3),
        ("  %s\n" % E3, E3),
        (E3[:-1], None),
        (E3.replace("-", ""), None),
        ("{%s" % E3 + "x", None),
        (None, None),
        (42, None),
    ],
)
def test_canonical_form(value, expected):
    assert canonical_guid(value) == expected
    assert is_guid(value) is (expected is not None)


def test_shared_error_is_a_value_error_naming_the_value():
    with pytest.raises(GuidError, match=r"'E3' is not a valid SKU id: expected a GUID like ") as info:
        normalize_guid("E3", "SKU id")
    assert isinstance(info.value, ValueError)


def test_each_caller_keeps_its_error_type_and_message_over_the_one_rule():
    with pytest.raises(licensing.LicensingInputError, match=r"^'nope' is not a valid group id: expected a GUID like 6fd2c87f-"):
        normalize_guid("nope", "group id", error=licensing.LicensingInputError)
    with pytest.raises(reports.RecordsError, match=r"^sku_id must be a GUID like 00000000-0000-0000-0000-000000000000, got 'nope'$"):
        normalize_guid("nope", "sku_id", error=reports.RecordsError)
    for error in (licensing.LicensingInputError, reports.RecordsError):
        assert normalize_guid("{%s}" % E3.upper(), "SKU id", error=error) == E3
    assert licensing.is_guid is guid.is_guid


def test_record_modules_define_no_guid_logic_of_their_own():
    for module in (licensing, reports, plan, journal, directory, assignments, powershell, waiter, sku_info):
        assert not hasattr(module, "_GUID_RE") and not hasattr(module, "_GUID_PATTERN"), module.__name__
        assert not hasattr(module, "GUID_PATTERN"), module.__name__
        assert getattr(module, "normalize_guid", normalize_guid) is normalize_guid, module.__name__
