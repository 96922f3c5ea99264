"""Check a whole RAM-H1200 dataset folder and report every problem at once.

:func:`validate` parses every annotation file with the same code as the reader (so what it accepts, the reader
reads), then visits every hand: reads the image in full, decodes every mask piece, checks the ROI crops of every
scored joint. Nothing is modified.
"""
from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from typing import Iterable

from tqdm import tqdm

from ramh_rt import anatomy

from .coco import decode_segmentation
from .errors import Problem, Problems
from .fileio import image_size, read_grayscale
from .index import SplitIndex, build_split_index
from .layout import SCORE_KINDS, SCORING_DIR, SEGMENTATION_DIR, SPLITS, Layout, roi_stems
from .metadata import read_metadata


def _check_hand(layout: Layout, idx: SplitIndex, stem: str) -> list[Problem]:
    """Every per-hand check that needs pixels: image file, mask decoding, crops."""
    problems = Problems(raise_errors=False)
    rec = idx.image_record(stem)
    first = idx.bone or idx.erosion
    if anatomy.side_from_stem(stem) is None:
        problems.error(first.rel if first else layout.rel(layout.seg_dir(idx.split)), f"image {stem!r}",
                       "file stem does not end in _L or _R, so the hand side is unknown")
    path = idx.image_files.get(stem)
    if path is not None:
        try:
            image = read_grayscale(path)
            if rec is not None and image.shape != (rec.height, rec.width):
                problems.error(layout.rel(path), f"image {stem!r}", f"file is {image.shape[0]} x {image.shape[1]} "
                               f"(height x width) but the COCO record says {rec.height} x {rec.width}")
        except (OSError, ValueError) as e:
            problems.error(layout.rel(path), f"image {stem!r}", f"cannot be read as an image: {e}")
    for coco in (idx.bone, idx.erosion):
        if coco is None or stem not in coco.images:
            continue
        img = coco.images[stem]
        for ann in coco.image_anns(stem):
            try:
                m = decode_segmentation(ann.data["segmentation"], img.height, img.width)
            except ValueError as e:
                problems.error(coco.rel, f"annotation id {ann.id} ({ann.name} on '{img.file_name}')", str(e))
                continue
            if not m.any() and ann.data["segmentation"] != []:
                problems.warning(coco.rel, f"annotation id {ann.id} ({ann.name} on '{img.file_name}')",
                                 "mask is empty")
    for kind in SCORE_KINDS:
        scores = (idx.scores.get(kind) or {}).get(stem)
        if not scores:
            continue
        for key in scores:
            crop = layout.crop_path(kind, idx.split, stem, key.partition("_")[2])
            try:
                h, w = image_size(crop)
                if h == 0 or w == 0:
                    problems.error(layout.rel(crop), f"image {stem!r}, key {key!r}", "crop is empty")
            except FileNotFoundError:
                problems.error(layout.rel(crop), f"image {stem!r}, key {key!r}", "scored ROI has no crop file")
            except OSError as e:
                problems.error(layout.rel(crop), f"image {stem!r}, key {key!r}", f"crop cannot be read: {e}")
    return problems.items


def _check_crop_folders(layout: Layout, idx: SplitIndex, problems: Problems) -> None:
    for kind in SCORE_KINDS:
        scores = idx.scores.get(kind)
        sdir = layout.score_dir(kind, idx.split)
        if scores is None or not sdir.is_dir():
            continue
        allowed = set(roi_stems(kind))
        for d in sorted(sdir.iterdir()):
            if d.name.startswith(".") or d == layout.score_json(kind, idx.split):
                continue
            if not d.is_dir():
                problems.warning(layout.rel(d), None, "unexpected file in a scoring folder (ignored)")
                continue
            if d.name not in scores:
                problems.warning(layout.rel(d), None, "crop folder of an image that the score file does not list")
            for f in sorted(d.iterdir()):
                if f.name.startswith("."):
                    continue
                if f.stem not in allowed:
                    problems.warning(layout.rel(f), None, f"not a {kind.upper()} ROI crop name "
                                                          f"(expected <stem>.bmp, stem one of {', '.join(roi_stems(kind))})")


