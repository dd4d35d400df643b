# -*- coding: utf-8 -*-
# Copyright: entraops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""sku_info's records and its selection by the catalog's SKU rule."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.entraops.licensing.plugins.module_utils import skus as sku_info

E5 = "c7df2760-2c81-4ef7-b578-5b5392b571df"
E3 = "6fd2c87f-b296-42f0-b197-1e91e994b900"
RECORDS = [
    sku_info.sku_record({"skuId": E5.upper(), "skuPartNumber": "ENTERPRISEPREMIUM"}),
    sku_info.sku_record({"skuId": E3, "skuPartNumber": "ENTERPRISEPACK"}),
]


@pytest.mark.parametrize(
    "records, wanted, names",
    [
        ([], ["E3"], "'E3': no subscribed SKU has this GUID or part number; expected a SKU GUID or part number. Subscribed part numbers: none"),
    ],
)
def test_select_skus_message_with_empty_tenant(records, wanted, names):
    with pytest.raises(ValueError) as caught:
        sku_info.select_skus(records, wanted)
    assert str(caught.value) == names


def test_sku_record_reports_over_consumption_honestly():
    record = sku_info.sku_record(
        {
            "skuId": "C7DF2760-2C81-4EF7-B578-5B5392B571DF",
            "skuPartNumber": "ENTERPRISEPREMIUM",
            "consumedUnits": 30,
            "prepaidUnits": {"enabled": 25, "warning": 5},
            "servicePlans": [{"servicePlanId": "8C098270-9DD4-4350-9B30-BA4703F3B36B", "servicePlanName": "ADALLOM_S_O365", "appliesTo": "Company"}],
        }
    )
    assert record["sku_id"] == "c7df2760-2c81-4ef7-b578-5b5392b571df"
    assert record["available"] == -5 and record["warning"] == 5
    assert record["service_plans"][0]["service_plan_id"] == "8c098270-9dd4-4350-9b30-ba4703f3b36b"
    assert record["user_service_plan_names"] == []


def test_selection_follows_the_catalogs_rule_braces_case_and_whitespace():
    chosen = sku_info.select_skus(RECORDS, ["{%s}" % E5.upper(), " enterprisepack ", E5, "EnterprisePack"])
    assert [record["sku_id"] for record in chosen] == [E5, E3]


def test_every_value_naming_nothing_is_named_in_one_message():
    with pytest.raises(ValueError) as caught:
        sku_info.select_skus(RECORDS, ["E3", "", "00000000-0000-0000-0000-000000000000", "ENTERPRISEPACK"])
    assert str(caught.value) == (
        "'E3', '', '00000000-0000-0000-0000-000000000000': no subscribed SKU has these GUIDs or part numbers; "
        "expected a SKU GUID or part number. Subscribed part numbers: ENTERPRISEPACK, ENTERPRISEPREMIUM"
    )


def test_no_selection_lists_every_sku_by_part_number():
    assert [record["sku_part_number"] for record in sku_info.select_skus(RECORDS, None)] == ["ENTERPRISEPACK", "ENTERPRISEPREMIUM"]
