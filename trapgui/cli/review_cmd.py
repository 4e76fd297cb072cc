"""`trapgui review list|confirm|set|reject|fixture|merge|split|move|add-box|delete-box|undo|
history|agreement`:
a person's review from the command line, with the rules of the window (``services.review``):
every decision is saved at once, recorded with the reviewer's name and time, keeps the
machine's label beside it, survives re-tracking, and can be undone.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import sys
from functools import cached_property
from pathlib import Path

from trapgui.core.errors import UserInputError
from trapgui.core.safe_text import printable

LIST_HEADERS = ("OCCURRENCE", "NIGHT", "FIRST SEEN", "DETS", "MACHINE LABEL", "SCORE", "REVIEW",
                "FINAL LABEL", "BY", "CARRIED")
CHECK_HEADERS = ("LOOK AT", "NIGHT", "DECIDED OCCURRENCE", "WHY")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "review", help="confirm, relabel or correct occurrences (individuals) as a person",
        description="A person's review of occurrences (tracked individuals). Every decision "
        "is saved at once with the reviewer's name (--by, else the reviewer name in the "
        "settings, else the login name) and the time, keeps the machine's label beside it, "
        "pins the occurrence so re-tracking, another model's run or a threshold never "
        "overrides it, and can be undone (`trapgui review undo`).")
    sub = p.add_subparsers(dest="review_command", metavar="ACTION", required=True)

    ls = sub.add_parser("list", help="list occurrences with their machine and final labels",
                        description="List the occurrences of the nights given (all nights "
                        "without --night) with the machine's label and score, the review "
                        "state and the final label (a decision carried from another model "
                        "configuration of the night says so in CARRIED). --needs-check lists "
                        "the decisions that could not be carried instead.")
    _scope_args(ls)
    ls.add_argument("--unreviewed", action="store_true", help="only those not yet reviewed")
    ls.add_argument("--needs-check", action="store_true",
                    help="only the decisions of another model configuration of these nights "
                    "that could not be carried one-to-one onto this one's occurrences (split "
                    "or joined by this configuration's tracker, or too few boxes matched), "
                    "each with the occurrences to look at and why")
    ls.add_argument("--csv", action="store_true", help="comma-separated values (for a spreadsheet)")
    ls.set_defaults(func=run_list)

    c = sub.add_parser("confirm", help="confirm the machine's label of occurrences",
                       description="Confirm that the machine's label of each occurrence is "
                       "right (one undo step for all of them). With --label and --min-score: "
                       "confirm every not yet reviewed occurrence of that label scoring at "
                       "least that much in the night given.")
    c.add_argument("occurrences", nargs="*", type=int, metavar="OCCURRENCE_ID")
    c.add_argument("--label", help="bulk: the machine label to confirm (needs --night)")
    c.add_argument("--min-score", type=float, default=0.0, metavar="S",
                   help="bulk: lowest machine score to confirm (default 0)")
    _scope_args(c)
    _by(c)
    c.set_defaults(func=run_confirm)

    s = sub.add_parser("set", help="give occurrences a label (species, order, morphospecies...)",
                       description="Give occurrences a person's label at any rank. A label "
                       "that is neither one of the installed classifier's labels nor an insect "
                       "order nor an existing morphospecies becomes a new morphospecies "
                       "(e.g. \"Noctuidae sp. A\"). --from-csv applies a spreadsheet with the "
                       "columns occurrence_id, label and optionally rank.")
    s.add_argument("occurrences", nargs="*", type=int, metavar="OCCURRENCE_ID")
    s.add_argument("--label", help="the label")
    s.add_argument("--rank", help="its rank (species, genus, family, order, morphospecies...; "
                   "default: known from the label)")
    s.add_argument("--from-csv", metavar="FILE", type=Path,
                   help="apply the labels of a CSV file (occurrence_id,label[,rank])")
    _by(s)
    s.set_defaults(func=run_set)

    r = sub.add_parser("reject", help="reject occurrences as not an insect",
                       description="Reject occurrences as not an insect: they are left out of "
                       "every count and export.")
    r.add_argument("occurrences", nargs="+", type=int, metavar="OCCURRENCE_ID")
    _by(r)
    r.set_defaults(func=run_reject)

    f = sub.add_parser("fixture", help="mark occurrences as fixtures (or as none)",
                       description="Mark occurrences as fixtures (a screw, a stain: left out "
                       "of counts), or with --not as no fixture (they count again).")
    f.add_argument("occurrences", nargs="+", type=int, metavar="OCCURRENCE_ID")
    f.add_argument("--not", dest="not_fixture", action="store_true", help="not a fixture")
    _by(f)
    f.set_defaults(func=run_fixture)

    m = sub.add_parser("merge", help="merge occurrences into one individual",
                       description="Merge occurrences of one night into the first one given: "
                       "their detections join it; the others stay empty (undo restores them).")
    m.add_argument("target", type=int, metavar="OCCURRENCE_ID", help="the one that stays")
    m.add_argument("others", nargs="+", type=int, metavar="OTHER_ID")
    _by(m)
    m.set_defaults(func=run_merge)

    sp = sub.add_parser("split", help="split an occurrence into two at a frame",
                        description="Split an occurrence: from the frame given on, its "
                        "detections become a new occurrence (not yet reviewed).")
    sp.add_argument("occurrence", type=int, metavar="OCCURRENCE_ID")
    where = sp.add_mutually_exclusive_group(required=True)
    where.add_argument("--at-frame", type=int, metavar="N",
                       help="the first frame of the new occurrence (1 = its first detection)")
    where.add_argument("--at-detection", type=int, metavar="DETECTION_ID",
                       help="the first detection of the new occurrence")
    _by(sp)
    sp.set_defaults(func=run_split)

    mv = sub.add_parser("move", help="move a detection to another occurrence",
                        description="Move one detection to another occurrence of its night.")
    mv.add_argument("detection", type=int, metavar="DETECTION_ID")
    mv.add_argument("target", type=int, metavar="OCCURRENCE_ID")
    _by(mv)
    mv.set_defaults(func=run_move)

    ab = sub.add_parser("add-box", help="add a box a person drew around a missed insect",
                        description="A missed insect: the box (original image pixels) becomes "
                        "a detection made by a person (detector \"human\") of a new occurrence, "
                        "or of the occurrence given.")
    ab.add_argument("image", type=int, metavar="IMAGE_ID")
    ab.add_argument("--box", required=True, type=_box, metavar="X1,Y1,X2,Y2",
                    help="the box in the image's pixels")
    ab.add_argument("--occurrence", type=int, metavar="OCCURRENCE_ID",
                    help="add it to this occurrence (default: a new one)")
    ab.add_argument("--pipeline", metavar="NAME", help="the model configuration (default: the "
                    "one that processed the image)")
    _by(ab)
    ab.set_defaults(func=run_add_box)

    db_ = sub.add_parser("delete-box", help="delete a false box (a stain, a shadow)",
                         description="A false box: the detection is taken out of its "
                         "occurrence and counted nowhere (re-tracking keeps it out; undo "
                         "restores it).")
    db_.add_argument("detection", type=int, metavar="DETECTION_ID")
    _by(db_)
    db_.set_defaults(func=run_delete_box)

    u = sub.add_parser("undo", help="undo the latest review action",
                       description="Undo the latest review action not yet undone (of the night "
                       "given with --night and --trap, else of any night).")
    _scope_args(u, pipeline=False)
    u.set_defaults(func=run_undo)

    h = sub.add_parser("history", help="list the latest review actions",
                       description="The latest review actions, newest first: number, time "
                       "(UTC), reviewer and what was done; undone ones are marked. "
                       "`trapgui review undo` takes back the newest one not yet undone.")
    h.add_argument("--limit", type=int, default=20, metavar="N",
                   help="how many actions to list (default 20)")
    h.set_defaults(func=run_history)

    a = sub.add_parser("agreement", help="how often the reviewer agreed with the machine",
                       description="Per taxon (the machine's label) and overall: occurrences "
                       "reviewed, confirmed, changed and rejected, and what labels were "
                       "changed to (a confusion table).")
    _scope_args(a)
    a.add_argument("--out", type=Path, metavar="FILE.csv", help="write the table as CSV")
    a.set_defaults(func=run_agreement)


def _scope_args(p, pipeline: bool = True) -> None:
    p.add_argument("--trap", action="append", metavar="PATH",
                   help="only this trap folder (repeat for several)")
    p.add_argument("--night", action="append", metavar="YYYY-MM-DD", type=_date,
                   help="only the night that began on this evening (repeat for several)")
    if pipeline:
        p.add_argument("--pipeline", metavar="NAME", help="the model configuration "
                       "(default: the one that processed most images)")


def _by(p) -> None:
    p.add_argument("--by", metavar="NAME", help="the reviewer's name (default: the settings' "
                   "reviewer name, else the login name)")


def _box(text: str) -> tuple[float, float, float, float]:
    import argparse

    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 4:
        raise argparse.ArgumentTypeError(f"{text!r} is not a box like 100,200,180,260 "
                                         "(x1,y1,x2,y2 in pixels)")
    return values  # type: ignore[return-value]


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        import argparse

        raise argparse.ArgumentTypeError(f"{text!r} is not a date like 2022-06-21") from None


class _CliServices:
    """What ``services.review`` needs, from the CLI's context."""

    def __init__(self, ctx):
        self._ctx = ctx
        self.settings = ctx.settings
        self.paths = ctx.paths

    @property
    def db(self):
        return self._ctx.db

    @cached_property
    def models(self):
        from trapgui.services.models_service import ModelsService

        return ModelsService(self)


