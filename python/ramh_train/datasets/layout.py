"""Where everything lies in a RAM-H1200 dataset folder, and the choices this package makes where the card is silent.

Layout (``root`` is the dataset folder)::

    Segmentation/{split}/<image stem>.bmp                          hand radiographs (8-bit grayscale BMP)
    Segmentation/{split}/_annotations_bone_rle.coco.json           bone masks, COCO, RLE (or polygons)
    Segmentation/{split}/_annotations_be_rle.coco.json             bone-erosion masks, COCO, RLE (or polygons)
    JointDetection/{split}/_annotations_joints.coco.json           one box per SvdH ROI (see below)
    SvdH_Scoring/SvdH_BE_Scoring/{split}/<image stem>/<ROI>.bmp    erosion ROI crops (16 stems)
    SvdH_Scoring/SvdH_BE_Scoring/{split}/_annotation_be_scores.json
    SvdH_Scoring/SvdH_JSN_Scoring/{split}/<image stem>/<ROI>.bmp   narrowing ROI crops (15 stems)
    SvdH_Scoring/SvdH_JSN_Scoring/{split}/_annotation_jsn_scores.json
    Metadata.xlsx or Metadata.csv                                  columns "Mapped Image Stem", "isRA", "Sex"

Decisions (the public card does not fix these):

* **Joint detection JSON.** Its path in the real dataset is not documented; :data:`DEFAULT_JOINTS_PATH` is used unless
  the caller passes another template (``{split}`` is replaced by the split name; relative templates are relative to
  the root). It is a COCO file whose ``images`` name the files of ``Segmentation/{split}`` (the images are not
  duplicated), whose category names are ROI stems (:data:`ramh_rt.anatomy.AREA_STEMS`) and whose annotations hold
  ``bbox`` ``[x, y, w, h]`` in pixels plus, when this package wrote it, ``"rbox": [cx, cy, w, h, angle]`` (the
  oriented ROI, :class:`~ramh_rt.geometry.Roi`). Without ``rbox`` the ROI is the bbox with angle 0.
* **Score JSONs** sit at the split folder level, beside the per-image crop folders (this is where the benchmark code
  looks for them). Their keys are hand image names; a key may carry an image extension (``X_L.bmp``) or not
  (``X_L``): the stem is what matches the crop folder. This package writes the image file name.
* **Pixel spacing** (mm) is an optional ``"pixel_spacing_mm"`` field of the COCO image record (written into all three
  COCO files; the reader takes the bone file's).
* **Category ids** written: bones 1..30 in :data:`ramh_rt.anatomy.BONE_NAMES` order, erosion categories 1..3 in
  :data:`ramh_rt.anatomy.EROSION_CATEGORIES` order, ROI stems 1..22 in :data:`ramh_rt.anatomy.AREA_STEMS` order; id 0
  is reserved (RAM-H1200's COCO exports use it for a super-category, which readers skip).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ramh_rt import anatomy

SPLITS: tuple[str, ...] = ("train", "val", "test")

SEGMENTATION_DIR = "Segmentation"
BONE_JSON = "_annotations_bone_rle.coco.json"
BE_JSON = "_annotations_be_rle.coco.json"
#: Template of the joint-detection COCO file, relative to the dataset root (see the module docstring).
DEFAULT_JOINTS_PATH = "JointDetection/{split}/_annotations_joints.coco.json"
SCORING_DIR = "SvdH_Scoring"

ScoreKind = Literal["be", "jsn"]
SCORE_KINDS: tuple[str, ...] = ("be", "jsn")
_SCORE_DIRS = {"be": "SvdH_BE_Scoring", "jsn": "SvdH_JSN_Scoring"}
_SCORE_JSONS = {"be": "_annotation_be_scores.json", "jsn": "_annotation_jsn_scores.json"}
SCORE_PREFIX = {"be": "BE_", "jsn": "JSN_"}

METADATA_XLSX = "Metadata.xlsx"
METADATA_CSV = "Metadata.csv"
METADATA_STEM_COLUMN = "Mapped Image Stem"
METADATA_COLUMNS: tuple[str, ...] = (METADATA_STEM_COLUMN, "isRA", "Sex")

#: Image files recognised in ``Segmentation/{split}`` (lower-case suffixes).
IMAGE_EXTENSIONS: tuple[str, ...] = (".bmp", ".png", ".jpg", ".jpeg", ".tif", ".tiff")
CROP_EXTENSION = ".bmp"
IMAGE_EXTENSION = ".bmp"  # what the writer writes

#: COCO category ids this package writes (name -> id).
BONE_CATEGORY_IDS: dict[str, int] = {name: i + 1 for i, name in enumerate(anatomy.BONE_NAMES)}
EROSION_CATEGORY_IDS: dict[str, int] = {name: i + 1 for i, name in enumerate(anatomy.EROSION_CATEGORIES)}
JOINT_CATEGORY_IDS: dict[str, int] = {stem: i + 1 for i, stem in enumerate(anatomy.AREA_STEMS)}


def check_split(split: str) -> str:
    """``split`` if it is one of :data:`SPLITS`, else ValueError naming it."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}; got {split!r}")
    return split


