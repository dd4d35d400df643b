# -*- coding: utf-8 -*-
# Copyright: entraops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Bad input, generated with hypothesis, for every module: each case must fail before any Graph write.

A case is a set of module options with one thing wrong: a wrong type, a malformed or unknown GUID,
an unknown part number, plan or group, an empty or huge list, Unicode and control characters, an
unwritable or traversing report/plan/journal path, conflicting options. Every case must fail
(``failed``), with a message that names the bad value (or, for a wrong type or a conflict, the
options involved), without a traceback or an ``exception`` result, and the emulator's request
log must show no Graph write. The cases tried are counted and printed in the campaign table.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import uuid

import pytest

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ansible_collections.entraops.licensing.plugins.modules import (
    direct_license,
    group_license,
    license_assignment_info,
    license_processing_wait,
    licensing_group,
    sku_info,
)
from ansible_collections.entraops.licensing.tests.unit.plugins.modules.utils import graph_writes
from ansible_collections.entraops.licensing.tests.reliability.campaign import E3, GROUP_NAME, build_tenant, group_phase, reset, run

EXAMPLES = 30
SUBSCRIBED_PARTS = (
    "AAD_PREMIUM",
    "EMS",
    "EMSPREMIUM",
    "ENTERPRISEPACK",
    "ENTERPRISEPREMIUM",
    "EXCHANGESTANDARD",
    "MCOMEETADV",
    "SPE_E3",
    "STANDARDPACK",
    "WORKPLACE_ANALYTICS",
)
CONTROL_CHARACTERS = [chr(code) for code in list(range(0, 32)) + [127]]


# ------------------------------------------------------------------------------- value generators


def malformed_guids():
    """Almost-GUIDs: a valid one with a character replaced, cut short or lengthened."""

    def mangle(pair):
        value, (where, how) = pair
        text = str(value)
        position = where % len(text)
        if how == 0:
            return text[:position] + "z" + text[position + 1 :]
        if how == 1:
            return text[:position]
        return text + "a" * (1 + where % 5)

    return st.tuples(st.uuids(), st.tuples(st.integers(0, 35), st.integers(0, 2))).map(mangle).filter(lambda text: text.strip() != "")


def unknown_part_numbers():
    return st.from_regex(r"\A[A-Z][A-Z0-9_]{2,24}\Z").filter(lambda text: text not in SUBSCRIBED_PARTS)


def unicode_with_controls():
    """Text with at least one control character and some non-ASCII letters."""
    return st.tuples(
        st.text(alphabet=st.characters(min_codepoint=0xA1, max_codepoint=0x2FFF), min_size=1, max_size=12), st.sampled_from(CONTROL_CHARACTERS)
    ).map(lambda pair: pair[0] + pair[1] + "x")


def unknown_names():
    return st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=30).map(
        lambda text: "ghost-" + text.strip() + "-" + uuid.uuid4().hex[:6]
    )


def bad_skus():
    return st.one_of(malformed_guids(), st.uuids().map(str), unknown_part_numbers(), unicode_with_controls())


def bad_plans():
    return st.one_of(unknown_part_numbers().map(lambda text: text + "_PLAN"), st.uuids().map(str), malformed_guids())


def not_an_int():
    return st.one_of(st.from_regex(r"\A[a-z]{1,8}\Z"), st.just("1.5x"), st.just("ten"))


def not_a_bool():
    return st.sampled_from(["maybe", "perhaps", "sometimes", "2", "yess"])


# ------------------------------------------------------------------------------------ the harness


class Case:
    """A module and its options, plus the texts of which the failure message must name at least one."""

    def __init__(self, module, options, named, what):
        self.module = module
        self.options = options
        self.named = [text for text in named if text is not None]
        self.what = what

    def key(self):
        return "%s %s" % (self.module.__name__.rsplit(".", 1)[-1], json.dumps(self.options, sort_keys=True, default=str))


def renderings(value):
    """Ways a message may show ``value`` (as is, repr'd, JSON-escaped)."""
    text = value if isinstance(value, str) else str(value)
    shown = set([text, repr(text), repr(text)[1:-1], json.dumps(text)[1:-1]])
    try:
        shown.add(text.encode("unicode_escape").decode("ascii"))
    except UnicodeError:
        pass
    return shown


