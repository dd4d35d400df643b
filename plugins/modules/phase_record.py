#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: entraops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: phase_record
short_description: Write a JSON evidence record on the controller without starting a module process
version_added: 0.3.0
description:
  - Writes O(content) as JSON (sorted keys, indented, as the C(to_nice_json) filter writes it) to O(path) on the controller,
    through a file beside it that is fsynced and renamed into place, so a reader never sees half a record.
  - The role C(entraops.licensing.migrate_direct_to_group) writes its phase records (C(<host>-phase-*.json)) with it. Unlike
    M(ansible.builtin.copy) with C(content) (a C(stat) and a C(copy) module process, about 0.3 s of controller CPU per record) it
    starts no process, which counts when many tenants run in one play.
  - This is an action plugin; it runs on the controller only, with a C(local) connection.
author:
  - entraops contributors (@entraops)
options:
  path:
    description: Path of the record (relative to the controller's working directory unless absolute); its folder must exist.
    type: path
    required: true
  content:
    description: What to write (a dict or a list), serialized as JSON.
    type: raw
    required: true
  mode:
    description: File mode of the record, in octal.
    type: str
    default: "0600"
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: In check mode nothing is written; set C(check_mode=false) on the task to write evidence in dry runs too.
  diff_mode:
    support: full
  platform:
    platforms: all
seealso:
  - module: ansible.builtin.copy
"""

EXAMPLES = r"""
- name: Record the result of the verify phase
  entraops.licensing.phase_record:
    path: /srv/migration/contoso-phase-verify.json
    content:
      phase: verify
      status: ok
      plan_fingerprint: "{{ plan.plan_fingerprint }}"
  check_mode: false
"""

RETURN = r"""
path:
  description: The record written.
  returned: always
  type: str
"""
