"""Writer of the RAM-H1200 layout: :class:`~.sample.HandSample` objects in, the dataset folder of :mod:`.layout` out.

What is written for one hand (``stem``, ``split``):

* ``Segmentation/{split}/{stem}.bmp``: 8-bit grayscale BMP (uint16 images through :func:`.fileio.to_uint8`: linear
  min-max rescale to 0..255);
* one annotation per bone class / erosion category present in the sample, compressed RLE (all pieces of a class in
  one RLE), category ids of :mod:`.layout`; ``pixel_spacing_mm`` in the image record when known;
* one joint-detection annotation per ROI: ``bbox`` = the sample's axis-aligned ``joint_boxes`` entry when it has one,
  else the bounding box of its oriented ROI, clipped to the image in both cases; ``rbox`` = the oriented ROI (when
  the sample has one);
* ROI crops ``SvdH_Scoring/SvdH_{BE,JSN}_Scoring/{split}/{stem}/{roi}.bmp`` for every BE / JSN stem that has a box:
  the pixels of the box rounded outwards to whole pixels (axis-aligned, as the real dataset ships them);
* an entry ``"{stem}.bmp": {scores}`` in both score files (``{}`` when the hand has no scores of that kind);
* a ``Metadata.csv`` row when ``sample.meta["metadata"]`` is a dict (columns ``isRA``, ``Sex`` and any others).

Images and crops are written as each hand is added; the COCO and score JSONs are written by :meth:`DatasetWriter.flush`
(also on :meth:`~DatasetWriter.close` and on leaving a ``with`` block). Every file is written atomically.

Existing data is never overwritten. A split that already holds data is refused unless ``append=True``; appending
keeps every existing record (ids unchanged) and adds the new ones after them, refusing a stem that is already there
and an existing file whose categories differ from this writer's (e.g. the real dataset's own spellings and ids).
Output is deterministic: for the same hands it is byte-identical whatever order they were added in (new images are
numbered in file-name order at flush).
"""
from __future__ import annotations

import csv
import io
import math
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ramh_rt import anatomy
from ramh_rt.geometry import Roi

from .coco import CocoFile, encode_mask, parse_coco, rle_area_bbox
from .errors import Problems
from .fileio import atomic_write_bytes, atomic_write_json, encode_bmp, read_json, to_uint8
from .layout import (BONE_CATEGORY_IDS, EROSION_CATEGORY_IDS, IMAGE_EXTENSION, JOINT_CATEGORY_IDS,
                     IMAGE_EXTENSIONS, METADATA_COLUMNS, METADATA_STEM_COLUMN, SCORE_KINDS, SCORE_PREFIX, SPLITS,
                     Layout, check_split, roi_stems)
from .metadata import read_metadata
from .sample import HandSample
from .scores import parse_scores

_GENERATOR = "ramh_train.datasets.writer"
_CATEGORIES = {
    "bone": [{"id": i, "name": n, "supercategory": "bone"} for n, i in BONE_CATEGORY_IDS.items()],
    "erosion": [{"id": i, "name": n, "supercategory": "erosion"} for n, i in EROSION_CATEGORY_IDS.items()],
    "joint": [{"id": i, "name": n, "supercategory": "joint"} for n, i in JOINT_CATEGORY_IDS.items()],
}


@dataclass
class SampleRecords:
    """What :func:`write_sample_files` produced for one hand, for :meth:`DatasetWriter.add_records` (picklable, so
    that worker processes can write files and send only this back).

    Attributes:
        split / stem / file_name / height / width / spacing_mm: the image.
        bone / erosion: (class name, compressed RLE, area px, [x, y, w, h]) per class, in category order.
        joints: (ROI stem, [x, y, w, h], [cx, cy, w, h, angle] or None) per ROI, in stem order.
        scores: ``"be"``/``"jsn"`` -> {score key: value}.
        metadata: the Metadata row (without the stem) or None.
        files: the files written (paths under the ``root`` given).
    """

    split: str
    stem: str
    file_name: str
    height: int
    width: int
    spacing_mm: float | None
    bone: list[tuple[str, dict, int, list[float]]] = field(default_factory=list)
    erosion: list[tuple[str, dict, int, list[float]]] = field(default_factory=list)
    joints: list[tuple[str, list[float], list[float] | None]] = field(default_factory=list)
    scores: dict[str, dict[str, int]] = field(default_factory=dict)
    metadata: dict[str, Any] | None = None
    files: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------------------------------
