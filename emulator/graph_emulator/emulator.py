"""The ``Emulator``: the Python API over one emulated tenant (directory, identity, throttling, faults) and its server."""

import os
import secrets as secrets_module
import shutil
import tempfile
import threading
import uuid
from collections import deque
from datetime import datetime, timezone

from werkzeug.serving import make_server

from .engine import Directory
from .faults import FaultRegistry
from .identity import DEFAULT_APP_PERMISSIONS, IdentityService
from .pipeline import LOOPBACK, GraphApp, Stats
from .server import QuietHandler, close_open_connections
from .strict import STRICT_DEFAULTS, StrictSettings
from .legacy import LegacyAutomation
from .throttle import Clock, Throttler
from .tls import create_tls_material

REQUEST_LOG_LIMIT = 100_000
CONFIG_KEYS = (
    "throttling",
    "time_scale",
    "latency_ms",
    "answer_time_ms",
    "processing_rate",
    "token_lifetime",
    "budget_scale",
    "early_retry_grace_ms",
    "charge_refused",
    "write_budget_left",
    "dynamic_rate",
    "sync_interval_s",
    "audit_actor",
    "audit_retention_days",
)
# issue 21, strict behaviours (strict.py): batch_shuffle, short_pages, empty_pages, read_lag_ms, processing_delay_s,
# unknown_processing_states, strict_seed
CONFIG_KEYS += tuple(STRICT_DEFAULTS)


