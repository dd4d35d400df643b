#!/usr/bin/env python3
"""Capacity figures for the Graph emulator (run with the dev venv's python).

Prints:
  * memory held by the directory for N users (default 100,000), measured with tracemalloc,
    and the process RSS after loading;
  * wall time to page through every user over HTTPS with $select and $top=999 (one client,
    following @odata.nextLink as the collection does);
  * requests per second for GET /users/{id}?$select=... with a few client threads.

Throttling is ON (Graph's real budgets at time scale 1) so the figures include its cost.

    .venv/bin/python benchmarks/emulator_capacity.py [--users 100000] [--threads 4] [--seconds 5]
"""

import argparse
import gc
import resource
import threading
import time
import tracemalloc

import msal
import requests

from graph_emulator import Emulator, generate_tenant

SELECT = "id,userPrincipalName,assignedLicenses,licenseAssignmentStates,usageLocation"


def session_for(emu):
    session = requests.Session()
    session.trust_env = False
    session.verify = emu.ca_path
    return session


def token_for(emu):
    app = msal.ConfidentialClientApplication(
        emu.client_id,
        client_credential=emu.client_secret,
        authority=f"{emu.authority_url}/{emu.tenant_id}",
        instance_discovery=False,
        http_client=session_for(emu),
    )
    return app.acquire_token_for_client(scopes=["https://graph.microsoft.com/.default"])["access_token"]


def measure_memory(users):
    """An Emulator loaded with ``users`` users, and the bytes it holds once the tenant document is gone."""
    tenant = generate_tenant(users=users, seed=1)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    emu = Emulator(tenant=tenant, throttling=True)
    del tenant
    gc.collect()
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    return emu, held


def page_all(emu, token):
    session = session_for(emu)
    headers = {"Authorization": f"Bearer {token}"}
    url = f"{emu.base_url}/v1.0/users?$select={SELECT}&$top=999"
    count = pages = 0
    started = time.perf_counter()
    while url:
        response = session.get(url, headers=headers, timeout=120)
        response.raise_for_status()
        body = response.json()
        count += len(body["value"])
        pages += 1
        url = body.get("@odata.nextLink")
    return count, pages, time.perf_counter() - started


def requests_per_second(emu, token, user_ids, threads, seconds):
    done = [0] * threads
    statuses = {}
    stop_at = time.perf_counter() + seconds

    def worker(slot):
        session = session_for(emu)
        headers = {"Authorization": f"Bearer {token}"}
        index = slot
        while time.perf_counter() < stop_at:
            user_id = user_ids[index % len(user_ids)]
            response = session.get(f"{emu.base_url}/v1.0/users/{user_id}?$select=id,assignedLicenses", headers=headers, timeout=60)
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            done[slot] += 1
            index += threads

    started = time.perf_counter()
    workers = [threading.Thread(target=worker, args=(slot,)) for slot in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    return sum(done) / (time.perf_counter() - started), statuses


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()

    started = time.perf_counter()
    emu, held = measure_memory(args.users)
    load_seconds = time.perf_counter() - started
    print(f"users:                         {args.users:,}")
    print(f"generate + load:               {load_seconds:.1f} s")
    print(f"emulator memory (tracemalloc): {held / 2**20:.1f} MiB ({held / max(1, args.users):,.0f} B/user)")

    with emu:
        directory = emu.directory
        print(f"process max RSS:               {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
        token = token_for(emu)
        count, pages, seconds = page_all(emu, token)
        print(f"page all users ($select, $top=999): {count:,} users in {pages} pages, {seconds:.1f} s ({count / seconds:,.0f} users/s)")
        user_ids = [user["id"] for _, user in directory.iter_users(0, select=("id",))][:5000]
        rate, statuses = requests_per_second(emu, token, user_ids, args.threads, args.seconds)
        print(f"GET /users/{{id}} with {args.threads} threads: {rate:,.0f} requests/s  statuses {statuses}")
        stats = emu.stats()
        print(
            f"emulator stats: total {stats['total']:,}, RU {stats['resource_units']:,}, throttled {stats['throttled']}, early retries {stats['early_retries']}"
        )


if __name__ == "__main__":
    main()
