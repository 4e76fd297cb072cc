"""`trapgui process FOLDER`: scan + queue + find and identify insects + optional CSV export,
with a terminal progress bar. Ctrl+C cancels cleanly: the batch on the device is finished and
saved, every other claimed image goes back to the queue (run the command again to go on)."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path

from trapgui.cli.argtypes import positive_int, unit_interval
from trapgui.cli.scan_cmd import add_traps_option
from trapgui.core.errors import ModelError, UserInputError
from trapgui.core.safe_text import printable

NO_MODEL = {"none", "off", "-"}


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "process", help="scan a trap folder, detect and classify insects, optionally export CSV",
        description="Index a trap folder, queue its images, find insects and identify them with "
        "the chosen models, and optionally export the results as CSV. Images already done with "
        "the same models are skipped; an interrupted run picks up where it stopped.")
    p.add_argument("folder", metavar="FOLDER", help="a trap folder")
    add_traps_option(p)
    p.add_argument("--detector", metavar="KEY", help="detector (default: the detector setting, "
                   "'builtin' = no weights needed)")
    p.add_argument("--classifier", action="append", metavar="KEY",
                   help="classifier; repeat to combine a moth/non-moth filter, an order and a "
                   "species model (each goes to its rank from the model catalogue). 'none' = "
                   "detection only. Default: the classifier settings")
    p.add_argument("--device", metavar="DEV", help="auto, cpu, cuda, cuda:N, mps, or a comma "
                   "list (default: the device setting)")
    p.add_argument("--batch-size", type=positive_int, metavar="N", help="images per detection "
                   "batch (default: measured once per device and model, or the setting)")
    p.add_argument("--classification-batch-size", type=positive_int, metavar="N",
                   help="crops per classifier forward pass (lower it if memory runs out; "
                   "default: measured once per device and model, or the setting)")
    p.add_argument("--storage-floor", type=unit_interval, metavar="S",
                   help="store boxes the detector scores at least S (default: the detector's "
                   "own floor from the model catalogue, or the setting)")
    p.add_argument("--classification-floor", type=unit_interval, metavar="S",
                   help="classify the stored boxes scoring at least S; the others are "
                   "classified later, on demand, if a lower detection threshold is chosen "
                   "(default: the detector's, or the setting)")
    p.add_argument("--loader-threads", type=positive_int, metavar="N", help="image decode threads")
    p.add_argument("--top-k", type=positive_int, metavar="K", help="labels kept per classifier")
    p.add_argument("--cutoff-hour", type=int, metavar="H", help="night cut-off hour (0-23)")
    p.add_argument("--requeue", action="store_true",
                   help="process again images already done with these models")
    p.add_argument("--retry-failed", action="store_true",
                   help="try again the images that failed with these models (after a crash, "
                   "or once an unreadable file was replaced)")
    p.add_argument("--cluster", metavar="WHERE",
                   help="process on a Dask cluster: the address of a running scheduler "
                   "(tcp://host:8786), local:N (N worker processes here), slurm or pbs "
                   "(workers as batch jobs, settings in --cluster-config); off = this "
                   "computer. Default: the cluster setting (off). The images and the models "
                   "folder must be at the same paths on the workers")
    p.add_argument("--cluster-config", metavar="FILE",
                   help="SLURM / PBS settings (TOML: queue, cores, memory, gpus, walltime, "
                   "jobs); default: cluster.toml in the config folder")
    p.add_argument("--export", metavar="OUT.csv", help="write this deployment's detections here")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def build_spec(args, settings, catalogue):
    from trapgui.core.types import Rank
    from trapgui.pipeline.spec import PipelineSpec

    overrides = {}
    if args.detector:
        spec = _catalogue_get(catalogue, args.detector)
        if spec.task != "detection":
            raise UserInputError(f"'{args.detector}' is a {spec.task} model, not a detector.")
        overrides["detector"] = args.detector
    if args.classifier:
        overrides.update(binary=None, species=None, order=None)
        keys = [k for k in args.classifier if k.lower() not in NO_MODEL]
        slot_of = {Rank.BINARY: "binary", Rank.SPECIES: "species", Rank.ORDER: "order"}
        for key in keys:
            spec = _catalogue_get(catalogue, key)
            if spec.task != "classification":
                raise UserInputError(f"'{key}' is a {spec.task} model, not a classifier.")
            slot = slot_of[Rank(spec.rank)]
            if overrides[slot] is not None:
                raise UserInputError(f"Two {slot} classifiers were given ({overrides[slot]} and "
                                     f"{key}); choose one.")
            overrides[slot] = key
    for flag, field in (("batch_size", "detection_batch_size"),
                        ("classification_batch_size", "classification_batch_size"),
                        ("loader_threads", "loader_threads"), ("top_k", "top_k"),
                        ("storage_floor", "storage_floor"),
                        ("classification_floor", "classification_floor")):
        if getattr(args, flag, None) is not None:
            overrides[field] = getattr(args, flag)
    return PipelineSpec.from_settings(settings, **overrides)


def _catalogue_get(catalogue, key):
    try:
        return catalogue.get(key)
    except Exception as exc:
        raise UserInputError(f"Unknown model '{key}'.",
                             hint="`trapgui models list` shows the models you can use.") from exc


def drop_missing_default_classifiers(spec, store):
    """Classifiers that come from the settings (no --classifier given) but are not installed
    are left out with a note, so a fresh offline install processes with the built-in detector
    on day one. Returns (spec, notes). Models named on the command line are never dropped."""
    spec, left_out = spec.without_uninstalled_classifiers(store)
    return spec, [m.sentence(f"get it with `trapgui models download {m.key}`") for m in left_out]


def check_installed(spec, store) -> None:
    for key in (spec.detector, spec.binary, spec.order, spec.species):
        if key and store.spec(key).needs_weights and not store.is_installed(key):
            name = store.spec(key).name
            raise MissingModelError(
                f"The model '{name}' ({key}) is not installed.",
                hint=f"Download it with `trapgui models download {key}` (or import the weights "
                "file with `trapgui models import` on an offline computer), or choose other "
                "models with --detector / --classifier (--classifier none = detection only).")


class MissingModelError(ModelError):
    """Like ModelNotInstalledError, but names the exact download command."""


def _duration(seconds: float) -> str:
    s = int(round(seconds))
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


def run(args, ctx) -> int:
    from trapgui.cli.regroup import apply_cutoff
    from trapgui.cli.progress import TerminalProgress
    from trapgui.cli.scan_cmd import traps_summary
    from trapgui.core.jobs import JobControl
    from trapgui.db.catalogue_queries import image_ids
    from trapgui.ml.store import ModelStore
    from trapgui.pipeline.engine import Engine
    from trapgui.scan.site_scan import plan_traps, scan_traps

    settings = ctx.settings
    store = ModelStore(ctx.paths.models_dir)
    spec = build_spec(args, settings, store.model_catalogue)
    if not args.classifier:
        spec, notes = drop_missing_default_classifiers(spec, store)
        for note in notes:
            print(f"note: {note}", file=sys.stderr)
    check_installed(spec, store)
    cluster = _cluster_choice(args, ctx)  # a bad --cluster is said before a long scan
    if cluster is None:
        from trapgui.pipeline.batch_size_cache import CACHE_FILE, BatchSizeCache

        engine = Engine(ctx.db, store, spec, devices=args.device or settings.device,
                        tracking=settings.tracking_params(),
                        batch_size_cache=BatchSizeCache(ctx.paths.data_dir / CACHE_FILE))
    else:
        from trapgui.pipeline.cluster_config import default_config_file
        from trapgui.services.cluster_service import make_engine

        value, config = cluster
        # a first `--cluster slurm` finds an example settings file to edit where it looks
        engine = make_engine(ctx.db, store, spec, value, config,
                             worker_device=args.device or "auto",
                             write_example=config == default_config_file(ctx.paths.config_dir),
                             tracking=settings.tracking_params())
    cutoff = args.cutoff_hour if args.cutoff_hour is not None else settings.night_cutoff_hour
    traps = scan_traps(ctx.db, plan_traps(ctx.db, args.folder, args.traps), cutoff_hour=cutoff)
    sentence = apply_cutoff(ctx.db, cutoff, traps.deployment_ids, traps.reports)
    print("\n".join(traps_summary(traps)))
    if sentence:
        print(sentence)
    deployments = traps.deployment_ids  # one per site subfolder, or the folder's one trap
    queued = sum(engine.enqueue_deployment(dep, requeue=args.requeue,
                                           retry_failed=args.retry_failed)
                 for dep in deployments)
    print(f"Models: {spec.display_name}; {queued} image{'s' if queued != 1 else ''} newly "
          "queued.")
    if spec.has_classifiers and spec.classification_floor > spec.storage_floor:
        print(f"Boxes scoring {spec.storage_floor:g} or more are stored; those scoring "
              f"{spec.classification_floor:g} or more are classified (the others on demand).")
    else:
        print(f"Boxes scoring {spec.storage_floor:g} or more are stored"
              + (" and classified." if spec.has_classifiers else "."))
    bar = TerminalProgress("Processing", quiet=args.quiet)
    emit = bar if cluster is None else _ClusterLines(bar)
    control = JobControl()
    interrupts = []

    def on_sigint(signum, frame):
        interrupts.append(time.monotonic())
        if len(interrupts) > 1:
            # Stop at once. Unwinding with KeyboardInterrupt while torch's worker threads still
            # run aborted the interpreter (exit 134); exiting here is safe because the queue is
            # crash-safe: claims of this dead process are taken over at the next start.
            bar.close()
            print("trapgui: stopped at once; unfinished images stay queued.", file=sys.stderr)
            sys.stderr.flush()
            sys.stdout.flush()
            os._exit(130)
        bar.message("Cancelling: finishing the batch in hand (Ctrl+C again to stop at once)...")
        control.cancel()

    previous = signal.signal(signal.SIGINT, on_sigint) if _main_thread() else None
    try:
        # only this folder's images: other traps queued with the same models stay queued
        summary = engine.run(emit, control, image_ids=[
            i for dep in deployments for i in image_ids(ctx.db, dep)])
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
        bar.close()
    print(f"{summary.status}: {summary.done} images done, {summary.failed} failed, "
          f"{summary.detections} detections in {_duration(summary.elapsed_s)} "
          f"({summary.images_per_s:.2f} images/s); {summary.remaining} left in the queue.")
    for note in summary.notes:
        print(f"  note: {printable(note)}")
    if summary.failed_earlier:
        print(f"  {summary.failed_earlier} image{'s' if summary.failed_earlier != 1 else ''} "
              "of this folder failed in earlier runs (`trapgui nights` lists them); "
              "`--retry-failed` tries them again.")
    for n, report in enumerate(traps.reports):
        print_individuals(ctx, report.deployment_id, engine.pipeline_id, summary.tracking,
                          trap=report.name if len(deployments) > 1 else None, warn=n == 0)
    if summary.status == "cancelled":
        print("Run the same command again to process the rest.")
        return 130
    if args.export:
        from trapgui.export.csv_export import ExportFilter, export_detections

        out = export_detections(ctx.db, args.export, ExportFilter(
            deployment_ids=deployments, pipeline_id=engine.pipeline_id))
        print(f"Exported {out.rows} detections to {printable(out.path)}")
    return 0 if summary.status == "finished" else 1


def print_individuals(ctx, deployment_id: int, pipeline_id: int, tracking,
                      trap: str | None = None, warn: bool = True) -> None:
    """The individuals this folder's nights now hold (``db.counts``, at the settings'
    thresholds), after the tracking that ended the run; ``trap`` names the trap when a
    folder made several (``warn``: the tracking's warnings, said once)."""
    from trapgui.db.counts import count_individuals_per_night
    from trapgui.db.export_queries import ExportScope, Thresholds, untracked_detections

    if tracking is not None and warn:
        for problem in tracking.problems:
            print(f"  warning: {printable(problem)}")
    thresholds = Thresholds(ctx.settings.detection_threshold,
                            ctx.settings.classification_threshold)
    scope = ExportScope.of([deployment_id])
    per_night = count_individuals_per_night(ctx.db, scope, pipeline_id, thresholds)
    individuals = sum(c.individuals for c in per_night.values())
    nights = len(per_night)
    tracked = f" ({tracking.describe()})" if warn and tracking is not None and tracking.nights \
        else ""
    head = "Individuals" if trap is None else f"Individuals of the trap '{printable(trap)}'"
    print(f"{head}: {individuals} in {nights} night{'s' if nights != 1 else ''}, "
          f"counted at detection score {thresholds.detection:.2f}, fixtures left out"
          f"{tracked}; `trapgui nights` lists them per night.")
    untracked = untracked_detections(ctx.db, scope, pipeline_id, thresholds.detection)
    if untracked:
        print(f"  {untracked} detection{'s' if untracked != 1 else ''} belong to no individual "
              "yet (nights not fully processed); they are tracked when their night is done.")


def _cluster_choice(args, ctx):
    """(--cluster value, settings file) of a cluster run, or None to process here."""
    from trapgui.services.cluster_service import choice_from_settings, config_file

    if args.cluster is None:
        choice = choice_from_settings(ctx.settings, ctx.paths.config_dir)
        if choice is None:
            return None
        args.cluster, args.cluster_config = choice.value, choice.config_file
        return _cluster_choice(args, ctx)
    if args.cluster.strip().lower() in ("off", "none", "no"):
        return None
    if not getattr(args, "verbose", False):
        # Dask logs every worker joining and leaving at INFO on the terminal (its own
        # handler); read at Dask's import, and inherited by local worker processes
        os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "error")
    config = (Path(args.cluster_config).expanduser() if args.cluster_config
              else config_file(ctx.settings, ctx.paths.config_dir))
    return args.cluster, config


class _ClusterLines:
    """A cluster run's events on the terminal: the bar, plus its info lines (the dashboard
    address, workers joining), which a local run keeps quiet."""

    def __init__(self, bar):
        self.bar = bar

    def __call__(self, event) -> None:
        from trapgui.core.jobs import LogLine

        if isinstance(event, LogLine) and event.level == "info":
            self.bar.message(printable(event.message))
        else:
            self.bar(event)


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()
