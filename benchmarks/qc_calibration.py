"""Quality control and uncertainty of a bundle, measured on unseen-seed phantoms and on the real reference films.

    PYTHONPATH=python python benchmarks/qc_calibration.py --bundle models/ramh-default \\
        --test phantoms:5000:100 --out benchmarks/results/qc_calibration.json

Writes a JSON report and a Markdown summary next to it (same stem, ``.md``):

* in domain (phantoms of a dataset seed the bundle never saw, neither in training nor in ``qc-stats``): the share of
  hands with any review/reject reason (false alarms), per reason code; the domain distances;
* out of domain: the real films of ``shared/reference`` (``realhands/rsna``, ``realhands/dha``, ``ramw600``) and
  the share flagged ``out_of_domain``, and how many hands are flagged ``skeletally_immature`` (all of the real
  hands are children's, with open growth plates);
* calibration: per score kind (BE, JSN) the reliability diagram of the reported score's probability (10 bins:
  mean confidence, accuracy, count) and its expected calibration error (ECE), the calibrated expected absolute error
  against the observed one (binned), the share of joints flagged for review and their observed error; the coverage of
  the total's interval (``svdh_interval``).

The analyses are the runtime's own (``Analyzer.analyze``); the domain distances and the calibrated uncertainty are
recomputed from the recorded features and probabilities with the bundle's ``qc`` section, so ``--records`` lets a
rerun after ``ramh-train qc-stats`` skip the analyses (``--from-records``).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "python"))

from ramh_rt import qc  # noqa: E402
from ramh_rt.bundle import Bundle  # noqa: E402
from ramh_rt.errors import RamhError  # noqa: E402
from ramh_rt.fs import write_atomic  # noqa: E402


def reference_root() -> Path | None:
    """``$RAMH_SHARED/reference``, else ``shared/reference`` beside the repository, else ``/work/shared/reference``."""
    cands = [Path(os.environ["RAMH_SHARED"]) / "reference"] if os.environ.get("RAMH_SHARED") else []
    cands += [REPO.parent / "shared" / "reference", Path("/work/shared/reference")]
    return next((c for c in cands if c.is_dir()), None)


def real_images(root: Path) -> list[tuple[str, Path]]:
    out = []
    for group, sub in (("rsna", "realhands/rsna"), ("dha", "realhands/dha"), ("ramw600", "ramw600")):
        for p in sorted((root / sub).glob("*.png")):
            out.append((group, p))
    return out


def collect_real(analyzer, root: Path) -> list[dict]:
    recs = []
    for group, p in real_images(root):
        try:
            a = analyzer.analyze(p)
            recs.append({"group": group, "name": p.name, "features": a.qc.domain_features.tolist(),
                         "qc": a.qc.to_dict(), "svdh": a.totals.svdh, "global_svdh": a.totals.global_svdh,
                         "complete": a.totals.complete})
        except RamhError as e:  # a documented refusal (e.g. not a hand) is a result too
            recs.append({"group": group, "name": p.name, "error": f"{type(e).__name__}: {e}"})
        except Exception as e:  # noqa: BLE001 - an undocumented failure is a finding of this benchmark, not its end
            recs.append({"group": group, "name": p.name, "error": f"{type(e).__name__}: {e}", "undocumented": True})
    return recs


def reliability(conf: np.ndarray, correct: np.ndarray, bins: int = 10) -> tuple[list[dict], float]:
    """Reliability diagram (equal-width confidence bins) and ECE (count-weighted |accuracy - confidence|)."""
    edges = np.linspace(0, 1, bins + 1)
    rows, ece = [], 0.0
    for i in range(bins):
        m = (conf > edges[i]) & (conf <= edges[i + 1]) if i else (conf >= 0) & (conf <= edges[1])
        if m.any():
            rows.append({"bin": [float(edges[i]), float(edges[i + 1])], "count": int(m.sum()),
                         "confidence": float(conf[m].mean()), "accuracy": float(correct[m].mean())})
            ece += m.sum() / len(conf) * abs(conf[m].mean() - correct[m].mean())
    return rows, float(ece)


def evaluate(test: list[dict], real: list[dict], bundle: Bundle) -> dict:
    section = bundle.manifest.get("qc")
    domain = qc.DomainModel.from_manifest(section)  # warns when its features are not this runtime's
    if domain is not None and domain.problem:
        domain = None  # no distance can be measured: reported as not recomputed
    calib = qc.UncertaintyCalibration.from_manifest(section)
    report: dict = {"bundle": bundle.id, "bundle_version": bundle.version,
                    "domain_threshold": None if domain is None else domain.threshold}

    def flagged(rec) -> tuple[list[str], float | None]:
        """Review/reject codes of a record with out_of_domain recomputed from the bundle's statistics."""
        recompute = {"out_of_domain", "domain_unknown"}
        if "global_svdh" in rec and "complete" in rec:  # the score check too, with this runtime's tolerance
            recompute.add("inconsistent_scores")
        codes = [r["code"] for r in rec["qc"]["reasons"] if r["severity"] != "info" and r["code"] not in recompute]
        if "inconsistent_scores" in recompute:
            codes += [r.code for r in qc.score_reasons(SimpleNamespace(
                svdh=rec["svdh"], global_svdh=rec["global_svdh"], complete=rec["complete"], severity="",
                severity_source="joint_scores"))]
        d = None
        if domain is not None:
            d = domain.distance(np.asarray(rec["features"]))
            if d > domain.threshold:
                codes.append("out_of_domain")
        return codes, d

    # ---- in domain: false alarms
    per_code: dict[str, int] = {}
    alarms, dists = 0, []
    for r in test:
        codes, d = flagged(r)
        dists.append(d)
        alarms += bool(codes)
        for c in codes:
            per_code[c] = per_code.get(c, 0) + 1
    report["in_domain"] = {"hands": len(test), "any_review_or_reject": alarms / len(test),
                           "per_code": {k: v / len(test) for k, v in sorted(per_code.items())},
                           "domain_distance": _summary([d for d in dists if d is not None])}
    # ---- real films
    groups: dict[str, dict] = {}
    for r in real:
        g = groups.setdefault(r["group"], {"images": 0, "errors": 0, "undocumented_errors": [], "out_of_domain": 0,
                                           "skeletally_immature": 0, "any_review_or_reject": 0, "distances": []})
        g["images"] += 1
        if "error" in r:
            g["errors"] += 1
            if r.get("undocumented"):
                g["undocumented_errors"].append(f"{r['name']}: {r['error']}")
            continue
        codes, d = flagged(r)
        g["out_of_domain"] += "out_of_domain" in codes
        g["skeletally_immature"] += "skeletally_immature" in codes
        g["any_review_or_reject"] += bool(codes)
        if d is not None:
            g["distances"].append(d)
    for g in groups.values():
        g["domain_distance"] = _summary(g.pop("distances"))
    report["real"] = groups
    # ---- calibration of the scores
    cal: dict = {}
    for kind, scale in (("BE", calib.be_scale), ("JSN", calib.jsn_scale)):
        conf, correct, pred_err, obs_err = [], [], [], []
        for r in test:
            for j in r.get("joints", []):
                if j["kind"] != kind:
                    continue
                p = np.asarray(j["probs"])
                m = int(np.searchsorted(np.cumsum(p), 0.5 - 1e-9))
                conf.append(p[m])
                correct.append(m == j["truth"])
                pred_err.append(scale * qc.expected_abs_error(p))
                obs_err.append(abs(j["truth"] - m))
        conf, correct = np.asarray(conf), np.asarray(correct, float)
        pred_err, obs_err = np.asarray(pred_err), np.asarray(obs_err, float)
        rows, ece = reliability(conf, correct)
        edges = np.quantile(pred_err, np.linspace(0, 1, 6))
        err_rows = []
        for i in range(5):
            m = (pred_err >= edges[i]) & ((pred_err <= edges[i + 1]) if i == 4 else (pred_err < edges[i + 1]))
            if m.any():
                err_rows.append({"predicted_abs_error": float(pred_err[m].mean()),
                                 "observed_abs_error": float(obs_err[m].mean()), "count": int(m.sum())})
        cal[kind] = {"scores": int(len(conf)), "accuracy": float(correct.mean()), "ece": ece, "reliability": rows,
                     "mean_predicted_abs_error": float(pred_err.mean()),
                     "mean_observed_abs_error": float(obs_err.mean()), "abs_error_bins": err_rows}
    # ---- per-joint review flags (BE and JSN together, as JointRecord.uncertainty)
    unc, err = [], []
    for r in test:
        by: dict[str, list] = {}
        for j in r.get("joints", []):
            p = np.asarray(j["probs"])
            m = int(np.searchsorted(np.cumsum(p), 0.5 - 1e-9))
            s = calib.be_scale if j["kind"] == "BE" else calib.jsn_scale
            u, e = by.setdefault(j["stem"], [0.0, 0.0])
            by[j["stem"]] = [u + s * qc.expected_abs_error(p), e + abs(j["truth"] - m)]
        for u, e in by.values():
            unc.append(u)
            err.append(e)
    unc, err = np.asarray(unc), np.asarray(err)
    rev = unc >= calib.review_threshold
    cal["joint_review"] = {"joints": int(len(unc)), "review_threshold": calib.review_threshold,
                           "share_flagged": float(rev.mean()),
                           "observed_abs_error_flagged": float(err[rev].mean()) if rev.any() else None,
                           "observed_abs_error_not_flagged": float(err[~rev].mean()) if (~rev).any() else None,
                           "share_of_errors_in_flagged": float(err[rev].sum() / max(err.sum(), 1e-9))}
    hands = [r for r in test if r.get("complete") and "true_svdh" in r]
    cov = [qc.interval_of(r["total_dist"], calib.interval_level, calib.interval_scale) for r in hands]
    cal["svdh_interval"] = {"level": calib.interval_level, "interval_scale": calib.interval_scale,
                            "hands": len(hands),
                            "coverage": float(np.mean([lo <= r["true_svdh"] <= hi for (lo, hi), r in zip(cov, hands)]))
                            if hands else None,
                            "mean_width": float(np.mean([hi - lo for lo, hi in cov])) if hands else None}
    report["calibration"] = cal
    return report


