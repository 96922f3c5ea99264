"""The index of one split: what its files say, checked, without decoding any image or mask.

Shared by the reader (:mod:`.ramh1200`), the validator (:mod:`.validate`) and the statistics (:mod:`.stats`), so that
all three see a dataset the same way.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .coco import CocoFile, CocoImage, parse_coco
from .errors import Problems
from .layout import BE_JSON, BONE_JSON, IMAGE_EXTENSIONS, SCORE_KINDS, Layout
from .scores import parse_scores


@dataclass
class SplitIndex:
    """Parsed, checked annotation files of one split.

    Attributes:
        split: ``"train"``, ``"val"`` or ``"test"``.
        bone / erosion: the segmentation COCO files (None when ``Segmentation/{split}`` is absent or the file
            unusable).
        joints: the joint-detection COCO file (None when absent).
        scores: ``"be"``/``"jsn"`` -> image stem -> {score key: value}; None when the scoring folder of that kind is
            absent.
        image_files: image stem -> image file in ``Segmentation/{split}``.
        stems: the split's images, sorted: those of the bone COCO file when ``Segmentation/{split}`` exists, else
            those named by the score files and the joint file.
    """

    split: str
    layout: Layout
    bone: CocoFile | None = None
    erosion: CocoFile | None = None
    joints: CocoFile | None = None
    scores: dict[str, dict[str, dict[str, int]] | None] = field(default_factory=dict)
    image_files: dict[str, Path] = field(default_factory=dict)
    stems: list[str] = field(default_factory=list)
    _stem_set: set[str] | None = field(default=None, repr=False)

    def __contains__(self, stem: str) -> bool:
        if self._stem_set is None:
            self._stem_set = set(self.stems)
        return stem in self._stem_set

    @property
    def has_segmentation(self) -> bool:
        return self.layout.seg_dir(self.split).is_dir()

    def image_record(self, stem: str) -> CocoImage | None:
        """The bone file's record of ``stem`` (the erosion or joint file's when the bone file lacks it)."""
        for c in (self.bone, self.erosion, self.joints):
            if c is not None and stem in c.images:
                return c.images[stem]
        return None


def _list_images(layout: Layout, split: str, problems: Problems) -> dict[str, Path]:
    seg = layout.seg_dir(split)
    out: dict[str, Path] = {}
    known_json = {BONE_JSON, BE_JSON}
    for p in sorted(seg.iterdir()):
        if p.name.startswith("."):
            continue
        if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS:
            if p.stem in out:
                problems.error(layout.rel(p), None, f"two image files with stem {p.stem!r} "
                                                    f"({out[p.stem].name} and {p.name})")
                continue
            out[p.stem] = p
        elif p.name not in known_json:
            problems.warning(layout.rel(p), None, "unexpected entry in a segmentation folder (ignored)")
    return out


def build_split_index(layout: Layout, split: str, problems: Problems) -> SplitIndex:
    """Parse and cross-check every annotation file of ``split`` (no image or mask is decoded).

    Errors: a missing or malformed COCO/score file of a present folder, images listed but missing on disk, images on
    disk without a record in either segmentation file, record sizes that disagree between files, plus everything
    :func:`.coco.parse_coco` and :func:`.scores.parse_scores` check. Warnings: images without bone annotations,
    images missing from a score file or the joint file, score/joint entries for images the split does not hold, no
    joint file.
    """
    idx = SplitIndex(split, layout)
    seg = layout.seg_dir(split)
    if seg.is_dir():
        idx.image_files = _list_images(layout, split, problems)
        for kind in ("bone", "erosion"):
            path = layout.mask_json(kind, split)
            coco = parse_coco(path, kind, problems, layout.rel(path))
            setattr(idx, kind, coco)
            if coco is None:
                continue
            disk_names = {p.name: s for s, p in idx.image_files.items()}
            for stem, img in coco.images.items():
                base = img.file_name.replace("\\", "/").rsplit("/", 1)[-1]
                if base not in disk_names:
                    problems.error(coco.rel, img.record, f"image file {layout.rel(seg / base)} is missing")
            for stem, p in idx.image_files.items():
                if stem not in coco.images:
                    problems.error(coco.rel, f"image '{p.name}'", f"is in {layout.rel(seg)} but has no record here "
                                                                  f"(no {kind} annotations)")
        if idx.bone is not None:
            for stem, img in idx.bone.images.items():
                if not idx.bone.anns.get(img.id):
                    problems.warning(idx.bone.rel, img.record, "image has no bone annotation")
        if idx.bone is not None and idx.erosion is not None:
            for stem, img in idx.erosion.images.items():
                b = idx.bone.images.get(stem)
                if b is not None and (b.height, b.width) != (img.height, img.width):
                    problems.error(idx.erosion.rel, img.record, f"size {img.height} x {img.width} disagrees with "
                                                                f"{idx.bone.rel} ({b.height} x {b.width})")
        primary = idx.bone or idx.erosion
        idx.stems = sorted(primary.images) if primary is not None else sorted(idx.image_files)
    else:
        if seg.exists():
            problems.error(layout.rel(seg), None, "is not a folder")

    seg_stems = set(idx.stems) if seg.is_dir() else None
    jpath = layout.joints_json(split)
    if jpath.exists():
        idx.joints = parse_coco(jpath, "joint", problems, layout.rel(jpath))
        if idx.joints is not None and seg_stems is not None:
            for stem, img in idx.joints.images.items():
                ref = idx.image_record(stem) if stem in seg_stems else None
                if ref is None:
                    problems.warning(idx.joints.rel, img.record, f"image is not in {layout.rel(seg)}")
                elif (ref.height, ref.width) != (img.height, img.width):
                    problems.error(idx.joints.rel, img.record, f"size {img.height} x {img.width} disagrees with the "
                                                               f"segmentation record ({ref.height} x {ref.width})")
            for stem in sorted(seg_stems - set(idx.joints.images)):
                problems.warning(idx.joints.rel, f"image {stem!r}", "image has no joint boxes")
    elif seg_stems:
        problems.warning(layout.rel(jpath), None, "no joint-detection file: joint boxes are unavailable")

    for kind in SCORE_KINDS:
        sdir = layout.score_dir(kind, split)
        if not sdir.is_dir():
            idx.scores[kind] = None
            continue
        spath = layout.score_json(kind, split)
        srel = layout.rel(spath)
        sc = parse_scores(spath, kind, problems, srel)
        idx.scores[kind] = sc if sc is not None else {}
        if sc is not None and seg_stems is not None:
            for stem in sorted(set(sc) - seg_stems):
                problems.warning(srel, f"image {stem!r}", f"scored image is not in {layout.rel(seg)}")
            for stem in sorted(seg_stems - set(sc)):
                problems.warning(srel, f"image {stem!r}", "image has no scores in this file")

    if not seg.is_dir():
        names: set[str] = set()
        for sc in idx.scores.values():
            names |= set(sc or {})
        if idx.joints is not None:
            names |= set(idx.joints.images)
        idx.stems = sorted(names)
    return idx
