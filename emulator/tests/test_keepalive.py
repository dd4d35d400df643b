"""HTTP/1.1 keep-alive: one TLS connection serves many requests, faults still drop, stop() never waits on idle clients."""

import socket
import threading
import time

import pytest
import requests

from conftest import EMS_E5, Graph, https_session, licensed_user
from graph_emulator import Emulator, generate_tenant

ADD_EMS = {"addLicenses": [{"skuId": EMS_E5, "disabledPlans": []}], "removeLicenses": []}


def open_connections(emu):
    with emu._server.open_connections_lock:  # pylint: disable=protected-access
        return len(emu._server.open_connections)  # pylint: disable=protected-access


def test_one_connection_serves_many_requests_including_bodies_the_app_ignores(fresh_emu):
    graph = Graph(fresh_emu, fresh_emu.issue_token())
    user_id = licensed_user(fresh_emu)["id"]
    for _ in range(5):
        response = graph.get(f"users/{user_id}?$select=id")
        assert response.status_code == 200 and "close" not in response.headers.get("Connection", "").lower()
        assert response.headers["Content-Length"] == str(len(response.content))
    # bodies the application never reads must not leak into the next request on the connection
    assert graph.post("no/such/route", {"padding": "x" * 5000}).status_code == 400
    assert graph.request("PATCH", "organization", {"padding": "y" * 100}).status_code in (400, 405)
    assert graph.post(f"users/{user_id}/assignLicense", ADD_EMS).status_code == 200
    held = graph.get(f"users/{user_id}?$select=assignedLicenses").json()["assignedLicenses"]
    assert EMS_E5 in [license["skuId"] for license in held]
    assert open_connections(fresh_emu) == 1


def test_dropped_connection_fault_still_drops_and_the_session_recovers(fresh_emu):
    graph = Graph(fresh_emu, fresh_emu.issue_token())
    user = licensed_user(fresh_emu)
    assert graph.get("users?$top=1").status_code == 200  # the connection is open and kept
    fresh_emu.add_fault(method="POST", route=r"/assignLicense$", drop=True)
    with pytest.raises(requests.exceptions.ConnectionError):
        graph.post(f"users/{user['id']}/assignLicense", ADD_EMS)
    assert fresh_emu.stats()["dropped"] == 1
    assert graph.get("users?$top=1").status_code == 200  # a new connection, same session


def test_stop_closes_idle_kept_alive_connections_at_once():
    emu = Emulator(tenant=generate_tenant(users=5, seed=3)).start()
    sessions = [https_session(emu) for _ in range(3)]
    discovery = f"{emu.base_url}/{emu.tenant_id}/v2.0/.well-known/openid-configuration"
    address = emu._server.server_address[:2]  # pylint: disable=protected-access
    for session in sessions:
        assert session.get(discovery).status_code == 200
    assert open_connections(emu) == 3
    handlers = [thread for thread in threading.enumerate() if "process_request_thread" in thread.name]
    started = time.monotonic()
    emu.stop()
    for thread in handlers:
        thread.join(timeout=5)
    assert time.monotonic() - started < 5
    assert [thread for thread in handlers if thread.is_alive()] == []
    with pytest.raises(OSError):
        socket.create_connection(address, timeout=5).close()