def _review(ctx):
    from trapgui.services.review_service import ReviewService

    return ReviewService(_CliServices(ctx))


def _nights(ctx, args) -> list[int]:
    from trapgui.cli.nights_cmd import resolve_traps
    from trapgui.db import occurrence_store

    traps = resolve_traps(ctx.db, args.trap)
    nights = occurrence_store.nights_of(ctx.db, traps, args.night)
    if not nights:
        raise UserInputError("No night of the catalogue matches these traps and dates.",
                             hint="`trapgui nights` lists them.")
    return nights


def _pipeline(ctx, args) -> int:
    from trapgui.cli.nights_cmd import resolve_traps
    from trapgui.db.export_queries import ExportScope, pipeline_id_by_name, pipelines_in_scope

    if getattr(args, "pipeline", None):
        return pipeline_id_by_name(ctx.db, args.pipeline)
    choices = pipelines_in_scope(ctx.db, ExportScope.of(resolve_traps(ctx.db, args.trap), None,
                                                        args.night))
    if not choices:
        raise UserInputError("No image of these nights is processed yet, so there is nothing "
                             "to review.", hint="`trapgui process FOLDER` finds the insects first.")
    if len(choices) > 1:
        print(f"note: reviewing model configuration {printable(choices[0].name)!r} "
              "(--pipeline chooses another).", file=sys.stderr)
    return choices[0].id


