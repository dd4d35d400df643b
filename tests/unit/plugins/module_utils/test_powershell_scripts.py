# -*- coding: utf-8 -*-
# Copyright: entraops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Every PowerShell file the collection ships or writes parses under tree-sitter-powershell, with the right cmdlets and parameters.

Test-only dependencies: tree-sitter and tree-sitter-powershell (tests/requirements).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

import pytest
import tree_sitter_powershell
from tree_sitter import Language, Parser

from ansible_collections.entraops.licensing.plugins.module_utils.powershell import write_planned_script, write_rollback_script

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", ".."))
EXPORT_SCRIPT = os.path.join(ROOT, "files", "Export-LicenseState.ps1")
PARSER = Parser(Language(tree_sitter_powershell.language()))

E3 = "6fd2c87f-b296-42f0-b197-1e91e994b900"
EMS = "efccb6f7-5641-4e0e-bd10-b4976e1bf68e"
SWAY = "a23b959c-7ce8-4e57-9140-b90eb88a9e97"
USER_1 = "87d349ed-44d7-43e1-9a83-5f2406dee5bd"
USER_2 = "6e7b768e-07e2-4810-8459-485f84f8f204"


def _walk(node):
    yield node
    for child in node.children:
        yield from _walk(child)


def _text(source, node):
    return source[node.start_byte : node.end_byte].decode("utf-8")


def parse(source):
    """(tree, source bytes); fails the test on any ERROR or MISSING node, naming where."""
    if source.startswith(b"\xef\xbb\xbf"):
        source = source[3:]
    tree = PARSER.parse(source)
    broken = [(node.start_point, _text(source, node)[:60]) for node in _walk(tree.root_node) if node.type == "ERROR" or node.is_missing]
    assert broken == [], broken
    return tree, source


def commands(tree, source):
    """``[(command name, {'-Parameter': argument text or None})]`` of every command node."""
    found = []
    for node in _walk(tree.root_node):
        if node.type != "command":
            continue
        name = node.child_by_field_name("command_name")
        elements = node.child_by_field_name("command_elements")
        parameters = {}
        children = [child for child in (elements.children if elements else []) if child.type != "command_argument_sep"]
        for position, child in enumerate(children):
            if child.type == "command_parameter":
                following = children[position + 1] if position + 1 < len(children) else None
                value = _text(source, following) if following is not None and following.type != "command_parameter" else None
                parameters[_text(source, child)] = value
        found.append((_text(source, name) if name is not None else None, parameters))
    return found


def named(found, name):
    return [parameters for command_name, parameters in found if command_name == name]


def hash_keys(source, text):
    tree, source = parse(text.encode("utf-8"))
    return sorted(_text(source, node) for node in _walk(tree.root_node) if node.type == "key_expression")


def test_the_grammar_reports_broken_powershell():
    # Guards the other tests: a parse that can never fail would prove nothing.
    tree = PARSER.parse(b"if ($x) {\n  Set-MgUserLicense -UserId 'a' -AddLicenses @(@{SkuId = 'b'\n")
    assert any(node.type == "ERROR" or node.is_missing for node in _walk(tree.root_node))


def test_export_license_state_script():
    with open(EXPORT_SCRIPT, "rb") as stream:
        tree, source = parse(stream.read())
    found = commands(tree, source)
    connects = named(found, "Connect-MgGraph")
    assert connects and all(parameters["-Scopes"] == "'User.Read.All', 'Organization.Read.All'" for parameters in connects)
    [get_users] = named(found, "Get-MgUser")
    assert "-All" in get_users and "LicenseAssignmentStates" in get_users["-Property"] and "UserPrincipalName" in get_users["-Property"]
    assert named(found, "Get-MgSubscribedSku") == [{"-All": None}]
    [export_csv] = named(found, "Export-Csv")
    assert "-NoTypeInformation" in export_csv and export_csv["-Encoding"] == "utf8"
    [to_json] = named(found, "ConvertTo-Json")
    assert to_json["-Depth"] == "5"
    # Read-only: the export never writes to Entra.
    assert not [name for name, dummy in found if name and name.split("-")[0] in ("Set", "New", "Remove", "Update") and "-Mg" in name]
    text = source.decode("utf-8")
    for section in (".SYNOPSIS", ".DESCRIPTION", ".PARAMETER Path", ".PARAMETER Format", ".EXAMPLE"):
        assert section in text


