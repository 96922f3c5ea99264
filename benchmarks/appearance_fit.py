"""The real films' appearance statistics behind ``REAL_PROFILES`` and the figures of docs/phantom_appearance.md.

    python benchmarks/appearance_fit.py [--reference DIR] [--phantoms N] [--seed S] [--out-dir docs]

Measures, with the features of ``benchmarks/realism.py`` (each film windowed to its 1st-99.5th percentiles and
resampled so that its silhouette's long side is 512 px):

* the real films' display levels of their silhouette's pixels at ``TISSUE_PERCENTS``, the 25th and 75th percentile
  over the films (printed: the constants ``REAL_TISSUE_LEVELS_P25/P75`` of ``ramh_train.phantoms.config``);
* the mean histogram of the silhouette's pixels and the mean radially averaged log power spectrum (the realism
  feature ``power_spectrum``) and the noise power spectrum (NPS) of the silhouette's flattest patch, for the real
  films, the default phantoms (before) and the ``real-calibrated`` phantoms (after), drawn as
  ``phantom_appearance_hist.png`` and ``phantom_appearance_nps.png`` in ``--out-dir``.

The real images are only read (shared/reference); nothing of them is written but these statistics.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import realism  # noqa: E402

COLOURS = {"real films": (0, 0, 0), "phantoms before (default)": (200, 60, 40),
           "phantoms after (real-calibrated)": (30, 110, 210)}
SHORT = {"phantoms before (default)": "before (default)",
         "phantoms after (real-calibrated)": "after (real-calibrated)"}


def tissue_levels(films) -> np.ndarray:
    """Films x TISSUE_PERCENTS: each film's silhouette display levels (realism's normalisation)."""
    from ramh_train.phantoms.config import TISSUE_PERCENTS

    out = []
    for img in films:
        x, fg = realism._normalise(np.asarray(img, np.float32))
        out.append(np.percentile(x[fg] if fg.any() else x, TISSUE_PERCENTS))
    return np.array(out)


def noise_power(img: np.ndarray, size: int = 64) -> np.ndarray:
    """Radially averaged NPS (10 log-spaced bands, log10) of the high-pass residual of the silhouette's flattest
    unclipped ``size`` x ``size`` patch (lowest mean local SD at 9x9), at realism's normalisation: the film's noise,
    grain and fine texture."""
    import cv2

    x, fg = realism._normalise(np.asarray(img, np.float32))
    m = cv2.blur(x, (9, 9))
    sd = np.sqrt(np.maximum(cv2.blur(x * x, (9, 9)) - m * m, 0))
    # Inside the silhouette and clear of clipped pixels (a saturated 8-bit area is flat but has no noise to measure).
    ok = fg & (x > 0.02) & (x < 0.98)
    inside = cv2.erode(ok.astype(np.uint8), np.ones((size, size), np.uint8)).astype(bool)
    if not inside.any():
        inside = ok if ok.any() else fg
    sd_in = np.where(inside, cv2.blur(sd, (size, size)), np.inf)
    cy, cx = np.unravel_index(int(np.argmin(sd_in)), sd_in.shape)
    y0 = int(np.clip(cy - size // 2, 0, x.shape[0] - size))
    x0 = int(np.clip(cx - size // 2, 0, x.shape[1] - size))
    p = x[y0:y0 + size, x0:x0 + size].astype(np.float64)
    p = p - cv2.GaussianBlur(p, (0, 0), 4.0)
    f = np.abs(np.fft.fftshift(np.fft.fft2(p * np.outer(np.hanning(size), np.hanning(size))))) ** 2
    yy, xx = np.indices(f.shape) - size // 2
    r = np.hypot(yy, xx)
    edges = np.geomspace(1.0, size / 2, 11)
    return np.log10(np.array([f[(r >= a) & (r < b)].mean() for a, b in zip(edges[:-1], edges[1:])]) + 1e-12)


def _plot(path: Path, title: str, xlabel: str, ylabel: str, x: np.ndarray, series: dict[str, np.ndarray]) -> None:
    """A small line chart (PIL), written as PNG."""
    from PIL import Image, ImageDraw

    W, H, L, R, T, B = 640, 400, 60, 20, 36, 48
    im = Image.new("RGB", (W, H), "white")
    d = ImageDraw.Draw(im)
    ys = np.concatenate(list(series.values()))
    y0, y1 = float(ys.min()), float(ys.max())
    y0, y1 = y0 - 0.05 * (y1 - y0), y1 + 0.05 * (y1 - y0)
    x0, x1 = float(x.min()), float(x.max())

    def px(a, b):
        return L + (a - x0) / (x1 - x0) * (W - L - R), H - B - (b - y0) / (y1 - y0) * (H - T - B)

    d.rectangle([L, T, W - R, H - B], outline=(120, 120, 120))
    for k in range(5):
        yv = y0 + k * (y1 - y0) / 4
        _, yy = px(x0, yv)
        d.line([L - 4, yy, L, yy], fill=(0, 0, 0))
        d.text((4, yy - 6), f"{yv:.3g}", fill=(0, 0, 0))
        xv = x0 + k * (x1 - x0) / 4
        xx, _ = px(xv, y0)
        d.line([xx, H - B, xx, H - B + 4], fill=(0, 0, 0))
        d.text((xx - 12, H - B + 6), f"{xv:.3g}", fill=(0, 0, 0))
    d.text((L, 8), title, fill=(0, 0, 0))
    d.text((W // 2 - 60, H - 20), xlabel, fill=(0, 0, 0))
    d.text((4, T - 16), ylabel, fill=(0, 0, 0))
    for i, (name, v) in enumerate(series.items()):
        c = COLOURS.get(name, (0, 150, 0))
        d.line([px(a, b) for a, b in zip(x, v)], fill=c, width=2)
        d.line([W - R - 230, T + 10 + 14 * i, W - R - 210, T + 10 + 14 * i], fill=c, width=2)
        d.text((W - R - 205, T + 4 + 14 * i), SHORT.get(name, name), fill=c)
    tmp = path.with_suffix(".tmp.png")
    im.save(tmp, optimize=True)
    tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reference", help="shared/reference folder (default: found beside the repository)")
    ap.add_argument("--phantoms", type=int, default=24, help="phantoms per appearance (default 24)")
    ap.add_argument("--seed", type=int, default=realism.DEFAULT_SEED, help="first phantom seed")
    ap.add_argument("--out-dir", default=str(Path(__file__).resolve().parent.parent / "docs"),
                    help="where the two PNG figures go (default: docs/)")
    args = ap.parse_args(argv)

    from ramh_train.phantoms import REAL_PROFILES, PhantomConfig
    from ramh_train.phantoms.config import TISSUE_PERCENTS

    real = [img for _, img, _ in realism.real_films(realism.reference_dir(args.reference))]
    sets = {
        "real films": real,
        "phantoms before (default)": [f[1] for f in realism.phantom_films(args.phantoms, args.seed, None)],
        "phantoms after (real-calibrated)": [f[1] for f in realism.phantom_films(
            args.phantoms, args.seed, PhantomConfig(shape="ra2-fitted", profiles=REAL_PROFILES))],
    }
    lv = tissue_levels(real)
    np.set_printoptions(precision=3, suppress=True, linewidth=200)
    print("percent points        ", np.array(TISSUE_PERCENTS, float))
    print("real levels p25       ", np.percentile(lv, 25, axis=0))
    print("real levels p75       ", np.percentile(lv, 75, axis=0))
    hist, spec, nps = {}, {}, {}
    for name, films in sets.items():
        feats = [realism.features(img) for img in films]
        hist[name] = np.mean([f["intensity_histogram"][16:] for f in feats], axis=0)
        spec[name] = np.mean([f["power_spectrum"] for f in feats], axis=0)
        nps[name] = np.mean([noise_power(img) for img in films], axis=0)
        levels = np.median(tissue_levels(films), axis=0)
        print(f"{name:32s} median silhouette levels {levels}")
        print(f"{'':32s} mean log10 NPS bands   {nps[name]}")
    out = Path(args.out_dir)
    centres = (np.arange(16) + 0.5) / 16
    _plot(out / "phantom_appearance_hist.png", "Silhouette pixels: share per display level (windowed 1-99.5 pct)",
          "display level", "share", centres, hist)
    bands = np.arange(1, 11, dtype=float)
    both = {f"{k}": v for k, v in nps.items()}
    _plot(out / "phantom_appearance_nps.png", "Noise power spectrum of the flattest 64 px hand patch (log10)",
          "log-spaced frequency band (1: lowest, 10: Nyquist)", "log10 power", bands, both)
    _plot(out / "phantom_appearance_spectrum.png", "Log power spectrum of the central hand patch (realism feature)",
          "log-spaced frequency band (1: lowest, 10: Nyquist)", "log power - mean", bands, spec)
    print(f"written {out}/phantom_appearance_{{hist,nps,spectrum}}.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