# One sample
# ---------------------------------------------------------------------------------------------------------------------

def _finite(values, what: str) -> list[float]:
    out = [float(v) for v in values]
    if not all(math.isfinite(v) for v in out):
        raise ValueError(f"{what} must be finite; got {out}")
    return out


def _check_stem(stem: Any, side: Any) -> None:
    if not isinstance(stem, str) or not stem or stem.startswith(".") or any(c in stem for c in "/\\\0"):
        raise ValueError(f"sample.stem must be a file stem (no path separators, not starting with '.'); got {stem!r}")
    if side not in anatomy.SIDES:
        raise ValueError(f"sample.side must be 'L' or 'R'; got {side!r}")
    if anatomy.side_from_stem(stem) != side:
        raise ValueError(f"sample.stem {stem!r} must end in _{side} (RAM-H1200 stems carry the side; sample.side is "
                         f"{side!r})")


def _masks(masks: Any, shape: tuple[int, int], what: str, names: dict[str, int],
           canonical=lambda n: n) -> list[tuple[str, np.ndarray]]:
    if not isinstance(masks, dict):
        raise ValueError(f"sample.{what} must be a dict name -> mask; got {type(masks).__name__}")
    out: dict[str, np.ndarray] = {}
    for name, m in masks.items():
        try:
            cname = canonical(name)
        except KeyError as e:
            raise ValueError(f"sample.{what}: {e.args[0]}") from None
        if cname not in names:
            raise ValueError(f"sample.{what}: unknown name {name!r}; known: {', '.join(names)}")
        if cname in out:
            raise ValueError(f"sample.{what}: {name!r} and another key both name {cname!r}")
        if not isinstance(m, np.ndarray) or m.shape != shape or not (m.dtype == bool or
                                                                      np.issubdtype(m.dtype, np.integer)):
            raise ValueError(f"sample.{what}[{name!r}] must be a bool or integer array of the image shape {shape}; "
                             f"got {type(m).__name__} {getattr(m, 'dtype', '')} shape {getattr(m, 'shape', '')}")
        if m.any():  # an empty mask is an absent class: RAM-H1200 files carry no empty annotations
            out[cname] = m
    return sorted(out.items(), key=lambda kv: names[kv[0]])


def _scores(scores: Any, kind: str) -> dict[str, int]:
    attr = f"{kind}_scores"
    if not isinstance(scores, dict):
        raise ValueError(f"sample.{attr} must be a dict; got {type(scores).__name__}")
    prefix = SCORE_PREFIX[kind]
    order = {f"{prefix}{s}": i for i, s in enumerate(roi_stems(kind))}
    out = {}
    for key, v in scores.items():
        if key not in order:
            raise ValueError(f"sample.{attr}: {key!r} is not a {prefix[:-1]} score key; expected {prefix}<stem>, "
                             f"stem one of {', '.join(roi_stems(kind))}")
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
            raise ValueError(f"sample.{attr}[{key!r}] must be an integer; got {v!r}")
        lo, hi = anatomy.score_range(key)
        if not lo <= int(v) <= hi:
            raise ValueError(f"sample.{attr}[{key!r}] = {int(v)} is outside {lo}..{hi}")
        out[key] = int(v)
    return dict(sorted(out.items(), key=lambda kv: order[kv[0]]))