def test_rollback_script_from_the_journal(tmp_path):
    rows = [
        {"user_id": USER_1, "user_principal_name": "o'brien@contoso.com", "sku_id": E3, "sku_part_number": "ENTERPRISEPACK", "disabled_plans": [SWAY]},
        {"user_id": USER_2, "user_principal_name": "alex$(calc)@contoso.com", "sku_id": EMS, "sku_part_number": "EMS", "disabled_plans": []},
    ]
    written = write_rollback_script(rows, str(tmp_path / "journal.rollback.ps1"), tenant_id="contoso.onmicrosoft.com")
    with open(written["path"], "rb") as stream:
        tree, source = parse(stream.read())
    found = commands(tree, source)
    licenses = named(found, "Set-MgUserLicense")
    assert len(licenses) == 2
    for parameters, row in zip(licenses, rows):
        assert set(["-UserId", "-AddLicenses", "-RemoveLicenses"]) <= set(parameters)
        assert parameters["-UserId"] == "'%s'" % row["user_id"]
        assert parameters["-RemoveLicenses"] == "@()"
        assert "SkuId = '%s'" % row["sku_id"] in parameters["-AddLicenses"]
        assert hash_keys(source, parameters["-AddLicenses"]) == ["DisabledPlans", "SkuId"]
    assert "'%s'" % SWAY in licenses[0]["-AddLicenses"]
    [connect] = named(found, "Connect-MgGraph")
    assert connect["-Scopes"] == "'LicenseAssignment.ReadWrite.All'" and connect["-TenantId"] == "'contoso.onmicrosoft.com'"


def test_planned_removals_script(tmp_path):
    rows = [
        {
            "user_id": USER_1,
            "user_principal_name": "o'brien@contoso.com",
            "sku_id": E3,
            "sku_part_number": "ENTERPRISEPACK",
            "healthy_inherited_from": ["g1"],
            "direct_disabled_plans": [SWAY],
            "batch": 0,
        },
        {
            "user_id": USER_2,
            "user_principal_name": "x@contoso.com\r\nRemove-MgUser -UserId all",
            "sku_id": EMS,
            "sku_part_number": "EMS",
            "healthy_inherited_from": ["g2"],
            "direct_disabled_plans": [],
            "batch": 1,
        },
    ]
    written = write_planned_script(rows, str(tmp_path / "plan.json"), tenant_id="contoso.onmicrosoft.com")
    with open(written["path"], "rb") as stream:
        tree, source = parse(stream.read())
    found = commands(tree, source)
    # Running the script changes nothing: its only command is the notice.
    assert [name for name, dummy in found] == ["Write-Host"]
    commented = [line.lstrip()[1:].strip() for line in source.decode("utf-8").splitlines() if line.lstrip().startswith("# Set-MgUserLicense")]
    assert len(commented) == 2
    statements, statement_source = parse("\n".join(commented).encode("utf-8"))
    licenses = named(commands(statements, statement_source), "Set-MgUserLicense")
    assert [(parameters["-UserId"], parameters["-AddLicenses"], parameters["-RemoveLicenses"]) for parameters in licenses] == [
        ("'%s'" % USER_1, "@()", "@('%s')" % E3),
        ("'%s'" % USER_2, "@()", "@('%s')" % EMS),
    ]


@pytest.mark.parametrize("name", ["Export-LicenseState.ps1"])
def test_every_shipped_powershell_file_is_covered(name):
    shipped = sorted(entry for entry in os.listdir(os.path.join(ROOT, "files")) if entry.lower().endswith((".ps1", ".psm1", ".psd1")))
    assert shipped == [name], "a new shipped PowerShell file needs its own parse test"
