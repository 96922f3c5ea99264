"""Juvenile phantom hands against the 909 real children's hands of the Digital Hand Atlas: landmark statistics.

    python benchmarks/juvenile_shape.py [--reference DIR] [--phantoms N] [--seed S] [--skeletal-age LO,HI]
                                        [--doc docs/phantom_juvenile.md] [--figure docs/phantom_juvenile.png]

The atlas table ``dha_landmarks.csv`` (children and adolescents) is compared with juvenile phantoms
(``PhantomConfig(skeletal_age=...)``, every hand-shape model) on the scale-free measures of ``shape_fit.py`` plus the
metacarpal and middle-phalanx lengths (CMC1-MCP1, CMC3-MCP3, PIP-DIP of fingers 2, 3 and 5, relative to the
MCP2-MCP5 width), which set the child proportions of ``ramh_train.phantoms.juvenile.LENGTH_FACTORS``. Phantom
landmarks are the placed joint centres of the hands as the generator draws them (``generator.draw_hand``). For each
measure: mean and SD per set and the two-sample Kolmogorov-Smirnov distance of the phantoms to the atlas hands.

The figure shows three juvenile phantoms (young, school age, adolescent) and the Procrustes mean landmarks of the
atlas hands and of the juvenile phantoms. Only statistics of the real table are written, never its rows.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import write_results  # noqa: E402
from realism import reference_dir  # noqa: E402
from shape_fit import (DHA_COLUMNS, LANDMARKS, PHANTOM_JOINTS, landmark_benchmark_parser, measure_table,  # noqa: E402
                       measures, to_right_hand_frame)  # noqa: E402

#: Landmarks beyond shape_fit's ten: atlas column -> phantom joint.
EXTRA = {"CMC1": ("cmc1_17", "CMC-T"), "CMC3": ("cmc3_15", "CMC-M"), "DIP2": ("dip2_23", "DIP-I"),
         "DIP3": ("dip3_27", "DIP-M"), "DIP5": ("dip5_35", "DIP-S")}
ALL = LANDMARKS + tuple(EXTRA)
DEFAULT_SEED = 780_001
REPO = Path(__file__).resolve().parent.parent


def atlas_landmarks(ref: Path) -> np.ndarray:
    """(n, 15, 2) landmarks (:data:`ALL` order) of the atlas hands that have all of them."""
    import csv

    columns = {**DHA_COLUMNS, **{k: c for k, (c, _) in EXTRA.items()}}
    out = []
    with (ref / "realhands" / "dha_landmarks.csv").open(newline="") as f:
        for row in csv.DictReader(f):
            try:
                pts = [[float(row[f"{columns[k]}_x"]), float(row[f"{columns[k]}_y"])] for k in ALL]
            except (KeyError, ValueError):
                continue
            if np.all(np.isfinite(pts)):
                out.append(pts)
    return np.asarray(out, np.float64)


def phantom_landmarks(n: int, seed: int, shape: str, skeletal_age: tuple[float, float]) -> tuple[np.ndarray, list]:
    """(n, 15, 2) joint centres (hand frame, mm) of ``n`` juvenile phantoms of seeds ``seed``.., and their ages."""
    from ramh_train.phantoms import PhantomConfig, generator

    cfg = PhantomConfig(shape=shape, skeletal_age=skeletal_age)
    pts, ages = [], []
    for k in range(n):
        _, _, _, _, sk, age = generator.draw_hand(seed + k, cfg)
        joints = {**PHANTOM_JOINTS, **{k2: j for k2, (_, j) in EXTRA.items()}}
        pts.append([sk.joints[joints[name]].centre for name in ALL])
        ages.append(age)
    return np.asarray(pts, np.float64), ages


def all_measures(h: np.ndarray) -> dict[str, np.ndarray]:
    """shape_fit's measures plus the bone lengths of the extra landmarks, in MCP2-MCP5 widths (right-hand frame)."""
    out = measures(h[:, :len(LANDMARKS)])
    idx = {name: i for i, name in enumerate(ALL)}

    def length(a, b):
        return np.linalg.norm(h[:, idx[a]] - h[:, idx[b]], axis=1)

    out["thumb metacarpal CMC1-MCP1 / MCP width"] = length("CMC1", "MCP1")
    out["metacarpal 3 CMC3-MCP3 / MCP width"] = length("CMC3", "MCP3")
    out["middle phalanx 2 / MCP width"] = length("PIP2", "DIP2")
    out["middle phalanx 3 / MCP width"] = length("PIP3", "DIP3")
    out["middle phalanx 5 / MCP width"] = length("PIP5", "DIP5")
    return out


