"""`trapgui trap list | show TRAP | set TRAP [--field VALUE ...] | rename TRAP NAME |
remove TRAP [--yes]`: trap (deployment) metadata, and a trap's place in the catalogue.

TRAP is a trap's id, name or folder. ``set`` validates every value (latitude 95 is refused with
a sentence) and saves nothing when one is wrong; an empty value ("") clears a field.
"""

from __future__ import annotations

from trapgui.core.trap_metadata import FIELDS


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "trap", help="show or set trap metadata (location, camera clock, light...)",
        description="Trap (deployment) metadata: where the trap stood, its camera clock, the "
        "trap and light, the deployment's start and end. Exports (Camtrap DP, Darwin Core) "
        "need the coordinates and the camera clock.")
    actions = p.add_subparsers(dest="trap_action", metavar="ACTION", required=True)
    ls = actions.add_parser("list", help="list the traps with their metadata",
                            description="List every trap: id, name, site, coordinates, camera "
                            "clock, deployment start and end, folder.")
    ls.set_defaults(func=run_list)
    show = actions.add_parser("show", help="show one trap's metadata",
                              description="Show every metadata field of one trap; start and end "
                              "default to the first and last image.")
    show.add_argument("trap", metavar="TRAP", help="the trap's id, name or folder")
    show.set_defaults(func=run_show)
    s = actions.add_parser(
        "set", help="set one trap's metadata",
        description="Set metadata fields of one trap. Every value is checked first; when one is "
        "wrong nothing is saved. Give an empty value (\"\") to clear a field.",
        epilog="Example: trapgui trap set vermont --latitude 44.4759 --longitude -73.2121 "
        "--uncertainty 10 --timezone America/New_York --light \"LepiLED 15 W\"")
    s.add_argument("trap", metavar="TRAP", help="the trap's id, name or folder")
    for f in FIELDS:
        text = f"{f.help} Example: {f.example}." if f.example else f.help
        if f.key == "clock":  # argparse reads "-04:00" as an option
            text += " Write a negative offset as --timezone=-04:00 or as UTC-04:00."
        s.add_argument(f.option, dest=f"field_{f.key}", metavar="VALUE", help=text)
    s.set_defaults(func=run_set)
    rn = actions.add_parser("rename", help="give a trap a new name",
                            description="Give a trap a new display name (its folder stays).")
    rn.add_argument("trap", metavar="TRAP", help="the trap's id, name or folder")
    rn.add_argument("name", metavar="NAME", help="the new name")
    rn.set_defaults(func=run_rename)
    rm = actions.add_parser(
        "remove", help="remove a trap and its results from the catalogue",
        description="Remove a trap from the catalogue with everything it holds of it: nights, "
        "images, processing results, individuals. The image files on disk are not touched; "
        "scanning the folder again adds the trap back (unprocessed).")
    rm.add_argument("trap", metavar="TRAP", help="the trap's id, name or folder")
    rm.add_argument("--yes", action="store_true",
                    help="do not ask for confirmation (needed when not run in a terminal)")
    rm.set_defaults(func=run_remove)


def _value(text: str) -> str:
    return text if text else "-"


def run_list(args, ctx) -> int:
    from trapgui.db.trap_metadata import list_traps

    traps = list_traps(ctx.db)
    if not traps:
        print("No traps in the catalogue yet. Run `trapgui scan FOLDER` to add a trap folder.")
        return 0
    headers = ("ID", "NAME", "SITE", "LATITUDE", "LONGITUDE", "CLOCK", "START", "END", "FOLDER")
    rows = [headers]
    for t in traps:
        v = t.values.as_text()
        rows.append((str(t.id), t.name, _value(v["site_name"]), _value(v["latitude"]),
                     _value(v["longitude"]), t.clock.describe(),
                     t.start.strftime("%Y-%m-%d %H:%M") if t.start else "-",
                     t.end.strftime("%Y-%m-%d %H:%M") if t.end else "-", t.path))
    widths = [max(len(r[i]) for r in rows) for i in range(len(headers))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    return 0


def format_trap(t) -> str:
    values = t.values.as_text()
    width = max(len(f.label) for f in FIELDS) + 1
    lines = [f"{'Id':<{width}} {t.id}", f"{'Folder':<{width}} {t.path}",
             f"{'Identifier':<{width}} {t.uid}"]
    for f in FIELDS:
        text = values[f.key]
        if f.key == "clock":
            text = t.clock.describe()
        elif f.key == "deployment_start" and not text:
            text = (f"{t.first_image:%Y-%m-%d %H:%M:%S} (first image)" if t.first_image
                    else "-")
        elif f.key == "deployment_end" and not text:
            text = f"{t.last_image:%Y-%m-%d %H:%M:%S} (last image)" if t.last_image else "-"
        lines.append(f"{f.label:<{width}} {text or '-'}")
    lines.append(f"{'Images':<{width}} {t.images:,} in {t.nights} night"
                 f"{'s' if t.nights != 1 else ''}")
    missing = [what for what, ok in (("coordinates", t.has_coordinates),
                                     ("camera clock", t.clock.known)) if not ok]
    if missing:
        lines.append(f"Camtrap DP and Darwin Core exports need: {', '.join(missing)} "
                     f"(`trapgui trap set {t.id} ...`).")
    return "\n".join(lines)


def run_show(args, ctx) -> int:
    from trapgui.db.trap_metadata import resolve_trap

    print(format_trap(resolve_trap(ctx.db, args.trap)))
    return 0


def run_set(args, ctx) -> int:
    from trapgui.core.errors import UserInputError
    from trapgui.db.trap_metadata import resolve_trap, update_trap

    changes = {f.key: getattr(args, f"field_{f.key}") for f in FIELDS
               if getattr(args, f"field_{f.key}") is not None}
    if not changes:
        raise UserInputError("Nothing to set: give at least one field, e.g. --latitude 44.5.",
                             hint="`trapgui trap set --help` lists the fields.")
    trap = resolve_trap(ctx.db, args.trap)
    updated = update_trap(ctx.db, trap.id, changes)
    print(f"Saved {len(changes)} field{'s' if len(changes) != 1 else ''} of trap "
          f"{updated.name!r}.")
    print(format_trap(updated))
    return 0


def run_rename(args, ctx) -> int:
    from trapgui.db.trap_metadata import rename_trap, resolve_trap

    trap = resolve_trap(ctx.db, args.trap)
    renamed = rename_trap(ctx.db, trap.id, args.name)
    print(f"Renamed trap {trap.name!r} to {renamed.name!r}.")
    return 0


def run_remove(args, ctx) -> int:
    import sys

    from trapgui.core.errors import UserInputError
    from trapgui.db.trap_metadata import remove_trap, resolve_trap, trap_contents

    trap = resolve_trap(ctx.db, args.trap)
    what = trap_contents(ctx.db, trap.id).describe()
    if not args.yes:
        if not sys.stdin.isatty():
            raise UserInputError(f"Removing trap {trap.name!r} takes {what} out of the "
                                 "catalogue; nothing was removed.",
                                 hint="Add --yes to remove it without a question.")
        answer = input(f"Remove trap {trap.name!r} ({trap.path}) and its {what} from the "
                       "catalogue? The image files stay on disk. [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("Nothing was removed.")
            return 1
    removed = remove_trap(ctx.db, trap.id)
    print(f"Removed trap {trap.name!r}: {removed.describe()} (the image files stay on disk).")
    return 0
