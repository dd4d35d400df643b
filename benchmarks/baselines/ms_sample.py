#!/usr/bin/env python3
"""Baseline: Microsoft's Graph PowerShell sample "remove direct licenses for users with group licenses", in Python.

What the sample does (entra-licensing reference, GRAPHPS section 9.3), kept faithfully,
including its weaknesses, so the comparison is honest:

* ``Get-MgGroup -All -Property AssignedLicenses, DisplayName, Id`` -> page through /groups
  (server default page size, as the cmdlet does without -PageSize), keep groups with licenses,
  one row per (group, SKU) (``-ExpandProperty AssignedLicenses``);
* for each row: ``Get-MgGroupMember -GroupId ... -All`` (default page size, no $select);
* for each user member, sequentially: ``Get-MgUser -UserId ... -Property AssignedLicenses,
  LicenseAssignmentStates, DisplayName``, take the direct entries (assignedByGroup null) whose
  skuId the group assigns and, if any, ``Set-MgUserLicense -AddLicenses @() -RemoveLicenses
  $skus`` (one assignLicense call per user);
* no comparison of disabled plans and no check that the inherited copy is healthy (this is why
  the collection does not copy it).

Retries as the Microsoft Graph SDKs' default retry handler: up to 3 retries on 429, 503 and 504,
waiting Retry-After when present, else an exponential delay (3 s, 6 s, 12 s). After that the
cmdlet writes an error and the script carries on with the next member.

Only requests and msal, no collection code. Connection from the environment:
BENCH_GRAPH_URL, BENCH_TENANT_ID, BENCH_CLIENT_ID, BENCH_CLIENT_SECRET, BENCH_CA_PATH.
Prints one JSON line: {"users_seen", "removed", "errors", "requests", "retries", "throttled"}.
"""

import json
import os
import sys
import time

import msal
import requests

MAX_RETRIES = 3
RETRY_DELAY = 3.0
RETRY_STATUSES = (429, 503, 504)


class SampleClient:
    def __init__(self, graph_url, tenant_id, client_id, client_secret, ca_path):
        self.graph_url = graph_url.rstrip("/")
        self.session = requests.Session()
        self.session.trust_env = False
        self.session.verify = ca_path
        self.app = msal.ConfidentialClientApplication(
            client_id, client_credential=client_secret, authority=f"{self.graph_url}/{tenant_id}", instance_discovery=False, http_client=self.session
        )
        self.counters = {"requests": 0, "retries": 0, "throttled": 0}

    def _token(self):
        result = self.app.acquire_token_for_client(scopes=[f"{self.graph_url}/.default"])
        if "access_token" not in result:
            raise RuntimeError(f"token request failed: {result.get('error')}")
        return result["access_token"]

    def send(self, method, url, body=None):
        """One SDK call: the request plus up to MAX_RETRIES retries; returns the final response."""
        if not url.startswith("https://"):
            url = f"{self.graph_url}/v1.0{url}"
        for attempt in range(MAX_RETRIES + 1):
            headers = {"Authorization": f"Bearer {self._token()}"}
            self.counters["requests"] += 1
            response = self.session.request(method, url, json=body, headers=headers, timeout=100)
            if response.status_code == 429:
                self.counters["throttled"] += 1
            if response.status_code not in RETRY_STATUSES or attempt == MAX_RETRIES:
                return response
            self.counters["retries"] += 1
            retry_after = response.headers.get("Retry-After")
            time.sleep(float(retry_after) if retry_after else RETRY_DELAY * (2**attempt))
        return response

    def get_all(self, url):
        while url:
            response = self.send("GET", url)
            response.raise_for_status()
            page = response.json()
            yield from page.get("value", [])
            url = page.get("@odata.nextLink")


def run(client):
    summary = {"users_seen": 0, "removed": 0, "errors": 0}
    rows = []
    for group in client.get_all("/groups?$select=assignedLicenses,displayName,id"):
        for license_ in group.get("assignedLicenses") or []:
            rows.append((group, license_["skuId"]))
    for group, sku_id in rows:
        group_licenses = {sku_id.lower()}
        for member in client.get_all(f"/groups/{group['id']}/members"):
            if member.get("@odata.type") != "#microsoft.graph.user":
                continue
            summary["users_seen"] += 1
            response = client.send("GET", f"/users/{member['id']}?$select=assignedLicenses,licenseAssignmentStates,displayName")
            if response.status_code != 200:
                summary["errors"] += 1
                continue
            user = response.json()
            to_remove = [
                state["skuId"]
                for state in user.get("licenseAssignmentStates") or []
                if state.get("assignedByGroup") is None and state["skuId"].lower() in group_licenses
            ]
            if not to_remove:
                continue
            response = client.send("POST", f"/users/{member['id']}/assignLicense", body={"addLicenses": [], "removeLicenses": to_remove})
            if response.status_code == 200:
                summary["removed"] += 1
            else:
                summary["errors"] += 1
    return summary


def main():
    env = os.environ
    client = SampleClient(env["BENCH_GRAPH_URL"], env["BENCH_TENANT_ID"], env["BENCH_CLIENT_ID"], env["BENCH_CLIENT_SECRET"], env["BENCH_CA_PATH"])
    summary = run(client)
    summary.update(client.counters)
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
