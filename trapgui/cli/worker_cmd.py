"""`trapgui worker`: process Antenna platform jobs headless, until interrupted.

Ctrl+C finishes the tasks already claimed, posts their results and exits cleanly (a second
Ctrl+C quits at once: unprocessed claims and unposted results stay in the local database and
are handled on the next start). `trapgui worker register` announces the pipelines this machine
can serve to the projects the token can see; `trapgui worker login` saves the token (system
keyring, else an owner-only file) for later runs and the app.

Configuration: flags, then TRAPGUI_REMOTE_URL / TRAPGUI_REMOTE_TOKEN, then the app's settings
(the token saved by the app's Remote tab or `login`). The token is best given through
--token-file, --token-stdin or the environment: --token shows it to every user in `ps`.
"""

from __future__ import annotations

import getpass
import os
import signal
import stat
import sys
import threading
import time
from pathlib import Path

from trapgui.cli.argtypes import positive_int
from trapgui.core.errors import AuthenticationError, RemoteError, UserInputError


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "worker", help="process Antenna platform jobs (a processing service), or register",
        description="Pull tasks of Antenna processing jobs, run the models on every device "
        "and post the results, until interrupted (Ctrl+C finishes the current batch, posts and "
        "exits). 'register' announces the pipelines this machine can serve; 'login' checks a "
        "token and saves it (system keyring, else an owner-only file) for later runs and the "
        "app.")
    p.add_argument("action", nargs="?", choices=("run", "register", "login"), default="run",
                   help="run (default); register; login: check the token and save it for "
                   "--base-url (system keyring, else an owner-only file)")
    p.add_argument("--pipeline", action="append", metavar="SLUG",
                   help="pipeline slug to serve; repeat for several (default: the Remote tab's "
                   "choice, else every pipeline whose models are installed)")
    p.add_argument("--base-url", metavar="URL", help="API root, e.g. "
                   "https://antenna.insectai.org/api/v2 (env TRAPGUI_REMOTE_URL)")
    tokens = p.add_mutually_exclusive_group()
    tokens.add_argument("--token-file", metavar="PATH",
                        help="read the API token from this file ('-': standard input)")
    tokens.add_argument("--token-stdin", action="store_true",
                        help="read the API token from standard input (asked for, unechoed, "
                        "in a terminal)")
    tokens.add_argument("--token", metavar="TOKEN",
                        help="API token on the command line: visible to other users in the "
                        "process list, so prefer --token-file, --token-stdin or env "
                        "TRAPGUI_REMOTE_TOKEN")
    p.add_argument("--allow-insecure-http", action="store_true",
                   help="send the token over plain http:// to a server that is not on this "
                   "computer (only on a network you trust; https is always preferred)")
    p.add_argument("--batch-size", type=positive_int, metavar="N",
                   help="tasks claimed at a time and images per device batch")
    p.add_argument("--batch-timeout", type=float, metavar="S",
                   help="longest wait for a batch to fill once one image is ready")
    p.add_argument("--download-threads", type=positive_int, metavar="N",
                   help="images downloaded at once (default: settings, 8)")
    p.add_argument("--device", metavar="DEV", help="auto, cpu, cuda, cuda:N, mps or a comma list")
    p.add_argument("--detector", metavar="KEY",
                   help="use this detector instead of each pipeline's own (e.g. builtin)")
    p.add_argument("--job", type=int, action="append", metavar="ID",
                   help="only these job ids (repeatable)")
    p.add_argument("--exit-when-idle", action="store_true",
                   help="exit when no open job has work left instead of polling (scripts)")
    p.add_argument("--project", type=int, action="append", metavar="ID",
                   help="register: only these project ids (default: every project)")
    p.add_argument("--service-name", metavar="NAME", help="register: processing service name")
    p.set_defaults(func=run)


