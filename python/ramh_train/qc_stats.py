"""``ramh-train qc-stats``: fit a bundle's quality-control statistics and write them into its manifest (``qc``).

* ``qc.domain``: the mean, scale and shrunk inverse correlation of :data:`ramh_rt.qc.DOMAIN_FEATURES` over images of
  the bundle's training domain, and the threshold on the resulting Mahalanobis distance chosen on held-out images of
  that domain (a quantile of their distances, default 0.99). A bundle trained on real films fits them on real films; the
  demo bundle fits them on phantoms, so real films lie outside its domain, as they should.
* ``qc.uncertainty``: per score kind, the factor that makes the mean predicted expected absolute error equal the
  observed one, and the widening of the total's interval that makes it cover the true total at the nominal level, both
  on held-out phantoms with known scores.

Image sets are given as ``phantoms:SEED:N`` (hands ``0..N-1`` of the phantom dataset with dataset seed ``SEED``, the
per-hand seeds derived as ``ramh-data phantoms`` does; use seeds the bundle was not trained on) or as a directory of
images (domain statistics only: no known scores).
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from ramh_rt import qc
from ramh_rt.fs import IMAGE_SUFFIXES, expand_image_paths
from ramh_rt.manifest import check_values, read_manifest, validate_manifest
from ramh_rt.fs import write_atomic



@dataclass(frozen=True)
class ImageSet:
    """A set of images: ``phantoms:SEED:N`` or a directory."""

    spec: str
    seed: int | None = None
    n: int = 0
    directory: Path | None = None

    @classmethod
    def parse(cls, spec: str) -> "ImageSet":
        """Parse ``phantoms:SEED:N`` or a directory path.

        Raises:
            ValueError: a malformed ``phantoms:`` spec, or a path that is not a directory with images.
        """
        if spec.startswith("phantoms:"):
            parts = spec.split(":")
            try:
                seed, n = int(parts[1]), int(parts[2])
                if len(parts) != 3 or seed < 0 or n < 1:
                    raise ValueError
            except (ValueError, IndexError):
                raise ValueError(f"image set {spec!r}: expected phantoms:SEED:N with SEED >= 0 and N >= 1") from None
            return cls(spec, seed=seed, n=n)
        d = Path(spec)
        if not d.is_dir():
            raise ValueError(f"image set {spec!r}: not phantoms:SEED:N and not a directory")
        files = expand_image_paths([d])
        if not files:
            raise ValueError(f"image set {spec!r}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in the directory")
        return cls(spec, n=len(files), directory=d)

    @property
    def has_truth(self) -> bool:
        return self.seed is not None

    def items(self) -> Iterator[tuple[str, Any, dict | None]]:
        """``(name, image, truth)`` per image; ``truth`` is ``{"BE_<stem>": score, "JSN_<stem>": score}`` for
        phantoms, None for files. The image is an array (phantoms) or a path."""
        if self.directory is not None:
            for p in expand_image_paths([self.directory]):
                yield str(p.relative_to(self.directory)), p, None
            return
        from .datasets.synthetic import phantom_seed
        from .phantoms import generate

        for i in range(self.n):
            s = generate(phantom_seed(self.seed, i))
            yield s.stem, s.image, {**s.be_scores, **s.jsn_scores}


def joint_records(analysis, truth: dict) -> list[dict]:
    """Per scored joint and score kind of one analysis: the probabilities and the true score (for calibration)."""
    out = []
    for j in analysis.joints:
        if not j.located:
            continue
        for kind, probs in (("BE", j.be_probs), ("JSN", j.jsn_probs)):
            key = f"{kind}_{j.stem}"
            if probs is not None and key in truth:
                out.append({"kind": kind, "stem": j.stem, "probs": [float(v) for v in probs],
                            "truth": int(truth[key])})
    return out


def collect(analyzer, images: ImageSet, *, full: bool, log: Callable[[str], None] = print) -> list[dict]:
    """Run ``analyzer`` over an image set.

    With ``full`` every image is analysed (records: ``name``, ``features``, ``qc`` (the dict), ``joints``
    (:func:`joint_records`, phantoms only), ``totals`` with the true total); otherwise only the bone stage runs
    (records: ``name``, ``features``).
    """
    out = []
    t0 = time.perf_counter()
    for k, (name, image, truth) in enumerate(images.items()):
        if full:
            a = analyzer.analyze(image)
            rec = {"name": name, "features": a.qc.domain_features.tolist(), "qc": a.qc.to_dict(),
                   "codes": a.qc.codes, "svdh": a.totals.svdh, "global_svdh": a.totals.global_svdh,
                   "expected_svdh": a.totals.expected_svdh, "complete": a.totals.complete,
                   "total_dist": qc.total_distribution([j for j in a.joints if j.located]).tolist()}
            if truth is not None:
                rec["joints"] = joint_records(a, truth)
                rec["true_svdh"] = int(sum(truth.values()))
        else:
            rec = {"name": name, "features": analyzer.domain_features(image).tolist()}
        out.append(rec)
        if (k + 1) % 20 == 0:
            log(f"  {images.spec}: {k + 1}/{images.n} ({time.perf_counter() - t0:.0f} s)")
    return out


def fit_domain(train: np.ndarray, heldout: np.ndarray, quantile: float = 0.99) -> dict:
    """The ``qc.domain`` section from training and held-out feature matrices (rows = images).

    ``scale`` is the standard deviation floored at 2% of the mean's magnitude + 0.001 (a feature that never varies in
    training, such as the share of bones found, must not make a one-bone miss infinitely far); the correlation matrix
    of the standardised features is shrunk towards the identity with the Ledoit-Wolf intensity (at least 0.05) and
    inverted. ``threshold`` is the ``quantile`` of the held-out distances.

    Raises:
        ValueError: fewer than ``2 * F`` training rows, no held-out rows, wrong widths, or non-finite features.
    """
    f = len(qc.DOMAIN_FEATURES)
    train = np.asarray(train, np.float64)
    heldout = np.asarray(heldout, np.float64)
    if train.ndim != 2 or train.shape[1] != f or train.shape[0] < 2 * f:
        raise ValueError(f"fit_domain: need at least {2 * f} training rows of {f} features, got {train.shape}")
    if heldout.ndim != 2 or heldout.shape[1] != f or heldout.shape[0] < 1:
        raise ValueError(f"fit_domain: need held-out rows of {f} features, got {heldout.shape}")
    if not (np.isfinite(train).all() and np.isfinite(heldout).all()):
        raise ValueError("fit_domain: non-finite features")
    from sklearn.covariance import ledoit_wolf_shrinkage

    mean = train.mean(axis=0)
    sd = train.std(axis=0, ddof=1)
    scale = np.maximum(sd, 0.02 * np.abs(mean) + 1e-3)
    z = (train - mean) / np.where(sd > 0, sd, 1.0)
    corr = np.corrcoef(z, rowvar=False) if np.all(sd > 0) else _corr_with_constants(z, sd)
    alpha = max(0.05, float(ledoit_wolf_shrinkage(z, assume_centered=True)))
    shrunk = (1.0 - alpha) * corr + alpha * np.eye(f)
    precision = np.linalg.inv(shrunk)
    precision = 0.5 * (precision + precision.T)
    model = qc.DomainModel(qc.DOMAIN_FEATURES, mean, scale, precision, 1.0)
    d_train = np.array([model.distance(r) for r in train])
    d_held = np.array([model.distance(r) for r in heldout])
    threshold = float(np.quantile(d_held, quantile))
    return {"features": list(qc.DOMAIN_FEATURES), "mean": mean.tolist(), "scale": scale.tolist(),
            "precision": precision.tolist(), "shrinkage": alpha, "threshold": threshold,
            "threshold_quantile": quantile, "distance": "mahalanobis",
            "train": {"images": int(train.shape[0]), "distance_p50": float(np.median(d_train)),
                      "distance_max": float(d_train.max())},
            "heldout": {"images": int(heldout.shape[0]), "distance_p50": float(np.median(d_held)),
                        "distance_max": float(d_held.max())}}


def _corr_with_constants(z: np.ndarray, sd: np.ndarray) -> np.ndarray:
    """Correlation matrix where constant features are uncorrelated with everything (unit diagonal)."""
    f = z.shape[1]
    out = np.eye(f)
    live = np.flatnonzero(sd > 0)
    if len(live) > 1:
        out[np.ix_(live, live)] = np.corrcoef(z[:, live], rowvar=False)
    return out


def fit_uncertainty(records: list[dict], level: float = 0.9, review_threshold: float = 0.5) -> dict:
    """The ``qc.uncertainty`` section from held-out :func:`collect` records with joints and true totals.

    Raises:
        ValueError: no joint with a known score, or no hand with every area scored.
    """
    scales = {}
    for kind in ("BE", "JSN"):
        pred, obs = [], []
        for r in records:
            for j in r.get("joints", []):
                if j["kind"] == kind:
                    p = np.asarray(j["probs"])
                    m = int(np.searchsorted(np.cumsum(p), 0.5 - 1e-9))
                    pred.append(qc.expected_abs_error(p))
                    obs.append(abs(j["truth"] - m))
        if not pred or sum(pred) <= 0:
            raise ValueError(f"fit_uncertainty: no held-out {kind} scores")
        scales[kind] = float(np.sum(obs) / np.sum(pred)) or 1e-3
    hands = [r for r in records if r.get("complete") and "true_svdh" in r]
    if not hands:
        raise ValueError("fit_uncertainty: no held-out hand with every area scored")
    scale = _interval_scale(hands, level)
    return {"be_scale": scales["BE"], "jsn_scale": scales["JSN"], "review_threshold": review_threshold,
            "interval_level": level, "interval_scale": scale, "heldout_hands": len(hands),
            "heldout_coverage": interval_coverage(hands, level, scale)}


def interval_coverage(hands: list[dict], level: float, scale: float) -> float:
    """Share of hands whose true total lies in the interval (the same construction as
    :func:`ramh_rt.qc.total_interval`)."""
    inside = [(lambda lo_hi: lo_hi[0] <= r["true_svdh"] <= lo_hi[1])(qc.interval_of(r["total_dist"], level, scale))
              for r in hands]
    return float(np.mean(inside))


def _interval_scale(hands: list[dict], level: float) -> float:
    """The smallest widening (steps of 0.05 from 1) whose coverage on ``hands`` reaches ``level``."""
    for c in np.arange(1.0, 8.0001, 0.05):
        if interval_coverage(hands, level, float(c)) >= level:
            return round(float(c), 2)
    return 8.0


def run(bundle: str, train: str, heldout: str, *, quantile: float = 0.99, level: float = 0.9,
        records_out: str | None = None, log: Callable[[str], None] = print) -> dict:
    """Fit and write the ``qc`` section of ``bundle``'s manifest.json (atomically); returns the section.

    Raises:
        ValueError: bad image sets, a bundle that is not a directory, or a manifest that is invalid afterwards.
    """
    from ramh_rt.pipeline import Analyzer

    root = Path(bundle)
    if not root.is_dir():
        raise ValueError(f"qc-stats: {bundle} is not a bundle directory")
    tr, ho = ImageSet.parse(train), ImageSet.parse(heldout)
    analyzer = Analyzer(root, backend="onnxruntime-cpu")
    log(f"qc-stats: training-domain features of {tr.n} images ({tr.spec})")
    train_recs = collect(analyzer, tr, full=False, log=log)
    log(f"qc-stats: {ho.n} held-out images ({ho.spec}), analysed in full")
    held_recs = collect(analyzer, ho, full=True, log=log)
    if records_out:
        write_atomic(records_out, json.dumps({"train": train_recs, "heldout": held_recs}))
    section: dict = {"domain": fit_domain(np.array([r["features"] for r in train_recs]),
                                          np.array([r["features"] for r in held_recs]), quantile)}
    section["domain"]["train"]["images_from"] = tr.spec
    section["domain"]["heldout"]["images_from"] = ho.spec
    if ho.has_truth:
        section["uncertainty"] = fit_uncertainty(held_recs, level)
        section["uncertainty"]["images_from"] = ho.spec
    manifest_path = root / "manifest.json"
    manifest = read_manifest(manifest_path)
    manifest["qc"] = section
    problems = validate_manifest(manifest) or check_values(manifest)  # what Bundle.load will check
    if problems:
        raise ValueError("qc-stats: the manifest would be invalid: " + "; ".join(problems))
    write_atomic(manifest_path, json.dumps(manifest, indent=2) + "\n")
    log(f"qc-stats: wrote {manifest_path} qc section (threshold {section['domain']['threshold']:.2f})")
    return section


__all__ = ["ImageSet", "collect", "fit_domain", "fit_uncertainty", "interval_coverage", "joint_records", "run"]
