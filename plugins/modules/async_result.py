#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: entraops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: async_result
short_description: Wait on the controller for a background task of this host and return its result
version_added: 0.2.0
description:
  - Takes the registered result of a task started in the background (C(async) with C(poll 0)) on a C(local) connection,
    waits for its job by reading the job's results file on the controller, and returns the job's own result, as if the task
    had run in the foreground; the results file is removed.
  - Unlike M(ansible.builtin.async_status) in an C(until) loop, waiting starts no process on the controller (a process per poll
    costs about 0.15 s of CPU) and prints no retry line. The worker waits, but the job started at once with every other host's, so
    with more hosts than C(forks), hosts whose wait starts later find their job done or nearly so.
  - A result without C(ansible_job_id) (the task ran in the foreground, C(async 0), as in check mode) passes through with
    C(changed) false (its task showed and counted the change already).
  - The role C(entraops.licensing.migrate_direct_to_group) uses it to run its long phases side by side on many tenants.
  - This is an action plugin; it runs on the controller only.
author:
  - entraops contributors (@entraops)
options:
  job:
    description:
      - The registered result of the background task (C(ansible_job_id) and C(results_file)), or of the same task run in the foreground.
    type: dict
    required: true
  timeout:
    description:
      - Seconds to wait at most; V(0) waits until the job ends (the job's own C(async) limit ends it).
      - On timeout the task fails; the job keeps running until its C(async) limit.
    type: float
    default: 0
  poll_interval:
    description: Seconds between reads of the results file.
    type: float
    default: 0.5
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details: The job's diff is shown by this task; a foreground result's diff is not shown again.
  platform:
    platforms: all
notes:
  - Needs the job's results file on the controller, so the background task must run with a C(local) connection (as the
    collection's playbooks and role do).
seealso:
  - module: ansible.builtin.async_status
  - name: Asynchronous actions and polling
    description: Ansible's guide to C(async) and C(poll).
    link: https://docs.ansible.com/ansible/latest/playbook_guide/playbooks_async.html
"""

EXAMPLES = r"""
- name: Remove the direct assignments of batch 3 in the background
  entraops.licensing.direct_license:
    state: absent
    plan_path: /srv/migration/contoso-plan.json
    batches: [3]
    journal_path: /srv/migration/contoso-journal.jsonl
  async: 21600
  poll: 0
  register: removal_job

- name: Wait for batch 3 and take its result
  entraops.licensing.async_result:
    job: "{{ removal_job }}"
  register: removal
"""

RETURN = r"""
finished:
  description: Always V(true) when the task returns without failing.
  returned: always
  type: bool
ansible_job_id:
  description: The job waited for.
  returned: when the task ran in the background
  type: str
msg:
  description: Why the job or the wait failed.
  returned: on failure
  type: str
"""
