#!/usr/bin/env python3
"""Are two revisions' results bit-identical? The check that a refactoring changed no number.

``analyze_hands()`` runs on a fixed image set — the held-out phantom test set of the default bundle (``ramh-data
phantoms --n 60 --seed 2000 --split test``), the bundled sample hand, and, where the real reference data is present,
the four RAM-W600 wrist crops — and every hand's result is reduced to a SHA-256 of its JSON with masks
(``Analysis.to_json(include_masks=True)``, i.e. every bone mask and the erosion mask as RLE, every score,
probability, box and ROI, the qc) minus the timings and with the source path cut to the file name, plus the raw bytes of the erosion mask. Two records are equal
when every digest is.

    python tools/identity_check.py record --out A.json            # the checkout on PYTHONPATH
    python tools/identity_check.py compare A.json B.json          # exit 1 and the differing images when not equal
    python tools/identity_check.py between BASE_REV HEAD_REV --out benchmarks/results/identity.json

``between`` checks both revisions out into temporary git worktrees, builds each one's core (tools/dev_build.sh,
CUDA off), records each in its own process and compares. Results are only comparable on one machine: ONNX Runtime's
CPU kernels may round differently on another instruction set. Exit status: 0 identical, 1 different, 2 usage error.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PHANTOM_SET = {"n": 60, "seed": 2000, "split": "test"}


def _reference_root() -> Path | None:
    for cand in (os.environ.get("RAMH_SHARED"), ROOT.parent / "shared", Path("/work/shared")):
        if cand and (Path(cand) / "reference").is_dir():
            return Path(cand) / "reference"
    return None


def _phantom_images(cache: Path) -> list[Path]:
    """The held-out phantom test set, generated once into ``cache`` (deterministic from its seed)."""
    out = cache / f"ph-{PHANTOM_SET['split']}-{PHANTOM_SET['seed']}-{PHANTOM_SET['n']}"
    if not (out / ".complete").exists():
        subprocess.run([sys.executable, "-m", "ramh_train.data_cli", "phantoms", "--out", str(out),
                        "--n", str(PHANTOM_SET["n"]), "--seed", str(PHANTOM_SET["seed"]),
                        "--split", PHANTOM_SET["split"]], check=True)
        (out / ".complete").write_text("")
    return sorted((out / "Segmentation" / PHANTOM_SET["split"]).glob("*.bmp"))


def image_set(cache: Path) -> list[Path]:
    """Every image the check analyses, in a fixed order."""

    from ramh_rt.cli import sample_image_path

    images = _phantom_images(cache) + [sample_image_path()]
    ref = _reference_root()
    if ref is not None:
        images += sorted((ref / "ramw600").glob("*.png"))
    return images


def digest(analysis) -> dict:
    """SHA-256 of one hand's result without its timings, and of its erosion mask's bytes."""
    d = analysis.to_dict(include_masks=True)
    d["meta"].pop("timings_ms", None)
    # The file's name, not its path: the sample lies inside each checkout, and the checkouts differ.
    d["meta"]["source"] = Path(d["meta"]["source"]).name
    text = json.dumps(d, sort_keys=True, separators=(",", ":"))
    mask = analysis.erosion_mask
    return {"json_sha256": hashlib.sha256(text.encode()).hexdigest(),
            "erosion_mask_sha256": hashlib.sha256(mask.tobytes() + str(mask.shape).encode()).hexdigest()}


def record(cache: Path) -> dict:
    """Digests of every image of :func:`image_set` by the ramh_rt on ``sys.path``: ``{"ramh_rt": version,
    "python": version, "images": {key: [digest per hand] or {"error", "message"}}}`` (a failed hand of a two-hand
    film is an error entry in its place)."""
    import ramh_rt

    out: dict[str, object] = {}
    for path in image_set(cache):
        key = f"phantom/{path.name}" if path.suffix == ".bmp" else path.name
        try:
            hands = ramh_rt.analyze_hands(path)
            out[key] = [{"error": a.error} if isinstance(a, ramh_rt.AnalysisError) else digest(a) for a in hands]
        except ramh_rt.RamhError as e:  # an image the SDK refuses is part of the result too
            out[key] = {"error": type(e).__name__, "message": str(e)}
    return {"ramh_rt": ramh_rt.__version__, "python": platform.python_version(), "images": out}


def compare(a: dict, b: dict) -> list[str]:
    """The image keys whose digests differ (or are present in one record only)."""
    ia, ib = a["images"], b["images"]
    return sorted(k for k in set(ia) | set(ib) if ia.get(k) != ib.get(k))


def _git(*args: str, cwd: Path = ROOT) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def between(base: str, head: str, cache: Path) -> dict:
    """Record ``base`` and ``head`` in their own worktrees and compare them."""
    records = {}
    revs = {name: _git("rev-parse", "--short", rev) for name, rev in (("base", base), ("head", head))}
    with tempfile.TemporaryDirectory(prefix="ramh-identity-") as tmp:
        for name, rev in revs.items():
            wt = Path(tmp) / name
            _git("worktree", "add", "--detach", "-q", str(wt), rev)
            try:
                subprocess.run(["bash", "tools/dev_build.sh", "-DRAMH_CUDA=OFF"], cwd=wt, check=True,
                               env={**os.environ, "BUILD_DIR": "build/identity", "PYTHON": sys.executable},
                               stdout=subprocess.DEVNULL)
                rec_path = Path(tmp) / f"{name}.json"
                # This file's digest for both revisions (an older revision may have another copy, or none).
                subprocess.run([sys.executable, str(Path(__file__).resolve()), "record", "--out", str(rec_path),
                                "--cache", str(cache)], cwd=wt, check=True,
                               env={**os.environ, "PYTHONPATH": str(wt / "python")})
                records[name] = json.loads(rec_path.read_text())
            finally:
                _git("worktree", "remove", "--force", str(wt))
    differ = compare(records["base"], records["head"])
    return {"check": "analyze_hands() results, base vs head", "base": revs["base"], "head": revs["head"],
            "time": time.strftime("%Y-%m-%dT%H:%M:%S"), "machine": platform.processor() or platform.machine(),
            "images": len(records["head"]["images"]), "identical": not differ, "differing_images": differ,
            "digests": records["head"]["images"]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("record", help="digests of the checkout on PYTHONPATH")
    r.add_argument("--out", required=True, type=Path)
    c = sub.add_parser("compare", help="compare two records")
    c.add_argument("a", type=Path)
    c.add_argument("b", type=Path)
    b = sub.add_parser("between", help="record two revisions in temporary worktrees and compare")
    b.add_argument("base")
    b.add_argument("head")
    b.add_argument("--out", type=Path)
    for p in (r, b):
        p.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "ramh-identity-cache",
                       help="where the phantom test set is generated once (default: %(default)s)")
    args = ap.parse_args(argv)
    if args.cmd == "record":
        from ramh_rt.fs import write_atomic

        rec = record(args.cache)
        write_atomic(args.out, json.dumps(rec, indent=1, sort_keys=True))
        print(f"{len(rec['images'])} images recorded -> {args.out}")
        return 0
    if args.cmd == "compare":
        differ = compare(json.loads(args.a.read_text()), json.loads(args.b.read_text()))
    else:
        res = between(args.base, args.head, args.cache)
        if args.out:
            tmp = args.out.with_suffix(".tmp")
            tmp.write_text(json.dumps(res, indent=1) + "\n")
            tmp.replace(args.out)
        differ = res["differing_images"]
        print(f"{res['base']} vs {res['head']}: {res['images']} images, "
              f"{'identical' if not differ else f'{len(differ)} differ'}")
    for k in differ:
        print(f"differs: {k}")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