def _joint_boxes(sample: HandSample, h: int, w: int) -> list[tuple[str, list[float], list[float] | None]]:
    boxes, rois = sample.joint_boxes, sample.joint_rois
    if not isinstance(boxes, dict) or not isinstance(rois, dict):
        raise ValueError("sample.joint_boxes and sample.joint_rois must be dicts keyed by ROI stem")
    for stem in list(boxes) + list(rois):
        if stem not in JOINT_CATEGORY_IDS:
            raise ValueError(f"joint box for unknown ROI stem {stem!r}; known: {', '.join(anatomy.AREA_STEMS)}")
    out = []
    for stem in anatomy.AREA_STEMS:
        roi = rois.get(stem)
        rbox = None
        if roi is not None:
            if not isinstance(roi, Roi):
                raise ValueError(f"sample.joint_rois[{stem!r}] must be a Roi; got {type(roi).__name__}")
            rbox = _finite((roi.cx, roi.cy, roi.w, roi.h, roi.angle), f"sample.joint_rois[{stem!r}]")
            if rbox[2] <= 0 or rbox[3] <= 0:
                raise ValueError(f"sample.joint_rois[{stem!r}] has a non-positive size: {roi}")
        if stem in boxes:
            box = boxes[stem]
            if len(box) != 4:
                raise ValueError(f"sample.joint_boxes[{stem!r}] must be (x0, y0, x1, y1); got {box!r}")
            x0, y0, x1, y1 = _finite(box, f"sample.joint_boxes[{stem!r}]")
            if x1 <= x0 or y1 <= y0:
                raise ValueError(f"sample.joint_boxes[{stem!r}] = {tuple(box)} is empty (need x1 > x0 and y1 > y0)")
        elif roi is not None:
            x0, y0, x1, y1 = roi.bbox()
        else:
            continue
        cx0, cy0, cx1, cy1 = max(x0, 0.0), max(y0, 0.0), min(x1, float(w)), min(y1, float(h))
        if cx1 <= cx0 or cy1 <= cy0:
            raise ValueError(f"joint box {stem!r} ({x0}, {y0}, {x1}, {y1}) lies outside the {w} x {h} image")
        out.append((stem, [cx0, cy0, _extent(cx0, cx1), _extent(cy0, cy1)], rbox))
    return out


def _extent(lo: float, hi: float) -> float:
    """``hi - lo``, nudged by an ulp where needed so that ``lo + extent == hi`` exactly: COCO stores x and width,
    readers compute x + width, and the box must come back bit-identical."""
    ext = hi - lo
    for _ in range(8):
        s = lo + ext
        if s == hi:
            return ext
        ext = float(np.nextafter(ext, np.inf if s < hi else -np.inf))
    return hi - lo


def crop_window(bbox: list[float], height: int, width: int) -> tuple[int, int, int, int]:
    """Pixel window (row0, row1, col0, col1) of a COCO ``[x, y, w, h]`` box: rounded outwards to whole pixels,
    clipped to the image."""
    x, y, bw, bh = bbox
    c0, r0 = max(int(math.floor(x)), 0), max(int(math.floor(y)), 0)
    c1, r1 = min(int(math.ceil(x + bw)), width), min(int(math.ceil(y + bh)), height)
    return r0, r1, c0, c1


def check_sample(sample: HandSample) -> None:
    """Check that a sample can be written (see :func:`write_sample_files` for the rules).

    Raises:
        ValueError: naming the field and the offending value.
    """
    _prepare(sample)