def _summary(v: list[float]) -> dict | None:
    if not v:
        return None
    a = np.asarray(v)
    return {"n": int(a.size), "min": float(a.min()), "p50": float(np.median(a)), "p95": float(np.quantile(a, 0.95)),
            "max": float(a.max())}


def markdown(rep: dict, command: str) -> str:
    ind = rep["in_domain"]
    lines = [f"# Quality control and uncertainty: {rep['bundle']} {rep['bundle_version']}", "",
             f"Made by `{command}`.", "",
             f"Domain threshold (bundle): {rep['domain_threshold']}", "",
             "## In domain (unseen-seed phantoms)", "",
             f"{ind['hands']} hands; any review/reject reason: {100 * ind['any_review_or_reject']:.1f}% "
             f"(per code: {', '.join(f'{k} {100 * v:.1f}%' for k, v in ind['per_code'].items()) or 'none'}); "
             f"domain distance {ind['domain_distance']}", "", "## Real films (shared/reference)", "",
             "| group | images | failed (of which not a RamhError) | out_of_domain | skeletally_immature | "
             "any review/reject | distance min / p50 |", "|---|---|---|---|---|---|---|"]
    for g, v in rep["real"].items():
        d = v["domain_distance"]
        lines.append(f"| {g} | {v['images']} | {v['errors']} ({len(v['undocumented_errors'])}) | {v['out_of_domain']} | "
                     f"{v['skeletally_immature']} | {v['any_review_or_reject']} | "
                     + (f"{d['min']:.1f} / {d['p50']:.1f} |" if d else "- |"))
    undocumented = [e for v in rep["real"].values() for e in v["undocumented_errors"]]
    if undocumented:
        lines += ["", "Failures that are not a RamhError (the input understanding's work): "
                  + "; ".join(undocumented)]
    cal = rep["calibration"]
    lines += ["", "## Calibration (unseen-seed phantoms)", ""]
    for kind in ("BE", "JSN"):
        c = cal[kind]
        lines += [f"**{kind}**: {c['scores']} scores, accuracy {c['accuracy']:.3f}, ECE {c['ece']:.3f}; mean expected "
                  f"absolute error {c['mean_predicted_abs_error']:.3f} (calibrated) vs observed "
                  f"{c['mean_observed_abs_error']:.3f}", "",
                  "| confidence bin | count | mean confidence | accuracy |", "|---|---|---|---|"]
        lines += [f"| {r['bin'][0]:.1f}-{r['bin'][1]:.1f} | {r['count']} | {r['confidence']:.3f} | {r['accuracy']:.3f} |"
                  for r in c["reliability"]]
        lines += ["", "| predicted abs error (bin mean) | observed | count |", "|---|---|---|"]
        lines += [f"| {r['predicted_abs_error']:.3f} | {r['observed_abs_error']:.3f} | {r['count']} |"
                  for r in c["abs_error_bins"]]
        lines.append("")
    jr, si = cal["joint_review"], cal["svdh_interval"]
    lines += [f"Joint review flags (uncertainty >= {jr['review_threshold']}): {100 * jr['share_flagged']:.1f}% of "
              f"{jr['joints']} joints flagged; observed abs error flagged {jr['observed_abs_error_flagged']}, not "
              f"flagged {jr['observed_abs_error_not_flagged']}; flagged joints hold "
              f"{100 * jr['share_of_errors_in_flagged']:.0f}% of the error.", "",
              f"SvdH interval ({100 * si['level']:.0f}% nominal, widening {si['interval_scale']}): coverage "
              f"{si['coverage']} on {si['hands']} hands, mean width {si['mean_width']} points.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", default=str(REPO / "models" / "ramh-default"))
    ap.add_argument("--test", default="phantoms:5000:100", help="unseen-seed phantoms, phantoms:SEED:N")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "qc_calibration.json"))
    ap.add_argument("--records", help="write the raw per-image records here")
    ap.add_argument("--from-records", help="evaluate recorded records instead of analysing again")
    ap.add_argument("--no-real", action="store_true", help="skip the real reference films (quick checks)")
    ap.add_argument("--refresh-real", action="store_true",
                    help="with --from-records: analyse the real films again (the phantom records are kept)")
    args = ap.parse_args(argv)
    from ramh_train.qc_stats import ImageSet, collect

    bundle = Bundle.load(args.bundle)
    if args.from_records:
        recs = json.loads(Path(args.from_records).read_text())
        if args.refresh_real and reference_root():
            from ramh_rt.pipeline import Analyzer

            recs["real"] = collect_real(Analyzer(bundle, backend="onnxruntime-cpu"), reference_root())
            if args.records:
                write_atomic(args.records, json.dumps(recs))
    else:
        from ramh_rt.pipeline import Analyzer

        analyzer = Analyzer(bundle, backend="onnxruntime-cpu")
        t0 = time.perf_counter()
        test = collect(analyzer, ImageSet.parse(args.test), full=True, log=lambda m: print(m, file=sys.stderr))
        recs = {"test_spec": args.test, "test": test, "real": []}
        if args.records:  # written now too: the real films take a while
            write_atomic(args.records, json.dumps(recs))
        root = reference_root()
        recs["real"] = collect_real(analyzer, root) if root and not args.no_real else []
        recs["seconds"] = time.perf_counter() - t0
        if args.records:
            write_atomic(args.records, json.dumps(recs))
    rep = evaluate(recs["test"], recs["real"], bundle)
    rep["test_images_from"] = recs.get("test_spec", args.test)
    command = "PYTHONPATH=python python benchmarks/qc_calibration.py " + " ".join(
        a for a in (argv if argv is not None else sys.argv[1:]))
    write_atomic(args.out, json.dumps(rep, indent=2) + "\n")
    write_atomic(Path(args.out).with_suffix(".md"), markdown(rep, command) + "\n")
    print(markdown(rep, command))
    return 0


if __name__ == "__main__":
    sys.exit(main())
