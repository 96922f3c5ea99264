"""Training caches: a dataset split turned once into model-ready arrays with the runtime's own kernels.

Every array is produced by the same code the runtime runs at inference — :func:`ramh_rt.ops.preprocess` for the
model input, :func:`ramh_rt.geometry.joint_rois` on the model-resolution bone masks for the ROIs, and
:func:`ramh_rt.ops.crop_rois` at native resolution for the ROI crops — so training crops equal inference crops.

A cache is a directory of ``.npy`` files (opened memory-mapped) plus ``meta.json``:

==================  ========================  ============================================================================
file                shape, dtype              content
==================  ========================  ============================================================================
``image.npy``       N x H x W float16         normalised model input ((windowed - mean) / std), letterboxed
``bones.npy``       N x 30 x H x W uint8      per-class mask coverage of each model pixel x 255 (antialiased resample)
``window.npy``      N x 2 float32             intensity window (lo, hi) of each image (raw units)
``totals.npy``      N x 3 float32             erosion, JSN and SvdH totals of the hand
``roi.npy``         N x 22 x 5 float32        ROI boxes (image pixels) from the ground-truth masks; NaN = not located
``roi_gt_iou.npy``  N x 22 float32            IoU of each ROI with the dataset's own ROI box (geometry check)
``crops.npy``       N x 22 x C x C float16    raw intensities cut around each ROI at ``context`` x its size
``erosion.npy``     N x 22 x C x C uint8      erosion coverage x 255 in the same crops
``be.npy/jsn.npy``  N x 22 int8               scores per area, -1 where the area has no such score
==================  ========================  ============================================================================

``C = round(roi_size * context)``: the central ``roi_size`` square of a crop samples exactly the ROI box (so training
can jitter the crop and evaluation takes the centre).
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ramh_rt import anatomy, geometry, ops

from .datasets.ramh1200 import RamH1200


@dataclass(frozen=True)
class CacheSpec:
    """How a cache is made; stored in ``meta.json`` and in the exported bundle's manifest."""

    input_hw: tuple[int, int] = (640, 512)
    percentiles: tuple[float, float] = (0.5, 99.5)
    mean: float = 0.5
    std: float = 0.25
    antialias: bool = True
    roi_size: int = 224
    context: float = 1.25

    @property
    def crop_size(self) -> int:
        return int(round(self.roi_size * self.context))


def model_input(image: np.ndarray, spec: CacheSpec):
    """(1 x 1 x H x W float32 tensor, Letterbox) — the bone/global model input, exactly as the runtime makes it."""
    return ops.preprocess(image, spec.input_hw, percentiles=spec.percentiles, mean=spec.mean, std=spec.std,
                          antialias=spec.antialias)


def mask_coverage(masks: np.ndarray, spec: CacheSpec) -> np.ndarray:
    """K x H x W bool masks -> K x h x w float32 coverage in [0, 1] on the model canvas (same letterbox)."""
    t, _ = ops.preprocess(np.ascontiguousarray(masks, dtype=np.uint8), spec.input_hw, window=[(0.0, 1.0)] * len(masks),
                          antialias=spec.antialias)
    return t[:, 0]


_FILES = {
    "image": ("float16", lambda s: s.input_hw),
    "bones": ("uint8", lambda s: (anatomy.NUM_BONE_CLASSES, *s.input_hw)),
    "window": ("float32", lambda s: (2,)),
    "totals": ("float32", lambda s: (3,)),
    "roi": ("float32", lambda s: (len(anatomy.AREA_STEMS), 5)),
    "roi_gt_iou": ("float32", lambda s: (len(anatomy.AREA_STEMS),)),
    "crops": ("float16", lambda s: (len(anatomy.AREA_STEMS), s.crop_size, s.crop_size)),
    "erosion": ("uint8", lambda s: (len(anatomy.AREA_STEMS), s.crop_size, s.crop_size)),
    "be": ("int8", lambda s: (len(anatomy.AREA_STEMS),)),
    "jsn": ("int8", lambda s: (len(anatomy.AREA_STEMS),)),
}


