"""The view classifier: what a low-resolution look at one hand's box says it shows, without the bone model.

The bone model was trained on whole upright phantom hands; on a crop (a wrist, the fingers, a hand cut by the film
edge) or on another body part it still finds "bones", and a field of view or a not-a-hand decision resting on them
alone fails. The view classifier is a second, independent opinion: a small convolutional network on a 128 x 128
letterboxed, contrast-normalised view of the hand's box (the same windowing as the silhouette survey: the box's 1-99 %
grey levels to 0..1, dark padding). It gives

* the field of view: ``"hand"``, ``"wrist"``, ``"fingers"``, ``"partial"`` or ``"not_a_hand"`` (probabilities);
* the hand's rotation (0/90/180/270 degrees clockwise from fingers-up; probabilities), which the silhouette cannot tell
  on a crop that fills the film;
* its apparent chirality: the side (``"L"``/``"R"``) the hand looks like once turned upright (a mirrored film shows
  the other side).

:mod:`ramh_rt.understand` fuses these probabilities with its geometric evidence (silhouette and bone layout); the
network alone decides nothing.

The weights are a NumPy ``.npz`` file of the bundle (named, with its sha256, in the manifest's ``view`` section) and
run here in NumPy on every backend (a few milliseconds on a CPU; no ONNX session, no torch). A bundle without a
``view`` section loads as before and the understanding falls back to its geometric evidence alone.

Manifest section (``ramh-train view export`` writes it)::

    "view": {"file": "view.npz", "sha256": "<64 hex>", "input_hw": [128, 128], "window_percentiles": [1.0, 99.0],
             "classes": ["hand", "wrist", "fingers", "partial", "not_a_hand"], "rotations": [0, 90, 180, 270],
             "chirality": ["L", "R"], "architecture": {...}, "training": {...provenance...},
             "metrics": {...held-out phantoms...}}
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import ops
from .errors import BundleError

#: Classes of the field-of-view head, in output order.
VIEW_CLASSES: tuple[str, ...] = ("hand", "wrist", "fingers", "partial", "not_a_hand")
#: Classes of the rotation head (degrees clockwise from fingers-up), in output order.
ROTATIONS: tuple[int, ...] = (0, 90, 180, 270)
#: Classes of the chirality head (the side the upright hand looks like), in output order.
CHIRALITY: tuple[str, ...] = ("L", "R")
#: Input size ``(H, W)`` the default network is built for.
INPUT_HW: tuple[int, int] = (128, 128)
#: Grey-level window (percentiles of the box) of the view.
WINDOW_PERCENTILES: tuple[float, float] = (1.0, 99.0)


def view_input(pix: np.ndarray, box: tuple[int, int, int, int] | None = None,
               input_hw: tuple[int, int] = INPUT_HW,
               percentiles: tuple[float, float] = WINDOW_PERCENTILES) -> np.ndarray:
    """The classifier's input: the box cut from the film, windowed to its grey-level percentiles and letterboxed.

    Args:
        pix: ``H x W`` film (uint8, uint16 or float32), bone bright. Not modified.
        box: ``(x0, y0, x1, y1)`` in film pixels (exclusive at the far end), clipped to the film; None: the film.
        input_hw: output size ``(h, w)``.
        percentiles: the window (low, high) in percent of the box's grey levels, mapped to 0..1.

    Returns:
        ``h x w`` float32 in 0..1 (the letterbox padding is 0).

    Raises:
        ValueError: ``pix`` is not 2-D, or the box is empty after clipping to the film.
    """
    if pix.ndim != 2:
        raise ValueError(f"view_input needs an H x W film, got shape {pix.shape}")
    H, W = pix.shape
    x0, y0, x1, y1 = (0, 0, W, H) if box is None else box
    x0, y0, x1, y1 = max(0, int(x0)), max(0, int(y0)), min(W, int(x1)), min(H, int(y1))
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"view_input: box {box} is empty inside a film of shape {pix.shape}")
    crop = np.ascontiguousarray(pix[y0:y1, x0:x1])
    x, _ = ops.preprocess(crop, tuple(input_hw), percentiles=tuple(percentiles), mean=0.0, std=1.0, antialias=True)
    return np.asarray(x, np.float32)[0, 0]


@dataclass(frozen=True)
class ViewPrediction:
    """The view classifier's output for one hand box.

    Attributes:
        probs: ``{class: probability}`` over :data:`VIEW_CLASSES` (sums to 1).
        rotation_probs: ``{rotation_deg: probability}`` over :data:`ROTATIONS` (meaningful for a hand).
        chirality_probs: ``{"L": p, "R": p}``: the side the hand looks like when upright.
    """

    probs: dict[str, float]
    rotation_probs: dict[int, float]
    chirality_probs: dict[str, float]

    @property
    def p_not_hand(self) -> float:
        """Probability that the box shows no hand."""
        return self.probs["not_a_hand"]

    @property
    def field_of_view(self) -> str:
        """The most probable field of view among the hand classes (``"hand"``, ``"wrist"``, ...)."""
        return max(VIEW_CLASSES[:-1], key=lambda c: self.probs[c])

    @property
    def rotation_deg(self) -> int:
        """The most probable rotation (degrees clockwise from fingers-up)."""
        return max(ROTATIONS, key=lambda r: self.rotation_probs[r])

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready copy (rotation keys as strings)."""
        return {"probs": dict(self.probs), "rotation_probs": {str(k): v for k, v in self.rotation_probs.items()},
                "chirality_probs": dict(self.chirality_probs)}


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max())
    return e / e.sum()