def _prepare(sample: HandSample) -> dict:
    if not isinstance(sample, HandSample):
        raise ValueError(f"expected a HandSample; got {type(sample).__name__}")
    _check_stem(sample.stem, sample.side)
    img = sample.image
    try:
        image8 = to_uint8(img)
    except ValueError as e:
        raise ValueError(f"sample.image: {e}") from None
    h, w = image8.shape
    if h == 0 or w == 0:
        raise ValueError(f"sample.image is empty: shape {img.shape}")
    sp = sample.spacing_mm
    if sp is not None:
        if isinstance(sp, bool) or not isinstance(sp, (int, float, np.floating, np.integer)) \
                or not math.isfinite(float(sp)) or float(sp) <= 0:
            raise ValueError(f"sample.spacing_mm must be a positive number or None; got {sp!r}")
        sp = float(sp)
    meta = sample.meta if isinstance(sample.meta, dict) else {}
    md = meta.get("metadata")
    if md is not None and not isinstance(md, dict):
        raise ValueError(f"sample.meta['metadata'] must be a dict of Metadata columns or None; got {md!r}")
    if md is not None and METADATA_STEM_COLUMN in md and md[METADATA_STEM_COLUMN] != sample.stem:
        raise ValueError(f"sample.meta['metadata'][{METADATA_STEM_COLUMN!r}] = {md[METADATA_STEM_COLUMN]!r} "
                         f"differs from sample.stem {sample.stem!r}")
    joints = _joint_boxes(sample, h, w)
    scores = {k: _scores(getattr(sample, f"{k}_scores"), k) for k in SCORE_KINDS}
    boxed = {stem for stem, _, _ in joints}
    for kind, sc in scores.items():
        for key in sc:
            if key.partition("_")[2] not in boxed:
                raise ValueError(f"sample.{kind}_scores[{key!r}] has no joint box or ROI to crop (every scored ROI "
                                 "needs its crop)")
    return {
        "image8": image8, "spacing": sp, "metadata": None if md is None else
        {k: v for k, v in md.items() if k != METADATA_STEM_COLUMN},
        "bone": _masks(sample.bone_masks, (h, w), "bone_masks", BONE_CATEGORY_IDS, anatomy.canonical_bone_name),
        "erosion": _masks(sample.erosion_masks, (h, w), "erosion_masks", EROSION_CATEGORY_IDS),
        "joints": joints,
        "scores": scores,
    }


def write_sample_files(sample: HandSample, root: str | os.PathLike, split: str, *,
                       joints_path: str | None = None) -> SampleRecords:
    """Check one sample, write its image and ROI crops, and return its annotation records (the JSONs are written by
    :class:`DatasetWriter`). Safe to call from worker processes for different stems.

    Rules: ``stem`` ends in ``_L``/``_R`` matching ``side``; image 2-D uint8/uint16; masks bool or integer (nonzero =
    foreground) of the image shape, names from :data:`ramh_rt.anatomy.BONE_NAMES` (aliases accepted) /
    :data:`ramh_rt.anatomy.EROSION_CATEGORIES`; boxes and ROIs finite, non-empty, overlapping the image; scores
    integer score keys of their kind within range, each with a box or ROI to crop; ``spacing_mm`` positive or None.

    Raises:
        ValueError: a sample field breaks a rule, or its image file already exists (nothing is written then).
        OSError: writing failed (files written for this sample so far are removed).
    """
    check_split(split)
    layout = Layout.of(root, joints_path)
    p = _prepare(sample)
    image8 = p["image8"]
    h, w = image8.shape
    file_name = f"{sample.stem}{IMAGE_EXTENSION}"
    img_path = layout.seg_dir(split) / file_name
    for p_ in [img_path] + [layout.crop_dir(k, split, sample.stem) for k in SCORE_KINDS]:
        if p_.exists():
            raise ValueError(f"{p_} already exists; the writer never overwrites data")
    rec = SampleRecords(split=split, stem=sample.stem, file_name=file_name, height=h, width=w,
                        spacing_mm=p["spacing"], joints=p["joints"], scores=p["scores"], metadata=p["metadata"])
    for kind in ("bone", "erosion"):
        for name, m in p[kind]:
            rle = encode_mask(m)
            area, bbox = rle_area_bbox(rle)
            getattr(rec, kind).append((name, rle, area, bbox))
    try:
        atomic_write_bytes(img_path, encode_bmp(image8))
        rec.files.append(str(img_path))
        boxes = {stem: bbox for stem, bbox, _ in p["joints"]}
        for kind in SCORE_KINDS:
            for roi in roi_stems(kind):
                if roi not in boxes:
                    continue
                r0, r1, c0, c1 = crop_window(boxes[roi], h, w)
                path = layout.crop_path(kind, split, sample.stem, roi)
                atomic_write_bytes(path, encode_bmp(np.ascontiguousarray(image8[r0:r1, c0:c1])))
                rec.files.append(str(path))
    except BaseException:
        remove_sample_files(rec)
        raise
    return rec


