# -*- coding: utf-8 -*-
# Copyright: entraops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""The migration tenant's emulator (migration_tenant.py), one per test module, freshly loaded for each test.

Test modules that need another tenant define their own ``emu``; pytest takes the closest definition.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy

import pytest

from .migration_tenant import build_tenant, reset_migration_emulator
from ansible_collections.entraops.licensing.tests.unit.plugins.modules.utils import STRICT_KNOBS


@pytest.fixture(scope="module")
def tenant_and_roles():
    return build_tenant()


@pytest.fixture(scope="module")
def emulator_module(tenant_and_roles):
    from graph_emulator import Emulator  # pylint: disable=import-outside-toplevel

    with Emulator(tenant=copy.deepcopy(tenant_and_roles[0]), port=0, throttling=False, **STRICT_KNOBS) as emu:
        yield emu


@pytest.fixture
def emu(emulator_module, tenant_and_roles):
    """The module's emulator with the migration tenant freshly loaded, no faults, empty ledger and log."""
    reset_migration_emulator(emulator_module, tenant_and_roles[0])
    yield emulator_module
    emulator_module.clear_faults()


@pytest.fixture
def roles(tenant_and_roles):
    return tenant_and_roles[1]