def _done(outcome) -> int:
    print(printable(outcome.summary) + (f" (action {outcome.action_id}; `trapgui review undo` "
                                        "takes it back)." if outcome.action_id else "."))
    return 0


def run_list(args, ctx) -> int:
    from trapgui.db import occurrence_store

    review = _review(ctx)
    nights = _nights(ctx, args)
    pid = _pipeline(ctx, args)
    with ctx.db.session() as session:
        dates = occurrence_store.night_dates(session, nights)
    if args.needs_check:
        return _list_checks(args, review, pid, nights, dates)
    cells = [LIST_HEADERS]
    for night_id in nights:
        for r in review.night_rows(pid, night_id, unreviewed_only=args.unreviewed):
            cells.append((str(r.id), str(dates.get(night_id, "")),
                          f"{r.first_seen:%H:%M}" if r.first_seen else "", str(r.n_detections),
                          r.machine_label or "", f"{r.machine_score:.2f}"
                          if r.machine_score is not None else "",
                          r.review_state or ("fixture" if r.fixture else "-"),
                          r.final_label or "", r.identified_by or "",
                          f"from {r.carried_from}" if r.carried_from else
                          ("needs a look" if r.needs_check else "")))
    if len(cells) == 1 and not args.csv:
        print("No occurrences" + (" left to review" if args.unreviewed else "") +
              " in these nights (`trapgui track` makes them from detections).")
        return 0
    _print_table(cells, args.csv)
    return 0


