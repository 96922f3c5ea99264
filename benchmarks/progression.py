"""Progression benchmark: ramh_rt.compare on phantom visit pairs with known change.

    python benchmarks/progression.py [--n 60] [--seed 60000] [--backend onnxruntime-cpu] [--out benchmarks/results]

Each pair is one phantom hand (seed ``--seed + i``; seeds never used for training, which used 1000-2059) radiographed
twice by :func:`ramh_train.phantoms.visits.visit_pair`: a new pose, spacing, scanner and exposure at the follow-up.
Even-numbered pairs are unchanged; odd-numbered ones progressed by 1..12 SvdH units (cycling), spread over the hand.
Both films are analysed with the default bundle and compared with ``ramh_rt.compare`` at the default SDC.

Reported:
* per-score agreement of the predicted and true changes (31 scores per pair): exact, within one unit, Pearson r, the
  detection of an increased score (sensitivity / specificity of ``delta > 0``);
* the hand total: Pearson r and mean absolute error of the predicted against the true change, the SD of the predicted
  change on unchanged pairs (the repeat-film error that the SDC must exceed), the coverage of the stated interval;
* the progression flag (``svdh_delta > SDC``) against the truth (true change > SDC): sensitivity, specificity, and the
  false-positive rate on unchanged pairs against the stated rate ``FLAG_FALSE_POSITIVE_RATE``.

Results go to ``benchmarks/results/progression_phantoms.json`` (harness conventions: machine, revision, time).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import RESULTS_DIR, write_results  # noqa: E402


def _rate(num: int, den: int) -> float | None:
    return None if den == 0 else num / den


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=60, help="number of visit pairs")
    ap.add_argument("--seed", type=int, default=60000, help="first phantom seed (held out from training)")
    ap.add_argument("--backend", default="onnxruntime-cpu")
    ap.add_argument("--out", default=str(RESULTS_DIR))
    args = ap.parse_args(argv)

    import ramh_rt
    from ramh_rt.progression import DEFAULT_SDC, FLAG_FALSE_POSITIVE_RATE, compare
    from ramh_train.phantoms.visits import visit_pair

    analyzer = ramh_rt.Analyzer(backend=args.backend, keep_image=False)
    rows = []
    t0 = time.perf_counter()
    for i in range(args.n):
        seed = args.seed + i
        units = 0 if i % 2 == 0 else 1 + (i // 2) % 12
        tg = time.perf_counter()
        vp = visit_pair(seed, units)
        gen_s = time.perf_counter() - tg
        ta = time.perf_counter()
        a = analyzer.analyze(vp.baseline.image, spacing_mm=vp.baseline.spacing_mm, side=vp.baseline.side)
        b = analyzer.analyze(vp.followup.image, spacing_mm=vp.followup.spacing_mm, side=vp.followup.side)
        p = compare(a, b)
        an_s = time.perf_counter() - ta
        per_score = []
        for j in p.joints:
            for kind in ("BE", "JSN"):
                key = f"{kind}_{j.stem}"
                if key not in vp.delta:
                    continue
                pred = getattr(j, f"{kind.lower()}_delta")
                per_score.append({"key": key, "true": vp.delta[key], "pred": pred,
                                  "p_increase": getattr(j, f"{kind.lower()}_p_increase")})
        t = p.total
        rows.append({"seed": seed, "pose_seed": vp.pose_seed, "side": vp.baseline.side,
                     "true_delta": vp.total_delta, "true_erosion_delta": vp.erosion_delta,
                     "true_jsn_delta": vp.jsn_delta, "baseline_true_svdh": sum(vp.baseline.scores.values()),
                     "pred_delta": t.svdh_delta, "pred_expected_delta": t.expected_delta,
                     "interval": list(t.interval), "p_progression": t.p_progression, "flag": t.progressed,
                     "areas_compared": t.areas_compared, "baseline_pred_svdh": a.totals.svdh,
                     "followup_pred_svdh": b.totals.svdh, "spacing_mm": [vp.baseline.spacing_mm,
                                                                         vp.followup.spacing_mm],
                     "rotation_deg": [vp.baseline.meta["layout"]["rotation_deg_image"],
                                      vp.followup.meta["layout"]["rotation_deg_image"]],
                     "generate_s": gen_s, "analyse_compare_s": an_s, "per_score": per_score})
        print(f"pair {i + 1}/{args.n} seed {seed}: true {vp.total_delta:+d} predicted {t.svdh_delta:+d} "
              f"[{t.interval[0]:+d}, {t.interval[1]:+d}] flag {t.progressed}  ({gen_s:.1f} s + {an_s:.1f} s)",
              flush=True)
    wall = time.perf_counter() - t0

    sdc = DEFAULT_SDC
    scores = [s for r in rows for s in r["per_score"] if s["pred"] is not None]
    tru = np.array([s["true"] for s in scores])
    pred = np.array([s["pred"] for s in scores])
    tp = int(np.sum((tru > 0) & (pred > 0)))
    tn = int(np.sum((tru == 0) & (pred <= 0)))
    per_score = {"n": len(scores), "exact": float(np.mean(tru == pred)),
                 "within_1": float(np.mean(np.abs(tru - pred) <= 1)),
                 "pearson_r": float(np.corrcoef(tru, pred)[0, 1]) if tru.std() and pred.std() else None,
                 "increase_sensitivity": _rate(tp, int(np.sum(tru > 0))),
                 "increase_specificity": _rate(tn, int(np.sum(tru == 0))),
                 "n_true_increases": int(np.sum(tru > 0))}
    td = np.array([r["true_delta"] for r in rows])
    pdl = np.array([r["pred_delta"] for r in rows])
    flag = np.array([r["flag"] for r in rows])
    zero = td == 0
    pos = td > sdc
    covered = [r["interval"][0] <= r["true_delta"] <= r["interval"][1] for r in rows]
    fpr_zero = float(np.mean(flag[zero])) if zero.any() else None
    total = {"pearson_r": float(np.corrcoef(td, pdl)[0, 1]), "mae": float(np.mean(np.abs(td - pdl))),
             "bias": float(np.mean(pdl - td)),
             "sd_pred_delta_unchanged": float(np.std(pdl[zero], ddof=1)) if zero.sum() > 1 else None,
             "mean_pred_delta_unchanged": float(np.mean(pdl[zero])) if zero.any() else None,
             "interval_level": 0.95, "interval_coverage": float(np.mean(covered)),
             "interval_coverage_unchanged": float(np.mean(np.array(covered)[zero])) if zero.any() else None}
    flag_stats = {"sdc": sdc, "n_true_progressed": int(pos.sum()), "n_unchanged": int(zero.sum()),
                  "n_changed_below_sdc": int(((td > 0) & ~pos).sum()),
                  "sensitivity": _rate(int((flag & pos).sum()), int(pos.sum())),
                  "specificity": _rate(int((~flag & ~pos).sum()), int((~pos).sum())),
                  "false_positive_rate_unchanged": fpr_zero,
                  "flagged_unchanged": int(flag[zero].sum()),
                  "stated_false_positive_rate": FLAG_FALSE_POSITIVE_RATE,
                  "within_stated_rate": None if fpr_zero is None else bool(fpr_zero <= FLAG_FALSE_POSITIVE_RATE)}
    summary = {"pairs": args.n, "first_seed": args.seed, "backend": analyzer.backend.name, "wall_s": wall,
               "mean_generate_s_per_pair": statistics.fmean(r["generate_s"] for r in rows),
               "mean_analyse_compare_s_per_pair": statistics.fmean(r["analyse_compare_s"] for r in rows),
               "per_score": per_score, "total": total, "flag": flag_stats,
               "command": f"python benchmarks/progression.py --n {args.n} --seed {args.seed} --backend {args.backend}"}
    path = write_results("progression_phantoms", [{"summary": summary, "pairs": rows}], Path(args.out))
    print(f"\nper score ({per_score['n']}): exact {per_score['exact']:.3f}, within 1 {per_score['within_1']:.3f}, "
          f"r {per_score['pearson_r']}, increase sens {per_score['increase_sensitivity']} "
          f"spec {per_score['increase_specificity']}")
    print(f"hand total: r {total['pearson_r']:.3f}, MAE {total['mae']:.2f}, bias {total['bias']:+.2f}, SD of the "
          f"change on unchanged pairs {total['sd_pred_delta_unchanged']}, 95% interval coverage "
          f"{total['interval_coverage']:.2f}")
    print(f"flag (> {sdc:g}): sensitivity {flag_stats['sensitivity']}, specificity {flag_stats['specificity']}, "
          f"unchanged flagged {flag_stats['flagged_unchanged']}/{flag_stats['n_unchanged']} "
          f"(stated rate {FLAG_FALSE_POSITIVE_RATE}) -> within: {flag_stats['within_stated_rate']}")
    print(f"wrote {path}")
    return 0 if flag_stats["within_stated_rate"] in (True, None) else 1


if __name__ == "__main__":
    sys.exit(main())
