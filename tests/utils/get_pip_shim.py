# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Offline stand-in for the get-pip.py that ansible-test downloads to bootstrap pip in its venvs.

ansible-test fetches get-pip-<version>.py from ci-files.testing.ansible.com, which machines
without general internet access cannot reach (ansible/ansible#77304). It runs the cached file
at ~/.ansible/test/cache/get_pip_<version>.py with pip options and the packages to install in
sys.argv, so scripts/setup copies this shim there: ensurepip provides pip, then pip installs
the requested packages from the configured package index.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ensurepip
import os
import subprocess
import sys

# get-pip.py options that plain pip does not understand.
GET_PIP_ONLY_OPTIONS = ("--no-setuptools", "--no-wheel")


def main():
    # ensurepip sets PIP_CONFIG_FILE=/dev/null in this process, which would hide the machine's
    # pip.conf (index and CA settings); keep the environment from before it runs.
    pip_environment = dict(os.environ)
    ensurepip.bootstrap(upgrade=True, default_pip=True)
    pip_arguments = [argument for argument in sys.argv[1:] if argument not in GET_PIP_ONLY_OPTIONS]
    if pip_arguments:
        subprocess.check_call([sys.executable, "-m", "pip", "install", "-q"] + pip_arguments, env=pip_environment)


if __name__ == "__main__":
    main()