def _process(args) -> tuple[int, dict]:
    root, split, stem, i, spec, out = args
    import cv2

    cv2.setNumThreads(1)
    ds = RamH1200(root)
    s = ds.load(stem, split)
    arrays = {name: np.load(Path(out) / f"{name}.npy", mmap_mode="r+") for name in _FILES}
    x, tf = model_input(s.image, spec)
    arrays["image"][i] = x[0, 0].astype(np.float16)
    names = list(s.bone_masks)
    stack = np.stack([np.ascontiguousarray(s.bone_masks[n]) for n in names])
    cov = mask_coverage(stack, spec)
    bones = np.zeros((anatomy.NUM_BONE_CLASSES, *spec.input_hw), np.uint8)
    for k, n in enumerate(names):
        bones[anatomy.BONE_INDEX[n]] = np.round(cov[k] * 255).astype(np.uint8)
    arrays["bones"][i] = bones
    arrays["window"][i] = tf.window
    t = s.totals()
    arrays["totals"][i] = (t["erosion"], t["jsn"], t["svdh"])
    res = geometry.map_rois(geometry.joint_rois({n: cov[k] >= 0.5 for k, n in enumerate(names)}),
                            tf.transform.inverse())
    boxes = np.full((len(anatomy.AREA_STEMS), 5), np.nan, np.float32)
    ious = np.full(len(anatomy.AREA_STEMS), np.nan, np.float32)
    for a, stem_ in enumerate(anatomy.AREA_STEMS):
        r = res[stem_].roi
        if r is None:
            continue
        boxes[a] = r.as_tuple()
        g = s.joint_rois.get(stem_)
        if g is not None:
            ious[a] = geometry.rotated_iou(r.as_tuple(), (g.cx, g.cy, g.w, g.h, g.angle))
    arrays["roi"][i] = boxes
    arrays["roi_gt_iou"][i] = ious
    located = ~np.isnan(boxes[:, 0])
    crops = np.zeros((len(anatomy.AREA_STEMS), spec.crop_size, spec.crop_size), np.float16)
    ero = np.zeros_like(crops, dtype=np.uint8)
    if located.any():
        ctx = boxes[located].copy()
        ctx[:, 2:4] *= spec.context
        crops[located] = ops.crop_rois(s.image, ctx, (spec.crop_size, spec.crop_size)).astype(np.float16)
        union = s.erosion_union().astype(np.float32)
        ero[located] = np.round(ops.crop_rois(union, ctx, (spec.crop_size, spec.crop_size)) * 255).astype(np.uint8)
    arrays["crops"][i] = crops
    arrays["erosion"][i] = ero
    be = np.full(len(anatomy.AREA_STEMS), -1, np.int8)
    jsn = np.full(len(anatomy.AREA_STEMS), -1, np.int8)
    for a, area in enumerate(anatomy.SVDH_AREAS):
        if area.be_key in s.be_scores:
            be[a] = s.be_scores[area.be_key]
        if area.jsn_key in s.jsn_scores:
            jsn[a] = s.jsn_scores[area.jsn_key]
    arrays["be"][i] = be
    arrays["jsn"][i] = jsn
    for a in arrays.values():
        a.flush()
    return i, {"stem": stem, "side": s.side, "spacing_mm": s.spacing_mm, "shape": list(s.shape),
               "letterbox": {"scale_x": tf.scale_x, "scale_y": tf.scale_y, "pad_x": tf.pad_x, "pad_y": tf.pad_y},
               "located": int(located.sum())}


def build_cache(root: str | os.PathLike, split: str, out: str | os.PathLike, spec: CacheSpec = CacheSpec(), *,
                workers: int | None = None, limit: int | None = None) -> Path:
    """Build (or finish building) the cache of one split of a RAM-H1200-layout dataset.

    Resumable: a half-built cache (``meta.json`` without ``complete``) is finished where it stopped.

    Raises:
        ValueError: the split is empty, or an existing cache was made with another spec or another stem list.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ds = RamH1200(root)
    stems = ds.stems(split)[:limit] if limit else ds.stems(split)
    if not stems:
        raise ValueError(f"split {split!r} of {root} is empty")
    meta_path = out / "meta.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else None
    if meta is not None:
        if meta["spec"] != json.loads(json.dumps(asdict(spec))) or meta["stems"] != stems:
            raise ValueError(f"{out} holds a cache made with another spec or dataset; use a new directory")
        if meta.get("complete"):
            return out
    else:
        n = len(stems)
        for name, (dtype, shape) in _FILES.items():
            np.lib.format.open_memmap(out / f"{name}.npy", mode="w+", dtype=dtype, shape=(n, *shape(spec))).flush()
        meta = {"spec": asdict(spec), "root": str(root), "split": split, "stems": stems, "items": [None] * n}
        _write_json(meta_path, meta)
    todo = [i for i, it in enumerate(meta["items"]) if it is None]
    tasks = [(str(root), split, stems[i], i, spec, str(out)) for i in todo]
    workers = workers or min(len(tasks), os.cpu_count() or 1)
    with tqdm(total=len(stems), initial=len(stems) - len(todo), desc=f"cache {split}", dynamic_ncols=True) as bar:
        if workers <= 1:
            results = map(_process, tasks)
        else:
            pool = get_context("spawn").Pool(workers)
            results = pool.imap_unordered(_process, tasks)
        for k, (i, item) in enumerate(results):
            meta["items"][i] = item
            bar.update(1)
            if k % 20 == 19:
                _write_json(meta_path, meta)
        if workers > 1:
            pool.close()
            pool.join()
    meta["complete"] = True
    _write_json(meta_path, meta)
    return out


def _write_json(path: Path, obj) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(obj))
    os.replace(tmp, path)


class Cache:
    """A built cache, memory-mapped read-only."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        meta = json.loads((self.path / "meta.json").read_text())
        if not meta.get("complete"):
            raise ValueError(f"{self.path} is an unfinished cache; run build_cache again to finish it")
        self.meta = meta
        self.spec = CacheSpec(**{k: tuple(v) if isinstance(v, list) else v for k, v in meta["spec"].items()})
        self.stems: list[str] = meta["stems"]
        for name in _FILES:
            setattr(self, name, np.load(self.path / f"{name}.npy", mmap_mode="r"))

    def __len__(self) -> int:
        return len(self.stems)