class Harness:
    def __init__(self, emu):
        self.emu = emu
        self.tried = set()
        self.problems = []
        self.writes = 0
        self.tracebacks = 0
        self.unnamed = 0

    def check(self, case):
        self.tried.add(case.key())
        self.emu.reset_stats()
        try:
            result, failed = run(self.emu, case.module, **case.options)
        except Exception as exc:  # pylint: disable=broad-except
            self.tracebacks += 1
            self.problems.append("%s: raised %r" % (case.key(), exc))
            return
        message = str(result.get("msg") or "")
        writes = graph_writes(self.emu)
        if writes:
            self.writes += 1
            self.problems.append("%s: wrote to Graph %s" % (case.key(), [entry["path"] for entry in writes]))
        if not failed:
            self.problems.append("%s: did not fail (%s)" % (case.what, case.key()))
            return
        if "Traceback" in json.dumps(result, default=str) or "exception" in result:
            self.tracebacks += 1
            self.problems.append("%s: traceback or exception in %s" % (case.key(), result.get("exception") or message))
        if not any(shown in message for value in case.named for shown in renderings(value)):
            self.unnamed += 1
            self.problems.append("%s: message %r names none of %r" % (case.key(), message, case.named))


@pytest.fixture(scope="module")
def prepared(campaign_emulator, tmp_path_factory):
    """A small tenant with the licensing group in place, and a folder of path traps."""
    tenant = build_tenant(20, seed=5)
    reset(campaign_emulator, tenant)
    group_phase(campaign_emulator)
    folder = tmp_path_factory.mktemp("bad-input")
    plain_file = folder / "a-file.txt"
    plain_file.write_text("not a directory")
    garbage = folder / "garbage.json"
    garbage.write_text('{"rows": [1, 2,')
    other_tenant_plan = folder / "other-tenant-plan.json"
    other_tenant_plan.write_text(json.dumps({"format": "entraops.licensing.plan", "version": 1, "tenant_id": str(uuid.UUID(int=7)), "rows": []}))
    user_id = next(user["id"] for user in tenant["users"] if user.get("directLicenses"))
    return dict(
        emu=campaign_emulator,
        folder=str(folder),
        plain_file=str(plain_file),
        garbage=str(garbage),
        other_tenant_plan=str(other_tenant_plan),
        user_id=user_id,
        state=campaign_emulator.export_state(),
    )


def bad_paths(folder, plain_file, extension):
    """Paths nothing can be written to: under /proc, under a regular file, a missing directory reached through '..', a directory."""
    name = st.from_regex(r"\A[a-z]{1,10}\Z")
    return st.one_of(
        name.map(lambda text: "/proc/%s/report%s" % (text, extension)),
        name.map(lambda text: os.path.join(plain_file, text + extension)),
        name.map(lambda text: os.path.join(folder, "sub", "..", "..", "missing-" + text, "..", "missing-" + text, "x" + extension)),
        st.just(folder),
    )


def run_cases(prepared, strategy, module_name, figures, examples=EXAMPLES):
    emu = prepared["emu"]
    reset(emu, prepared["state"])
    harness = Harness(emu)

    @settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    @given(strategy)
    def check(case):
        harness.check(case)

    check()
    figures(kind="bad_input", module=module_name, cases=len(harness.tried), writes=harness.writes, tracebacks=harness.tracebacks, unnamed=harness.unnamed)
    assert harness.problems == [], "\n".join(harness.problems[:10])
    assert len(harness.tried) >= 8


# -------------------------------------------------------------------------------------- per module