def remove_sample_files(rec: SampleRecords) -> None:
    """Delete the files :func:`write_sample_files` wrote for a hand (image, crops, then its emptied crop folders);
    used when a hand cannot be registered, so that nothing unlisted stays behind."""
    for f in rec.files:
        try:
            os.unlink(f)
        except FileNotFoundError:
            pass
    for d in sorted({os.path.dirname(f) for f in rec.files[1:]}):  # files[0] is the image; the rest are crops
        try:
            os.rmdir(d)
        except OSError:  # not empty or already gone
            pass


# ---------------------------------------------------------------------------------------------------------------------
# The dataset
# ---------------------------------------------------------------------------------------------------------------------

@dataclass
class _SplitState:
    coco: dict[str, dict | None]            # kind -> existing top-level JSON (None: new file)
    stems: set[str]                          # stems already in the split (existing + added)
    scores: dict[str, dict[str, Any]]        # kind -> existing score JSON object
    new: list[SampleRecords] = field(default_factory=list)


class DatasetWriter:
    """Accumulates hands per split and writes the RAM-H1200 layout (see the module docstring).

    Args:
        root: the dataset folder (created if needed).
        append: False (default): refuse a split that already holds data; True: add to it (see module docstring).
        joints_path: joint-detection JSON template (default :data:`~.layout.DEFAULT_JOINTS_PATH`).

    Use as a context manager, or call :meth:`close`. For parallel writing, call :meth:`open_split` for every split
    first, let workers call :func:`write_sample_files`, and pass their records to :meth:`add_records`.
    """

    def __init__(self, root: str | os.PathLike, *, append: bool = False, joints_path: str | None = None):
        self.layout = Layout.of(root, joints_path)
        self.append = bool(append)
        self._splits: dict[str, _SplitState] = {}
        self._metadata_rows: dict[str, dict[str, Any]] = {}
        self._metadata_existing: dict[str, dict[str, Any]] | None = None
        self._metadata_xlsx_stems: set[str] = set()
        self._dirty_metadata = False
        self.written = 0
        # Stems are unique across splits: remember which split holds each image already on disk.
        self._stem_split: dict[str, str] = {}
        for sp in SPLITS:
            d = self.layout.seg_dir(sp)
            if d.is_dir():
                for f in d.iterdir():
                    if f.suffix.lower() in IMAGE_EXTENSIONS:
                        self._stem_split.setdefault(f.stem, sp)

    # -- splits ----------------------------------------------------------------------------------------------------

    def _existing_data(self, split: str) -> list[str]:
        found = []
        for p in self.layout.split_sources(split):
            if p.is_dir() and any(p.iterdir()):
                found.append(self.layout.rel(p))
            elif p.is_file():
                found.append(self.layout.rel(p))
        return found

    def open_split(self, split: str) -> None:
        """Prepare ``split`` for writing (idempotent).

        Raises:
            ValueError: the split holds data and ``append`` is False; or, when appending, an existing file's
                categories differ from this writer's.
            DatasetError: when appending, an existing annotation file is malformed.
        """
        check_split(split)
        if split in self._splits:
            return
        existing = self._existing_data(split)
        state = _SplitState(coco={}, stems=set(), scores={})
        if existing and not self.append:
            raise ValueError(f"split {split!r} of {self.layout.root} already holds data ({', '.join(existing)}); "
                             "pass append=True (ramh-data phantoms --append) to add to it")
        problems = Problems(raise_errors=True)
        paths = {"bone": self.layout.bone_json(split), "erosion": self.layout.be_json(split),
                 "joint": self.layout.joints_json(split)}
        for kind, path in paths.items():
            if not path.exists():
                if kind != "joint" and self.layout.seg_dir(split).is_dir() and any(self.layout.seg_dir(split).iterdir()):
                    raise ValueError(f"{self.layout.rel(self.layout.seg_dir(split))} holds files but no "
                                     f"{path.name}; cannot append consistently")
                state.coco[kind] = None
                continue
            parsed: CocoFile = parse_coco(path, kind, problems, self.layout.rel(path))  # raises when malformed
            cats = [(c.get("id"), c.get("name")) for c in parsed.raw["categories"]]
            ours = [(c["id"], c["name"]) for c in _CATEGORIES[kind]]
            if cats != ours:
                raise ValueError(f"{self.layout.rel(path)} has categories {cats[:3]}... that differ from this "
                                 "writer's; appending would mix two id schemes")
            state.coco[kind] = parsed.raw
            state.stems |= set(parsed.images)
        for kind in SCORE_KINDS:
            path = self.layout.score_json(kind, split)
            if path.exists():
                state.stems |= set(parse_scores(path, kind, problems, self.layout.rel(path)) or {})
                state.scores[kind] = read_json(path, problems, self.layout.rel(path))
            else:
                state.scores[kind] = {}
        self._splits[split] = state

    # -- adding ----------------------------------------------------------------------------------------------------

    def add(self, sample: HandSample, split: str) -> None:
        """Write one hand's image and crops now; its annotations go into the JSONs at :meth:`flush`.

        Raises:
            ValueError: invalid sample (see :func:`write_sample_files`), or its stem is already in the split.
        """
        self.open_split(split)
        self._check_new_stem(getattr(sample, "stem", None), split, getattr(sample, "meta", None))
        self.add_records(write_sample_files(sample, self.layout.root, split, joints_path=self.layout.joints_path))

    def add_records(self, rec: SampleRecords) -> None:
        """Register a hand whose files :func:`write_sample_files` already wrote.

        Raises:
            ValueError: the split was not opened with :meth:`open_split`, or the stem is already in it.
        """
        state = self._splits.get(rec.split)
        if state is None:
            raise ValueError(f"split {rec.split!r} was not opened; call open_split({rec.split!r}) before writing "
                             "sample files into it")
        self._check_new_stem(rec.stem, rec.split, {"metadata": rec.metadata})
        state.stems.add(rec.stem)
        self._stem_split[rec.stem] = rec.split
        state.new.append(rec)
        if rec.metadata is not None:
            self._metadata_rows[rec.stem] = rec.metadata
            self._dirty_metadata = True
        self.written += 1

    def _check_new_stem(self, stem: Any, split: str, meta: Any) -> None:
        if stem in self._splits[split].stems:
            raise ValueError(f"image {stem!r} is already in split {split!r}")
        other = self._stem_split.get(stem)
        if other is not None and other != split:
            raise ValueError(f"image {stem!r} is already in split {other!r}; stems are unique across splits")
        if isinstance(meta, dict) and meta.get("metadata") is not None:
            if self._metadata_existing is None:
                # Rows of Metadata.csv are kept and rewritten; Metadata.xlsx is only read to refuse duplicates.
                strict = Problems(raise_errors=True)
                self._metadata_existing = read_metadata(self.layout, strict, sources=("csv",))
                self._metadata_xlsx_stems = set(read_metadata(self.layout, strict, sources=("xlsx",)))
            if stem in self._metadata_existing or stem in self._metadata_rows or stem in self._metadata_xlsx_stems:
                raise ValueError(f"the dataset's metadata already has a row for {stem!r}")

    # -- writing the JSONs -----------------------------------------------------------------------------------------

    def _coco_json(self, kind: str, state: _SplitState, new: list[SampleRecords]) -> dict:
        old = state.coco[kind]
        images = list(old["images"]) if old else []
        anns = list(old["annotations"]) if old else []
        next_img = max((int(r["id"]) for r in images), default=0) + 1
        next_ann = max((int(a["id"]) for a in anns), default=0) + 1
        cat_ids = {c["name"]: c["id"] for c in _CATEGORIES[kind]}
        for rec in new:
            image = {"id": next_img, "file_name": rec.file_name, "height": rec.height, "width": rec.width}
            if rec.spacing_mm is not None:
                image["pixel_spacing_mm"] = rec.spacing_mm
            images.append(image)
            if kind == "joint":
                for stem, bbox, rbox in rec.joints:
                    a = {"id": next_ann, "image_id": next_img, "category_id": cat_ids[stem], "bbox": bbox,
                         "area": bbox[2] * bbox[3], "iscrowd": 0}
                    if rbox is not None:
                        a["rbox"] = rbox
                    anns.append(a)
                    next_ann += 1
            else:
                for name, rle, area, bbox in getattr(rec, kind):
                    anns.append({"id": next_ann, "image_id": next_img, "category_id": cat_ids[name],
                                 "segmentation": rle, "area": area, "bbox": bbox, "iscrowd": 0})
                    next_ann += 1
            next_img += 1
        out = dict(old) if old else {"info": {"description": f"RAM-H1200 layout ({kind})", "generator": _GENERATOR},
                                     "licenses": []}
        out["categories"] = old["categories"] if old else _CATEGORIES[kind]
        out["images"] = images
        out["annotations"] = anns
        return out

    def flush(self) -> None:
        """Write the COCO, score and metadata files of every split that received hands since the last flush."""
        for split, state in self._splits.items():
            if not state.new:
                continue
            new = sorted(state.new, key=lambda r: r.file_name)
            paths = {"bone": self.layout.bone_json(split), "erosion": self.layout.be_json(split),
                     "joint": self.layout.joints_json(split)}
            for kind, path in paths.items():
                top = self._coco_json(kind, state, new)
                atomic_write_json(path, top)
                state.coco[kind] = top
            for kind in SCORE_KINDS:
                merged = dict(state.scores[kind])
                for rec in new:
                    merged[rec.file_name] = rec.scores[kind]
                atomic_write_json(self.layout.score_json(kind, split), merged, indent=1)
                state.scores[kind] = merged
            state.new = []
        if self._dirty_metadata:
            self._write_metadata()
            self._dirty_metadata = False

    def _write_metadata(self) -> None:
        path = self.layout.metadata_csv()
        rows = {**(self._metadata_existing or {}), **self._metadata_rows}
        extra = sorted({k for r in rows.values() for k in r} - set(METADATA_COLUMNS))
        cols = list(METADATA_COLUMNS) + extra
        buf = io.StringIO()
        wr = csv.writer(buf, lineterminator="\n")
        wr.writerow(cols)
        for stem in sorted(rows):
            r = rows[stem]
            wr.writerow([stem] + ["" if r.get(c) is None else str(r.get(c)) for c in cols[1:]])
        atomic_write_bytes(path, buf.getvalue().encode("utf-8"))
        self._metadata_existing = rows
        self._metadata_rows = {}

    def close(self) -> None:
        """Flush (idempotent)."""
        self.flush()

    def __enter__(self) -> "DatasetWriter":
        return self

    def __exit__(self, *exc) -> None:
        # Flush even when the block failed: the hands added so far are complete and their files are on disk.
        self.flush()


def write_sample(sample: HandSample, root: str | os.PathLike, split: str, *, joints_path: str | None = None) -> None:
    """Write one hand into ``root`` (appending to the split when it holds data) and update the JSONs at once.

    For many hands use :class:`DatasetWriter` (the JSONs are rewritten once, not per hand).

    Raises:
        ValueError: invalid sample, stem already present, or incompatible existing files.
        DatasetError: an existing annotation file is malformed.
    """
    with DatasetWriter(root, append=True, joints_path=joints_path) as w:
        w.add(sample, split)
