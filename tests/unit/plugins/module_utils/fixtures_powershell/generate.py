# -*- coding: utf-8 -*-
# Copyright: entraops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Writes the legacy-export fixtures byte for byte, the way PowerShell writes them.

Run ``python generate.py`` to (re)create the files beside it; test_powershell.py checks that the
committed files are exactly what this script writes. Each entry says which PowerShell command
produces that shape. GUIDs are real (ENTERPRISEPACK, EMS and their plans).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import codecs
import os

E3 = "6fd2c87f-b296-42f0-b197-1e91e994b900"
EMS = "efccb6f7-5641-4e0e-bd10-b4976e1bf68e"
SWAY = "a23b959c-7ce8-4e57-9140-b90eb88a9e97"
YAMMER = "7547a3fe-08ee-4ccb-b430-5077c5041653"
ADELE = "87d349ed-44d7-43e1-9a83-5f2406dee5bd"
ALEX = "6e7b768e-07e2-4810-8459-485f84f8f204"
GROUP = "1ad1d2d0-6b1c-4c76-8d7b-0f0d5a4c3e21"

UTF8_BOM = codecs.BOM_UTF8
UTF16LE_BOM = codecs.BOM_UTF16_LE
UTF16BE_BOM = codecs.BOM_UTF16_BE


def crlf(lines):
    return "\r\n".join(lines) + "\r\n"


def lf(lines):
    return "\n".join(lines) + "\n"


HEADER = '"UserPrincipalName","UserId","SkuId","SkuPartNumber","DisabledPlans","DisabledPlanNames"'
ROWS = [
    '"AdeleV@contoso.com","%s","%s","ENTERPRISEPACK","%s;%s","SWAY;YAMMER_ENTERPRISE"' % (ADELE, E3, SWAY, YAMMER),
    '"AlexW@contoso.com","%s","%s","ENTERPRISEPACK","",""' % (ALEX, E3),
    '"AlexW@contoso.com","%s","%s","EMS","",""' % (ALEX, EMS),
]

JSON_PS7_DEPTH5 = """[
  {
    "UserPrincipalName": "AdeleV@contoso.com",
    "UserId": "%(adele)s",
    "SkuId": "%(e3)s",
    "SkuPartNumber": "ENTERPRISEPACK",
    "DisabledPlans": "%(sway)s;%(yammer)s",
    "DisabledPlanNames": "SWAY;YAMMER_ENTERPRISE"
  },
  {
    "UserPrincipalName": "AlexW@contoso.com",
    "UserId": "%(alex)s",
    "SkuId": "%(e3)s",
    "SkuPartNumber": "ENTERPRISEPACK",
    "DisabledPlans": "",
    "DisabledPlanNames": ""
  },
  {
    "UserPrincipalName": "AlexW@contoso.com",
    "UserId": "%(alex)s",
    "SkuId": "%(ems)s",
    "SkuPartNumber": "EMS",
    "DisabledPlans": "",
    "DisabledPlanNames": ""
  }
]"""

# Windows PowerShell 5.1 ConvertTo-Json indents with 4 spaces and pads after the colon.
JSON_PS51_SINGLE = """{
    "UserPrincipalName":  "AdeleV@contoso.com",
    "SkuPartNumber":  "ENTERPRISEPACK",
    "DisabledPlanNames":  [
                              "SWAY",
                              "YAMMER_ENTERPRISE"
                          ]
}"""

# Get-MgUser -Property Id,UserPrincipalName,LicenseAssignmentStates | Select-Object ... | ConvertTo-Json -Depth 5
JSON_NESTED_STATES = """[
  {
    "Id": "%(adele)s",
    "UserPrincipalName": "AdeleV@contoso.com",
    "LicenseAssignmentStates": [
      {
        "AssignedByGroup": null,
        "DisabledPlans": [
          "%(sway)s"
        ],
        "Error": "None",
        "LastUpdatedDateTime": "2025-06-30T12:00:00Z",
        "SkuId": "%(e3)s",
        "State": "Active"
      },
      {
        "AssignedByGroup": "%(group)s",
        "DisabledPlans": [],
        "Error": "None",
        "LastUpdatedDateTime": "2025-06-30T12:00:00Z",
        "SkuId": "%(ems)s",
        "State": "Active"
      }
    ]
  }
]"""

# The same without -Depth: the entries past depth 2 become their ToString().
JSON_PS7_DEPTH2 = """[
  {
    "Id": "%(adele)s",
    "UserPrincipalName": "AdeleV@contoso.com",
    "AssignedLicenses": [
      "@{DisabledPlans=System.Object[]; SkuId=%(e3)s}"
    ]
  }
]"""

JSON_PS51_DEPTH2_HASHTABLE = """[
    {
        "UserPrincipalName":  "AdeleV@contoso.com",
        "SkuId":  "%(e3)s",
        "DisabledPlans":  "System.Collections.Hashtable"
    }
]"""

# Windows PowerShell 5.1, ConvertTo-Json -InputObject on an array carrying extended properties.
JSON_PS51_VALUE_COUNT = """{
    "value":  [
                  {
                      "UserPrincipalName":  "AlexW@contoso.com",
                      "SkuId":  "%(ems)s",
                      "EnabledPlans":  "AAD_PREMIUM;MFA_PREMIUM;INTUNE_A"
                  }
              ],
    "Count":  1
}"""