def connection_cases(prepared):
    """Connection options every module shares (carried by sku_info)."""
    return st.one_of(
        st.integers(-1000, 0).map(lambda value: Case(sku_info, dict(timeout=value), [str(value)], "timeout <= 0")),
        st.integers(-1000, 0).map(lambda value: Case(sku_info, dict(max_retry_time=value), [str(value)], "max_retry_time <= 0")),
        st.floats(-100, -0.01).map(lambda value: Case(sku_info, dict(write_rate=value), [str(value)], "negative write_rate")),
        not_an_int().map(lambda value: Case(sku_info, dict(timeout=value), ["timeout"], "timeout not an int")),
        unknown_part_numbers().map(lambda value: Case(sku_info, dict(cloud=value.lower()), [value.lower()], "unknown cloud")),
        st.from_regex(r"\A[a-z]{3,12}\.example\.(com|net)\Z").map(
            lambda host: Case(sku_info, dict(graph_url="http://" + host), [host], "plain http off loopback")
        ),
        st.from_regex(r"\A[a-z]{3,12}\Z").map(lambda text: Case(sku_info, dict(graph_url="ftp://" + text), ["ftp://" + text], "not a URL")),
        st.just(Case(sku_info, dict(access_token="token-from-elsewhere"), ["client_secret", "access_token"], "two credentials")),
    )


def sku_info_cases(prepared):
    return st.lists(bad_skus(), min_size=1, max_size=3).map(lambda skus: Case(sku_info, dict(skus=skus), skus, "unknown SKUs"))


def licensing_group_cases(prepared):
    return st.one_of(
        unicode_with_controls().map(lambda name: Case(licensing_group, dict(name=name), [name], "control characters in the name")),
        st.integers(257, 5000).map(lambda size: Case(licensing_group, dict(name="G" * size), [str(size)], "name too long")),
        st.just(Case(licensing_group, dict(name="   "), ["name"], "blank name")),
        unicode_with_controls().map(lambda text: Case(licensing_group, dict(name=GROUP_NAME, description=text), [text], "control characters")),
        st.lists(st.one_of(malformed_guids(), st.uuids().map(str), st.emails()), min_size=1, max_size=4).map(
            lambda users: Case(licensing_group, dict(name=GROUP_NAME, members=[prepared["user_id"]] * 2 + users), users, "unknown members (with a duplicate)")
        ),
        st.integers(1000, 3000).map(
            lambda size: Case(
                licensing_group,
                dict(name=GROUP_NAME, members=["ghost%05d@contoso.onmicrosoft.com" % index for index in range(size)]),
                ["ghost00000@contoso.onmicrosoft.com"],
                "a huge list of unknown members",
            )
        ),
        bad_skus().map(lambda sku: Case(licensing_group, dict(name=GROUP_NAME, members_from_direct_sku=sku), [sku], "unknown SKU")),
        not_a_bool().map(lambda value: Case(licensing_group, dict(name=GROUP_NAME, purge_members=value), ["purge_members"], "not a bool")),
        unknown_part_numbers().map(lambda value: Case(licensing_group, dict(name=GROUP_NAME, state=value.lower()), [value.lower()], "bad state")),
    )


def group_license_cases(prepared):
    return st.one_of(
        st.one_of(unknown_names(), st.uuids().map(str), malformed_guids()).map(
            lambda group: Case(group_license, dict(group=group, licenses=[dict(sku="ENTERPRISEPACK")]), [group], "unknown group")
        ),
        bad_skus().map(lambda sku: Case(group_license, dict(group=GROUP_NAME, licenses=[dict(sku=sku)]), [sku], "unknown SKU")),
        st.tuples(bad_plans(), st.sampled_from(["disabled_plans", "enabled_plans"])).map(
            lambda pair: Case(
                group_license, dict(group=GROUP_NAME, licenses=[dict(sku="ENTERPRISEPACK", **{pair[1]: ["SWAY", pair[0]]})]), [pair[0]], "unknown plan"
            )
        ),
        st.just(
            Case(
                group_license,
                dict(group=GROUP_NAME, licenses=[dict(sku="ENTERPRISEPACK", disabled_plans=["SWAY"], enabled_plans=["SWAY"])]),
                ["disabled_plans", "enabled_plans"],
                "conflicting plan lists",
            )
        ),
        st.just(Case(group_license, dict(group=GROUP_NAME, licenses=[dict(sku="ENTERPRISEPACK"), dict(sku=E3)]), [E3], "the same SKU twice")),
        # (licenses given as a string is refused by ansible-core itself with "dictionary requested, could not parse JSON or
        # key=value", which names neither the option nor the value: not ours to change, so not counted here.)
        st.lists(not_a_bool(), min_size=1, max_size=1).map(
            lambda values: Case(
                group_license, dict(group=GROUP_NAME, licenses=[dict(sku="ENTERPRISEPACK")], allow_service_loss=values[0]), ["allow_service_loss"], "not a bool"
            )
        ),
        not_a_bool().map(
            lambda value: Case(group_license, dict(group=GROUP_NAME, licenses=[dict(sku="ENTERPRISEPACK")], exclusive=value), ["exclusive"], "not a bool")
        ),
        st.just(
            Case(
                group_license,
                dict(group=GROUP_NAME, licenses=[dict(sku="ENTERPRISEPACK", enabled_plans=[])]),
                ["would lose"],
                "a change that takes services away",
            )
        ),
    )


