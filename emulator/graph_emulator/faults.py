r"""Fault injection: make chosen Graph requests fail, stall, vanish, or race with a directory change.

A fault spec (JSON-friendly dict, every key optional except one action):

    method      "POST" | "GET" | ... (default: any)
    route       regular expression searched in the path, e.g. "/users/[^/]+/assignLicense$"
                (paths are matched as "/v1.0/..." for top-level requests and $batch items alike).
                The outer $batch request ("/v1.0/$batch") is matched only by a fault that has a
                route, e.g. route=r"/\$batch$", in_batch=False: faults without a route count
                Graph calls (requests and items), never envelopes. apply_then on the envelope runs
                every item, then answers the status or drops.
    in_batch    also match $batch items (default true); false = top-level requests only
    skip        let this many matching requests through first (default 0)
    count       fire this many times, then retire (default 1; null = forever)
    status      answer with this status (429, 500, 503, 504, ...) instead of running the request
    retry_after seconds for the Retry-After header (429/503; default 1 for 429); a fraction is
                rounded up (0.5 -> "1", HTTP sends whole seconds) and the early-retry window lasts
                what the header says
    delay_ms    sleep before running the request (outside any lock)
    drop        close the connection without any response
    apply_then  run the request first, then answer with `status` or drop (a write Graph applied
                but the client never saw succeed)
    op / ops    one-shot engine operation(s) run just before the request, e.g.
                {"op": "remove_member", "group": gid, "user": uid}
                {"op": "add_member", "group": gid, "user": uid}
                {"op": "assign_group_license", "group": gid, "add": [{"skuId": ..}], "remove": [sku]}
                {"op": "assign_user_license", "user": uid, "add": [{"skuId": .., "disabledPlans": []}], "remove": []}
                {"op": "set_sku_units", "sku": skuId, "enabled": 0}
                {"op": "update_user", "user": uid, "body": {"usageLocation": "FR"}}
                {"op": "process_all"}
"""

import math
import re
import threading
import uuid

ACTIONS = ("status", "delay_ms", "drop", "op", "ops")
KNOWN_KEYS = {"id", "method", "route", "in_batch", "skip", "count", "status", "retry_after", "delay_ms", "drop", "apply_then", "op", "ops", "fired", "seen"}
ENGINE_OPS = {"remove_member", "add_member", "assign_group_license", "assign_user_license", "set_sku_units", "update_user", "process_all"}


class FaultSpecError(ValueError):
    pass


def _validate(spec):
    unknown = set(spec) - KNOWN_KEYS
    if unknown:
        raise FaultSpecError(f"unknown fault keys {sorted(unknown)}; expected some of {sorted(KNOWN_KEYS - {'id', 'fired', 'seen'})}")
    if not any(spec.get(key) not in (None, False, 0, [], {}) for key in ACTIONS):
        raise FaultSpecError(f"fault {spec!r} has no action: give one of {list(ACTIONS)}")
    if spec.get("status") is not None and not (isinstance(spec["status"], int) and 400 <= spec["status"] <= 599):
        raise FaultSpecError(f"fault status must be an HTTP error status 400..599, got {spec['status']!r}")
    if spec.get("apply_then") and not (spec.get("status") or spec.get("drop")):
        raise FaultSpecError("apply_then needs a status or drop to answer with after applying the request")
    for operation in _operations(spec):
        if not isinstance(operation, dict) or operation.get("op") not in ENGINE_OPS:
            raise FaultSpecError(f"fault operation {operation!r} must be a dict with 'op' one of {sorted(ENGINE_OPS)}")
    try:
        re.compile(spec.get("route") or "")
    except re.error as error:
        raise FaultSpecError(f"fault route {spec.get('route')!r} is not a valid regular expression: {error}") from None
    for key in ("skip", "count", "delay_ms", "retry_after"):
        value = spec.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0):
            unit = " of seconds (fractions are rounded up on the wire)" if key == "retry_after" else ""
            raise FaultSpecError(f"fault {key} must be a non-negative number{unit}, got {value!r}")


def _operations(spec):
    operations = list(spec.get("ops") or ())
    if spec.get("op"):
        operations.insert(0, spec["op"])
    return operations


class FaultRegistry:
    def __init__(self):
        self._lock = threading.Lock()
        self._faults = []

    def add(self, spec):
        spec = dict(spec)
        _validate(spec)
        spec.setdefault("id", str(uuid.uuid4()))
        spec.setdefault("method", None)
        spec.setdefault("route", "")
        spec.setdefault("in_batch", True)
        spec.setdefault("skip", 0)
        spec.setdefault("count", 1)
        if spec.get("status") == 429 and spec.get("retry_after") is None:
            spec["retry_after"] = 1
        spec["seen"] = 0
        spec["fired"] = 0
        with self._lock:
            self._faults.append(spec)
        return spec["id"]

    def list(self):
        with self._lock:
            return [dict(fault) for fault in self._faults]

    def clear(self):
        with self._lock:
            self._faults.clear()

    def remove(self, fault_id):
        with self._lock:
            before = len(self._faults)
            self._faults = [fault for fault in self._faults if fault["id"] != fault_id]
            return len(self._faults) != before

    def match(self, method, path, in_batch, needs_route=False):
        """The fault to fire for this request (already counted as fired), or None.

        ``needs_route``: only faults with a route match (the $batch envelope, which faults without
        a route leave alone so that their ``skip`` counts Graph calls, not envelopes).
        """
        with self._lock:
            for fault in self._faults:
                if fault["method"] and fault["method"].upper() != method:
                    continue
                if in_batch and not fault["in_batch"]:
                    continue
                if needs_route and not fault["route"]:
                    continue
                if fault["route"] and not re.search(fault["route"], path):
                    continue
                if fault["count"] is not None and fault["fired"] >= fault["count"]:
                    continue
                fault["seen"] += 1
                if fault["seen"] <= fault["skip"]:
                    continue
                fault["fired"] += 1
                return dict(fault)
        return None


def run_operations(directory, spec, ctx):
    """Apply a fault's one-shot engine operations (the change that races with the client)."""
    for operation in _operations(spec):
        name = operation["op"]
        if name == "remove_member":
            directory.remove_member(operation["group"], operation["user"], ctx)
        elif name == "add_member":
            directory.add_members(operation["group"], [operation["user"]], ctx)
        elif name == "assign_group_license":
            directory.assign_group_license(operation["group"], operation.get("add", []), operation.get("remove", []), ctx)
        elif name == "assign_user_license":
            directory.assign_user_license(operation["user"], operation.get("add", []), operation.get("remove", []), ctx)
        elif name == "set_sku_units":
            directory.set_sku_units(operation["sku"], operation["enabled"])
        elif name == "update_user":
            directory.update_user(operation["user"], operation.get("body", {}), ctx)
        elif name == "process_all":
            directory.process_all()
