"""How far the phantoms are from real radiographs: a cross-validated two-sample classifier test.

    python benchmarks/realism.py [--reference DIR] [--phantoms N] [--seed S] [--shape SHAPE]
        [--profiles default|calibrated|real-calibrated] [--show] [--name NAME] [--note TEXT]

A small classifier (standardised features -> logistic regression) is trained to tell phantom films from real ones
and scored by cross-validation: ROC AUC 0.5 means the two sets are indistinguishable with these features, 1.0 that
they are perfectly separable. The same features, classifier, folds and phantom seeds are used every time, so the AUC
of two generator versions is comparable (the "before and after" of a realism change). Per feature group the
univariate AUC says *what* gives the phantoms away (intensity histogram, noise/texture spectrum, edges...);
``--show`` prints every feature's real and phantom quartiles and its univariate AUC (what to calibrate next).

Real images come from the shared reference data (``shared/reference``: the bone-age films ``realhands/rsna``, the atlas
hands ``realhands/dha`` and the RAM-W600 wrists ``ramw600``). They are only read, to compute features: never copied,
never used to train anything that ships. Films that are the same radiograph turned (``duplicate_of`` in
``rsna/labels.csv``) share a cross-validation group so that no fold trains on a copy of its test image.

The features are invariant to a 90-degree turn and a mirror (orientation differs between the sets and must not be
what the classifier learns) and to the image size: each film is windowed to its 1st-99.5th percentiles and resampled
so that its hand/forearm silhouette's long side is 512 px.
"""
from __future__ import annotations

import argparse
import csv
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import write_results  # noqa: E402

#: Unseen generator seeds (training used 1000/1500/2000-derived seeds).
DEFAULT_SEED = 770_001
LONG_SIDE = 512
N_BANDS = 10

FEATURE_GROUPS = {
    "intensity_histogram": "16-bin histogram of the windowed film and of its silhouette",
    "power_spectrum": f"radially averaged log power spectrum of the silhouette's central patch, {N_BANDS} log bands",
    "gradients": "gradient magnitude percentiles inside the silhouette",
    "local_texture": "local standard deviation (3x3, 9x9) percentiles inside the silhouette",
    "layout": "silhouette fraction, background level and noise",
}


def reference_dir(explicit: str | None) -> Path:
    """``shared/reference``: ``--reference``, else ``$RAMH_SHARED/reference``, else beside the repository."""
    candidates = [Path(explicit)] if explicit else []
    if os.environ.get("RAMH_SHARED"):
        candidates.append(Path(os.environ["RAMH_SHARED"]) / "reference")
    repo = Path(__file__).resolve().parent.parent
    candidates += [repo.parent / "shared" / "reference", Path("/work/shared/reference")]
    for c in candidates:
        if (c / "realhands").is_dir():
            return c
    raise SystemExit("realism: the real reference data (shared/reference) was not found; pass --reference DIR")


def real_films(ref: Path) -> list[tuple[str, np.ndarray, str]]:
    """(name, 2-D float image, cross-validation group) of every real film in the reference data."""
    from PIL import Image

    groups: dict[str, str] = {}
    labels = ref / "realhands" / "rsna" / "labels.csv"
    if labels.is_file():
        with labels.open(newline="") as f:
            for row in csv.DictReader(f):
                groups[row["file"]] = row.get("duplicate_of") or row["file"]
    paths = sorted((ref / "realhands" / "rsna").glob("*.png")) + sorted((ref / "realhands" / "dha").glob("*.png"))
    paths += sorted((ref / "ramw600").glob("*.png"))
    out = []
    for p in paths:
        img = np.asarray(Image.open(p).convert("F"), np.float32)
        out.append((p.name, img, "real:" + groups.get(p.name, p.name)))
    return out


def phantom_films(n: int, seed: int, config=None) -> list[tuple[str, np.ndarray, str]]:
    """(name, image, group) of ``n`` phantoms of consecutive seeds from ``seed`` (``config``: a PhantomConfig, or
    None for the default settings)."""
    from ramh_train.phantoms import generate

    out = []
    for k in range(n):
        s = generate(seed + k, config)
        out.append((f"phantom_{seed + k}", s.image.astype(np.float32), f"phantom:{seed + k}"))
    return out


