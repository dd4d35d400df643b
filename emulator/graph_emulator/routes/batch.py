"""``POST /v1.0/$batch``: the envelope's own faults, then each item through the pipeline, dependsOn first."""

import base64
import json
import uuid
from urllib.parse import urlsplit

from ..calls import JSON_CONTENT_TYPE, WRITE_METHODS, Call, Outcome, content_type_outcome, error_body, error_outcome
from ..engine import GraphError

BATCH_ROUTE_KEY = "POST /v1.0/$batch"
MAX_BATCH = 20


def batch_envelope(app, call):
    """The outer $batch request: its own faults (status, drop, apply_then) around running the items."""
    emu = app.emu
    route_key = BATCH_ROUTE_KEY
    early = app.early_retry_of_fault(call)
    if early is not None:
        app.finish(call, route_key, early, False)
        return early
    # Faults without a route count Graph calls (top-level requests and items), not envelopes:
    # only a fault whose route matches /v1.0/$batch fires on the envelope itself.
    fault = emu.faults.match(call.method, call.path, in_batch=False, needs_route=True)
    if fault is not None:
        emu.counters.add("faults_fired")
        early = app.fault_before(fault, call, route_key)
        if early is not None:
            app.finish(call, route_key, early, False)
            return early
    outcome = run_batch(app, call)
    # With apply_then the items ran (their writes happened); the client sees only the injected answer.
    return app.answer_after_fault(call, route_key, outcome, fault, False)


def run_batch(app, call):
    """Run a $batch's items; the caller logs the outer request."""
    if call.method != "POST":
        return Outcome(405, error_body(405, "Request_BadRequest", "Specified HTTP method is not allowed for the request target.", call))
    try:
        items = validate_batch(call.body)
    except GraphError as error:
        return error_outcome(error, call)
    responses = {}
    by_id = {item["id"].lower(): item for item in items}
    strict = app.emu.strict
    # Graph runs independent items in any order and answers in any order (json-batching.md); batch_shuffle
    # (on by default) does both, with the seeded generator; dependsOn still runs first.
    for item in strict.shuffled(items) if strict.batch_shuffle else items:
        run_batch_item(app, call, item, by_id, responses, ())
    ordered = [responses[item["id"].lower()] for item in items]
    if strict.batch_shuffle:
        ordered = strict.shuffled(ordered)
    total_units = sum(int(r.get("headers", {}).get("x-ms-resource-unit", 0)) for r in ordered)
    return Outcome(200, {"responses": ordered}, {"x-ms-resource-unit": str(max(1, total_units))})


def validate_batch(body):
    def bad(message):
        return GraphError(400, "BadRequest", message)

    if not isinstance(body, dict) or not isinstance(body.get("requests"), list):
        raise bad("Invalid batch payload format: expected a JSON object with a 'requests' array.")
    items = body["requests"]
    if not items:
        raise bad("Invalid batch payload format: the 'requests' array is empty.")
    if len(items) > MAX_BATCH:
        raise bad(f"Invalid batch payload format: number of requests {len(items)} exceeds the limit of {MAX_BATCH}.")
    seen = set()
    for item in items:
        if not isinstance(item, dict):
            raise bad("Invalid batch payload format: every request must be a JSON object.")
        for key in ("id", "method", "url"):
            if not isinstance(item.get(key), str) or not item[key]:
                raise bad(f"Invalid batch payload format: request is missing the required '{key}' property.")
        lowered = item["id"].lower()
        if lowered in seen:
            raise bad(f"Batch request ids must be unique: '{item['id']}' is used more than once.")
        seen.add(lowered)
        headers = {k.lower(): v for k, v in (item.get("headers") or {}).items()}
        if item.get("body") is not None and "content-type" not in headers:
            raise bad(f"Write request id : {item['id']} does not contain Content-Type header or body.")
        if "://" in item["url"]:
            # Graph wants URLs relative to the version root; an absolute one fails the whole batch (3P:
            # microsoft-graph-docs-contrib#8576, msgraph-sdk-javascript#1451: "Invalid batch payload format.").
            raise bad("Invalid batch payload format.")
    for item in items:
        for dependency in dependencies(item):
            if dependency.lower() not in seen or dependency.lower() == item["id"].lower():
                raise bad(f"Request id '{item['id']}' depends on unknown request id '{dependency}'.")
    check_dependency_pattern(items, bad)
    return items