def license_processing_wait_cases(prepared):
    return st.one_of(
        st.just(Case(license_processing_wait, dict(groups=[]), ["groups"], "empty group list")),
        st.lists(st.one_of(unknown_names(), st.uuids().map(str)), min_size=1, max_size=3).map(
            lambda groups: Case(license_processing_wait, dict(groups=[GROUP_NAME] + groups), groups, "unknown groups")
        ),
        st.integers(-100, -1).map(lambda value: Case(license_processing_wait, dict(groups=[GROUP_NAME], wait_timeout=value), [str(value)], "wait_timeout")),
        st.floats(-50, 0).map(lambda value: Case(license_processing_wait, dict(groups=[GROUP_NAME], poll_interval=value), [str(value)], "poll_interval")),
        st.floats(-50, 0).map(lambda value: Case(license_processing_wait, dict(groups=[GROUP_NAME], max_poll_interval=value), [str(value)], "max_poll")),
        not_an_int().map(lambda value: Case(license_processing_wait, dict(groups=[GROUP_NAME], wait_timeout=value), ["wait_timeout"], "not an int")),
    )


def license_assignment_info_cases(prepared):
    folder, plain_file = prepared["folder"], prepared["plain_file"]
    return st.one_of(
        bad_skus().map(lambda sku: Case(license_assignment_info, dict(skus=[sku]), [sku], "unknown SKU")),
        st.one_of(unknown_names(), st.uuids().map(str)).map(lambda group: Case(license_assignment_info, dict(groups=[group]), [group], "unknown group")),
        st.one_of(unknown_names(), st.uuids().map(str)).map(
            lambda group: Case(license_assignment_info, dict(skus=["ENTERPRISEPACK"], trusted_groups=[group]), [group], "unknown trusted group")
        ),
        st.just(Case(license_assignment_info, dict(users=[prepared["user_id"]], groups=[GROUP_NAME]), ["users", "groups"], "users and groups")),
        st.just(Case(license_assignment_info, dict(report_path=os.path.join(folder, "r.csv")), ["users", "groups", "skus"], "no scope")),
        bad_paths(folder, plain_file, ".csv").map(
            lambda path: Case(license_assignment_info, dict(skus=["ENTERPRISEPACK"], report_path=path), [path, os.path.abspath(path)], "bad report path")
        ),
        bad_paths(folder, plain_file, ".json").map(
            lambda path: Case(license_assignment_info, dict(skus=["ENTERPRISEPACK"], plan_path=path), [path, os.path.abspath(path)], "bad plan path")
        ),
        st.from_regex(r"\A\.[a-z]{2,5}\Z")
        .filter(lambda ext: ext not in (".csv", ".json"))
        .map(lambda ext: Case(license_assignment_info, dict(skus=["ENTERPRISEPACK"], report_path=os.path.join(folder, "r" + ext)), [ext], "report extension")),
        st.integers(-1000, -1).map(
            lambda value: Case(
                license_assignment_info,
                dict(skus=["ENTERPRISEPACK"], plan_path=os.path.join(folder, "p.json"), canary_size=value),
                [str(value)],
                "negative canary",
            )
        ),
        st.integers(-1000, 0).map(
            lambda value: Case(
                license_assignment_info,
                dict(skus=["ENTERPRISEPACK"], plan_path=os.path.join(folder, "p.json"), batch_size=value),
                [str(value)],
                "batch_size < 1",
            )
        ),
        st.sampled_from(["[?", "records[", "&&", "[?verdict==]", "length("]).map(
            lambda query: Case(license_assignment_info, dict(skus=["ENTERPRISEPACK"], query=query), [query], "invalid JMESPath")
        ),
    )


