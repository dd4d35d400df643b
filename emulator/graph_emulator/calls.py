"""One Graph call (a top-level request or one $batch item), its outcome, and Graph's error envelopes."""

from dataclasses import dataclass, field
from datetime import datetime, timezone

JSON_CONTENT_TYPE = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8"
WRITE_METHODS = frozenset(("POST", "PATCH", "PUT", "DELETE"))


class DropConnection(Exception):
    """Close the client's connection without answering (fault action ``drop``)."""


@dataclass
class Call:
    """One Graph operation: a top-level request or one $batch item."""

    method: str
    path: str  # "/v1.0/..." (batch item URLs get the prefix)
    query: dict
    headers: dict  # lower-case names
    body: object = None
    in_batch: bool = False
    arrival: float = 0.0
    request_id: str = ""
    client_request_id: str = ""
    base_url: str = ""
    claims: dict = None
    raw_query: str = ""


@dataclass
class Outcome:
    status: int
    body: object = None
    headers: dict = field(default_factory=dict)


def _utc_date():
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")


def error_body(status, code, message, call, extra_inner=None):
    inner = {"date": _utc_date(), "request-id": call.request_id, "client-request-id": call.client_request_id}
    inner.update(extra_inner or {})
    return {"error": {"code": code, "message": message, "innerError": inner}}


def error_outcome(error, call, headers=None):
    return Outcome(error.status, error_body(error.status, error.code, error.message, call), dict(headers or {}))


def throttled_outcome(call, retry_after, headers=None):
    body = {
        "error": {
            "code": "TooManyRequests",
            "message": "Please retry again later.",
            "innerError": {
                "code": "429",
                "date": _utc_date(),
                "message": "Please retry after",
                "request-id": call.request_id,
                "status": "429",
                "client-request-id": call.client_request_id,
            },
        }
    }
    merged = {"Retry-After": str(int(retry_after))}
    merged.update(headers or {})
    return Outcome(429, body, merged)


def unreadable_payload_outcome(call):
    """Graph's 400 for a write body it cannot read as JSON (no Content-Type, or not JSON)."""
    return Outcome(
        400,
        error_body(
            400,
            "BadRequest",
            "Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format.",
            call,
        ),
    )


def content_type_outcome(call, has_body):
    """Graph's answer to a write whose body is not declared as JSON, or None (graph-api.md 1.2, 1.3, 10).

    No Content-Type: 400 with the message Graph gives when it cannot read the payload. Another media type
    (text/plain, ...): 415 Unsupported Media Type (errors.md: "The content type of the request is a format
    that isn't supported by the service."). The code of the 415 is a decision (UNCONFIRMED).
    """
    if call.method not in WRITE_METHODS or not has_body:
        return None
    declared = (call.headers.get("content-type") or "").strip()
    if not declared:
        return unreadable_payload_outcome(call)
    if declared.split(";", 1)[0].strip().lower() != "application/json":
        message = f"The content type '{declared}' is not supported: send 'application/json'."
        return Outcome(415, error_body(415, "UnsupportedMediaType", message, call))
    return None
