"""The minimum work each benchmarked task needs, and the time Graph's budgets and latency allow for it.

All times here are EMULATED seconds (what a real tenant's clock would show). The harness
converts measured wall seconds with ``emulated = wall x time_scale``; see README "Time scale".

Budgets (reference graph-api.md 7.2, the app + tenant pair, which binds first):
  writes: 3,000 per 150 s  -> 20 writes/s, bucket of 3,000
  RU:     8,000 per 10 s (tenants over 500 users) -> 800 RU/s, bucket of 8,000
Costs: GET users 2, GET groups/{id}/members 3, GET subscribedSkus 3, other GET 1, any write 1 RU +
1 write; $select -1, minimum 1.

``bound = max(budget bound, latency bound)``:
  * budget bound = RU needed / RU rate and writes needed / write rate (the issue's definition:
    a client that starts with the bucket already spent). ``burst_aware_write_bound`` also credits
    the full bucket a quiet tenant starts with: (writes - 3,000) / 20; reported for information.
  * latency bound = the longest chain of requests that must follow one another x latency.
"""

import math

PAGE_SIZE = 999
BATCH_LIMIT = 20
WRITE_RATE = 3000 / 150.0
WRITE_BUCKET = 3000
RU_QUOTAS = ((50, 3500), (501, 5000), (None, 8000))
RU_WINDOW = 10.0


def ru_rate(users):
    for below, quota in RU_QUOTAS:
        if below is None or users < below:
            return quota / RU_WINDOW
    return RU_QUOTAS[-1][1] / RU_WINDOW


def pages(count):
    return max(1, math.ceil(count / PAGE_SIZE))


def read_path_minimum(facts, latency_s):
    """license_assignment_info over every holder of the SKU.

    Needed: the SKU catalog (1), the tenant id (1), the group list (pages), the member list of
    every licensed group (direct membership is part of the rule), every user page. Users and
    member lists are independent chains; the longest one decides the latency bound.
    """
    user_pages = pages(facts["users"])
    group_pages = pages(facts["groups_total"])
    member_pages = [pages(group["members"]) for group in facts["licensed_groups"]]
    calls = 2 + group_pages + sum(member_pages) + user_pages
    resource_units = 2 + 1 + group_pages * 1 + sum(member_pages) * 2 + user_pages * 1
    chain = max(user_pages, group_pages + max(member_pages or [0]))
    return _bound(
        calls,
        calls,
        resource_units,
        0,
        chain,
        facts["users"],
        latency_s,
        note="catalog + tenant id + group pages + member pages of licensed groups + user pages of 999",
    )


def write_path_minimum(facts, removals, latency_s):
    """direct_license removing ``removals`` direct assignments (one per user here).

    Needed per removal (DESIGN section 1): a fresh read of the user and of their direct
    memberships right before the write, the write, and the same two reads after it:
    4 reads (1 RU each with $select) + 1 write (1 RU + 1 write). Through $batch, 20 per request.
    The only chain that must be sequential is read -> write -> re-read (+ the catalog first).
    """
    reads = 4 * removals
    calls = reads + removals + 2
    http = math.ceil(reads / BATCH_LIMIT) + math.ceil(removals / BATCH_LIMIT) + 2
    resource_units = reads + removals + 3
    return _bound(
        calls, http, resource_units, removals, 4, facts["users"], latency_s, note="per removal: read user + memberOf, assignLicense, re-read both; $batch of 20"
    )


def _bound(calls, http, resource_units, writes, chain, users, latency_s, note):
    write_bound = writes / WRITE_RATE
    burst_aware = max(0.0, writes - WRITE_BUCKET) / WRITE_RATE
    ru_bound = resource_units / ru_rate(users)
    latency_bound = chain * latency_s
    bound = max(write_bound, ru_bound, latency_bound)
    return {
        "graph_calls": calls,
        "http_requests": http,
        "resource_units": resource_units,
        "writes": writes,
        "sequential_chain": chain,
        "write_bound_s": round(write_bound, 3),
        "burst_aware_write_bound_s": round(burst_aware, 3),
        "ru_bound_s": round(ru_bound, 3),
        "latency_bound_s": round(latency_bound, 3),
        "bound_s": round(bound, 3),
        "bound_kind": max((write_bound, "writes"), (ru_bound, "resource units"), (latency_bound, "latency"))[1],
        "note": note,
    }


def role_minimum(users, processing_rate, latency_s):
    """The whole role (migrate_direct_to_group, preflight to report) on a tenant where every user holds the SKU directly.

    Writes: the group's creation (1), its members added 20 per request (ceil(users / 20)), its license (1) and one
    removal per user, at Graph's 20 writes/s per app and tenant. Between the license and the first removal Entra
    must process every member (``processing_rate`` evaluations per s; 1,000 in the emulator): no write can use that
    time. Reads (a few pages per reading at 800 RU/s) and latency are small beside these and are not added.
    """
    writes = 1 + math.ceil(users / BATCH_LIMIT) + 1 + users
    write_bound = writes / WRITE_RATE
    processing = users / processing_rate if processing_rate else 0.0
    return {
        "writes": writes,
        "write_bound_s": round(write_bound, 3),
        "processing_s": round(processing, 3),
        "latency_s": latency_s,
        "bound_s": round(write_bound + processing, 3),
        "note": "writes (group, members by 20, group license, one removal per user) / 20 per s + members / processing rate",
    }