IDS = {"adele": ADELE, "alex": ALEX, "e3": E3, "ems": EMS, "sway": SWAY, "yammer": YAMMER, "group": GROUP}

FIXTURES = {
    # Windows PowerShell 5.1: ... | Export-Csv legacy.csv  (ASCII, #TYPE line, every field quoted, CRLF)
    "ps51_type_ascii.csv": crlf(["#TYPE Selected.System.Management.Automation.PSCustomObject", HEADER] + ROWS).encode("ascii"),
    # Windows PowerShell 5.1: Export-Csv -NoTypeInformation -Encoding utf8  (UTF-8 with BOM, CRLF)
    "ps51_utf8_bom.csv": UTF8_BOM + crlf([HEADER] + ROWS).encode("utf-8"),
    # PowerShell 7 on Linux: Export-Csv (utf8NoBOM, no #TYPE line, LF)
    "ps7_utf8.csv": lf([HEADER] + ROWS).encode("utf-8"),
    # Windows PowerShell 5.1, German locale: Export-Csv -UseCulture -Encoding Unicode  (UTF-16 LE BOM, ';', #TYPE, CRLF)
    "ps51_unicode_semicolon.csv": UTF16LE_BOM
    + crlf(["#TYPE System.Management.Automation.PSCustomObject", HEADER.replace('","', '";"')] + [row.replace('","', '";"') for row in ROWS]).encode(
        "utf-16-le"
    ),
    # Export-Csv -Encoding BigEndianUnicode
    "utf16be_bom.csv": UTF16BE_BOM + crlf([HEADER] + ROWS).encode("utf-16-be"),
    # Hand-made: names only, plans by name, unquoted (-UseQuotes AsNeeded in PowerShell 7)
    "names_unquoted.csv": lf(["UserPrincipalName,SkuPartNumber,DisabledPlanNames", "AdeleV@contoso.com,enterprisepack,SWAY;yammer_enterprise"]).encode("utf-8"),
    # Naive: Select-Object UserPrincipalName, SkuId, DisabledPlans | Export-Csv  (an array cell)
    "naive_string_array.csv": crlf(
        [
            "#TYPE Selected.System.Management.Automation.PSCustomObject",
            '"UserPrincipalName","SkuId","DisabledPlans"',
            '"AdeleV@contoso.com","%s","System.String[]"' % E3,
        ]
    ).encode("ascii"),
    # Naive: Get-MgUser -Property UserPrincipalName,AssignedLicenses | Select-Object UserPrincipalName, AssignedLicenses | Export-Csv
    "naive_assigned_licenses.csv": crlf(
        ['"UserPrincipalName","AssignedLicenses"', '"AdeleV@contoso.com","Microsoft.Graph.PowerShell.Models.IMicrosoftGraphAssignedLicense[]"']
    ).encode("ascii"),
    # ';' delimiter without quotes and plans joined with ';' too: cannot be split, must be refused
    "semicolon_unquoted_lists.csv": crlf(["UserPrincipalName;SkuId;DisabledPlanNames", "AdeleV@contoso.com;%s;SWAY;YAMMER_ENTERPRISE" % E3]).encode("ascii"),
    # Export-Csv -Encoding Default on Windows PowerShell 5.1 (ANSI code page 1252), with a non-ASCII name
    "ansi_cp1252.csv": crlf(['"UserPrincipalName","DisplayName","SkuId","DisabledPlans"', '"zoe@contoso.com","Zo\u00eb Lindqvist","%s",""' % E3]).encode(
        "cp1252"
    ),
    # PowerShell 7: ConvertTo-Json -Depth 5 | Set-Content (UTF-8 no BOM, LF)
    "ps7_depth5.json": lf([JSON_PS7_DEPTH5 % IDS]).encode("utf-8"),
    # Windows PowerShell 5.1: one row -> a single object; Out-File (UTF-16 LE with BOM, CRLF)
    "ps51_single_object.json": UTF16LE_BOM + crlf(JSON_PS51_SINGLE.split("\n")).encode("utf-16-le"),
    # Get-MgUser ... LicenseAssignmentStates | ConvertTo-Json -Depth 5, UTF-8 with BOM
    "nested_states_depth5.json": UTF8_BOM + crlf((JSON_NESTED_STATES % IDS).split("\n")).encode("utf-8"),
    # The same shape with the default -Depth 2 (PowerShell 7)
    "ps7_depth2_truncated.json": lf([JSON_PS7_DEPTH2 % IDS]).encode("utf-8"),
    # Windows PowerShell 5.1, default depth on a hashtable value, Out-File (UTF-16 LE BOM)
    "ps51_depth2_hashtable.json": UTF16LE_BOM + crlf((JSON_PS51_DEPTH2_HASHTABLE % IDS).split("\n")).encode("utf-16-le"),
    # Windows PowerShell 5.1 {"value": [...], "Count": n} wrapper, enabled plans by name
    "ps51_value_count.json": UTF8_BOM + crlf((JSON_PS51_VALUE_COUNT % IDS).split("\n")).encode("utf-8"),
}


def write_all(directory):
    for name, data in sorted(FIXTURES.items()):
        with open(os.path.join(directory, name), "wb") as stream:
            stream.write(data)


if __name__ == "__main__":
    write_all(os.path.dirname(os.path.abspath(__file__)))
