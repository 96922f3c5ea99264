"""How well the phantoms' hand shapes match real hands: joint-landmark statistics, phantom vs real.

    python benchmarks/shape_fit.py [--reference DIR] [--phantoms N] [--seed S] [--doc docs/phantom_shape_fit.md]

Ten joint landmarks are compared: thumb MCP and IP, MCP2-5 and PIP2-5 (in the real tables: the 827 adult RA hands of
RA2-DREAM, ``ra2_hand_landmarks.csv``, and the 909 Digital Hand Atlas hands of children and adolescents,
``dha_landmarks.csv``; in a phantom: the centres of its placed joints, exact ground truth), for each hand-shape model
of the generator (``PhantomConfig.shape``: the default ``ramh-phantom-1`` and ``ra2-fitted``, whose parameters
``skeleton.RA2_FITTED`` were tuned with this script until every measure's KS distance was small). Every hand is brought to a
right-hand PA frame (left hands mirrored: the thumb lies on the image's left) and described by scale-free measures
that a shape model must reproduce: proximal-phalanx lengths and the thumb's reach relative to the MCP2-MCP5 width,
finger spread and ulnar deviation angles. For each measure the table gives mean and standard deviation per set and the
two-sample Kolmogorov-Smirnov distance of the phantoms to the adult RA hands (0: same distribution, 1: disjoint).
A generalised Procrustes analysis adds the mean landmark offset (in MCP2-MCP5 widths) and the spread ratio.

The real tables are only read to compute statistics; the statistics (not the data) are written to the results JSON
and the markdown page.
"""
from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import write_results  # noqa: E402
from realism import reference_dir  # noqa: E402

#: Landmark order used throughout.
LANDMARKS = ("MCP1", "IP1", "MCP2", "MCP3", "MCP4", "MCP5", "PIP2", "PIP3", "PIP4", "PIP5")
RA2_COLUMNS = {"MCP1": "5_mcp_1", "IP1": "0_mcp_ip", "MCP2": "6_mcp_2", "MCP3": "7_mcp_3", "MCP4": "8_mcp_4",
               "MCP5": "9_mcp_5", "PIP2": "1_pip_2", "PIP3": "2_pip_3", "PIP4": "3_pip_4", "PIP5": "4_pip_5"}
DHA_COLUMNS = {"MCP1": "mcp1_18", "IP1": "ip1_19", "MCP2": "mcp2_21", "MCP3": "mcp3_25", "MCP4": "mcp4_29",
               "MCP5": "mcp5_33", "PIP2": "pip2_22", "PIP3": "pip3_26", "PIP4": "pip4_30", "PIP5": "pip5_34"}
PHANTOM_JOINTS = {"MCP1": "MCP-T", "IP1": "IP", "MCP2": "MCP-I", "MCP3": "MCP-M", "MCP4": "MCP-R", "MCP5": "MCP-S",
                  "PIP2": "PIP-I", "PIP3": "PIP-M", "PIP4": "PIP-R", "PIP5": "PIP-S"}
DEFAULT_SEED = 760_001


def _table(path: Path, columns: dict[str, str]) -> np.ndarray:
    """(n, 10, 2) landmark array of the rows that have every landmark (image pixels, y down)."""
    out = []
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            try:
                pts = [[float(row[f"{c}_x"]), float(row[f"{c}_y"])] for c in (columns[k] for k in LANDMARKS)]
            except (KeyError, ValueError):
                continue
            if np.all(np.isfinite(pts)):
                out.append(pts)
    return np.asarray(out, np.float64)


def phantom_landmarks(n: int, seed: int, shape: str) -> np.ndarray:
    """(n, 10, 2) joint centres (hand frame, mm) of the skeletons of ``n`` phantoms of consecutive seeds from
    ``seed``, drawn as :func:`ramh_train.phantoms.generate` draws them (same streams, disease and normal joint
    spaces), with the hand-shape model ``shape``. The skeleton alone is built (no rendering): the measures are
    similarity-invariant, so the hand frame gives what the image would."""
    from ramh_train.phantoms import PhantomConfig, disease, generator, skeleton

    cfg = PhantomConfig(shape=shape)
    out = []
    for k in range(n):
        patient = disease.sample_patient(generator._rng(seed + k, "patient"), cfg)
        anat = skeleton.sample_anatomy(generator._rng(seed + k, "anatomy"), cfg.hand_scale,
                                       ulnar_drift=patient.ulnar_drift, shape=shape)
        sk = skeleton.build(anat, dict(anat.normal_gap))
        out.append([sk.joints[PHANTOM_JOINTS[name]].centre for name in LANDMARKS])
    return np.asarray(out, np.float64)


