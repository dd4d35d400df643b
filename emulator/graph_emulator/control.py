"""The control API under /_emulator/ (not part of Graph; no auth; loopback clients only).

Every endpoint maps onto an ``Emulator`` method so tests in-process and playbooks in another
process drive the emulator the same way.

    GET    /_emulator/info            base_url, ca_path, tenant_id, client_id, client_secret, pid
    GET    /_emulator/state           export the tenant (tenant format, docs/tenant-format.md)
    PUT    /_emulator/state           load a tenant document (replaces everything)
    POST   /_emulator/generate        {"users": N, "seed": S, ...generate_tenant options} then load it
    GET    /_emulator/ledger          loss ledger entries
    DELETE /_emulator/ledger          clear the ledger
    GET    /_emulator/stats           counters (per route template, per status, RU, writes, throttled...)
    DELETE /_emulator/stats           zero the counters and empty the request log
    GET    /_emulator/requests        request log (method, path without query, status, ids, in_batch, write)
    DELETE /_emulator/requests        empty the request log
    GET    /_emulator/faults          active faults
    POST   /_emulator/faults          add a fault (see faults.py) -> {"id": ...}
    DELETE /_emulator/faults          remove every fault and close the Retry-After windows faults opened
    DELETE /_emulator/faults/{id}     remove one fault
    POST   /_emulator/apps            {"permissions": [...], "client_id", "secret", "certificate_pem", "display_name"}
    POST   /_emulator/tokens          {"client_id", "permissions", "expires_in"} -> {"access_token": ...}
    GET    /_emulator/config          current knobs
    POST   /_emulator/config          change knobs (throttling, time_scale, latency_ms, answer_time_ms, processing_rate,
                                      token_lifetime, budget_scale, early_retry_grace_ms, charge_refused,
                                      write_budget_left, dynamic_rate, sync_interval_s, and the strict knobs)
    POST   /_emulator/process         finish pending dynamic membership evaluation and group-license processing now
    POST   /_emulator/onprem/groups/{groupId}/members  {"add": [...], "remove": [...]} on-premises AD changes of a
                                      synced group (object id, SID or sAMAccountName) -> 202 {"pending": n}
    POST   /_emulator/sync            run an Entra Connect sync cycle now -> {"applied": [...], "pending": 0}
"""

import json

from .engine import GraphError
from .faults import FaultSpecError


class ControlError(Exception):
    def __init__(self, status, message):
        super().__init__(message)
        self.status = status
        self.message = message


def _body(request):
    raw = request.get_data()
    if not raw:
        return {}
    try:
        return json.loads(raw)
    except ValueError as error:
        raise ControlError(400, f"request body is not valid JSON: {error}") from None


def _object(request):
    body = _body(request)
    if not isinstance(body, dict):
        raise ControlError(400, f"request body must be a JSON object, got {type(body).__name__}")
    return body


