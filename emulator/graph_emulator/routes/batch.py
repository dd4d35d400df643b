"""``POST /v1.0/$batch``: the envelope's own faults, then each item through the pipeline, dependsOn first."""

import base64
import json
import uuid
from urllib.parse import urlsplit

from ..calls import JSON_CONTENT_TYPE, WRITE_METHODS, Call, Outcome, error_body, error_outcome
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
    for item in items:
        run_batch_item(app, call, item, by_id, responses, ())
    ordered = [responses[item["id"].lower()] for item in items]
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
    for item in items:
        for dependency in dependencies(item):
            if dependency.lower() not in seen or dependency.lower() == item["id"].lower():
                raise bad(f"Request id '{item['id']}' depends on unknown request id '{dependency}'.")
    return items


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
    if failed and item_call.path is not None:
        outcome = Outcome(
            424, error_body(424, "FailedDependency", "The request could not be processed because of a failure in a dependent request.", item_call)
        )
        app.finish(item_call, app.route_key(item_call), outcome, item_call.method in WRITE_METHODS)
    elif item_call.path is None:
        outcome = Outcome(
            400, error_body(400, "BadRequest", "Batch request URLs must be relative, e.g. '/users/{id}', or point at this Graph's /v1.0.", item_call)
        )
        item_call.path = item["url"]
        app.finish(item_call, "(invalid batch url)", outcome, False)
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
    split = urlsplit(url if "://" in url or url.startswith("/") else "/" + url)
    # The docs ask for relative URLs, but msgraph-core (the official SDK) sends absolute ones;
    # accept those when they point at this Graph (or graph.microsoft.com) and the same version.
    own_hosts = {urlsplit(call.base_url).netloc.lower(), "graph.microsoft.com"}
    absolute_ok = "://" not in url or (split.netloc.lower() in own_hosts and split.path.lower().startswith("/v1.0/"))
    if absolute_ok:
        path = split.path
        if not path.lower().startswith("/v1.0/"):
            path = "/v1.0" + path
        item_call.path = path
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
