#!/usr/bin/env python3
"""The read path's minimum work done by a bare client: how fast THIS emulator can serve it.

The bound (bounds.py) assumes Graph answers in exactly ``latency`` per request. Even when the
emulator answers in that time (run.py's ``answer`` latency model), sending a page of 999 users
over TLS and reading it take a little more (with the ``added`` model the emulator's own work comes
on top as well), so a second
reference is measured: the minimum requests of the read path, issued with the same parallelism
the bound assumes (user pages in one chain, each licensed group's member pages in its own
chain, catalog and tenant id alongside), by plain requests with no processing of the results.
``wall / floor`` then says how much our module adds on top of what this emulator needs.

Connection from the environment (BENCH_*, as for baselines/ms_sample.py); BENCH_SKU_ID and
BENCH_GROUP_IDS (comma-separated). Prints one JSON line {"wall_s", "requests"}.
"""

import json
import os
import time
from concurrent.futures import ThreadPoolExecutor

import msal
import requests

USER_SELECT = "id,userPrincipalName,usageLocation,assignedLicenses,licenseAssignmentStates"


def main():
    env = os.environ
    graph = env["BENCH_GRAPH_URL"].rstrip("/")
    session = requests.Session()
    session.trust_env = False
    session.verify = env["BENCH_CA_PATH"]
    app = msal.ConfidentialClientApplication(
        env["BENCH_CLIENT_ID"],
        client_credential=env["BENCH_CLIENT_SECRET"],
        authority=f"{graph}/{env['BENCH_TENANT_ID']}",
        instance_discovery=False,
        http_client=session,
    )
    headers = {"Authorization": "Bearer " + app.acquire_token_for_client(scopes=[f"{graph}/.default"])["access_token"]}
    counter = []

    def chain(url):
        # one session per chain: requests' Session is not meant to be shared between threads
        own = requests.Session()
        own.trust_env = False
        own.verify = env["BENCH_CA_PATH"]
        while url:
            reply = own.get(url, headers=headers, timeout=120)
            reply.raise_for_status()
            counter.append(1)
            url = reply.json().get("@odata.nextLink")

    urls = [
        f"{graph}/v1.0/subscribedSkus",
        f"{graph}/v1.0/organization?$select=id",
        f"{graph}/v1.0/users?$select={USER_SELECT}&$top=999&$filter=assignedLicenses/any(x:x/skuId eq {env['BENCH_SKU_ID']})",
    ]
    urls += [f"{graph}/v1.0/groups/{group_id}/members?$select=id&$top=999" for group_id in env["BENCH_GROUP_IDS"].split(",")]
    started = time.perf_counter()
    chain(f"{graph}/v1.0/groups?$select=id,assignedLicenses&$top=999")
    with ThreadPoolExecutor(max_workers=len(urls)) as pool:
        list(pool.map(chain, urls))
    print(json.dumps({"wall_s": round(time.perf_counter() - started, 3), "requests": len(counter)}))


if __name__ == "__main__":
    main()