def _check_folders(layout: Layout, problems: Problems) -> None:
    roots = [layout.root / SEGMENTATION_DIR] + [layout.score_dir(k, SPLITS[0]).parent for k in SCORE_KINDS]
    for base in roots:
        if not base.is_dir():
            continue
        for d in sorted(base.iterdir()):
            if d.is_dir() and d.name not in SPLITS and not d.name.startswith("."):
                problems.warning(layout.rel(d), None, f"folder is not a split ({', '.join(SPLITS)}) and is ignored")
    scoring = layout.root / SCORING_DIR
    if (layout.root / SEGMENTATION_DIR).is_dir() and not scoring.is_dir():
        problems.warning(layout.rel(scoring), None, "no scoring folder: SvdH scores are unavailable")


# Worker-process state: each worker parses the index of a split once (problems found there are the parent's to
# report, so the worker's copy discards them).
_WORKER: dict = {}


def _worker_init(root: str, joints_path: str) -> None:
    _WORKER["layout"] = Layout.of(root, joints_path)
    _WORKER["index"] = {}


def _worker_check(task: tuple[str, list[str]]) -> list[Problem]:
    split, stems = task
    layout: Layout = _WORKER["layout"]
    idx = _WORKER["index"].get(split)
    if idx is None:
        idx = _WORKER["index"][split] = build_split_index(layout, split, Problems(raise_errors=False))
    out: list[Problem] = []
    for stem in stems:
        out.extend(_check_hand(layout, idx, stem))
    return out


def validate(root: str | os.PathLike, *, joints_path: str | None = None, workers: int = 1,
             progress: bool = False) -> list[Problem]:
    """Check a dataset folder and return every problem found (errors and warnings), in the order found.

    Args:
        root: the dataset folder.
        joints_path: joint-detection JSON template (default :data:`~.layout.DEFAULT_JOINTS_PATH`).
        workers: processes for the per-hand checks (decoding every mask is the costly part: roughly 0.2-0.3 s per
            full-size hand on one core).
        progress: show a tqdm progress bar over the hands (on stderr).

    Returns:
        the problems; none with severity ``"error"`` means the reader will read every hand.

    Raises:
        ValueError: ``workers`` < 1 or a ``joints_path`` without ``{split}``.
    """
    if int(workers) < 1:
        raise ValueError(f"workers must be >= 1; got {workers!r}")
    layout = Layout.of(root, joints_path)
    problems = Problems(raise_errors=False)
    if not layout.root.is_dir():
        problems.error(str(layout.root), None, "dataset folder does not exist")
        return problems.items
    present = [s for s in SPLITS if layout.has_split(s)]
    _check_folders(layout, problems)
    if not present:
        problems.error(str(layout.root), None, "no split found: expected Segmentation/{train,val,test} or "
                                               "SvdH_Scoring/*/{train,val,test}")
        return problems.items
    indices = {s: build_split_index(layout, s, problems) for s in present}

    seen: dict[str, str] = {}
    for split, idx in indices.items():
        for stem in idx.stems:
            if stem in seen:
                problems.error(layout.rel(layout.seg_dir(split)), f"image {stem!r}",
                               f"is in split {seen[stem]!r} too (a hand belongs to one split)")
            else:
                seen[stem] = split
        _check_crop_folders(layout, idx, problems)
    meta = read_metadata(layout, problems)
    for stem in sorted(set(meta) - set(seen)):
        problems.warning(layout.rel(layout.metadata_csv() if layout.metadata_csv().exists()
                                    else layout.metadata_xlsx()), f"image {stem!r}", "row for an image not in the "
                                                                                     "dataset")

    tasks = [(split, idx.stems[i:i + 8]) for split, idx in indices.items() for i in range(0, len(idx.stems), 8)]
    total = sum(len(t[1]) for t in tasks)
    with tqdm(total=total, unit="hand", desc="validate", disable=not progress) as bar:
        if int(workers) == 1 or len(tasks) <= 1:
            for split, stems in tasks:
                for stem in stems:
                    problems.items.extend(_check_hand(layout, indices[split], stem))
                    bar.update()
        else:
            with ProcessPoolExecutor(max_workers=min(int(workers), len(tasks)), initializer=_worker_init,
                                     initargs=(str(layout.root), layout.joints_path)) as pool:
                # map keeps task order, so the report is the same for any worker count.
                for task, found in zip(tasks, pool.map(_worker_check, tasks)):
                    problems.items.extend(found)
                    bar.update(len(task[1]))
    return problems.items


def summarize(problems: Iterable[Problem]) -> dict[str, int]:
    """Counts: ``{"errors": n, "warnings": m, "files": k}``."""
    problems = list(problems)
    return {"errors": sum(p.severity == "error" for p in problems),
            "warnings": sum(p.severity == "warning" for p in problems),
            "files": len({p.file for p in problems})}

