"""``graph-emulator`` command line: ``serve`` and ``generate``."""

import argparse
import json
import os
import signal
import sys
import threading

from .tenant import PROFILES, generate_tenant


def _positive_float(text):
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return value


def _fraction(text):
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"expected a fraction from 0 to 1, got {text!r}")
    return value


def _non_negative_float(text):
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return value


def _non_negative_int(text):
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


def build_parser():
    parser = argparse.ArgumentParser(prog="graph-emulator", description="Local Microsoft Graph emulator (HTTPS).")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="serve Graph and the identity endpoints on https://127.0.0.1:PORT")
    serve.add_argument("--host", default="127.0.0.1", help="loopback address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=_non_negative_int, default=0, help="TCP port; 0 picks a free one (default)")
    source = serve.add_mutually_exclusive_group()
    source.add_argument("--tenant", metavar="FILE", help="tenant JSON file (docs/tenant-format.md)")
    source.add_argument("--users", type=_non_negative_int, help="generate a tenant with N users (default 100)")
    serve.add_argument("--seed", type=int, default=0, help="seed for --users (default 0)")
    serve.add_argument(
        "--profile",
        choices=PROFILES,
        default="default",
        help="generator profile for --users: 'seed' is the migration's seed example, 'dynamic' and 'hybrid' its dynamic-group and on-premises-synced variants, 'multisku' users with E3 and add-ons (docs/tenant-format.md)",
    )
    serve.add_argument("--info-file", metavar="PATH", help="write {base_url, ca_path, tenant_id, client_id, client_secret, pid} as JSON once listening")
    serve.add_argument("--state-dir", metavar="DIR", help="where to write the CA and server certificate (default: a temporary directory removed on exit)")
    serve.add_argument("--throttling", dest="throttling", action="store_true", default=False, help="enforce Graph's throttling budgets")
    serve.add_argument("--no-throttling", dest="throttling", action="store_false", help="no throttling (default)")
    serve.add_argument(
        "--time-scale", type=_positive_float, default=1.0, help="emulated seconds per wall second for throttling and group processing (default 1)"
    )
    serve.add_argument("--latency-ms", type=_non_negative_float, default=0.0, help="added latency per request")
    serve.add_argument(
        "--answer-time-ms",
        type=_non_negative_float,
        default=0.0,
        help="answer no Graph request sooner than this after it arrived; the emulator's own work counts "
        "inside it, as Graph's answer time includes Graph's work (default 0: off)",
    )
    serve.add_argument("--processing-rate", type=_non_negative_float, default=1000.0, help="group-license evaluations per emulated second (default 1000)")
    serve.add_argument(
        "--dynamic-rate", type=_non_negative_float, default=2000.0, help="users a dynamic membership rule is evaluated for per emulated second (default 2000)"
    )
    serve.add_argument(
        "--sync-interval-s", type=_non_negative_float, default=30.0, help="emulated seconds between Entra Connect sync cycles; 0 = only on demand (default 30)"
    )
    serve.add_argument("--token-lifetime", type=_non_negative_int, default=3599, help="access token lifetime in seconds (default 3599)")
    serve.add_argument("--budget-scale", type=_positive_float, default=1.0, help="multiply every throttling quota (e.g. 0.01 for tests; default 1)")
    serve.add_argument(
        "--charge-refused",
        dest="charge_refused",
        action="store_true",
        default=True,
        help="a throttled request costs what it would have cost, as Graph charges it (default)",
    )
    serve.add_argument(
        "--no-charge-refused", dest="charge_refused", action="store_false", help="refused requests cost nothing and their retries are promised capacity"
    )
    serve.add_argument("--write-budget-left", type=_fraction, default=1.0, help="share of each write budget left when first used, 0 to 1 (default 1: full)")
    # strict behaviours (issue 21, docs/tenant-format.md "Strict behaviours")
    serve.add_argument("--no-batch-shuffle", dest="batch_shuffle", action="store_false", default=True, help="run and answer $batch items in request order")
    serve.add_argument("--short-pages", action="store_true", default=False, help="pages hold a random number of items up to $top")
    serve.add_argument("--empty-pages", action="store_true", default=False, help="some pages hold no item but carry a nextLink")
    serve.add_argument("--read-lag-ms", type=_non_negative_float, default=0.0, help="reads do not see license writes younger than this (default 0)")
    serve.add_argument(
        "--processing-delay-s", type=_non_negative_float, default=0.0, help="emulated seconds queued group-license work waits; reprocessing is queued too"
    )
    serve.add_argument("--unknown-processing-states", action="store_true", default=False, help="unfinished groups show an undocumented processing state")
    serve.add_argument("--strict-seed", type=int, default=21, help="seed of the shuffles and page sizes (default 21)")
    serve.add_argument(
        "--legacy-actor",
        action="store_true",
        default=False,
        help="switch on the legacy licensing automation (a second app licensing users directly on a schedule; README 'Legacy automation')",
    )
    serve.add_argument(
        "--legacy-settings",
        metavar="JSON",
        help='its settings as a JSON object, e.g. \'{"interval_s": 5, "disabled_plans": ["KAIZALA_O365_P3"]}\' (implies --legacy-actor)',
    )
    serve.add_argument(
        "--audit-actor",
        choices=("azure_ad", "entra"),
        default="azure_ad",
        help="spelling of the group-based licensing actor in audit events (default azure_ad)",
    )

    generate = commands.add_parser("generate", help="write a generated tenant JSON file")
    generate.add_argument("--users", type=_non_negative_int, default=1000, help="number of users (default 1000)")
    generate.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    generate.add_argument(
        "--profile",
        choices=PROFILES,
        default="default",
        help="generator profile: 'seed' is the migration's seed example, 'dynamic' and 'hybrid' its variants (docs/tenant-format.md)",
    )
    generate.add_argument("--out", required=True, metavar="FILE", help="output file ('-' for stdout)")
    return parser


def _write_atomically(path, data):
    tmp = f"{path}.tmp.{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # holds the client secret
    with os.fdopen(fd, "w") as handle:
        handle.write(data)
    os.replace(tmp, path)


def _load_tenant(args):
    if args.tenant:
        try:
            with open(args.tenant) as handle:
                return json.load(handle)
        except OSError as error:
            raise SystemExit(f"graph-emulator: cannot read --tenant {args.tenant!r}: {error.strerror}") from None
        except ValueError as error:
            raise SystemExit(f"graph-emulator: --tenant {args.tenant!r} is not valid JSON: {error}") from None
    return generate_tenant(users=100 if args.users is None else args.users, seed=args.seed, profile=args.profile)


def _legacy_settings(text):
    if not text:
        return {}
    try:
        settings = json.loads(text)
    except ValueError as error:
        raise ValueError(f"--legacy-settings: got {text!r}, expected a JSON object ({error})") from None
    if not isinstance(settings, dict):
        raise ValueError(f"--legacy-settings: got {text!r}, expected a JSON object")
    settings.pop("enabled", None)
    return settings


def serve(args):
    from .emulator import Emulator

    tenant = _load_tenant(args)
    try:
        emulator = Emulator(
            tenant=tenant,
            port=args.port,
            host=args.host,
            throttling=args.throttling,
            time_scale=args.time_scale,
            latency_ms=args.latency_ms,
            answer_time_ms=args.answer_time_ms,
            processing_rate=args.processing_rate,
            dynamic_rate=args.dynamic_rate,
            sync_interval_s=args.sync_interval_s,
            token_lifetime=args.token_lifetime,
            budget_scale=args.budget_scale,
            charge_refused=args.charge_refused,
            write_budget_left=args.write_budget_left,
            state_dir=args.state_dir,
            batch_shuffle=args.batch_shuffle,
            short_pages=args.short_pages,
            empty_pages=args.empty_pages,
            read_lag_ms=args.read_lag_ms,
            processing_delay_s=args.processing_delay_s,
            unknown_processing_states=args.unknown_processing_states,
            strict_seed=args.strict_seed,
        )
        emulator.configure(audit_actor=args.audit_actor)
        if args.legacy_actor or args.legacy_settings:
            emulator.legacy.configure(**_legacy_settings(args.legacy_settings), enabled=True)
    except ValueError as error:
        raise SystemExit(f"graph-emulator: {error}") from None
    server = emulator.listen()
    stop = threading.Event()

    def shutdown(signum, frame):
        if not stop.is_set():
            stop.set()
            threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)

    print(f"graph-emulator listening on {emulator.base_url}", flush=True)
    print(f"CA certificate: {emulator.ca_path}", flush=True)
    print(f"tenant {emulator.tenant_id}, client_id {emulator.client_id} (secret in --info-file or GET /_emulator/info)", flush=True)
    if args.info_file:
        _write_atomically(args.info_file, json.dumps(emulator.info(), indent=2) + "\n")
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        emulator.stop()
        if args.info_file:
            try:
                os.unlink(args.info_file)
            except OSError:
                pass
    return 0


def generate(args):
    tenant = generate_tenant(users=args.users, seed=args.seed, profile=args.profile)
    text = json.dumps(tenant, indent=1) + "\n"
    if args.out == "-":
        sys.stdout.write(text)
    else:
        _write_atomically(args.out, text)
        os.chmod(args.out, 0o600)
        print(f"wrote {args.users} users to {args.out}")
    return 0


def main(argv=None):
    args = build_parser().parse_args(argv)
    return serve(args) if args.command == "serve" else generate(args)


if __name__ == "__main__":
    sys.exit(main())