def read_token(args) -> tuple[str | None, str]:
    """The token given on the command line: (token or None, where it came from in words)."""
    if args.token:
        print("trapgui: warning: --token is visible to other users of this computer (in `ps` "
              "and your shell history); use --token-file, --token-stdin or "
              "TRAPGUI_REMOTE_TOKEN instead.", file=sys.stderr, flush=True)
        return args.token.strip(), "--token"
    if args.token_stdin or args.token_file == "-":
        if sys.stdin is not None and sys.stdin.isatty():
            text = getpass.getpass("API token: ")
        else:
            text = sys.stdin.readline() if sys.stdin is not None else ""
        token = text.strip()
        if not token:
            raise UserInputError("No token on standard input (an empty line was read).")
        return token, "standard input"
    if args.token_file:
        path = Path(args.token_file).expanduser()
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            why = getattr(exc, "strerror", None) or type(exc).__name__
            raise UserInputError(f"The token file {path} cannot be read ({why}).") from None
        token = next((line.strip() for line in text.splitlines() if line.strip()), "")
        if not token:
            raise UserInputError(f"The token file {path} is empty.")
        if os.name == "posix" and stat.S_IMODE(path.stat().st_mode) & 0o077:
            print(f"trapgui: warning: the token file {path} can be read by other users; "
                  f"`chmod 600 {path}` keeps it yours.", file=sys.stderr, flush=True)
        return token, f"the file {path}"
    return None, "none"


def run(args, ctx) -> int:
    from trapgui.ml.store import ModelStore
    from trapgui.remote.setup import resolve_connection, resolve_pipelines

    token, source = read_token(args)
    allow = True if args.allow_insecure_http else None  # None: the setting decides
    if args.action == "login":
        return _login(args, ctx, token, source, allow)
    conn = resolve_connection(ctx.paths, ctx.settings, base_url=args.base_url, token=token,
                              token_source=source, allow_insecure_http=allow)
    if not conn.token:
        raise UserInputError("No API token: give --token-file PATH or --token-stdin, set "
                             "TRAPGUI_REMOTE_TOKEN, save one with `trapgui worker login`, or "
                             "in the app's Remote tab.")
    store = ModelStore(ctx.paths.models_dir)
    pipes, why = resolve_pipelines(store, ctx.settings, args.pipeline, detector=args.detector)
    if args.pipeline or not pipes:
        for slug, reason in why.items():
            print(f"trapgui: not serving {slug}: {reason}", file=sys.stderr)
    elif why:
        print(f"trapgui: {len(why)} other pipeline(s) skipped: their models are not installed "
              "(`trapgui worker --pipeline SLUG` says which).", file=sys.stderr)
    if not pipes:
        raise UserInputError("No pipeline can be served on this machine.",
                             hint="Install the models (`trapgui models download KEY`), or "
                             "choose another --pipeline.")
    if args.action == "register":
        return _register(args, ctx, conn, store, pipes)
    return _work(args, ctx, conn, store, pipes)


def _login(args, ctx, token, source, allow) -> int:
    """Check the token against the server, then save it where the app and later runs find it."""
    from trapgui.remote.client import AntennaClient
    from trapgui.remote.credentials import CredentialStore, token_key
    from trapgui.remote.setup import resolve_connection

    if not token:
        token = os.environ.get("TRAPGUI_REMOTE_TOKEN", "").strip() or None
        source = "the environment variable TRAPGUI_REMOTE_TOKEN"
    if not token:
        raise UserInputError("No token to save: give --token-file PATH or --token-stdin.")
    conn = resolve_connection(ctx.paths, ctx.settings, base_url=args.base_url, token=token,
                              token_source=source, allow_insecure_http=allow)
    client = AntennaClient(conn.base_url, conn.token, allow_insecure_http=conn.allow_insecure_http,
                           retries=1)
    try:
        projects = client.list_projects()  # a refused token raises and is not saved
    except AuthenticationError:
        raise
    except RemoteError as exc:
        print(f"trapgui: warning: the token could not be checked now ({exc}); saving it "
              "anyway.", file=sys.stderr, flush=True)
        projects = None
    finally:
        client.close()
    where = CredentialStore(ctx.paths.config_dir).set(conn.base_url, conn.token)
    seen = "" if projects is None else f" (it sees {len(projects)} project(s))"
    print(f"trapgui worker: the token for {token_key(conn.base_url)}{seen} is saved in {where}; "
          "`trapgui worker` and the app's Remote tab use it from now on.")
    return 0


