"""Reader of the RAM-H1200 dataset layout (see :mod:`.layout` for the layout and the choices made where the public
card is silent).

The reader is lazy: opening a dataset only looks at which splits exist; a split's annotation files are parsed and
checked when the split is first used (and kept: the parsed JSON, annotations indexed by image); images and masks are
decoded one hand at a time by :meth:`RamH1200.load`. Score-model training needs only :meth:`RamH1200.score_items`
(crop paths and scores, nothing decoded).

Malformed input raises :class:`~.errors.DatasetError` naming the file, the record and the problem; suspicious but
readable input is kept as warnings in :attr:`RamH1200.warnings`. To see every problem at once, use
:func:`ramh_train.datasets.validate.validate`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ramh_rt import anatomy
from ramh_rt.geometry import Roi

from .coco import CocoImage, decode_class_masks
from .errors import DatasetError, Problem, Problems
from .fileio import read_grayscale
from .index import SplitIndex, build_split_index
from .layout import SCORE_KINDS, SPLITS, Layout, check_kind, check_split, image_stem, roi_stems
from .metadata import read_metadata
from .sample import HandSample


@dataclass(frozen=True)
class ImageInfo:
    """What the annotation files say about one hand, without decoding anything.

    Attributes:
        stem / split: image stem and split.
        path: the image file (None when the split has no segmentation folder).
        height / width: pixels, from the COCO record (None without one).
        side: ``"L"``/``"R"`` from the stem (None when the stem carries no side).
        spacing_mm: pixel spacing from the COCO record, None when absent.
        image_id: COCO image id in the bone file (None without one).
    """

    stem: str
    split: str
    path: Path | None
    height: int | None
    width: int | None
    side: str | None
    spacing_mm: float | None
    image_id: int | None


@dataclass(frozen=True)
class ScoreItem:
    """One scored ROI crop: the unit of score-model training.

    Attributes:
        stem: hand image stem; split; side (``"L"``/``"R"`` or None).
        roi: ROI stem (``"MCP-I"``); key: score key (``"BE_MCP-I"``); kind: ``"be"`` or ``"jsn"``.
        score: integer grade (0..5 erosion, 0..4 narrowing).
        crop_path: the crop BMP.
    """

    stem: str
    split: str
    side: str | None
    roi: str
    key: str
    kind: str
    score: int
    crop_path: Path


class RamH1200:
    """A RAM-H1200 dataset folder.

    Args:
        root: the dataset folder (holding ``Segmentation/``, ``SvdH_Scoring/``...).
        splits: restrict to these splits (default: every split present, in train/val/test order).
        joints_path: joint-detection JSON template, ``{split}`` replaced (default
            :data:`~.layout.DEFAULT_JOINTS_PATH`, relative to ``root``).

    Raises:
        DatasetError: ``root`` is not a folder, holds no split, or a requested split is absent.
        ValueError: an unknown split name or a ``joints_path`` without ``{split}``.

    Hands are addressed by stem (``"JP_SCGH_P0029_20121201_5835_L"``; an image file name is accepted too) or by
    position in :meth:`stems`; ``split`` may be left out where the stem is in only one split. ``len()``, indexing and
    iteration run over all selected splits in order, yielding :class:`~.sample.HandSample` (decoded on demand).
    """

    def __init__(self, root: str | os.PathLike, *, splits: tuple[str, ...] | list[str] | None = None,
                 joints_path: str | None = None):
        self.layout = Layout.of(root, joints_path)
        self.root = self.layout.root
        if not self.root.is_dir():
            raise DatasetError(Problem(str(self.root), None, "dataset folder does not exist"))
        present = [s for s in SPLITS if self.layout.has_split(s)]
        if splits is None:
            if not present:
                raise DatasetError(Problem(str(self.root), None, "no split found: expected Segmentation/{train,val,"
                                                                 "test} or SvdH_Scoring/*/{train,val,test}"))
            self._splits = tuple(present)
        else:
            for s in splits:
                check_split(s)
                if s not in present:
                    raise DatasetError(Problem(str(self.root), f"split {s!r}", "split not found (none of " + ", ".join(
                        self.layout.rel(p) for p in self.layout.split_sources(s)) + " exists)"))
            self._splits = tuple(s for s in SPLITS if s in splits)
        self._problems = Problems(raise_errors=True)
        self._index: dict[str, SplitIndex] = {}
        self._metadata: dict[str, dict[str, Any]] | None = None

    # -- discovery -------------------------------------------------------------------------------------------------

    @property
    def splits(self) -> tuple[str, ...]:
        """The selected splits present on disk, in train/val/test order."""
        return self._splits

    @property
    def warnings(self) -> list[Problem]:
        """Warnings met so far (suspicious but readable input)."""
        return self._problems.warnings

    def index(self, split: str) -> SplitIndex:
        """The parsed, checked annotation files of ``split`` (built on first use, then cached).

        Raises:
            DatasetError: a malformed annotation file (the first problem found).
        """
        if split not in self._splits:
            check_split(split)
            raise ValueError(f"split {split!r} is not selected; this dataset has {', '.join(self._splits)}")
        idx = self._index.get(split)
        if idx is None:
            idx = self._index[split] = build_split_index(self.layout, split, self._problems)
        return idx

    def stems(self, split: str | None = None) -> list[str]:
        """Image stems of one split (sorted), or of every selected split in order when ``split`` is None."""
        if split is not None:
            return list(self.index(split).stems)
        return [s for sp in self._splits for s in self.index(sp).stems]

    def __len__(self) -> int:
        return sum(len(self.index(sp).stems) for sp in self._splits)

    def __getitem__(self, i: int) -> HandSample:
        return self.load(i)

    def __iter__(self) -> Iterator[HandSample]:
        for sp in self._splits:
            for stem in self.index(sp).stems:
                yield self.load(stem, sp)

    def locate(self, key: str | int, split: str | None = None) -> tuple[str, str]:
        """(split, stem) of a hand given by stem/file name or position.

        Raises:
            KeyError: the stem is in no selected split (or ``split`` does not hold it).
            IndexError: position out of range.
            DatasetError: the stem is in several splits and ``split`` is None.
            TypeError: ``key`` is neither str nor int.
        """
        if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
            stems = self.stems(split)
            i = int(key)
            if not -len(stems) <= i < len(stems):
                raise IndexError(f"index {i} out of range for {len(stems)} hands")
            i %= len(stems)
            if split is not None:
                return split, stems[i]
            for sp in self._splits:
                n = len(self.index(sp).stems)
                if i < n:
                    return sp, self.index(sp).stems[i]
                i -= n
        if not isinstance(key, str):
            raise TypeError(f"a hand is addressed by stem (str) or position (int); got {type(key).__name__}")
        stem = image_stem(key)
        splits = [split] if split is not None else list(self._splits)
        found = [sp for sp in splits if stem in self.index(sp)]
        if not found:
            where = f"split {split!r}" if split is not None else "any split (" + ", ".join(self._splits) + ")"
            raise KeyError(f"no image {stem!r} in {where}")
        if len(found) > 1:
            raise DatasetError(Problem(str(self.root), f"image {stem!r}", f"is in several splits ({', '.join(found)})"
                                                                          "; pass split="))
        return found[0], stem

    # -- cheap accessors (nothing decoded) -------------------------------------------------------------------------

    def _record(self, split: str, stem: str) -> CocoImage | None:
        return self.index(split).image_record(stem)

    def image_info(self, key: str | int, split: str | None = None) -> ImageInfo:
        """Size, side, spacing and path of a hand from the annotation files (no decoding)."""
        split, stem = self.locate(key, split)
        idx = self.index(split)
        rec = self._record(split, stem)
        bone_rec = idx.bone.images.get(stem) if idx.bone is not None else None
        return ImageInfo(stem=stem, split=split, path=idx.image_files.get(stem),
                         height=rec.height if rec else None, width=rec.width if rec else None,
                         side=anatomy.side_from_stem(stem), spacing_mm=bone_rec.spacing_mm if bone_rec else None,
                         image_id=bone_rec.id if bone_rec else None)

    def image_path(self, key: str | int, split: str | None = None) -> Path:
        """The image file of a hand.

        Raises:
            DatasetError: the split has no segmentation image for it.
        """
        info = self.image_info(key, split)
        if info.path is None:
            raise DatasetError(Problem(self.layout.rel(self.layout.seg_dir(info.split)), f"image {info.stem!r}",
                                       "no image file for this hand"))
        return info.path

    def scores(self, key: str | int, split: str | None = None, kind: str | None = None) -> dict[str, int]:
        """Scores of a hand: ``{"BE_R": 0, ..., "JSN_SR": 1, ...}`` (``kind`` ``"be"``/``"jsn"`` for one kind);
        keys not scored are absent."""
        split, stem = self.locate(key, split)
        kinds = SCORE_KINDS if kind is None else (check_kind(kind),)
        out: dict[str, int] = {}
        for k in kinds:
            out.update((self.index(split).scores.get(k) or {}).get(stem, {}))
        return out

    def joint_boxes(self, key: str | int, split: str | None = None) -> dict[str, tuple[float, float, float, float]]:
        """ROI stem -> axis-aligned box (x0, y0, x1, y1) in pixels (empty without a joint file)."""
        split, stem = self.locate(key, split)
        j = self.index(split).joints
        return {a.name: a.box for a in j.image_anns(stem)} if j is not None else {}

    def joint_rois(self, key: str | int, split: str | None = None) -> dict[str, Roi]:
        """ROI stem -> oriented box (``rbox`` when stored, else the bbox with angle 0)."""
        split, stem = self.locate(key, split)
        j = self.index(split).joints
        return {a.name: a.roi for a in j.image_anns(stem)} if j is not None else {}

    def metadata(self, key: str | int, split: str | None = None) -> dict[str, Any] | None:
        """The Metadata.xlsx/.csv row of a hand (columns other than the stem), or None."""
        _, stem = self.locate(key, split)
        if self._metadata is None:
            self._metadata = read_metadata(self.layout, self._problems)
        return self._metadata.get(stem)

    def crop_path(self, key: str | int, roi: str, kind: str, split: str | None = None) -> Path:
        """Where the ROI crop of a hand lies (whether or not the file exists).

        Raises:
            ValueError: ``roi`` is not a stem of that kind.
        """
        if roi not in roi_stems(kind):
            raise ValueError(f"roi {roi!r} is not a {kind} ROI stem; expected one of {', '.join(roi_stems(kind))}")
        split, stem = self.locate(key, split)
        return self.layout.crop_path(kind, split, stem, roi)

    def load_crop(self, key: str | int, roi: str, kind: str, split: str | None = None) -> np.ndarray:
        """An ROI crop as an h x w uint8 (16-bit crops come back uint16).

        Raises:
            DatasetError: the crop is missing or unreadable.
        """
        path = self.crop_path(key, roi, kind, split)
        return self._read(path, f"ROI {roi!r}")

    def score_items(self, split: str, kind: str, *, skip_missing_crops: bool = False) -> list[ScoreItem]:
        """Every scored ROI of one kind in a split, with its crop path (sorted by image stem, then ROI order).

        Args:
            skip_missing_crops: False (default): a scored ROI without a crop file raises DatasetError; True: it is
                left out and recorded in :attr:`warnings` (the benchmark code skips such ROIs silently).

        Raises:
            DatasetError: the split has no scoring folder of that kind, or a crop is missing (see above).
        """
        check_kind(kind)
        scores = self.index(split).scores.get(kind)
        if scores is None:
            raise DatasetError(Problem(self.layout.rel(self.layout.score_dir(kind, split)), None,
                                       "scoring folder is missing"))
        items = []
        for stem in sorted(scores):
            side = anatomy.side_from_stem(stem)
            for key, value in scores[stem].items():
                roi = key.partition("_")[2]
                path = self.layout.crop_path(kind, split, stem, roi)
                if not path.is_file():
                    where, record = self.layout.rel(path), f"image {stem!r}, key {key!r}"
                    if not skip_missing_crops:
                        raise DatasetError(Problem(where, record, "scored ROI has no crop file"))
                    self._problems.warning(where, record, "scored ROI has no crop file")
                    continue
                items.append(ScoreItem(stem, split, side, roi, key, kind, value, path))
        return items

    # -- decoding --------------------------------------------------------------------------------------------------

    def _read(self, path: Path, record: str) -> np.ndarray:
        try:
            return read_grayscale(path)
        except FileNotFoundError:
            raise DatasetError(Problem(self.layout.rel(path), record, "file is missing")) from None
        except (OSError, ValueError) as e:
            raise DatasetError(Problem(self.layout.rel(path), record, f"cannot be read as an image: {e}")) from None

    def load_image(self, key: str | int, split: str | None = None) -> np.ndarray:
        """The radiograph of a hand: H x W uint8 (uint16 for 16-bit files), checked against its COCO size."""
        info = self.image_info(key, split)
        path = self.image_path(info.stem, info.split)
        image = self._read(path, f"image {info.stem!r}")
        if info.height is not None and image.shape != (info.height, info.width):
            raise DatasetError(Problem(self.layout.rel(path), f"image {info.stem!r}",
                                       f"file is {image.shape[0]} x {image.shape[1]} (height x width) but the COCO "
                                       f"record says {info.height} x {info.width}"))
        return image

    def load(self, key: str | int, split: str | None = None, *, bones: bool = True,
             erosions: bool = True) -> HandSample:
        """Decode one hand into a :class:`~.sample.HandSample`.

        Args:
            key: stem, image file name or position.
            split: the split (optional where the stem is unique).
            bones / erosions: decode the bone / erosion masks (False leaves that dict empty, for speed).

        Returns:
            the sample: image (uint8, or uint16 for 16-bit files), side from the stem, spacing from the bone COCO
            record, masks (H x W bool, column-major as pycocotools decodes them, several pieces of a class
            merged), joint boxes and ROIs, BE/JSN scores, and
            ``meta`` = ``{"split", "file_name", "image_id", "metadata"}`` (metadata: the Metadata row or None).

        Raises:
            DatasetError: the image or a mask cannot be decoded, the image size disagrees with its record, the stem
                carries no side, or the split has no segmentation annotations.
            KeyError / IndexError: no such hand.
        """
        split, stem = self.locate(key, split)
        idx = self.index(split)
        if idx.bone is None or idx.erosion is None:
            raise DatasetError(Problem(self.layout.rel(self.layout.seg_dir(split)), f"image {stem!r}",
                                       "split has no segmentation annotations (only scores); use scores()/"
                                       "score_items()"))
        side = anatomy.side_from_stem(stem)
        if side is None:
            raise DatasetError(Problem(idx.bone.rel, f"image {stem!r}", "file stem does not end in _L or _R, so the "
                                                                        "hand side is unknown"))
        image = self.load_image(stem, split)
        bone_masks: dict[str, np.ndarray] = {}
        erosion_masks: dict[str, np.ndarray] = {}
        for want, coco, out in ((bones, idx.bone, bone_masks), (erosions, idx.erosion, erosion_masks)):
            if not want:
                continue
            if stem not in coco.images:
                raise DatasetError(Problem(coco.rel, f"image {stem!r}", "image has no record in this file"))
            out.update(decode_class_masks(coco, stem, self._problems))
        order = anatomy.BONE_INDEX
        bone_masks = dict(sorted(bone_masks.items(), key=lambda kv: order[kv[0]]))
        erosion_masks = {n: erosion_masks[n] for n in anatomy.EROSION_CATEGORIES if n in erosion_masks}
        rec = idx.bone.images[stem]
        return HandSample(
            stem=stem, image=image, side=side, spacing_mm=rec.spacing_mm,
            bone_masks=bone_masks, erosion_masks=erosion_masks,
            joint_boxes=self.joint_boxes(stem, split), joint_rois=self.joint_rois(stem, split),
            be_scores=self.scores(stem, split, "be"), jsn_scores=self.scores(stem, split, "jsn"),
            meta={"split": split, "file_name": rec.file_name, "image_id": rec.id,
                  "metadata": self.metadata(stem, split)},
        )
