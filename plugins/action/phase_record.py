# -*- coding: utf-8 -*-
# Copyright: entraops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Write a small JSON evidence record on the controller, atomically, without a module process (see plugins/modules/phase_record.py)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import tempfile

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase
from ansible.plugins.filter.core import to_nice_json


def record_text(content):
    """The file's text: as ``to_nice_json`` writes it (sorted keys, indent 4), with a final newline."""
    return to_nice_json(content) + "\n"


def write_atomically(path, text, mode):
    """Write ``text`` to ``path`` through a file beside it, fsynced and renamed into place: a reader sees the old or the new record."""
    folder = os.path.dirname(path)
    handle, temporary = tempfile.mkstemp(prefix=".%s." % os.path.basename(path), dir=folder)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("path", "content", "mode"))

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp
        _validation, args = self.validate_argument_spec(
            argument_spec={
                "path": {"type": "path", "required": True},
                "content": {"type": "raw", "required": True},
                "mode": {"type": "str", "default": "0600"},
            }
        )
        path, mode_text = args["path"], args["mode"]
        if getattr(self._connection, "transport", "local") != "local":
            raise AnsibleActionFail(
                "phase_record writes on the controller: run it with a local connection (connection %s would write elsewhere than %s)"
                % (self._connection.transport, path)
            )
        path = os.path.abspath(path)  # a relative path is the controller's working directory's, as a local module's would be
        if not os.path.isdir(os.path.dirname(path)):
            raise AnsibleActionFail("path: the folder of %s does not exist (expected an existing output folder)" % path)
        try:
            mode = int(mode_text, 8)
        except ValueError:
            raise AnsibleActionFail("mode: got %r, expected an octal file mode such as 0600" % mode_text)
        if mode & ~0o777:
            raise AnsibleActionFail("mode: got %r, expected permission bits only (0000 to 0777)" % mode_text)
        text = record_text(args["content"])
        try:
            with open(path, "r", encoding="utf-8") as stream:
                current = stream.read()
        except FileNotFoundError:
            current = None
        result["path"] = path
        result["changed"] = current != text
        if self._task.diff and result["changed"]:
            result["diff"] = {"before_header": path, "after_header": path, "before": current or "", "after": text}
        if self._task.check_mode:
            return result
        try:
            write_atomically(path, text, mode)
        except OSError as exc:
            raise AnsibleActionFail("could not write %s: %s" % (path, exc))
        return result