def check_dependency_pattern(items, bad):
    """dependsOn as Graph supports it (known issue "Request dependencies are limited"): one dependency per
    item, and the batch parallel (none), serial (each item on the one before it) or same (every dependent
    item on the same one)."""
    stated = [(item, dependencies(item)) for item in items]
    if any(len(deps) > 1 for _, deps in stated):
        raise bad("Invalid dependsOn: a request can depend on one other request only.")
    targets = {deps[0].lower() for _, deps in stated if deps}
    if len(targets) <= 1:
        return  # parallel, or every dependent item on the same one
    serial = all(deps and deps[0].lower() == items[index - 1]["id"].lower() for index, (_, deps) in enumerate(stated) if index > 0) and not stated[0][1]
    if not serial:
        raise bad("Invalid dependsOn: requests must be all parallel, all serial (each on the one before it), or all depend on the same request.")


def dependencies(item):
    depends = item.get("dependsOn")
    if depends is None:
        depends = item.get("depends_on")
    if depends is None:
        return []
    if isinstance(depends, str):
        return [depends]
    return [str(d) for d in depends]


def run_batch_item(app, call, item, by_id, responses, chain):
    key = item["id"].lower()
    if key in responses:
        return responses[key]
    if key in chain:
        raise GraphError(400, "BadRequest", f"Batch request '{item['id']}' has a circular dependency.")
    for dependency in dependencies(item):
        run_batch_item(app, call, by_id[dependency.lower()], by_id, responses, chain + (key,))
    failed = [d for d in dependencies(item) if responses[d.lower()]["status"] >= 400]
    item_call = build_item_call(app, call, item)
    refused = content_type_outcome(item_call, item.get("body") is not None)
    if failed:
        outcome = Outcome(
            424, error_body(424, "FailedDependency", "The request could not be processed because of a failure in a dependent request.", item_call)
        )
        app.finish(item_call, app.route_key(item_call), outcome, item_call.method in WRITE_METHODS)
    elif refused is not None:
        outcome = refused
        app.finish(item_call, app.route_key(item_call), outcome, item_call.method in WRITE_METHODS)
    else:
        outcome = app.execute(item_call)
    headers = {"Cache-Control": "no-cache"}
    headers.update({k: v for k, v in outcome.headers.items()})
    headers.setdefault("x-ms-resource-unit", "1")
    entry = {"id": item["id"], "status": outcome.status, "headers": headers}
    if outcome.body is not None and outcome.status != 204:
        entry["body"] = outcome.body
        if not isinstance(outcome.body, str):
            headers["Content-Type"] = JSON_CONTENT_TYPE
    responses[key] = entry
    return entry


def build_item_call(app, call, item):
    url = item["url"]
    headers = {k.lower(): v for k, v in (item.get("headers") or {}).items()}
    item_call = Call(
        method=item["method"].upper(),
        path=None,
        query={},
        headers=headers,
        in_batch=True,
        arrival=call.arrival,
        request_id=str(uuid.uuid4()),
        client_request_id=headers.get("client-request-id") or call.client_request_id,
        base_url=call.base_url,
        claims=call.claims,
    )
    split = urlsplit(url if url.startswith("/") else "/" + url)
    # Relative to the version root: "/v1.0/users" is the path /v1.0/v1.0/users, which Graph answers with
    # 400 "Resource not found for the segment 'v1.0'." (3P: msgraph-sdk-javascript#1178).
    item_call.path = "/v1.0" + split.path
    item_call.query = app.query_dict(split.query)
    item_call.raw_query = split.query
    body = item.get("body")
    if isinstance(body, str):
        try:
            body = json.loads(base64.b64decode(body))
        except ValueError:
            body = None
    item_call.body = body
    return item_call