def _procrustes_mean(h: np.ndarray) -> np.ndarray:
    from scipy.spatial import procrustes

    ref = h.mean(axis=0)
    for _ in range(3):
        ref = np.mean([procrustes(ref, p)[1] for p in h], axis=0)
    return ref


def figure(path: Path, atlas: np.ndarray, phantom: np.ndarray, seed: int) -> None:
    """Three juvenile phantoms (ages 4, 8, 13) and the mean landmark shapes of the atlas and the phantoms (PNG)."""
    import cv2
    from scipy.spatial import procrustes

    from ramh_train.phantoms import PhantomConfig, generate

    H = 300
    films = []
    for age in (4.0, 8.0, 13.0):
        s = generate(seed, PhantomConfig(skeletal_age=(age, age), side="R", collimation_probability=0.0,
                                         ring_probability=0.0, cannula_probability=0.0, spacing_mm=(0.25, 0.25),
                                         shape="ra2-fitted"))
        films.append((age, s.image if s.image.dtype == np.uint8 else (s.image >> 8).astype(np.uint8)))
    # One scale (mm per pixel) for the three films, so that the hands' growth shows; smaller films padded at the top.
    f = H / max(img.shape[0] for _, img in films)
    tiles = []
    for age, img in films:
        t = cv2.resize(img, (int(round(img.shape[1] * f)), int(round(img.shape[0] * f))), interpolation=cv2.INTER_AREA)
        t = np.pad(t, ((H - t.shape[0], 0), (0, 0)), constant_values=int(np.median(img[:8])))
        t = cv2.cvtColor(t, cv2.COLOR_GRAY2BGR)
        cv2.putText(t, f"phantom, age {age:.0f}", (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1,
                    cv2.LINE_AA)
        tiles.append(t)
    # Mean shapes: both sets Procrustes-aligned to the atlas mean, drawn fingers up.
    ref = _procrustes_mean(atlas)
    ph = procrustes(ref, _procrustes_mean(phantom))[1]
    ref = procrustes(ref, ref)[1]
    panel = np.full((H, H, 3), 255, np.uint8)
    allp = np.vstack([ref, ph])
    lo, hi = allp.min(axis=0), allp.max(axis=0)
    scale = (H - 60) / float((hi - lo).max())

    def px(p):
        q = (p - lo) * scale + 30
        return int(q[0]), int(q[1]) + 10

    idx = {n: i for i, n in enumerate(ALL)}
    chains = [("CMC1", "MCP1", "IP1")] + [(f"MCP{d}", f"PIP{d}") for d in (4,)] + [
        ("CMC3", "MCP3", "PIP3", "DIP3"), ("MCP2", "PIP2", "DIP2"), ("MCP5", "PIP5", "DIP5"),
        ("MCP2", "MCP3", "MCP4", "MCP5")]
    for pts, colour in ((ref, (40, 40, 200)), (ph, (200, 110, 0))):
        for chain in chains:
            for a, b in zip(chain[:-1], chain[1:]):
                cv2.line(panel, px(pts[idx[a]]), px(pts[idx[b]]), colour, 1, cv2.LINE_AA)
        for p in pts:
            cv2.circle(panel, px(p), 3, colour, -1, cv2.LINE_AA)
    cv2.putText(panel, "mean joint landmarks", (6, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(panel, f"red: {len(atlas)} atlas children", (6, H - 26), cv2.FONT_HERSHEY_SIMPLEX, 0.42,
                (40, 40, 200), 1, cv2.LINE_AA)
    cv2.putText(panel, f"blue: {len(phantom)} juvenile phantoms", (6, H - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.42,
                (200, 110, 0), 1, cv2.LINE_AA)
    # Landmark image frame has y down and the hands' fingers point to -y: already upright.
    out = np.hstack(tiles + [panel])
    ok, buf = cv2.imencode(".png", out, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    if not ok:
        raise RuntimeError("PNG encoding failed")
    from ramh_rt import fs

    fs.write_atomic(path, buf.tobytes())


def sdk_on_juveniles(n: int, seed: int, skeletal_age: tuple[float, float]) -> list[dict]:
    """The SDK's default bundle on ``n`` juvenile phantoms (healthy, true SvdH 0): per hand its skeletal age, SvdH
    total, qc status and reason codes."""
    import ramh_rt
    from ramh_train.phantoms import PhantomConfig, generate

    out = []
    for k in range(n):
        s = generate(seed + k, PhantomConfig(skeletal_age=skeletal_age))
        a = ramh_rt.analyze(s.image, spacing_mm=s.spacing_mm)
        out.append({"seed": seed + k, "skeletal_age": round(s.meta["juvenile"]["skeletal_age"], 1),
                    "sex": s.meta["sex"], "svdh": a.totals.svdh, "partial_svdh": a.totals.partial_svdh,
                    "qc_status": a.qc.status, "qc_reasons": [r.code for r in a.qc.reasons]})
    return out


def main(argv: list[str] | None = None) -> int:
    ap = landmark_benchmark_parser(__doc__, DEFAULT_SEED)
    ap.add_argument("--skeletal-age", default="3,17", help="LO,HI years of the phantoms (default 3,17)")
    ap.add_argument("--sdk", type=int, default=12,
                    help="juvenile phantoms to analyse with the default bundle (0: none)")
    ap.add_argument("--doc", default=str(REPO / "docs" / "phantom_juvenile.md"))
    ap.add_argument("--figure", default=str(REPO / "docs" / "phantom_juvenile.png"))
    args = ap.parse_args(argv)
    from ramh_rt import fs
    from ramh_train.phantoms.config import SHAPE_MODELS

    lo, hi = (float(v) for v in args.skeletal_age.split(","))
    atlas = to_right_hand_frame(atlas_landmarks(reference_dir(args.reference)))
    sets = {"Digital Hand Atlas (children)": atlas}
    for shape in SHAPE_MODELS:
        sets[f"juvenile phantoms, shape {shape}"] = to_right_hand_frame(
            phantom_landmarks(args.phantoms, args.seed, shape, (lo, hi))[0])
    ms = {name: all_measures(h) for name, h in sets.items()}
    names = list(sets)
    rows = measure_table(ms, "ks_vs_atlas", names[1:])
    sdk = sdk_on_juveniles(args.sdk, args.seed, (lo, hi)) if args.sdk else []
    write_results("juvenile_shape", [{"measures": rows, "phantom_seeds": [args.seed, args.seed + args.phantoms],
                                      "skeletal_age": [lo, hi], "default_bundle_on_juveniles": sdk}])
    fitted = names[-1]
    figure(Path(args.figure), sets[names[0]], sets[fitted], args.seed)
    lines = ["# Juvenile phantom hands", "",
             "`PhantomConfig(skeletal_age=(lo, hi))` (or `ramh-data phantoms --juvenile F --skeletal-age LO,HI`) "
             "renders healthy children's hands (module `ramh_train.phantoms.juvenile`): the hand scaled to the age, "
             "separate epiphyses at the phalangeal bases, the thumb metacarpal base, the heads of metacarpals 2-5 and "
             "the distal radius and ulna, with a radiolucent growth plate (physis) between epiphysis and metaphysis "
             "that narrows with age and closes at fusion; carpal bones appearing one by one and growing from small "
             "round centres; no articular rims over neighbours and no sesamoids before adolescence. Girls mature "
             "about 1.2 years earlier. The hands are healthy (no RA: every score 0, no lesions). The epiphyses belong "
             "to their bone's mask; the physis is in no bone mask; a carpal bone not yet ossified has an empty mask. "
             "The default (`skeletal_age=None`) draws exactly the adult phantoms it drew before; with "
             "`juvenile_fraction` < 1 the adult hands of a mixed set are those same phantoms.", "",
             f"![juvenile phantoms and mean landmark shapes]({Path(args.figure).name})", "",
             "Left: juvenile phantoms at skeletal ages 4, 8 and 13 (shape `ra2-fitted`, one scale). Right: "
             "Procrustes mean of "
             f"the joint landmarks of the {len(atlas)} Digital Hand Atlas hands (red) and of {args.phantoms} "
             f"juvenile phantoms, shape `ra2-fitted`, ages {lo:g}-{hi:g} (blue).", "",
             "## Proportions against the atlas", "",
             f"Made by `python benchmarks/juvenile_shape.py` ({args.phantoms} phantoms per shape model, seeds "
             f"{args.seed}.., skeletal ages uniform in {lo:g}-{hi:g}; statistics only, the landmark table is not in "
             "the repository). Measures as in docs/phantom_shape_fit.md, relative to the MCP2-MCP5 width; KS: "
             "two-sample Kolmogorov-Smirnov distance to the atlas hands (0: same distribution). The length factors "
             "`juvenile.LENGTH_FACTORS` (metacarpals 0.82, proximal and middle phalanges 0.88, distal phalanges "
             "0.90 of the adult shape model's lengths; `juvenile.BONE_LENGTH_FACTORS`: PP5 0.96, MP5 0.90, MP2 "
             "0.95 on top) were set from these measures with the `ra2-fitted` model, which was fitted to adult "
             "hands; the default `ramh-phantom-1` keeps its own (longer-fingered) proportions.", "",
             "| measure | " + " | ".join(f"{n} mean (sd)" for n in names) + " | "
             + " | ".join(f"KS {n.split(', ')[-1]}" for n in names[1:]) + " |",
             "|---|" + "---:|" * (2 * len(names) - 1)]
    for r in rows:
        lines.append(f"| {r['measure']} | " + " | ".join(f"{r[n]['mean']:.3f} ({r[n]['std']:.3f})" for n in names)
                     + " | " + " | ".join(f"{r['ks_vs_atlas'][n]:.2f}" for n in names[1:]) + " |")
    if sdk:
        tot = [r["svdh"] for r in sdk if r["svdh"] is not None]
        flagged = sum("skeletally_immature" in r["qc_reasons"] for r in sdk)
        lines += ["", "## The current default bundle on juvenile phantoms", "",
                  f"The shipped bundle was trained on adult phantoms only. On {len(sdk)} juvenile phantoms (seeds "
                  f"{args.seed}.., ages {lo:g}-{hi:g}, true SvdH 0) it scores SvdH median "
                  f"{float(np.median(tot)) if tot else 'n/a'}, max {max(tot) if tot else 'n/a'} (growth plates and "
                  f"open epiphyses read as erosions and narrowing, as on the real bone-age films: "
                  f"benchmarks/results/real_hands_default.md), and its quality control flags "
                  f"{flagged} of {len(sdk)} as `skeletally_immature` (status review). Mixing juvenile hands into the "
                  "training set (`ramh-data phantoms --juvenile F`) gives the models healthy examples of this "
                  "anatomy.", "", "| seed | age | sex | svdh | qc | reasons |", "|---|---:|---|---:|---|---|"]
        lines += [f"| {r['seed']} | {r['skeletal_age']} | {r['sex']} | {r['svdh']} | {r['qc_status']} | "
                  f"{', '.join(r['qc_reasons'])} |" for r in sdk]
    lines += ["", "## Skeletal maturation", "",
              "Representative ages (boys; girls 1.2 years earlier) from the bone-age literature (Greulich-Pyle "
              "atlas, Tanner-Whitehouse stages), rounded to half years: `juvenile.EPIPHYSES` (appearance, the "
              "epiphysis as wide as its metaphysis, fusion) and `juvenile.CARPAL_AGES` (appearance, adult size). "
              "The hand length follows a growth chart (`juvenile.size_factor`: 0.55 of an adult's at 2 years, "
              "0.81 at 10, 1.0 at 18), and the detector field shrinks with it (a child's film is collimated to the "
              "child's hand).", "",
              "Tests: tests/test_phantom_juvenile.py (adult hands unchanged, determinism, the intensity dip across "
              "the physis of PP3, MP4, DP2, MC3 and the radius, masks, healthy labels, the CLI flags)."]
    fs.write_atomic(Path(args.doc), "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