def _matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b`` in NumPy's own single-threaded loops: the matrices are small (a few million multiply-adds in all),
    and a threaded BLAS competing with the inference sessions' threads for the cores is far slower on a busy host."""
    return np.einsum("ik,kj->ij", a, b)


def _conv3x3_s2(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """3x3 convolution, stride 2, padding 1, of ``C x H x W`` with ``w`` ``Co x C x 3 x 3``; ReLU applied."""
    c, h, wd = x.shape
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1)))
    ho, wo = (h + 1) // 2, (wd + 1) // 2
    # im2col: the nine shifted, strided views of the padded input, stacked (C*9 rows, one column per output pixel).
    cols = np.stack([xp[:, i:i + 2 * ho:2, j:j + 2 * wo:2] for i in range(3) for j in range(3)], axis=1)
    y = _matmul(w.reshape(w.shape[0], -1), cols.reshape(c * 9, ho * wo)) + b[:, None]
    return np.maximum(y, 0.0).reshape(-1, ho, wo)


def forward(params: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    """Logits of the network for one input.

    The network: an optional 2x2 average pooling of the input (``input_pool`` = 2; cheaper, and enough resolution
    for the coarse layout it judges), ``n`` blocks ``conv{i}`` (3x3, stride 2, padding 1, batch norm folded in,
    ReLU), flattened (C, H, W order), ``fc1`` (ReLU), ``head`` (linear) whose outputs are the field-of-view, rotation
    and chirality logits in that order.

    Args:
        params: ``input_pool`` (a scalar, 1 or 2; absent = 1), ``conv{i}.w`` (Co x Ci x 3 x 3), ``conv{i}.b``,
            ``fc1.w`` (out x in), ``fc1.b``, ``head.w``, ``head.b``; float32.
        x: ``H x W`` float32 input (:func:`view_input`).

    Returns:
        1-D float32 logits, ``len(VIEW_CLASSES) + len(ROTATIONS) + len(CHIRALITY)`` long.
    """
    a = x[None].astype(np.float32)
    pool = int(np.asarray(params["input_pool"]).reshape(-1)[0]) if "input_pool" in params else 1
    if pool > 1:
        c, h, w = a.shape
        a = a[:, :h - h % pool, :w - w % pool].reshape(c, h // pool, pool, w // pool, pool).mean(axis=(2, 4))
    i = 0
    while f"conv{i}.w" in params:
        a = _conv3x3_s2(a, params[f"conv{i}.w"], params[f"conv{i}.b"])
        i += 1
    v = a.reshape(-1)
    v = np.maximum(_matmul(params["fc1.w"], v[:, None])[:, 0] + params["fc1.b"], 0.0)
    return _matmul(params["head.w"], v[:, None])[:, 0] + params["head.b"]


class ViewModel:
    """The bundle's view classifier (NumPy weights; see the module docstring).

    Create it with :meth:`from_bundle` (None when the bundle has none) or :meth:`from_file`.
    """

    def __init__(self, params: dict[str, np.ndarray], input_hw: tuple[int, int] = INPUT_HW,
                 percentiles: tuple[float, float] = WINDOW_PERCENTILES):
        """Args: ``params`` as :func:`forward` takes them; ``input_hw`` and ``percentiles`` as :func:`view_input`.

        Raises:
            BundleError: a parameter is missing, not finite (NaN/inf would give NaN probabilities), or the shapes
                do not chain (the file does not fit this network).
        """
        self.params = {k: np.ascontiguousarray(v, np.float32) for k, v in params.items()}
        bad = sorted(k for k, v in self.params.items() if not np.isfinite(v).all())
        if bad:
            raise BundleError(f"view classifier weights are not finite (NaN or inf) in: {', '.join(bad)}")
        self.input_hw = (int(input_hw[0]), int(input_hw[1]))
        self.percentiles = (float(percentiles[0]), float(percentiles[1]))
        n_out = len(VIEW_CLASSES) + len(ROTATIONS) + len(CHIRALITY)
        try:
            out = forward(self.params, np.zeros(self.input_hw, np.float32))
        except (KeyError, ValueError) as e:
            raise BundleError(f"view classifier weights do not fit the network: {type(e).__name__}: {e}") from None
        if out.shape != (n_out,):
            raise BundleError(f"view classifier gives {out.shape} outputs, expected ({n_out},)")

    @classmethod
    def from_file(cls, path: str | Path, section: dict[str, Any] | None = None) -> "ViewModel":
        """Load weights from an ``.npz`` file, checking its sha256 when ``section`` (the manifest's ``view``
        section) names one.

        Raises:
            BundleError: file missing, unreadable, corrupt (sha256 differs) or not this network.
        """
        from .bundle import sha256_file

        path = Path(path)
        section = section or {}
        if not path.is_file():
            raise BundleError(f"view classifier file {path} is missing")
        if "sha256" in section:
            actual = sha256_file(path)
            if actual != section["sha256"]:
                raise BundleError(f"view classifier file {path.name} is corrupt or was modified: sha256 {actual}, "
                                  f"manifest expects {section['sha256']}")
        try:
            with np.load(path, allow_pickle=False) as z:
                params = {k: z[k] for k in z.files}
        except (OSError, ValueError) as e:
            raise BundleError(f"view classifier file {path} is not a readable .npz: {e}") from None
        return cls(params, tuple(section.get("input_hw", INPUT_HW)),
                   tuple(section.get("window_percentiles", WINDOW_PERCENTILES)))

    @classmethod
    def from_bundle(cls, bundle) -> "ViewModel | None":
        """The classifier of a :class:`~ramh_rt.bundle.Bundle`, or None when its manifest has no ``view`` section.

        Raises:
            BundleError: as :meth:`from_file`.
        """
        section = bundle.manifest.get("view")
        if not section:
            return None
        return cls.from_file(Path(bundle.path) / section["file"], section)

    def predict_input(self, x: np.ndarray) -> ViewPrediction:
        """Prediction for a prepared input (:func:`view_input`), ``h x w`` float32."""
        z = forward(self.params, x).astype(np.float64)
        nf, nr = len(VIEW_CLASSES), len(ROTATIONS)
        pf, pr, pc = _softmax(z[:nf]), _softmax(z[nf:nf + nr]), _softmax(z[nf + nr:])
        return ViewPrediction(probs={c: float(p) for c, p in zip(VIEW_CLASSES, pf)},
                              rotation_probs={r: float(p) for r, p in zip(ROTATIONS, pr)},
                              chirality_probs={c: float(p) for c, p in zip(CHIRALITY, pc)})

    def predict(self, pix: np.ndarray, box: tuple[int, int, int, int] | None = None) -> ViewPrediction:
        """Prediction for the box of a film (see :func:`view_input` for the arguments and errors)."""
        return self.predict_input(view_input(pix, box, self.input_hw, self.percentiles))


__all__ = ["CHIRALITY", "INPUT_HW", "ROTATIONS", "VIEW_CLASSES", "ViewModel", "ViewPrediction", "forward",
           "view_input"]
