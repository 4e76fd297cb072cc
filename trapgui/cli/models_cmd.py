"""`trapgui models list|download|import|verify|remove`: the model store from a terminal."""

from __future__ import annotations

import sys
import threading

from trapgui.cli.progress import TerminalProgress
from trapgui.core.errors import DownloadCancelled
from trapgui.core.jobs import Progress


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "models", help="list, download, import, verify or remove detection/classification models",
        description="Manage the published AMI models in the user data folder. Downloads resume "
        "where they stopped; on a computer without internet, import the files instead.")
    sub = p.add_subparsers(dest="models_command", metavar="ACTION")
    sub.required = True

    q = sub.add_parser("list", help="every model in the catalogue and whether it is installed",
                       description="List every published model (key, type, state, size, name) and "
                       "where the models folder is.")
    q.set_defaults(func=run_list)

    q = sub.add_parser("download", help="download (or resume) models and their label maps",
                       description="Download models and their label maps into the models folder, "
                       "with progress. An interrupted download resumes where it stopped; every "
                       "file is checked before it is installed.")
    q.add_argument("keys", nargs="+", metavar="KEY", help="model key (see `trapgui models list`)")
    q.add_argument("--force", action="store_true", help="download again even if installed")
    q.set_defaults(func=run_download)

    q = sub.add_parser("import", help="install a model from files (computers without internet)",
                       description="Install a model from a weights file copied from another "
                       "computer (the file is checked: it must load into the model's architecture). "
                       "Classifiers also need their label map (--labels).")
    q.add_argument("key", metavar="KEY", help="model key (see `trapgui models list`)")
    q.add_argument("file", metavar="FILE", help="the weights file (.pt/.pth)")
    q.add_argument("--labels", metavar="FILE", help="the label map (JSON) for classifiers")
    q.set_defaults(func=run_import)

    q = sub.add_parser("verify", help="check installed models (checksums, full load)",
                       description="Check installed models: checksum, label map, and a full load "
                       "into the architecture. Exit code 0 when every model checked is fine.")
    q.add_argument("keys", nargs="*", metavar="KEY", help="default: every installed model")
    q.set_defaults(func=run_verify)

    q = sub.add_parser("remove", help="delete a model's files",
                       description="Delete installed models' files (weights, label map, partial "
                       "downloads) from the models folder.")
    q.add_argument("keys", nargs="+", metavar="KEY", help="model key (see `trapgui models list`)")
    q.add_argument("--forget-pin", action="store_true",
                   help="also forget the verified checksum (accept a changed file next time)")
    q.set_defaults(func=run_remove)


def _store(ctx):
    from trapgui.ml.store import ModelStore

    return ModelStore(ctx.paths.models_dir)


def _mb(n: int | None) -> str:
    if n is None:
        return "?"
    if n < 1000:
        return f"{n} B"
    return f"{n / 1e6:,.1f} MB" if n >= 1e5 else f"{n / 1e3:,.1f} kB"


def run_list(args, ctx) -> int:
    from trapgui.ml.store import ModelState

    store = _store(ctx)
    rows = []
    for st in store.statuses():
        spec = store.spec(st.key)
        kind = spec.rank.value if spec.rank else spec.task
        if st.state is ModelState.PARTIAL:
            state = f"partial ({_mb(st.downloaded_bytes)})"
        else:
            state = st.state.value
        size = "-" if not spec.needs_weights else _mb(st.size_bytes)
        rows.append((st.key, kind, state, size, st.name))
    widths = [max(len(r[i]) for r in rows + [("KEY", "TYPE", "STATE", "SIZE", "NAME")])
              for i in range(4)]
    print("  ".join(h.ljust(w) for h, w in zip(("KEY", "TYPE", "STATE", "SIZE"), widths)) + "  NAME")
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[4])
    for st in store.statuses():
        if st.problem:
            print(f"\n{st.key}: {st.problem}")
    print(f"\nModels folder: {store.models_dir}")
    return 0


def run_download(args, ctx) -> int:
    store = _store(ctx)
    for key in args.keys:
        store.spec(key)  # unknown keys fail before anything is downloaded
    for key in args.keys:
        spec = store.spec(key)
        if not spec.needs_weights:
            print(f"{key}: built in, nothing to download")
            continue
        bar = TerminalProgress(key, unit="B", unit_scale=True)
        cancel = threading.Event()
        try:
            status = store.download(
                key, progress=lambda done, total: bar.show(Progress(done, total, unit="bytes")),
                cancel=cancel, force=args.force)
        except (KeyboardInterrupt, DownloadCancelled):
            cancel.set()
            bar.close()
            part = store.status(key)
            print(f"{key}: download stopped; {_mb(part.downloaded_bytes)} kept. Run the same "
                  "command again to resume.", file=sys.stderr)
            return 130
        bar.close()
        print(f"{key}: {status.state.value} ({_mb(status.size_bytes)}) in {status.weights_path.parent}")
    return 0


def run_import(args, ctx) -> int:
    store = _store(ctx)
    status = store.import_file(args.key, args.file, args.labels)
    print(f"{args.key}: {status.state.value} ({_mb(status.size_bytes)}), checked: the file loads "
          f"into {store.spec(args.key).name}")
    return 0


def run_verify(args, ctx) -> int:
    from trapgui.ml.store import ModelState

    store = _store(ctx)
    keys = args.keys or [s.key for s in store.statuses()
                         if store.spec(s.key).needs_weights
                         and s.state in (ModelState.INSTALLED, ModelState.CORRUPT)]
    if not keys:
        print("No downloaded models to verify.")
        return 0
    bad = 0
    for key in keys:
        status = store.verify(key)
        if status.installed:
            print(f"{key}: OK")
        else:
            bad += 1
            print(f"{key}: {status.state.value}: {status.problem}")
    return 4 if bad else 0


def run_remove(args, ctx) -> int:
    store = _store(ctx)
    for key in args.keys:
        freed = store.remove(key, forget_pin=args.forget_pin)
        print(f"{key}: removed ({_mb(freed)} freed)" + (", checksum pin forgotten" if args.forget_pin else ""))
    return 0