def to_right_hand_frame(pts: np.ndarray) -> np.ndarray:
    """Each hand translated, rotated and scaled so that MCP2 is the origin and MCP2->MCP5 the unit +x vector (the
    thumb then lies at -x), and mirrored top-bottom where needed so that the fingers point to -y (up on screen): one
    chirality for left and right hands alike."""
    out = np.empty_like(pts)
    i2, i5, i3, p3 = LANDMARKS.index("MCP2"), LANDMARKS.index("MCP5"), LANDMARKS.index("MCP3"), LANDMARKS.index("PIP3")
    for k, p in enumerate(pts):
        q = p - p[i2]
        u = q[i5] / np.linalg.norm(q[i5])
        rot = np.array([[u[0], u[1]], [-u[1], u[0]]])  # maps u to +x
        q = q @ rot.T / np.linalg.norm(p[i5] - p[i2])
        if (q[p3] - q[i3])[1] > 0:  # fingers must point to -y (up on screen): else mirror top-bottom
            q[:, 1] *= -1
        out[k] = q
    return out


def measures(h: np.ndarray) -> dict[str, np.ndarray]:
    """Scale-free shape measures of hands in the right-hand frame (see the module docstring)."""
    L = {name: h[:, i] for i, name in enumerate(LANDMARKS)}

    def length(a, b):
        return np.linalg.norm(L[a] - L[b], axis=1)

    def angle(v, w):
        a = np.degrees(np.arctan2(v[:, 1], v[:, 0]) - np.arctan2(w[:, 1], w[:, 0]))
        return (a + 180) % 360 - 180

    up = np.tile([0.0, -1.0], (len(h), 1))
    return {
        "proximal phalanx 2 / MCP width": length("PIP2", "MCP2"),
        "proximal phalanx 3 / MCP width": length("PIP3", "MCP3"),
        "proximal phalanx 5 / MCP width": length("PIP5", "MCP5"),
        "thumb MCP-IP / MCP width": length("IP1", "MCP1"),
        "MCP1-MCP2 distance / MCP width": length("MCP1", "MCP2"),
        "MCP3 offset from the MCP2-MCP5 line (distal +)": -L["MCP3"][:, 1],
        "finger spread PIP2 vs PIP5 axes (deg)": angle(L["PIP5"] - L["MCP5"], L["PIP2"] - L["MCP2"]),
        "middle finger axis vs MCP-line normal (deg, ulnar +)": angle(L["PIP3"] - L["MCP3"], up),
        "thumb axis vs MCP-line normal (deg)": angle(L["IP1"] - L["MCP1"], up),
    }