class ControlApi:
    def __init__(self, emulator):
        self.emu = emulator

    def handle(self, request):
        """(status, JSON body) for a control request."""
        parts = [p for p in request.path.split("/") if p][1:]
        name = parts[0] if parts else ""
        handler = getattr(self, f"{request.method.lower()}_{name}", None)
        if handler is None:
            return 404, {"error": f"no control endpoint {request.method} {request.path}"}
        try:
            return handler(request, parts[1:])
        except ControlError as error:
            return error.status, {"error": error.message}
        except (ValueError, TypeError, KeyError, GraphError) as error:
            message = error.message if isinstance(error, GraphError) else str(error)
            return 400, {"error": message}

    # info and state
    def get_info(self, request, rest):
        return 200, self.emu.info()

    def get_state(self, request, rest):
        return 200, self.emu.export_state()

    def put_state(self, request, rest):
        self.emu.load_state(_object(request))
        return 200, {"tenant_id": self.emu.tenant_id, "users": self.emu.user_count(), "client_id": self.emu.client_id}

    def post_generate(self, request, rest):
        options = _object(request)
        allowed = {
            "users",
            "seed",
            "sku",
            "units",
            "disabled_plan_ratio",
            "no_usage_location",
            "nested_users",
            "extra_skus",
            "apps",
            "profile",
            "plan_exceptions",
            "cloud_only_users",
            "onprem_missing",
        }
        unknown = set(options) - allowed
        if unknown:
            raise ControlError(400, f"unknown generate option(s) {sorted(unknown)}; expected some of {sorted(allowed)}")
        self.emu.generate(**options)
        return 200, {"tenant_id": self.emu.tenant_id, "users": self.emu.user_count(), "client_id": self.emu.client_id}

    # ledger, stats, request log
    def get_ledger(self, request, rest):
        return 200, {"value": self.emu.loss_ledger()}

    def delete_ledger(self, request, rest):
        self.emu.clear_ledger()
        return 200, {"value": []}

    def get_stats(self, request, rest):
        return 200, self.emu.stats()

    def delete_stats(self, request, rest):
        self.emu.reset_stats()
        return 200, self.emu.stats()

    def get_requests(self, request, rest):
        return 200, {"value": self.emu.request_log()}

    def delete_requests(self, request, rest):
        self.emu.clear_request_log()
        return 200, {"value": []}

    # faults
    def get_faults(self, request, rest):
        return 200, {"value": self.emu.list_faults()}

    def post_faults(self, request, rest):
        try:
            fault_id = self.emu.add_fault(**_object(request))
        except FaultSpecError as error:
            raise ControlError(400, str(error)) from None
        return 201, {"id": fault_id}

    def delete_faults(self, request, rest):
        if rest:
            if not self.emu.faults.remove(rest[0]):
                raise ControlError(404, f"no fault with id {rest[0]!r}")
            return 200, {"removed": rest[0]}
        self.emu.clear_faults()
        return 200, {"value": []}

    # apps and tokens
    def post_apps(self, request, rest):
        body = _object(request)
        allowed = {"permissions", "client_id", "secret", "certificate_pem", "display_name"}
        unknown = set(body) - allowed
        if unknown:
            raise ControlError(400, f"unknown app field(s) {sorted(unknown)}; expected some of {sorted(allowed)}")
        return 201, self.emu.add_app(**body)

    def post_tokens(self, request, rest):
        body = _object(request)
        allowed = {"client_id", "permissions", "expires_in"}
        unknown = set(body) - allowed
        if unknown:
            raise ControlError(400, f"unknown token field(s) {sorted(unknown)}; expected some of {sorted(allowed)}")
        token = self.emu.issue_token(**body)
        return 201, {"access_token": token, "token_type": "Bearer"}

    # knobs
    def get_config(self, request, rest):
        return 200, self.emu.config()

    def post_config(self, request, rest):
        return 200, self.emu.configure(**_object(request))

    # the legacy licensing automation (legacy.py)
    def get_legacy(self, request, rest):
        return 200, {"config": self.emu.legacy.config(), "actions": self.emu.legacy.action_log()}

    def post_legacy(self, request, rest):
        if rest == ["run"]:
            return 200, self.emu.legacy.run_once()
        if rest:
            raise ControlError(404, f"no control endpoint POST {request.path}")
        return 200, self.emu.legacy.configure(**_object(request))

    def delete_legacy(self, request, rest):
        self.emu.legacy.clear()
        return 200, {"actions": []}

    def post_process(self, request, rest):
        self.emu.process_all()
        return 200, {"pending": self.emu.directory.pending_work()}

    # simulated Entra Connect
    def post_onprem(self, request, rest):
        if len(rest) != 3 or rest[0] != "groups" or rest[2] != "members":
            raise ControlError(404, f"no control endpoint POST {request.path}; expected /_emulator/onprem/groups/{{groupId}}/members")
        body = _object(request)
        unknown = set(body) - {"add", "remove"}
        if unknown:
            raise ControlError(400, f"unknown field(s) {sorted(unknown)}; expected some of ['add', 'remove']")
        for key in ("add", "remove"):
            if not isinstance(body.get(key, []), list):
                raise ControlError(400, f"{key}: got {body[key]!r}, expected a list of object ids, SIDs or sAMAccountNames")
        pending = self.emu.onprem_change_members(rest[1], add=body.get("add", []), remove=body.get("remove", []))
        return 202, {"pending": pending}

    def post_sync(self, request, rest):
        return 200, self.emu.run_sync_cycle()