def _silhouette(img: np.ndarray) -> np.ndarray:
    """Foreground (hand, forearm) by Otsu's threshold on a smoothed copy; the larger-mean side is tissue."""
    import cv2

    u8 = np.clip(img * 255.0, 0, 255).astype(np.uint8)
    blur = cv2.GaussianBlur(u8, (0, 0), 3.0)
    _, fg = cv2.threshold(blur, 0, 1, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    return fg.astype(bool)


def _normalise(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Window to the 1st-99.5th percentiles, resample so the silhouette's long side is LONG_SIDE px."""
    import cv2

    lo, hi = np.percentile(img, [1.0, 99.5])
    x = np.clip((img - lo) / max(hi - lo, 1e-6), 0.0, 1.0).astype(np.float32)
    fg = _silhouette(x)
    ys, xs = np.nonzero(fg)
    extent = max(np.ptp(ys) + 1, np.ptp(xs) + 1) if len(ys) else max(x.shape)
    scale = LONG_SIDE / float(extent)
    size = (max(32, int(round(x.shape[1] * scale))), max(32, int(round(x.shape[0] * scale))))
    x = cv2.resize(x, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    return x, _silhouette(x)


def _spectrum(x: np.ndarray, fg: np.ndarray) -> np.ndarray:
    """Log power in N_BANDS log-spaced radial bands of the 128x128 patch with the most silhouette, normalised."""
    size = 128
    h, w = x.shape
    if h < size or w < size:
        x = np.pad(x, ((0, max(0, size - h)), (0, max(0, size - w))), mode="reflect")
        fg = np.pad(fg, ((0, max(0, size - h)), (0, max(0, size - w))))
        h, w = x.shape
    ii = np.pad(np.cumsum(np.cumsum(fg, 0), 1), ((1, 0), (1, 0)))
    best, by, bx = -1, 0, 0
    for y in range(0, h - size + 1, 32):
        for xx in range(0, w - size + 1, 32):
            s = ii[y + size, xx + size] - ii[y, xx + size] - ii[y + size, xx] + ii[y, xx]
            if s > best:
                best, by, bx = s, y, xx
    patch = x[by:by + size, bx:bx + size].astype(np.float64)
    patch = (patch - patch.mean()) * np.outer(np.hanning(size), np.hanning(size))
    p = np.abs(np.fft.fftshift(np.fft.fft2(patch))) ** 2
    yy, xx = np.indices(p.shape) - size // 2
    r = np.hypot(yy, xx)
    edges = np.geomspace(1.0, size / 2, N_BANDS + 1)
    bands = np.array([p[(r >= a) & (r < b)].mean() for a, b in zip(edges[:-1], edges[1:])])
    logp = np.log(bands + 1e-12)
    return logp - logp.mean()


def features(img: np.ndarray) -> dict[str, np.ndarray]:
    """The feature groups of one film (see FEATURE_GROUPS); every group is a 1-D float vector."""
    import cv2

    x, fg = _normalise(np.asarray(img, np.float32))
    inside = x[fg] if fg.any() else x.ravel()
    outside = x[~fg] if (~fg).any() else np.zeros(1, np.float32)
    hist_all = np.histogram(x, bins=16, range=(0, 1))[0] / x.size
    hist_fg = np.histogram(inside, bins=16, range=(0, 1))[0] / max(inside.size, 1)
    gx = cv2.Sobel(x, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(x, cv2.CV_32F, 0, 1, ksize=3)
    g = np.hypot(gx, gy)[fg] if fg.any() else np.hypot(gx, gy).ravel()
    tex = []
    for k in (3, 9):
        m = cv2.blur(x, (k, k))
        sd = np.sqrt(np.maximum(cv2.blur(x * x, (k, k)) - m * m, 0))
        v = sd[fg] if fg.any() else sd.ravel()
        tex += list(np.percentile(v, [10, 50, 90]))
    lap = cv2.Laplacian(x, cv2.CV_32F)
    return {
        "intensity_histogram": np.concatenate([hist_all, hist_fg]),
        "power_spectrum": _spectrum(x, fg),
        "gradients": np.percentile(g, [25, 50, 75, 90, 99]),
        "local_texture": np.array(tex),
        "layout": np.array([fg.mean(), float(np.median(outside)), float(np.std(outside)),
                            float(np.std(lap[~fg])) if (~fg).any() else 0.0]),
    }


def two_sample_auc(X: np.ndarray, y: np.ndarray, groups: np.ndarray, *, repeats: int = 5, folds: int = 5,
                   seed: int = 0) -> tuple[float, float]:
    """Mean and std over repeats of the out-of-fold ROC AUC of standardised logistic regression (grouped folds)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedGroupKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    aucs = []
    for r in range(repeats):
        cv = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed + r)
        scores = np.zeros(len(y))
        for tr, te in cv.split(X, y, groups):
            clf = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000))
            clf.fit(X[tr], y[tr])
            scores[te] = clf.predict_proba(X[te])[:, 1]
        aucs.append(roc_auc_score(y, scores))
    return float(np.mean(aucs)), float(np.std(aucs))


def show_group(name: str, real: np.ndarray, phantom: np.ndarray, auc: list[float]) -> None:
    """Print one feature group: per feature, the real and the phantom 25th/50th/75th percentiles and the folded
    univariate AUC (``real``/``phantom``: films x features)."""
    print(f"{name}: feature  real p25/p50/p75  |  phantom p25/p50/p75  |  AUC")
    for j in range(real.shape[1]):
        r = np.percentile(real[:, j], [25, 50, 75])
        p = np.percentile(phantom[:, j], [25, 50, 75])
        print(f"  {j:2d}  {r[0]:8.4f} {r[1]:8.4f} {r[2]:8.4f}  |  {p[0]:8.4f} {p[1]:8.4f} {p[2]:8.4f}  |  {auc[j]:.3f}")


def main(argv: list[str] | None = None) -> int:
    from sklearn.metrics import roc_auc_score

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reference", help="shared/reference folder (default: found beside the repository)")
    ap.add_argument("--phantoms", type=int, default=54, help="number of phantoms (default: as many as real films)")
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED, help="first phantom seed")
    ap.add_argument("--name", help="results file name under benchmarks/results/ (default: realism_<generator version>)")
    ap.add_argument("--shape", default="ramh-phantom-1", help="hand-shape model (PhantomConfig.shape)")
    ap.add_argument("--profiles", default="default", choices=["default", "calibrated", "real-calibrated"],
                    help="the phantoms' appearance (ramh_train.phantoms.APPEARANCES): SCANNER_PROFILES (default), "
                         "CALIBRATED_PROFILES or REAL_PROFILES")
    ap.add_argument("--show", action="store_true", help="print each feature's real and phantom quartiles and its "
                    "univariate AUC")
    ap.add_argument("--note", default="", help="what this run measured, in words")
    args = ap.parse_args(argv)

    from ramh_train.phantoms import APPEARANCES, GENERATOR_VERSION, PhantomConfig

    config = PhantomConfig(shape=args.shape, profiles=APPEARANCES[args.profiles])
    real = real_films(reference_dir(args.reference))
    fake = phantom_films(args.phantoms, args.seed, config)
    films = real + fake
    feats = [features(img) for _, img, _ in films]
    y = np.array([0] * len(real) + [1] * len(fake))
    groups = np.array([g for _, _, g in films])
    X = np.stack([np.concatenate([f[k] for k in FEATURE_GROUPS]) for f in feats])
    auc, sd = two_sample_auc(X, y, groups)
    per_group = {}
    for k in FEATURE_GROUPS:
        Xk = np.stack([f[k] for f in feats])
        g_auc, g_sd = two_sample_auc(Xk, y, groups)
        # The most telling single feature of the group (AUC folded to >= 0.5: direction does not matter).
        uni = [max(roc_auc_score(y, Xk[:, j]), 1 - roc_auc_score(y, Xk[:, j])) for j in range(Xk.shape[1])]
        per_group[k] = {"auc": g_auc, "auc_std": g_sd, "best_single_feature_auc": float(max(uni)),
                        "what": FEATURE_GROUPS[k]}
        if args.show:
            show_group(k, Xk[y == 0], Xk[y == 1], uni)
    record = {"real_films": len(real), "phantom_films": len(fake), "phantom_seeds": [args.seed, args.seed + len(fake)],
              "auc": auc, "auc_std": sd, "classifier": "StandardScaler + LogisticRegression(C=0.1), "
              "StratifiedGroupKFold 5 folds x 5 repeats", "per_feature_group": per_group, "note": args.note}
    record.update(generator_version=GENERATOR_VERSION, shape=args.shape, profiles=args.profiles)
    path = write_results(args.name or f"realism_{args.shape}_{args.profiles}", [record])
    print(f"two-sample AUC (phantom vs real): {auc:.3f} +- {sd:.3f}  ({len(real)} real, {len(fake)} phantoms)")
    for k, v in per_group.items():
        print(f"  {k:20s} AUC {v['auc']:.3f}  best single feature {v['best_single_feature_auc']:.3f}")
    print(f"written {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