def direct_license_cases(prepared):
    folder, plain_file, user_id = prepared["folder"], prepared["plain_file"], prepared["user_id"]
    journal = os.path.join(folder, "journal.jsonl")
    return st.one_of(
        bad_skus().map(lambda sku: Case(direct_license, dict(users=[user_id], skus=["ENTERPRISEPACK", sku], journal_path=journal), [sku], "unknown SKU")),
        st.lists(bad_skus(), min_size=500, max_size=2000, unique=True).map(
            lambda skus: Case(direct_license, dict(users=[user_id], skus=skus, journal_path=journal), skus, "a huge list of unknown SKUs")
        ),
        bad_paths(folder, plain_file, ".jsonl").map(
            lambda path: Case(
                direct_license,
                dict(users=[user_id, user_id], skus=["ENTERPRISEPACK"], journal_path=path),
                [path, os.path.abspath(path)],
                "bad journal path (duplicate users)",
            )
        ),
        bad_plans().map(
            lambda plan: Case(
                direct_license,
                dict(state="present", users=[user_id], skus=["ENTERPRISEPACK"], disabled_plans=[plan], journal_path=journal),
                [plan],
                "unknown plan to restore with",
            )
        ),
        st.one_of(unknown_names(), st.uuids().map(str)).map(
            lambda group: Case(
                direct_license, dict(users=[user_id], skus=["ENTERPRISEPACK"], trusted_groups=[group], journal_path=journal), [group], "unknown trusted group"
            )
        ),
        st.sampled_from([prepared["garbage"], prepared["other_tenant_plan"], os.path.join(folder, "no-such-plan.json"), plain_file]).map(
            lambda path: Case(direct_license, dict(plan_path=path, journal_path=journal), [path], "unreadable or foreign plan")
        ),
        st.integers(-100, -1).map(
            lambda value: Case(
                direct_license, dict(users=[user_id], skus=["ENTERPRISEPACK"], journal_path=journal, max_failures=value), [str(value)], "negative max_failures"
            )
        ),
        st.just(Case(direct_license, dict(users=[], skus=["ENTERPRISEPACK"], journal_path=journal), ["plan_path", "users"], "empty user list")),
        st.just(Case(direct_license, dict(users=[user_id], skus=["ENTERPRISEPACK"]), ["journal_path"], "no journal")),
        st.just(Case(direct_license, dict(users=[user_id], journal_path=journal), ["skus"], "users without skus")),
        st.just(Case(direct_license, dict(state="present", restore_from=os.path.join(folder, "none.jsonl")), ["none.jsonl"], "missing journal")),
        st.just(Case(direct_license, dict(users=[user_id], skus=["ENTERPRISEPACK"], batches=[1], journal_path=journal), ["batches"], "batches without plan")),
        st.just(
            Case(
                direct_license,
                dict(state="present", plan_path=prepared["garbage"], users=[user_id], skus=["ENTERPRISEPACK"], journal_path=journal),
                ["plan_path", "users"],
                "plan with users",
            )
        ),
        not_an_int().map(
            lambda value: Case(
                direct_license, dict(plan_path=prepared["garbage"], batches=[value], journal_path=journal), ["batches"], "batch numbers not ints"
            )
        ),
        unknown_part_numbers().map(
            lambda value: Case(
                direct_license,
                dict(state="present", restore_from=prepared["garbage"], restore_usage_location=value.lower()),
                [value.lower()],
                "unknown restore_usage_location",
            )
        ),
    )


CASES = [
    ("connection options", connection_cases),
    ("sku_info", sku_info_cases),
    ("licensing_group", licensing_group_cases),
    ("group_license", group_license_cases),
    ("license_processing_wait", license_processing_wait_cases),
    ("license_assignment_info", license_assignment_info_cases),
    ("direct_license", direct_license_cases),
]


@pytest.mark.parametrize("module_name, cases", CASES, ids=[name for name, dummy in CASES])
def test_bad_input_fails_before_any_write(prepared, module_name, cases, figures):
    run_cases(prepared, cases(prepared), module_name, figures)