def _ks(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import ks_2samp

    return float(ks_2samp(a, b).statistic)


def landmark_benchmark_parser(doc: str, seed: int) -> argparse.ArgumentParser:
    """The arguments every phantom-vs-real landmark benchmark takes: ``--reference``, ``--phantoms``, ``--seed``."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reference", help="shared/reference folder (default: found beside the repository)")
    ap.add_argument("--phantoms", type=int, default=300)
    ap.add_argument("--seed", type=int, default=seed)
    return ap


def measure_table(ms: dict[str, dict[str, np.ndarray]], ks_key: str, compared: list[str]) -> list[dict]:
    """One row per measure: each set's mean, SD and count, and under ``ks_key`` the KS distance of each ``compared``
    set to the first set of ``ms`` (the reference)."""
    names = list(ms)
    rows = []
    for m in ms[names[0]]:
        row = {"measure": m}
        for n in names:
            v = ms[n][m]
            row[n] = {"mean": float(v.mean()), "std": float(v.std()), "n": int(len(v))}
        row[ks_key] = {n: _ks(ms[n][m], ms[names[0]][m]) for n in compared}
        rows.append(row)
    return rows


def procrustes(sets: dict[str, np.ndarray]) -> dict:
    """Mean landmark offset of each set's Procrustes mean to the RA2 mean (MCP widths) and its spread ratio."""
    from scipy.spatial import procrustes as sp_procrustes

    ref = sets["RA2-DREAM adult RA"].mean(axis=0)
    out = {}
    for name, h in sets.items():
        aligned = []
        for p in h:
            _, q, _ = sp_procrustes(ref, p)
            aligned.append(q)
        aligned = np.asarray(aligned)
        _, mean_q, _ = sp_procrustes(ref, aligned.mean(axis=0))
        ref_n, _, _ = sp_procrustes(ref, ref)
        width = np.linalg.norm(ref_n[LANDMARKS.index("MCP5")] - ref_n[LANDMARKS.index("MCP2")])
        out[name] = {"mean_offset_per_landmark": {k: float(np.linalg.norm(mean_q[i] - ref_n[i]) / width)
                                                  for i, k in enumerate(LANDMARKS)},
                     "spread": float(np.sqrt(((aligned - aligned.mean(axis=0)) ** 2).sum(axis=2).mean()) / width)}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = landmark_benchmark_parser(__doc__, DEFAULT_SEED)
    ap.add_argument("--doc", default=str(Path(__file__).resolve().parent.parent / "docs" / "phantom_shape_fit.md"))
    args = ap.parse_args(argv)
    from ramh_train.phantoms.config import SHAPE_MODELS

    ref = reference_dir(args.reference) / "realhands"
    sets = {"RA2-DREAM adult RA": to_right_hand_frame(_table(ref / "ra2_hand_landmarks.csv", RA2_COLUMNS)),
            "Digital Hand Atlas (children)": to_right_hand_frame(_table(ref / "dha_landmarks.csv", DHA_COLUMNS))}
    for shape in SHAPE_MODELS:
        sets[f"phantoms, shape {shape}"] = to_right_hand_frame(phantom_landmarks(args.phantoms, args.seed, shape))
    ms = {name: measures(h) for name, h in sets.items()}
    names = list(sets)
    rows = measure_table(ms, "ks_vs_ra2", names[2:])
    proc = procrustes(sets)
    write_results("shape_fit", [{"measures": rows, "procrustes": proc,
                                                      "phantom_seeds": [args.seed, args.seed + args.phantoms]}])
    lines = ["# Phantom hand shapes against real hands", "",
             "Made by `python benchmarks/shape_fit.py` (statistics only; the landmark tables are not in the "
             "repository). Real landmarks: 827 adult RA hands (RA2-DREAM challenge radiographs, landmarks from "
             "github ChenfuShi/RA2_alpine_lads) and 909 Digital Hand Atlas hands (children and adolescents, IPILab). "
             f"Phantoms: {args.phantoms} hands of seeds {args.seed}.. per hand-shape model (`PhantomConfig.shape`), "
             "joint centres from their ground truth. Every hand is normalised to one chirality, MCP2 at the origin, "
             "MCP2->MCP5 the unit x vector, fingers up. KS: two-sample Kolmogorov-Smirnov distance to the adult RA "
             "hands (0: same distribution).", "",
             "| measure | " + " | ".join(f"{n} mean (sd)" for n in names) + " | "
             + " | ".join(f"KS {n[10:]}" for n in names[2:]) + " |",
             "|---|" + "---:|" * (len(names) + len(names) - 2)]
    for r in rows:
        lines.append(f"| {r['measure']} | " + " | ".join(f"{r[n]['mean']:.3f} ({r[n]['std']:.3f})" for n in names)
                     + " | " + " | ".join(f"{r['ks_vs_ra2'][n]:.2f}" for n in names[2:]) + " |")
    lines += ["", "Generalised Procrustes (similarity-aligned to the RA2 mean shape): distance of each set's mean "
              "landmark to the RA2 mean, in MCP2-MCP5 widths, and the set's spread (RMS distance to its own mean).",
              "", "| set | spread | " + " | ".join(LANDMARKS) + " |", "|---|---:|" + "---:|" * len(LANDMARKS)]
    for n in names:
        p = proc[n]
        lines.append(f"| {n} | {p['spread']:.3f} | "
                     + " | ".join(f"{p['mean_offset_per_landmark'][k]:.3f}" for k in LANDMARKS) + " |")
    Path(args.doc).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