def _print_table(cells, as_csv: bool) -> None:
    if as_csv:
        out = io.StringIO()
        w = csv.writer(out, lineterminator="\n")
        from trapgui.export.csv_export import escape_cell

        w.writerow([c.lower().replace(" ", "_") for c in cells[0]])
        w.writerows([[escape_cell(v) for v in row] for row in cells[1:]])
        sys.stdout.write(out.getvalue())
        return
    widths = [max(len(printable(row[i])) for row in cells) for i in range(len(cells[0]))]
    for row in cells:
        print("  ".join(printable(v).ljust(w) for v, w in zip(row, widths)).rstrip())


def _list_checks(args, review, pid, nights, dates) -> int:
    checks = review.needs_check(pid, nights)
    if not checks and not args.csv:
        print("Every decision of the other model configurations of these nights was carried "
              "(or settled here): nothing needs a look.")
        return 0
    cells = [CHECK_HEADERS]
    for c in checks:
        cells.append((", ".join(str(o) for o in c.look_at) or "-",
                      str(dates.get(c.night_id, "")), str(c.source_occurrence_id), c.reason))
    _print_table(cells, args.csv)
    return 0


def run_confirm(args, ctx) -> int:
    review = _review(ctx)
    if args.label is not None:
        if args.occurrences:
            raise UserInputError("Give occurrence ids or --label with --night, not both.")
        if not args.night:
            raise UserInputError("Bulk confirmation needs the night (--night YYYY-MM-DD).")
        nights = _nights(ctx, args)
        pid = _pipeline(ctx, args)
        if len(nights) != 1:
            raise UserInputError(f"{len(nights)} nights match; give --trap too so that "
                                 "exactly one does.")
        return _done(review.confirm_label_above(pid, nights[0], args.label, args.min_score,
                                                args.by))
    if not args.occurrences:
        raise UserInputError("Give the occurrences to confirm (or --label and --night).")
    return _done(review.confirm(args.occurrences, args.by))


def run_set(args, ctx) -> int:
    review = _review(ctx)
    if args.from_csv is not None:
        if args.occurrences or args.label:
            raise UserInputError("Give either --from-csv or occurrence ids with --label.")
        return _apply_csv(review, args.from_csv, args.by)
    if not args.occurrences or args.label is None:
        raise UserInputError("Give the occurrences and --label (e.g. `trapgui review set 12 "
                             "--label \"Noctuidae sp. A\"`).")
    pid = review.occurrence_scope(args.occurrences[0])[0]
    return _done(review.relabel(args.occurrences, args.label, args.rank, args.by, pid))