class Emulator:
    """Microsoft Graph emulator on https://127.0.0.1:PORT, usable as a context manager."""

    def __init__(
        self,
        tenant=None,
        port=0,
        host="127.0.0.1",
        throttling=False,
        time_scale=1.0,
        latency_ms=0,
        processing_rate=1000.0,
        token_lifetime=3599,
        budget_scale=1.0,
        early_retry_grace_ms=100,
        state_dir=None,
        answer_time_ms=0,
        charge_refused=True,
        write_budget_left=1.0,
        dynamic_rate=2000.0,
        sync_interval_s=30.0,
        **strict_knobs,
    ):
        from .control import ControlApi

        if host not in LOOPBACK:
            raise ValueError(f"host: got {host!r}, expected a loopback address ({', '.join(LOOPBACK)})")
        self.host = host
        self.requested_port = int(port)
        self.clock = Clock(time_scale)
        self.directory = Directory(tenant, processing_rate=processing_rate, time_scale=time_scale)
        self.directory.configure(dynamic_rate=dynamic_rate)
        self.directory.configure_sync(sync_interval_s)
        unknown_knobs = set(strict_knobs) - set(STRICT_DEFAULTS)
        if unknown_knobs:
            raise TypeError(f"Emulator() got unexpected keyword argument(s) {sorted(unknown_knobs)}")
        self.strict = StrictSettings(**strict_knobs)
        self.directory.strict = self.strict
        self.directory.configure(processing_delay=self.strict.processing_delay_s)
        self.identity = IdentityService(self.directory, token_lifetime=token_lifetime)
        self.throttler = Throttler(self.clock, enabled=throttling, budget_scale=budget_scale, early_retry_grace_ms=early_retry_grace_ms)
        self.faults = FaultRegistry()
        self.legacy = LegacyAutomation(self.directory, self.clock)  # legacy.py: switched off until configured
        self.counters = Stats()
        self.control = ControlApi(self)
        self.latency_ms = float(latency_ms)
        self.answer_time_ms = 0.0
        # checked as the control API checks them
        self.configure(answer_time_ms=answer_time_ms, charge_refused=charge_refused, write_budget_left=write_budget_left)
        self._requests = deque(maxlen=REQUEST_LOG_LIMIT)
        self._requests_lock = threading.Lock()
        self._own_state_dir = state_dir is None
        self.state_dir = state_dir or tempfile.mkdtemp(prefix="graph-emulator-")
        self.tls = create_tls_material(self.state_dir)
        self._default_app = None
        self.ensure_default_app()
        self.app = GraphApp(self)
        self._server = None
        self._thread = None

    # -- lifecycle --------------------------------------------------------------------------------
    def start(self):
        if self._server is not None:
            return self
        self._server = self._make_server()
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, name="graph-emulator", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self.legacy.stop()
        if self._server is None:
            return
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=10)
            self._thread = None
        self._server.server_close()
        close_open_connections(self._server)
        self._server = None
        if self._own_state_dir:
            shutil.rmtree(self.state_dir, ignore_errors=True)

    def serve_forever(self):
        """Serve in the calling thread (CLI); returns after ``shutdown()`` from another thread."""
        self._server = self._make_server()
        self._server.serve_forever(poll_interval=0.2)

    def listen(self):
        """Bind the socket now (so the port is known) without serving yet."""
        self._server = self._make_server()
        return self._server

    def _make_server(self):
        server = make_server(self.host, self.requested_port, self.app, threaded=True, ssl_context=self.tls.server_context(), request_handler=QuietHandler)
        server.open_connections = set()
        server.open_connections_lock = threading.Lock()
        return server

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False

    # -- addresses and identity -------------------------------------------------------------------
    @property
    def port(self):
        return self._server.server_address[1] if self._server else None

    @property
    def base_url(self):
        host = "127.0.0.1" if self.host == "localhost" else self.host
        host = f"[{host}]" if ":" in host else host
        return f"https://{host}:{self.port}"

    @property
    def authority_url(self):
        return self.base_url

    @property
    def ca_path(self):
        return self.tls.ca_path

    @property
    def tenant_id(self):
        return self.directory.tenant_id

    @property
    def client_id(self):
        return self._default_app["clientId"]

    @property
    def client_secret(self):
        return self._default_app["secrets"][0]

    def ensure_default_app(self):
        """The first tenant app with a secret, or a new one holding DEFAULT_APP_PERMISSIONS."""
        with self.directory.lock:
            if not self.directory.tenant_id:
                self.directory.tenant_id = str(uuid.uuid4())
            for app in self.directory.apps:
                if app.get("secrets"):
                    self._default_app = app
                    return app
            self._default_app = self.directory.add_app(
                {
                    "clientId": str(uuid.uuid4()),
                    "displayName": "graph-emulator default app",
                    "secrets": [f"emu~{secrets_module.token_hex(20)}"],
                    "certificates": [],
                    "permissions": list(DEFAULT_APP_PERMISSIONS),
                }
            )
            return self._default_app

    def add_app(self, permissions=(), client_id=None, secret=None, certificate_pem=None, display_name=None):
        app = {
            "clientId": client_id or str(uuid.uuid4()),
            "displayName": display_name or "graph-emulator test app",
            "secrets": [secret] if secret else [],
            "certificates": [certificate_pem] if certificate_pem else [],
            "permissions": list(permissions),
        }
        return dict(self.directory.add_app(app))

    def issue_token(self, client_id=None, permissions=None, expires_in=3600, audience=None):
        app = self.identity.find_app(client_id or self.client_id)
        if app is None:
            raise ValueError(f"client_id: got {client_id!r}, expected the clientId of a registered app")
        return self.identity.issue(app, audience=audience or "https://graph.microsoft.com", expires_in=expires_in, roles=permissions)

    # -- state ---------------------------------------------------------------------------------------
    def user_count(self):
        return self.directory.user_count()

    def export_state(self):
        return self.directory.export()

    def load_state(self, tenant):
        self.directory.load(tenant)
        self.ensure_default_app()
        self.throttler.reset()

    def generate(self, **options):
        from .tenant import generate_tenant

        self.load_state(generate_tenant(**options))

    def process_all(self):
        """Finish pending dynamic membership evaluation, then group-license processing (a sync cycle is not run)."""
        with self.directory.lock:
            self.directory.process_all()

    def onprem_change_members(self, group_id, add=(), remove=()):
        """On-premises AD membership changes of a synced group (members by object id, SID or sAMAccountName);
        they appear in Entra at the next sync cycle. Returns how many changes are pending. ValueError if refused."""
        return self.directory.onprem_change_members(group_id, add=add, remove=remove)

    def run_sync_cycle(self):
        """Run an Entra Connect sync cycle now: ``{"applied": [{"groupId", "added", "removed"}], "pending": 0}``."""
        return self.directory.run_sync_cycle()

    def loss_ledger(self):
        return self.directory.loss_ledger()

    def clear_ledger(self):
        self.directory.clear_ledger()

    # -- observation ---------------------------------------------------------------------------------
    def log_request(self, method, path, status, request_id, client_request_id, in_batch, route_key="", write=False, app_id=None):
        entry = {
            "time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
            "method": method,
            "path": path,
            "route": route_key,
            "status": status,
            "request_id": request_id,
            "client_request_id": client_request_id,
            "in_batch": in_batch,
            "write": bool(write),
            "app_id": app_id,
        }
        with self._requests_lock:
            self._requests.append(entry)

    def request_log(self):
        with self._requests_lock:
            return list(self._requests)

    def clear_request_log(self):
        with self._requests_lock:
            self._requests.clear()

    def stats(self):
        return self.counters.snapshot()

    def reset_stats(self):
        """Zero the counters and empty the request log (both describe "what happened since")."""
        self.counters.reset()
        self.clear_request_log()

    # -- knobs ---------------------------------------------------------------------------------------
    def add_fault(self, **spec):
        return self.faults.add(spec)

    def clear_faults(self):
        """Remove every fault and close the Retry-After windows injected faults opened.

        A window left open would answer the next test's first request to the same app, method and
        path with a 429 counted as an early retry.
        """
        self.faults.clear()
        self.app.clear_fault_windows()

    def list_faults(self):
        return self.faults.list()

    def config(self):
        return {
            "throttling": self.throttler.enabled,
            "time_scale": self.clock.time_scale,
            "latency_ms": self.latency_ms,
            "answer_time_ms": self.answer_time_ms,
            "processing_rate": self.directory.processing_rate,
            "token_lifetime": self.identity.token_lifetime,
            "budget_scale": self.throttler.budget_scale,
            "early_retry_grace_ms": self.throttler.early_retry_grace * 1000.0,
            "charge_refused": self.throttler.charge_refused,
            "write_budget_left": self.throttler.write_budget_left,
            "dynamic_rate": self.directory.dynamic_rate,
            "sync_interval_s": self.directory.sync_interval_s,
            "audit_actor": self.directory._trail.actor,
            "audit_retention_days": self.directory._trail.retention_days,
            **self.strict.snapshot(),
        }

    def configure(self, **knobs):
        unknown = set(knobs) - set(CONFIG_KEYS)
        if unknown:
            raise ValueError(f"unknown emulator setting(s) {sorted(unknown)}; expected some of {list(CONFIG_KEYS)}")
        for name in ("time_scale", "latency_ms", "answer_time_ms", "processing_rate", "token_lifetime", "budget_scale", "early_retry_grace_ms"):
            value = knobs.get(name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0):
                raise ValueError(f"{name}: got {value!r}, expected a non-negative number")
        if knobs.get("audit_actor") is not None or knobs.get("audit_retention_days") is not None:
            self.directory.configure_audit(actor=knobs.get("audit_actor"), retention_days=knobs.get("audit_retention_days"))
        strict = {name: knobs[name] for name in STRICT_DEFAULTS if name in knobs}
        if strict:
            self.strict.configure(**strict)
            if strict.get("processing_delay_s") is not None:
                self.directory.configure(processing_delay=self.strict.processing_delay_s)
        if knobs.get("time_scale") is not None:
            if knobs["time_scale"] <= 0:
                raise ValueError(f"time_scale: got {knobs['time_scale']!r}, expected a number > 0")
            self.clock.set_scale(knobs["time_scale"])
        if knobs.get("time_scale") is not None or knobs.get("processing_rate") is not None:
            self.directory.configure(processing_rate=knobs.get("processing_rate"), time_scale=knobs.get("time_scale"))
        if knobs.get("dynamic_rate") is not None:
            self.directory.configure(dynamic_rate=knobs["dynamic_rate"])
        if knobs.get("sync_interval_s") is not None:
            self.directory.configure_sync(knobs["sync_interval_s"])
        if knobs.get("latency_ms") is not None:
            self.latency_ms = float(knobs["latency_ms"])
        if knobs.get("answer_time_ms") is not None:
            self.answer_time_ms = float(knobs["answer_time_ms"])
        if knobs.get("token_lifetime") is not None:
            self.identity.token_lifetime = int(knobs["token_lifetime"])
        self._configure_throttling(knobs)
        return self.config()

    def _configure_throttling(self, knobs):
        for name in ("throttling", "charge_refused"):
            if knobs.get(name) is not None and not isinstance(knobs[name], bool):
                raise ValueError(f"{name}: got {knobs[name]!r}, expected true or false")
        left = knobs.get("write_budget_left")
        if left is not None and (isinstance(left, bool) or not isinstance(left, (int, float)) or not 0 <= left <= 1):
            raise ValueError(f"write_budget_left: got {left!r}, expected a fraction from 0 to 1")
        if any(knobs.get(k) is not None for k in ("throttling", "budget_scale", "early_retry_grace_ms", "time_scale", "charge_refused", "write_budget_left")):
            self.throttler.configure(
                enabled=knobs.get("throttling"),
                budget_scale=knobs.get("budget_scale"),
                early_retry_grace_ms=knobs.get("early_retry_grace_ms"),
                charge_refused=knobs.get("charge_refused"),
                write_budget_left=left,
            )

    def info(self):
        return {
            "base_url": self.base_url,
            "authority_url": self.authority_url,
            "ca_path": self.ca_path,
            "tenant_id": self.tenant_id,
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "pid": os.getpid(),
        }
