"""``ramh-data``: build, check and describe datasets in the RAM-H1200 layout.

Subcommands:
    phantoms  generate a synthetic dataset with the phantom generator
    variants  phantom films as stations send them (crops, two hands, turned, markers, negatives) with labels
    validate  report every problem of a dataset folder
    stats     statistics report (Markdown + JSON)

Exit codes: 0 success, 1 failure (dataset errors, failed hands), 2 usage error, 130 interrupted.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

from ramh_train.datasets.errors import DatasetError, Problem
from ramh_train.datasets.layout import DEFAULT_JOINTS_PATH, SPLITS

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class _UsageError(Exception):
    """A bad argument found after parsing (printed as a usage error, exit code 2)."""


def _int_at_least(text: str, low: int, what: str) -> int:
    """``text`` as an int >= ``low``; argparse.ArgumentTypeError naming ``what`` (e.g. "positive integer") if not."""
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a {what}, got {text!r}") from None
    if v < low:
        raise argparse.ArgumentTypeError(f"expected a {what}, got {text!r}")
    return v


def _positive_int(text: str) -> int:
    return _int_at_least(text, 1, "positive integer")


def _non_negative_int(text: str) -> int:
    return _int_at_least(text, 0, "non-negative integer")


def _fractions(text: str) -> tuple[float, float, float]:
    parts = text.split(",")
    try:
        vals = tuple(float(p) for p in parts)
    except ValueError:
        vals = ()
    if len(vals) != 3 or not all(v >= 0 and v == v and v != float("inf") for v in vals) or sum(vals) <= 0:
        raise argparse.ArgumentTypeError(f"expected three non-negative fractions train,val,test with a positive sum "
                                         f"(e.g. 0.8,0.1,0.1), got {text!r}")
    return vals  # type: ignore[return-value]


def _age_range(text: str) -> tuple[float, float]:
    parts = text.split(",")
    try:
        lo, hi = (float(p) for p in parts)
    except ValueError:
        lo = hi = float("nan")
    if not 2.0 <= lo <= hi <= 18.0:
        raise argparse.ArgumentTypeError(f"expected skeletal ages LO,HI in years with 2 <= LO <= HI <= 18, "
                                         f"got {text!r}")
    return lo, hi


def _probability(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        v = float("nan")
    if not 0.0 <= v <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a fraction in [0, 1], got {text!r}")
    return v


def _joints_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--joints-path", metavar="TEMPLATE", default=None,
                   help=f"joint-detection COCO file, '{{split}}' replaced by the split, relative to DIR unless "
                        f"absolute (default: {DEFAULT_JOINTS_PATH})")


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="ramh-data", description="Build, check and describe datasets in the RAM-H1200 "
                                 "layout (Segmentation/, SvdH_Scoring/, JointDetection/, Metadata).")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("phantoms", help="generate a synthetic dataset with the phantom generator",
                       description="Generate N synthetic hands with ramh_train.phantoms.generate(seed_i, config) "
                       "and write them in the RAM-H1200 layout. seed_i depends only on (SEED, i), so the output "
                       "does not depend on --workers. A hand that fails is reported and the others are written; "
                       "the exit code is then 1.")
    p.add_argument("--out", required=True, type=Path, metavar="DIR", help="dataset folder to write (created if "
                   "needed)")
    p.add_argument("--n", required=True, type=_positive_int, metavar="N", help="number of hands")
    p.add_argument("--seed", required=True, type=_non_negative_int, metavar="S", help="dataset seed")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--split", choices=SPLITS, help="put every hand into this split")
    g.add_argument("--splits", type=_fractions, metavar="F,F,F", default=(0.8, 0.1, 0.1),
                   help="train,val,test fractions; hands go to splits in contiguous blocks (default 0.8,0.1,0.1)")
    p.add_argument("--workers", type=_positive_int, metavar="W", default=None,
                   help=f"worker processes (default: the number of CPUs, {os.cpu_count()})")
    p.add_argument("--config", type=Path, metavar="FILE.json", default=None,
                   help="JSON object of phantom-generator settings (ramh_train.phantoms.PhantomConfig fields; "
                        "lists become tuples); default: the generator's defaults")
    p.add_argument("--appearance", choices=("default", "calibrated", "real-calibrated"), default=None,
                   help="the films' look (ramh_train.phantoms.APPEARANCES): 'real-calibrated' renders them like real "
                        "departments' films (tone curve, glare, grain, markers...); masks and scores do not change. "
                        "Sets the config's scanner profiles (default: the config's, else 'default')")
    p.add_argument("--append", action="store_true", help="add to splits that already hold data (existing records "
                   "are kept; existing stems are refused)")
    p.add_argument("--first-index", type=_non_negative_int, default=0, metavar="I",
                   help="index of the first hand, to extend a dataset with --append (default 0)")
    p.add_argument("--juvenile", type=_probability, metavar="F", default=None,
                   help="mix in healthy children's hands (epiphyses, open growth plates, carpal ossification): the "
                        "share F of the hands (PhantomConfig.juvenile_fraction; overrides --config's)")
    p.add_argument("--skeletal-age", type=_age_range, metavar="LO,HI", default=None,
                   help="skeletal ages (years, 2..18) of the juvenile hands (PhantomConfig.skeletal_age; default "
                        "2,17 with --juvenile)")
    _joints_arg(p)

    p = sub.add_parser("variants", help="phantom films as stations send them, with labels",
                       description="Write N films of each kind of ramh_train.phantoms.variants (wrist and finger "
                       "crops, partial hands, two-hand and composite films, turned and mirrored films, markers, "
                       "collimation, non-hand negatives) as PNG files and one labels.json (hands per film, each "
                       "hand's box, rotation, mirroring, field of view, side, joint ROIs).")
    p.add_argument("--out", required=True, type=Path, metavar="DIR", help="folder to write (created if needed)")
    p.add_argument("--n", required=True, type=_positive_int, metavar="N", help="films per kind")
    p.add_argument("--seed", required=True, type=_non_negative_int, metavar="S", help="first seed (S..S+N-1)")
    p.add_argument("--kinds", nargs="+", metavar="KIND", default=None, help="kinds to write (default: all)")
    p.add_argument("--config", type=Path, metavar="FILE.json", default=None,
                   help="JSON object of phantom-generator settings for the hands (PhantomConfig fields)")

    p = sub.add_parser("validate", help="report every problem of a dataset folder",
                       description="Check every file of a dataset in the RAM-H1200 layout (annotation files, "
                       "images, every mask, crops, scores, metadata) and print all problems grouped by file. Exit "
                       "code 1 when there is an error (warnings alone give 0).")
    p.add_argument("dir", type=Path, metavar="DIR", help="dataset folder")
    p.add_argument("--workers", type=_positive_int, metavar="W", default=None,
                   help=f"worker processes for decoding (default: the number of CPUs, {os.cpu_count()})")
    _joints_arg(p)

    p = sub.add_parser("stats", help="statistics report (Markdown + JSON)",
                       description="Per split: image count, image size range, pixel spacing range, score "
                       "distributions and per-hand totals, erosion pixel counts, intensity summary. Prints Markdown, "
                       "or writes FILE.md and FILE.json with --out.")
    p.add_argument("dir", type=Path, metavar="DIR", help="dataset folder")
    p.add_argument("--out", type=Path, metavar="FILE.md", default=None,
                   help="write the Markdown here and the JSON beside it (same name, .json)")
    p.add_argument("--no-intensity", action="store_true", help="skip the intensity summary (it reads every image)")
    _joints_arg(p)
    return ap


def _progress() -> bool:
    return sys.stderr.isatty()


def _cmd_phantoms(args: argparse.Namespace, generator: Callable | None) -> int:
    from ramh_train.datasets.synthetic import build_phantom_dataset

    if args.out.exists() and not args.out.is_dir():
        raise _UsageError(f"--out {args.out} exists and is not a folder")
    config: Any = None
    if args.config is not None:
        try:
            config = json.loads(args.config.read_text(encoding="utf-8"))
        except OSError as e:
            raise _UsageError(f"--config {args.config}: {e.strerror or e}") from None
        except json.JSONDecodeError as e:
            raise _UsageError(f"--config {args.config}: not valid JSON ({e.msg} at line {e.lineno})") from None
        if not isinstance(config, dict):
            raise _UsageError(f"--config {args.config}: must hold a JSON object")
    if args.skeletal_age is not None and args.juvenile is None:
        raise _UsageError("--skeletal-age needs --juvenile F (the share of juvenile hands)")
    if args.juvenile is not None:
        config = dict(config or {})
        config["juvenile_fraction"] = args.juvenile
        config["skeletal_age"] = list(args.skeletal_age or config.get("skeletal_age") or (2.0, 17.0))
    if config is not None:
        if generator is None:  # the real generator takes its own config type; a test stub takes the dict
            from ramh_train.datasets.synthetic import phantom_config

            try:
                config = phantom_config(config)
            except ValueError as e:
                raise _UsageError(f"--config {args.config}: {e}" if args.config else str(e)) from None
    if args.appearance is not None:
        if generator is None:
            import dataclasses

            from ramh_train.phantoms import APPEARANCES, PhantomConfig

            config = dataclasses.replace(config or PhantomConfig(), profiles=APPEARANCES[args.appearance])
        else:  # a test stub takes the dict
            config = {**(config or {}), "appearance": args.appearance}
    try:
        report = build_phantom_dataset(args.out, args.n, args.seed, split=args.split, fractions=args.splits,
                                       workers=args.workers, config=config, append=args.append,
                                       first_index=args.first_index, joints_path=args.joints_path,
                                       generator=generator, progress=_progress(),
                                       log=lambda m: print(f"ramh-data: {m}", file=sys.stderr))
    except ValueError as e:
        raise _UsageError(str(e)) from None
    per_split = ", ".join(f"{s} {c}" for s, c in report.written.items())
    print(f"wrote {report.total_written} of {args.n} hands ({per_split}) to {args.out} in {report.seconds:.1f} s: "
          f"{report.images_per_second:.2f} images/s")
    if report.failed:
        print(f"{len(report.failed)} hand(s) failed: " + ", ".join(str(i) for i, _, _ in report.failed),
              file=sys.stderr)
        return EXIT_FAIL
    return EXIT_OK


def _cmd_variants(args: argparse.Namespace) -> int:
    from ramh_train.datasets.synthetic import phantom_config
    from ramh_train.phantoms.variants import KINDS, write_variant_set

    config = None
    if args.config is not None:
        try:
            config = phantom_config(json.loads(args.config.read_text(encoding="utf-8")))
        except OSError as e:
            raise _UsageError(f"--config {args.config}: {e.strerror or e}") from None
        except (json.JSONDecodeError, ValueError) as e:
            raise _UsageError(f"--config {args.config}: {e}") from None
    kinds = args.kinds or list(KINDS)
    log = (lambda m: print(f"ramh-data: {m}", file=sys.stderr)) if _progress() else None
    try:
        path = write_variant_set(args.out, args.n, args.seed, kinds, config, log=log)
    except ValueError as e:
        raise _UsageError(str(e)) from None
    print(f"wrote {args.n} film(s) of each of {len(kinds)} kind(s) to {args.out}, labels in {path}")
    return EXIT_OK


def format_problems(problems: Sequence[Problem]) -> str:
    """Problems grouped by file (files in order of first appearance), errors before warnings within a file."""
    groups: dict[str, list[Problem]] = {}
    for p in problems:
        groups.setdefault(p.file, []).append(p)
    lines = []
    for file, ps in groups.items():
        lines.append(file)
        for p in sorted(ps, key=lambda p: p.severity != "error"):
            lines.append(f"  {p.severity:7s} " + (f"{p.record}: " if p.record else "") + p.message)
    return "\n".join(lines)


def _cmd_validate(args: argparse.Namespace) -> int:
    from ramh_train.datasets.validate import summarize, validate

    if not args.dir.is_dir():
        raise _UsageError(f"{args.dir} is not a folder")
    problems = validate(args.dir, joints_path=args.joints_path, workers=args.workers or os.cpu_count() or 1,
                        progress=_progress())
    if problems:
        print(format_problems(problems))
    s = summarize(problems)
    verdict = "INVALID" if s["errors"] else "valid"
    print(f"{args.dir}: {verdict}: {s['errors']} error(s), {s['warnings']} warning(s) in {s['files']} file(s)")
    return EXIT_FAIL if s["errors"] else EXIT_OK


def _cmd_stats(args: argparse.Namespace) -> int:
    from ramh_train.datasets.fileio import atomic_write_bytes, atomic_write_json
    from ramh_train.datasets.stats import dataset_stats, stats_markdown

    if not args.dir.is_dir():
        raise _UsageError(f"{args.dir} is not a folder")
    if args.out is not None and args.out.suffix.lower() == ".json":
        raise _UsageError("--out names the Markdown file (FILE.md); the JSON is written beside it")
    stats = dataset_stats(args.dir, joints_path=args.joints_path, intensity=not args.no_intensity,
                          progress=_progress())
    md = stats_markdown(stats)
    if args.out is None:
        print(md, end="")
    else:
        atomic_write_bytes(args.out, md.encode("utf-8"))
        json_path = args.out.with_suffix(".json")
        atomic_write_json(json_path, stats, indent=1)
        print(f"wrote {args.out} and {json_path}")
    return EXIT_OK


def main(argv: Sequence[str] | None = None, *, generator: Callable | None = None) -> int:
    """Run ``ramh-data``; returns the exit code.

    Args:
        argv: arguments (default ``sys.argv[1:]``).
        generator: for tests only: replaces ``ramh_train.phantoms.generate`` in ``phantoms`` (the command line
            always uses the real generator).
    """
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse prints usage/help itself
        return int(e.code) if isinstance(e.code, int) else EXIT_USAGE
    try:
        if args.command == "phantoms":
            return _cmd_phantoms(args, generator)
        if args.command == "variants":
            return _cmd_variants(args)
        if args.command == "validate":
            return _cmd_validate(args)
        return _cmd_stats(args)
    except _UsageError as e:
        parser.print_usage(sys.stderr)
        print(f"ramh-data {args.command}: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except DatasetError as e:
        print(f"ramh-data {args.command}: dataset error: {e}\n(run 'ramh-data validate' to see every problem)",
              file=sys.stderr)
        return EXIT_FAIL
    except (RuntimeError, ValueError, OSError) as e:
        print(f"ramh-data {args.command}: error: {e}", file=sys.stderr)
        return EXIT_FAIL
    except KeyboardInterrupt:
        print(f"ramh-data {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