def _register(args, ctx, conn, store, pipes) -> int:
    from trapgui.remote.client import AntennaClient
    from trapgui.remote.pipelines import registration_payload

    payloads = [registration_payload(p, store) for p in pipes]
    name = args.service_name or ctx.settings.remote_service_name
    client = AntennaClient(conn.base_url, conn.token, allow_insecure_http=conn.allow_insecure_http)
    failed = 0
    try:
        projects = client.list_projects()
        chosen = [p for p in projects if not args.project or p.id in args.project]
        unknown = set(args.project or ()) - {p.id for p in projects}
        for pid in sorted(unknown):
            print(f"project {pid}: not visible with this token", file=sys.stderr)
            failed += 1
        for project in chosen:
            try:
                r = client.register_pipelines(project.id, name, payloads)
            except AuthenticationError:
                raise
            except RemoteError as exc:
                print(f"project {project.id} ({project.name}): {exc}", file=sys.stderr)
                failed += 1
                continue
            print(f"project {project.id} ({project.name}): created {', '.join(r.created) or '-'}; "
                  f"updated {', '.join(r.updated) or '-'}")
    finally:
        client.close()
    return 1 if failed else 0


STOP_GRACE_S = 90.0  # after a stop request: finish, post, exit — or give up and keep the rest
ABORT_GRACE_S = 10.0  # after "quit now": exit even if a thread is stuck in the network


def _work(args, ctx, conn, store, pipes) -> int:
    from trapgui.core.jobs import JobControl, LogLine, RunProgress
    from trapgui.core.safe_text import printable
    from trapgui.remote.setup import build_worker, worker_config

    config = worker_config(ctx.settings, batch_size=args.batch_size,
                           batch_timeout_s=args.batch_timeout,
                           download_threads=args.download_threads, devices=args.device,
                           job_ids=args.job, exit_when_idle=args.exit_when_idle or None)
    last_line = [0.0]

    def on_event(event):
        if isinstance(event, LogLine) and event.level in ("warning", "error"):
            print(f"trapgui: {printable(event.message)}", file=sys.stderr, flush=True)
        elif isinstance(event, RunProgress) and time.monotonic() - last_line[0] > 5:
            last_line[0] = time.monotonic()
            print(f"{event.state}: {event.done} tasks done ({event.failed} failed), "
                  f"{event.posted or 0} posted, {event.waiting_to_post} waiting to post, "
                  f"{event.rate:.2f} images/s. {printable(event.message)}",
                  file=sys.stderr, flush=True)

    worker = build_worker(ctx.db, store, ctx.paths, ctx.settings, conn, pipes, config)
    print(f"trapgui worker: serving {', '.join(p.slug for p in pipes)} from {conn.base_url} "
          f"with the token from {conn.token_source} (Ctrl+C to stop)", file=sys.stderr, flush=True)
    control = JobControl()
    interrupts = [0]

    def quit_after(seconds: float, then) -> None:
        timer = threading.Timer(seconds, then)
        timer.daemon = True
        timer.start()

    def hard_exit() -> None:
        print("trapgui worker: stopped at once; unfinished tasks and unposted results are kept "
              "for the next start.", file=sys.stderr, flush=True)
        os._exit(130)

    def abort() -> None:
        control.abort()
        quit_after(ABORT_GRACE_S, hard_exit)

    def on_signal(signum, frame):
        interrupts[0] += 1
        if interrupts[0] == 1:
            print("\ntrapgui: finishing the claimed tasks and posting their results "
                  f"(at most {STOP_GRACE_S:.0f} s; Ctrl+C again to quit now)...",
                  file=sys.stderr, flush=True)
            control.cancel()
            quit_after(STOP_GRACE_S, abort)
        else:
            print("\ntrapgui: quitting now; unfinished tasks are kept for the next start.",
                  file=sys.stderr, flush=True)
            abort()

    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGINT, on_signal)
        if hasattr(signal, "SIGTERM"):
            signal.signal(signal.SIGTERM, on_signal)
    try:
        summary = worker.run(on_event, control)
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
        worker.client.close()
    print(f"trapgui worker: {summary.done} tasks done ({summary.failed} failed), "
          f"{summary.posted} results posted in {summary.elapsed_s:.0f} s "
          f"({summary.images_per_s:.2f} images/s).", file=sys.stderr)
    if summary.unposted or summary.remaining:
        print(f"trapgui worker: {summary.unposted} results not yet posted and "
              f"{summary.remaining} claimed tasks unfinished; they are kept in the local "
              "database and handled on the next start.", file=sys.stderr)
    if interrupts[0] and control.aborted:
        # a download or post may still hang in a pool thread the interpreter would wait for
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)
    if summary.error:
        if "token" in summary.error:
            raise AuthenticationError(summary.error)
        raise RemoteError(summary.error)
    return 130 if interrupts[0] else 0