def check_kind(kind: str) -> str:
    """``kind`` if it is ``"be"`` or ``"jsn"``, else ValueError naming it."""
    if kind not in SCORE_KINDS:
        raise ValueError(f"score kind must be 'be' or 'jsn'; got {kind!r}")
    return kind


def roi_stems(kind: str) -> tuple[str, ...]:
    """ROI stems with crops and scores of one kind (16 for ``"be"``, 15 for ``"jsn"``)."""
    return anatomy.stems(check_kind(kind))


def image_stem(name: str) -> str:
    """The stem of an image name: ``"X_L.bmp"`` -> ``"X_L"``; a name without a known image suffix is returned as is
    (so that stems containing dots survive)."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    root, ext = os.path.splitext(base)
    return root if ext.lower() in IMAGE_EXTENSIONS else base


@dataclass(frozen=True)
class Layout:
    """Paths of one dataset folder.

    Args:
        root: the dataset folder.
        joints_path: template of the joint-detection JSON path, ``{split}`` replaced by the split; relative to
            ``root`` unless absolute. Default :data:`DEFAULT_JOINTS_PATH`.
    """

    root: Path
    joints_path: str = DEFAULT_JOINTS_PATH

    @staticmethod
    def of(root: str | os.PathLike, joints_path: str | None = None) -> "Layout":
        if joints_path is not None and "{split}" not in str(joints_path):
            raise ValueError(f"joints_path must contain '{{split}}' (one file per split); got {joints_path!r}")
        return Layout(Path(root), str(joints_path) if joints_path is not None else DEFAULT_JOINTS_PATH)

    def seg_dir(self, split: str) -> Path:
        return self.root / SEGMENTATION_DIR / split

    def bone_json(self, split: str) -> Path:
        return self.seg_dir(split) / BONE_JSON

    def be_json(self, split: str) -> Path:
        return self.seg_dir(split) / BE_JSON

    def mask_json(self, kind: Literal["bone", "erosion"], split: str) -> Path:
        return self.bone_json(split) if kind == "bone" else self.be_json(split)

    def joints_json(self, split: str) -> Path:
        p = Path(self.joints_path.replace("{split}", split))
        return p if p.is_absolute() else self.root / p

    def score_dir(self, kind: str, split: str) -> Path:
        return self.root / SCORING_DIR / _SCORE_DIRS[check_kind(kind)] / split

    def score_json(self, kind: str, split: str) -> Path:
        return self.score_dir(kind, split) / _SCORE_JSONS[kind]

    def crop_dir(self, kind: str, split: str, stem: str) -> Path:
        return self.score_dir(kind, split) / stem

    def crop_path(self, kind: str, split: str, stem: str, roi: str) -> Path:
        return self.crop_dir(kind, split, stem) / f"{roi}{CROP_EXTENSION}"

    def metadata_xlsx(self) -> Path:
        return self.root / METADATA_XLSX

    def metadata_csv(self) -> Path:
        return self.root / METADATA_CSV

    def split_sources(self, split: str) -> list[Path]:
        """The folders/files whose presence makes ``split`` part of the dataset."""
        return [self.seg_dir(split), self.joints_json(split), *(self.score_dir(k, split) for k in SCORE_KINDS)]

    def has_split(self, split: str) -> bool:
        return any(p.exists() for p in self.split_sources(split))

    def rel(self, path: str | os.PathLike) -> str:
        """``path`` relative to the root (POSIX separators) when under it, else the absolute path."""
        p = Path(path)
        try:
            return p.resolve().relative_to(self.root.resolve()).as_posix()
        except ValueError:
            return p.as_posix()
