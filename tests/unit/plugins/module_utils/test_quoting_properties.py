# -*- coding: utf-8 -*-
# Copyright: entraops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""The fast PowerShell quoting and comment cleaning give exactly what the per-character definitions give."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import unicodedata

from hypothesis import given, settings, strategies as st

from ansible_collections.entraops.licensing.plugins.module_utils import powershell
from ansible_collections.entraops.licensing.plugins.module_utils.powershell import powershell_quote

QUOTES = "'\u2018\u2019\u201a\u201b"
# Plain text, and text dense in what matters: quotes, controls, separators, format characters, non-ASCII letters.
SPECIAL = QUOTES + '\x00\t\n\r\x1b\x7f\x85\xa0\xad\u200b\u200e\u2028\u2029\ufeff$`"' + "éßΩЖ漢🙂"
TEXTS = st.one_of(st.text(), st.text(alphabet=st.sampled_from(SPECIAL + "ab c")), st.from_regex(r"[ -~]*", fullmatch=True))


def reference_quote(text):
    printable = "".join(" " if unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp") else char for char in str(text))
    return "'" + "".join(char * 2 if char in QUOTES else char for char in printable) + "'"


def reference_comment_text(value):
    return "".join(" " if (ord(char) < 32 or char in "\u0085\u2028\u2029\x7f") else char for char in str(value))


@settings(max_examples=400, deadline=None)
@given(TEXTS)
def test_powershell_quote_equals_its_per_character_definition(text):
    assert powershell_quote(text) == reference_quote(text)


@settings(max_examples=400, deadline=None)
@given(TEXTS)
def test_comment_text_equals_its_per_character_definition(text):
    assert powershell._comment_text(text) == reference_comment_text(text)


def test_non_strings_are_quoted_as_their_text():
    assert powershell_quote(42) == "'42'" and powershell._comment_text(None) == "None"
