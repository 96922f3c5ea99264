"""COCO files of RAM-H1200: parsing with checks, mask decoding/encoding (pycocotools), joint boxes.

Three kinds of COCO file share this code: ``"bone"`` (categories = bone classes, aliases accepted), ``"erosion"``
(categories = :data:`ramh_rt.anatomy.EROSION_CATEGORIES`) and ``"joint"`` (categories = ROI stems, one ``bbox`` per
stem and image, optional ``rbox``). Categories in :data:`ramh_rt.anatomy.IGNORED_CATEGORIES` and category id 0 are
skipped with their annotations.

:func:`parse_coco` checks structure without decoding any mask (fast enough to run when a split is first opened);
:func:`decode_class_masks` decodes one image's masks and checks what only decoding can show.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Literal

import numpy as np
from pycocotools import mask as mask_utils

from ramh_rt import anatomy
from ramh_rt.geometry import Roi

from .errors import Problems
from .fileio import read_json
from .layout import image_stem

CocoKind = Literal["bone", "erosion", "joint"]


@dataclass(frozen=True)
class CocoImage:
    """One COCO image record (checked)."""

    id: int
    file_name: str
    stem: str
    height: int
    width: int
    spacing_mm: float | None

    @property
    def record(self) -> str:
        return f"image '{self.file_name}' (id {self.id})"


@dataclass(frozen=True)
class CocoAnn:
    """One annotation of a kept category: the class name (canonical) or ROI stem, and the raw record.

    For ``"joint"`` files ``box`` is (x0, y0, x1, y1) and ``roi`` the oriented box (from ``rbox``, else the bbox with
    angle 0).
    """

    id: int
    name: str
    data: dict
    box: tuple[float, float, float, float] | None = None
    roi: Roi | None = None

    @property
    def record(self) -> str:
        return f"annotation id {self.id} ({self.name})"


@dataclass
class CocoFile:
    """A parsed COCO file.

    Attributes:
        path / rel: the file, and its name relative to the dataset root (used in problems).
        kind: ``"bone"``, ``"erosion"`` or ``"joint"``.
        images: stem -> image record.
        anns: image id -> annotations of kept categories, in file order.
        raw: the parsed JSON (the writer keeps its records when appending).
    """

    path: Path
    rel: str
    kind: CocoKind
    images: dict[str, CocoImage] = field(default_factory=dict)
    anns: dict[int, list[CocoAnn]] = field(default_factory=dict)
    raw: dict = field(default_factory=dict)
    #: ids of annotations whose compressed RLE already passed the re-encoding check (see decode_segmentation).
    verified: set[int] = field(default_factory=set)

    def image_anns(self, stem: str) -> list[CocoAnn]:
        img = self.images.get(stem)
        return self.anns.get(img.id, []) if img is not None else []


def _is_int(x: Any) -> bool:
    return (isinstance(x, int) and not isinstance(x, bool)) or (isinstance(x, float) and x.is_integer())


def _is_num(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _category_namer(kind: CocoKind) -> Callable[[str], str]:
    """Maps a category name to the canonical class/stem name; KeyError for unknown names."""
    if kind == "bone":
        return anatomy.canonical_bone_name

    allowed = set(anatomy.EROSION_CATEGORIES if kind == "erosion" else anatomy.AREA_STEMS)
    label = "erosion category" if kind == "erosion" else "ROI stem"

    def name(n: str) -> str:
        if n not in allowed:
            raise KeyError(f"unknown {label} {n!r}; known: {', '.join(sorted(allowed))}")
        return n

    return name


def _check_segmentation(seg: Any, h: int, w: int) -> str | None:
    """What is structurally wrong with a segmentation (polygons or RLE), or None. Does not decode."""
    if isinstance(seg, list):
        for i, poly in enumerate(seg):
            if not isinstance(poly, list) or not all(_is_num(v) for v in poly):
                return f"polygon {i} must be a list of finite numbers"
            if len(poly) < 6 or len(poly) % 2:
                return f"polygon {i} must hold x, y pairs of at least 3 points (got {len(poly)} numbers)"
        return None
    if isinstance(seg, dict):
        size, counts = seg.get("size"), seg.get("counts")
        if not (isinstance(size, list) and len(size) == 2 and all(_is_int(v) for v in size)):
            return f"RLE 'size' must be [height, width]; got {size!r}"
        if [int(size[0]), int(size[1])] != [h, w]:
            return f"RLE size {[int(v) for v in size]} does not match the image size [{h}, {w}] (height, width)"
        if isinstance(counts, str):
            return None if counts.isascii() else "compressed RLE 'counts' holds non-ASCII characters"
        if isinstance(counts, list):
            if not all(_is_int(v) and v >= 0 for v in counts):
                return "uncompressed RLE 'counts' must be non-negative integers"
            total = int(sum(counts))
            if total != h * w:
                return f"uncompressed RLE runs add up to {total} pixels; the image has {h} x {w} = {h * w}"
            return None
        return f"RLE 'counts' must be a string or a list of integers; got {type(counts).__name__}"
    return f"segmentation must be a list of polygons or an RLE object; got {type(seg).__name__}"


def _check_box(ann: dict, img: CocoImage) -> tuple[tuple[float, float, float, float] | None, Roi | None, str]:
    bbox = ann.get("bbox")
    if not (isinstance(bbox, list) and len(bbox) == 4 and all(_is_num(v) for v in bbox)):
        return None, None, f"'bbox' must be [x, y, width, height] of finite numbers; got {bbox!r}"
    x, y, bw, bh = (float(v) for v in bbox)
    if bw <= 0 or bh <= 0:
        return None, None, f"'bbox' {bbox} has a non-positive width or height"
    if x >= img.width or y >= img.height or x + bw <= 0 or y + bh <= 0:
        return None, None, f"'bbox' {bbox} lies outside the {img.width} x {img.height} image"
    box = (x, y, x + bw, y + bh)
    rb = ann.get("rbox")
    if rb is None:
        return box, Roi(x + bw / 2, y + bh / 2, bw, bh, 0.0), ""
    if not (isinstance(rb, list) and len(rb) == 5 and all(_is_num(v) for v in rb)):
        return None, None, f"'rbox' must be [cx, cy, w, h, angle] of finite numbers; got {rb!r}"
    if rb[2] <= 0 or rb[3] <= 0:
        return None, None, f"'rbox' {rb} has a non-positive width or height"
    return box, Roi(*(float(v) for v in rb)), ""


def parse_coco(path: Path, kind: CocoKind, problems: Problems, rel: str) -> CocoFile | None:
    """Parse and check one COCO file without decoding masks.

    Checks: valid JSON, top-level ``images``/``annotations``/``categories`` lists, duplicate keys, category names
    (unknown names are errors; ignored ones and id 0 are skipped), image records (integer id, file name, positive
    height/width, optional positive ``pixel_spacing_mm``; duplicate ids or stems), annotations (integer id, known image
    and category, duplicate ids), segmentation structure and RLE size (mask files), bbox/rbox and duplicate boxes per
    image and stem (joint files). Records with errors are left out (when ``problems`` collects rather than raises).

    Returns:
        the parsed file, or None when it is missing or not usable at all.
    """
    top = read_json(path, problems, rel)
    if top is None:
        return None
    if not isinstance(top, dict):
        problems.error(rel, None, f"top level must be a JSON object, got {type(top).__name__}")
        return None
    for k in getattr(top, "duplicates", []):
        problems.error(rel, f"key {k!r}", "top-level key appears more than once")
    lists = {}
    for k in ("images", "annotations", "categories"):
        v = top.get(k)
        if not isinstance(v, list):
            problems.error(rel, None, f"'{k}' must be a list; got {type(v).__name__ if k in top else 'nothing'}")
            return None
        lists[k] = v
    out = CocoFile(path=path, rel=rel, kind=kind, raw=top)

    # Categories: id -> canonical name (None = skipped).
    namer = _category_namer(kind)
    cats: dict[int, str | None] = {}
    by_name: dict[str, int] = {}
    for c in lists["categories"]:
        if not isinstance(c, dict) or not _is_int(c.get("id")) or not isinstance(c.get("name"), str):
            problems.error(rel, f"category {c.get('id') if isinstance(c, dict) else c!r}",
                           "a category needs an integer 'id' and a string 'name'")
            continue
        cid, cname = int(c["id"]), c["name"]
        rec = f"category id {cid} ({cname!r})"
        if cid in cats:
            problems.error(rel, rec, "category id appears more than once")
            continue
        if cid == 0 or cname in anatomy.IGNORED_CATEGORIES:
            cats[cid] = None
            continue
        try:
            name = namer(cname)
        except KeyError as e:
            problems.error(rel, rec, str(e.args[0]))
            cats[cid] = None
            continue
        if name in by_name:
            problems.error(rel, rec, f"names the same class as category id {by_name[name]} ({name!r})")
            cats[cid] = None
            continue
        by_name[name] = cid
        cats[cid] = name

    # Images.
    by_id: dict[int, CocoImage] = {}
    for r in lists["images"]:
        rec = f"image {r.get('file_name', r.get('id'))!r}" if isinstance(r, dict) else f"image {r!r}"
        if not isinstance(r, dict):
            problems.error(rel, rec, "an image record must be a JSON object")
            continue
        for k in getattr(r, "duplicates", []):
            problems.error(rel, rec, f"key {k!r} appears more than once")
        iid, fname, hh, ww = r.get("id"), r.get("file_name"), r.get("height"), r.get("width")
        if not _is_int(iid) or not isinstance(fname, str) or not fname:
            problems.error(rel, rec, "an image record needs an integer 'id' and a non-empty 'file_name'")
            continue
        rec = f"image '{fname}' (id {int(iid)})"
        if not (_is_int(hh) and _is_int(ww) and hh > 0 and ww > 0):
            problems.error(rel, rec, f"'height' and 'width' must be positive integers; got {hh!r}, {ww!r}")
            continue
        sp = r.get("pixel_spacing_mm")
        if sp is not None and not (_is_num(sp) and sp > 0):
            problems.error(rel, rec, f"'pixel_spacing_mm' must be a positive number or null; got {sp!r}")
            continue
        img = CocoImage(int(iid), fname, image_stem(fname), int(hh), int(ww), float(sp) if sp is not None else None)
        if img.id in by_id:
            problems.error(rel, rec, f"image id {img.id} appears more than once")
            continue
        if img.stem in out.images:
            problems.error(rel, rec, f"image '{img.stem}' is listed more than once "
                                     f"(also as {out.images[img.stem].record})")
            continue
        by_id[img.id] = img
        out.images[img.stem] = img

    # Annotations.
    ann_ids: set[int] = set()
    box_seen: dict[tuple[int, str], int] = {}
    for a in lists["annotations"]:
        if not isinstance(a, dict) or not _is_int(a.get("id")):
            problems.error(rel, f"annotation {a.get('id') if isinstance(a, dict) else a!r}",
                           "an annotation needs an integer 'id'")
            continue
        aid = int(a["id"])
        rec = f"annotation id {aid}"
        for k in getattr(a, "duplicates", []):
            problems.error(rel, rec, f"key {k!r} appears more than once")
        if aid in ann_ids:
            problems.error(rel, rec, "annotation id appears more than once")
            continue
        ann_ids.add(aid)
        cid, iid = a.get("category_id"), a.get("image_id")
        if not _is_int(cid) or int(cid) not in cats:
            problems.error(rel, rec, f"refers to category id {cid!r}, which 'categories' does not define")
            continue
        name = cats[int(cid)]
        if name is None:
            continue  # ignored category
        img = by_id.get(int(iid)) if _is_int(iid) else None
        if img is None:
            problems.error(rel, rec, f"refers to image id {iid!r}, which 'images' does not list")
            continue
        rec = f"annotation id {aid} ({name} on '{img.file_name}')"
        if kind == "joint":
            box, roi, msg = _check_box(a, img)
            if box is None:
                problems.error(rel, rec, msg)
                continue
            key = (img.id, name)
            if key in box_seen:
                problems.error(rel, rec, f"second box for ROI {name!r} on this image (first: annotation id "
                                         f"{box_seen[key]})")
                continue
            box_seen[key] = aid
            out.anns.setdefault(img.id, []).append(CocoAnn(aid, name, a, box, roi))
            continue
        if "segmentation" not in a:
            problems.error(rel, rec, "has no 'segmentation'")
            continue
        msg = _check_segmentation(a["segmentation"], img.height, img.width)
        if msg:
            problems.error(rel, rec, msg)
            continue
        if a["segmentation"] == []:
            problems.warning(rel, rec, "empty segmentation (no polygon): contributes no pixels")
        out.anns.setdefault(img.id, []).append(CocoAnn(aid, name, a))
    return out


# ---------------------------------------------------------------------------------------------------------------------
# Masks
# ---------------------------------------------------------------------------------------------------------------------

def decode_segmentation(seg: Any, height: int, width: int, *, check: bool = True) -> np.ndarray:
    """Decode one structurally checked segmentation (see :func:`parse_coco`) to an H x W uint8 0/1 array
    (Fortran order, as pycocotools returns it).

    With ``check``, compressed RLE strings are decoded and re-encoded: pycocotools does not check that the runs of a
    compressed string cover exactly height x width pixels (short strings decode to uninitialised memory), so a string
    that does not come back identical is rejected. (Polygons and uncompressed runs are fully checked by the parser.)

    Raises:
        ValueError: the RLE string is invalid.
    """
    if isinstance(seg, list):
        if not seg:
            return np.zeros((height, width), dtype=np.uint8, order="F")
        rle = mask_utils.merge(mask_utils.frPyObjects(seg, height, width))
        return mask_utils.decode(rle)
    counts = seg["counts"]
    if isinstance(counts, list):
        # pycocotools tests type(x) == dict, so hand it a plain dict (the parser's objects are a dict subclass).
        plain = {"size": [height, width], "counts": [int(c) for c in counts]}
        return mask_utils.decode(mask_utils.frPyObjects(plain, height, width))
    raw = counts.encode("ascii")
    try:
        m = mask_utils.decode({"size": [height, width], "counts": raw})
    except ValueError:
        raise ValueError("compressed RLE is invalid (its runs exceed height x width)") from None
    if check and mask_utils.encode(m)["counts"] != raw:
        raise ValueError("compressed RLE does not describe exactly height x width pixels (its runs add up to a "
                         "different total, or it is not in pycocotools' canonical form)")
    return m


def decode_class_masks(coco: CocoFile, stem: str, problems: Problems,
                       names: Iterable[str] | None = None) -> dict[str, np.ndarray]:
    """Decode the masks of one image: class name -> H x W bool, several pieces of a class merged (union).

    The arrays are column-major (Fortran order), as pycocotools decodes them: converting 30 full-size masks to row-major
    would cost as much again as decoding them, and NumPy/PyTorch code indexes either order alike
    (``np.ascontiguousarray`` where row-major memory is needed). Classes without annotations are absent. ``names``
    restricts decoding to those classes. A piece that fails to decode is reported to ``problems`` (and left out when
    they are collected). Each compressed RLE is checked once per :class:`CocoFile` (see :func:`decode_segmentation`).
    """
    img = coco.images[stem]
    want = set(names) if names is not None else None
    out: dict[str, np.ndarray] = {}
    for ann in coco.anns.get(img.id, []):
        if want is not None and ann.name not in want:
            continue
        try:
            m = decode_segmentation(ann.data["segmentation"], img.height, img.width,
                                    check=ann.id not in coco.verified)
        except ValueError as e:
            problems.error(coco.rel, f"annotation id {ann.id} ({ann.name} on '{img.file_name}')", str(e))
            continue
        coco.verified.add(ann.id)
        piece = m.view(bool)  # decode yields 0/1 uint8
        if ann.name in out:
            out[ann.name] |= piece
        else:
            out[ann.name] = piece  # a fresh array owned here: safe to OR into in place
    return out


def encode_mask(mask: np.ndarray) -> dict:
    """Compressed COCO RLE of a 2-D mask (nonzero = foreground): ``{"size": [h, w], "counts": str}``."""
    mask = np.asarray(mask)
    binary = mask if mask.dtype == bool else mask != 0
    m = np.asfortranarray(binary.view(np.uint8))  # pycocotools reads column-major 0/1 bytes
    r = mask_utils.encode(m)
    return {"size": [int(m.shape[0]), int(m.shape[1])], "counts": r["counts"].decode("ascii")}


def rle_area_bbox(rle: dict) -> tuple[int, list[float]]:
    """(area in pixels, [x, y, w, h]) of a compressed RLE from :func:`encode_mask`."""
    r = {"size": rle["size"], "counts": rle["counts"].encode("ascii")}
    return int(mask_utils.area(r)), [float(v) for v in mask_utils.toBbox(r)]