def _apply_csv(review, path: Path, by) -> int:
    """Every row checked first (ids are numbers, labels present), then applied one by one."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserInputError(f"{path} could not be read: {exc}.") from None
    rows = list(csv.DictReader(io.StringIO(text)))
    if not rows or "occurrence_id" not in rows[0] or "label" not in rows[0]:
        raise UserInputError(f"{path} needs the columns occurrence_id and label "
                             "(and optionally rank).")
    plan = []
    for line, row in enumerate(rows, start=2):
        try:
            occ = int(str(row["occurrence_id"]).strip())
        except ValueError:
            raise UserInputError(f"{path}, line {line}: {row['occurrence_id']!r} is not an "
                                 "occurrence id.") from None
        if not (row.get("label") or "").strip():
            raise UserInputError(f"{path}, line {line}: the label is empty.")
        review.occurrence_scope(occ)  # exists
        plan.append((occ, row["label"], (row.get("rank") or "").strip() or None))
    for occ, label, rank in plan:
        review.relabel([occ], label, rank, by)
    print(f"{len(plan)} occurrence{'s' if len(plan) != 1 else ''} labelled from {path} "
          f"({len(plan)} actions; `trapgui review undo` takes back the latest).")
    return 0


def run_reject(args, ctx) -> int:
    return _done(_review(ctx).reject(args.occurrences, args.by))


def run_fixture(args, ctx) -> int:
    return _done(_review(ctx).mark_fixture(args.occurrences, not args.not_fixture, args.by))


def run_merge(args, ctx) -> int:
    return _done(_review(ctx).merge(args.target, args.others, args.by))


def run_split(args, ctx) -> int:
    return _done(_review(ctx).split(args.occurrence, at_frame=args.at_frame,
                                    at_detection=args.at_detection, by=args.by))


def run_move(args, ctx) -> int:
    return _done(_review(ctx).move_detection(args.detection, args.target, args.by))


def run_add_box(args, ctx) -> int:
    review = _review(ctx)
    if args.pipeline:
        from trapgui.db.export_queries import pipeline_id_by_name

        pipeline = pipeline_id_by_name(ctx.db, args.pipeline)
    else:
        pipeline = review.image_pipeline(args.image)
    return _done(review.add_box(args.image, pipeline, args.box, args.occurrence, args.by))


def run_delete_box(args, ctx) -> int:
    return _done(_review(ctx).delete_box(args.detection, args.by))


def run_undo(args, ctx) -> int:
    review = _review(ctx)
    night = None
    if args.night or args.trap:
        nights = _nights(ctx, args)
        if len(nights) != 1:
            raise UserInputError(f"{len(nights)} nights match; give --trap and --night so "
                                 "that exactly one does.")
        night = nights[0]
    print(printable(review.undo(night).summary) + ".")
    return 0


def run_history(args, ctx) -> int:
    rows = _review(ctx).history(limit=max(1, args.limit))
    if not rows:
        print("No review actions yet.")
    for action_id, kind, summary, by, at, undone in rows:
        print(f"{action_id:>6}  {at:%Y-%m-%d %H:%M:%S}Z  {printable(by or ''):<20}  "
              f"{printable(summary)}{'  (undone)' if undone else ''}")
    return 0


def run_agreement(args, ctx) -> int:
    review = _review(ctx)
    nights = _nights(ctx, args) if (args.night or args.trap) else None
    pid = _pipeline(ctx, args)
    agreement = review.agreement(pid, nights)
    rows = agreement.csv_rows()
    if args.out is not None:
        from trapgui.export.review_agreement import write_agreement_csv

        write_agreement_csv(rows, args.out)
        print(f"Agreement of {agreement.overall.reviewed} reviewed occurrences written to "
              f"{args.out}.")
    if not agreement.overall.reviewed:
        print("No occurrence is reviewed yet.")
        return 0
    print(f"{'MACHINE LABEL':<32} {'REVIEWED':>8} {'CONFIRMED':>9} {'CHANGED':>7} "
          f"{'REJECTED':>8} {'AGREE':>6}")
    for t in (*agreement.per_taxon, agreement.overall):
        print(f"{printable(t.machine_label)[:32]:<32} {t.reviewed:>8} {t.confirmed:>9} "
              f"{t.changed:>7} {t.rejected:>8} {t.agreement:>6.1%}")
    changed = [(m, h, n) for m, h, n in agreement.confusion if m != h]
    if changed:
        print("\nChanged to:")
        for m, h, n in changed:
            print(f"  {printable(m)} -> {printable(h)}: {n}")
    return 0
