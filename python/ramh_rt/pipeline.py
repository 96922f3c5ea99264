"""``ramh_rt.analyze``: one hand radiograph in, an :class:`~ramh_rt.result.Analysis` out (docs/architecture.md).

    decode -> understand (hands, orientation: ramh_rt.understand) -> per hand, upright:
           preprocess -> bone model -> mask postprocess -> bone instances -> plausibility and field of view
           -> joint geometry (SvdH ROIs) -> ROI crops at native resolution -> joint model (erosion mask, BE/JSN)
           -> erosion quantification -> paste-back -> whole-image model -> totals -> quality control (ramh_rt.qc)
           -> mapped back to the film

:class:`Analyzer` loads a bundle and its inference sessions once and serves many calls. It is thread-safe: it holds
no per-call state, ONNX Runtime sessions may run concurrently, and the TensorRT backend keeps one execution context
per thread. On a CUDA backend the image is uploaded once and the kernels and models exchange device arrays; the
bone masks come back to the host for the geometry, which is tiny.
"""
from __future__ import annotations

import numbers
import os
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from . import __version__, anatomy, geometry, io, ops, qc, understand, view
from .backends import get_backend, is_device_array, select_backend
from .bundle import Bundle
from .errors import BackendError, MultipleHandsError, NotAHandError, RamhError
from .result import Analysis, BoneRecord, JointRecord, Meta, Totals

ImageLike = Any  # numpy array, path, bytes or io.LoadedImage


@dataclass
class AnalysisError:
    """The per-image failure that :meth:`Analyzer.analyze_batch` returns in place of an analysis."""

    source: str
    error: str
    exception: BaseException

    def __bool__(self) -> bool:  # lets callers write `if result:` for successes only
        return False


class _Timer:
    def __init__(self):
        self.times: dict[str, float] = {}
        self._t = time.perf_counter()
        self._start = self._t
        self._paused = self._t

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        # Accumulates: a stage run more than once (the bone model on several turns of a hand) counts in full.
        self.times[name] = round(self.times.get(name, 0.0) + (now - self._t) * 1e3, 3)
        self._t = now

    def pause(self) -> None:
        """Stop the clock (e.g. a decoded image waiting in the prefetch queue): :meth:`resume` leaves the gap out."""
        self._paused = time.perf_counter()

    def resume(self) -> None:
        gap = time.perf_counter() - self._paused
        self._t += gap
        self._start += gap

    def total(self) -> dict[str, float]:
        self.times["total"] = round((time.perf_counter() - self._start) * 1e3, 3)
        return self.times


def _host(a) -> np.ndarray:
    return a.to_host() if hasattr(a, "to_host") else np.asarray(a)


class Analyzer:
    """A loaded model bundle with its inference sessions, ready to analyse many images.

    Args:
        bundle: a :class:`~ramh_rt.bundle.Bundle`, a bundle directory / .zip path, or None for the default bundle.
        backend: ``"auto"`` (TensorRT, then ONNX Runtime CUDA, then ONNX Runtime CPU), or a backend name
            (``"onnxruntime-cpu"``, ``"onnxruntime-cuda"``, ``"tensorrt"``).
        device: ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or an int; None picks the backend's default.
        keep_image: keep the analysed image in the Analysis (needed by :meth:`Analysis.overlay`).
        session_options: passed to the backend's ``create_session`` (e.g. ``intra_op_threads`` for ONNX Runtime,
            ``precision`` for TensorRT).

    Raises:
        BundleError: the bundle is missing, malformed or tampered with.
        BackendError: the requested backend is not available here (the message says why).
    """

    def __init__(self, bundle: Bundle | str | os.PathLike | None = None, *, backend: str = "auto",
                 device: str | int | None = None, keep_image: bool = True, **session_options: Any):
        self.bundle = bundle if isinstance(bundle, Bundle) else Bundle.load(bundle)
        if backend == "auto":
            self.backend, self.sessions, self.skipped_backends = self._auto_sessions(device, session_options)
        else:
            self.backend = get_backend(backend)
            ok, why = self.backend.available()
            if not ok:
                raise BackendError(f"backend {backend!r} is not available: {why}")
            self.skipped_backends = {}
            self.sessions = self._sessions(self.backend, device, session_options)
        self.device = device
        self.keep_image = keep_image
        self.on_cuda = "cuda" in self.backend.name or self.backend.name == "tensorrt"
        self.bones_cfg = self.bundle.model("bones").config
        self.joints_cfg = self.bundle.model("joints").config
        self.classes = list(self.bones_cfg["classes"])
        if self.classes != list(anatomy.BONE_NAMES):
            raise RamhError(f"bundle {self.bundle.id}: bone classes must be RAM-H1200's 30 classes in order")
        keep = self.bones_cfg["postprocess"]["keep"]
        self.keep = [keep.get(c, keep.get("*", "largest")) for c in self.classes]
        self.areas = list(self.joints_cfg["areas"])
        self.device_name = self._device_name()
        # The bundle's training-domain statistics and uncertainty calibration (None / defaults without a qc section).
        self.qc_domain = qc.DomainModel.from_manifest(self.bundle.manifest.get("qc"))
        self.qc_calibration = qc.UncertaintyCalibration.from_manifest(self.bundle.manifest.get("qc"))
        # The bundle's view classifier (NumPy, any backend; None without one: the geometric evidence decides alone).
        self.view_model = view.ViewModel.from_bundle(self.bundle)

    def _sessions(self, backend, device, options: dict) -> dict[str, Any]:
        return {name: backend.create_session(self.bundle.model(name), device, **options)
                for name in ("bones", "joints", "global") if self.bundle.has_model(name)}

    def _auto_sessions(self, device, options: dict):
        """``backend="auto"``: the first backend of AUTO_ORDER that is available *and* can load the bundle.

        Availability is checked cheaply up front; a backend can still fail when it loads the models (a TensorRT engine
        build that runs out of memory, a CUDA provider that cannot start on this device). Such a failure
        (BackendError) moves on to the next backend and is recorded with the others in ``skipped_backends``.
        Argument errors (ValueError: an unknown option, a bad device) are the caller's and are raised as they are.
        """
        skipped: dict[str, str] = {}
        while True:
            try:
                sel = select_backend("auto", exclude=tuple(skipped))
            except BackendError as e:
                if not skipped:
                    raise
                tried = "; ".join(f"{k}: {v}" for k, v in skipped.items())
                raise BackendError(f"no inference backend could load bundle {self.bundle.id}: {tried}; {e}") from None
            skipped.update(sel.unavailable)
            try:
                return sel.backend, self._sessions(sel.backend, device, options), skipped
            except BackendError as e:
                skipped[sel.backend.name] = f"available, but could not load bundle {self.bundle.id}: {e}"

    def _device_name(self) -> str:
        if not self.on_cuda:
            return "cpu"
        from . import _core

        try:
            return f"cuda:{int(self.device or 0)} ({_core.device_properties(int(self.device or 0))['name']})"
        except Exception:  # noqa: BLE001 - a name is cosmetic
            return "cuda"

    # ---- one image ---------------------------------------------------------------------------------------------
    def analyze(self, image: ImageLike, *, spacing_mm: float | None = None, side: str | None = None) -> Analysis:
        """Analyse one PA hand radiograph.

        The film is first understood (:mod:`ramh_rt.understand`): a turned hand is analysed upright and every result
        mapped back to the pixel frame of ``image``; bones and areas out of view are not reported; ``meta`` carries
        ``hand_box``, ``orientation``, ``field_of_view`` and ``understanding_reasons``.

        Args:
            image: a NumPy array (2-D, or single-channel 3-D; uint8/uint16/float), a path to a PNG/JPEG/BMP/TIFF or
                DICOM file, bytes of such a file, or a :class:`ramh_rt.io.LoadedImage`.
            spacing_mm: pixel spacing (mm) overriding the file's (a Python or NumPy number, finite and > 0); needed
                for areas in mm² when the file has none. Also applied to a :class:`ramh_rt.io.LoadedImage`
                (:func:`ramh_rt.io.with_overrides`).
            side: ``"L"``/``"R"`` overriding the file's laterality; otherwise it comes from the DICOM header, else it
                is detected from the bones (thumb side). A side read from the file name (``..._L``/``..._R``) is
                checked against the bones: when they disagree the bones' side is reported
                (``meta.side_source == "detected"``) with a warning in ``meta.warnings``.

            On a film with two hands ``side`` picks the hand of that side.

        Raises:
            ImageLoadError: unreadable, empty, too small/large or non-finite input.
            ValueError: ``spacing_mm`` not a finite number > 0, or ``side`` not L/R/left/right (named).
            NotAHandError: the image is blank, noise, or not a hand.
            MultipleHandsError: the film holds two hands and ``side`` does not pick one of them (use
                :meth:`analyze_hands`).
            RamhError: a model or kernel failure (the message names the stage).
        """
        timer = _Timer()
        loaded = self._load(image, spacing_mm, side)
        timer.lap("decode")
        return self._analyze_loaded(loaded, timer)

    def analyze_hands(self, image: ImageLike, *, spacing_mm: float | None = None,
                      side: str | None = None) -> list[Analysis]:
        """Analyse every hand of a film: one :class:`Analysis` per hand, in film order (left to right, or top to
        bottom when the hands are stacked), each with its own ``meta.hand_box`` and side.

        Arguments as :meth:`analyze`; on a two-hand film a given ``side`` is not applied to either hand (each hand's
        side comes from its anatomy).

        Raises:
            ImageLoadError, NotAHandError, RamhError: as :meth:`analyze`.
        """
        timer = _Timer()
        loaded = self._load(image, spacing_mm, side)
        timer.lap("decode")
        return self._analyze_film(loaded, timer)

    def _load(self, image: ImageLike, spacing_mm, side) -> io.LoadedImage:
        if isinstance(image, io.LoadedImage):
            return io.with_overrides(image, spacing_mm=spacing_mm, side=side)
        return io.load_image(image, spacing_mm=spacing_mm, side=side)

    def _analyze_loaded(self, loaded: io.LoadedImage, timer: _Timer) -> Analysis:
        """One hand: the film's only hand, or on a two-hand film the one ``side="L"|"R"`` (given by the caller)
        names; else MultipleHandsError."""
        results = self._analyze_film(loaded, timer)
        if len(results) == 1:
            return results[0]
        sides = [r.meta.side for r in results]
        if loaded.side_source == "user":
            picked = [r for r in results if r.meta.side == loaded.side]
            if len(picked) == 1:
                return picked[0]
        found = ", ".join(f"{s or 'side unknown'} at x {r.meta.hand_box[0]}-{r.meta.hand_box[2]}"
                          for s, r in zip(sides, results))
        raise MultipleHandsError(f"{loaded.source}: the film holds {len(results)} hands ({found}); pass side='L' "
                                 "or 'R' to analyse one, or use analyze_hands()", sides)

    def _analyze_film(self, loaded: io.LoadedImage, timer: _Timer) -> list[Analysis]:
        try:
            survey = understand.survey(loaded.pixels, self.view_model)
        except NotAHandError as e:
            raise NotAHandError(f"{loaded.source}: {e}") from None
        timer.lap("understand")
        two = len(survey.hands) > 1
        out = []
        for i, region in enumerate(survey.hands):
            t = timer
            if i:
                t = _Timer()
                t.times.update({k: v for k, v in timer.times.items() if k in ("decode", "understand")})
            out.append(self._analyze_hand(loaded, region, t, trusted_side=not two))
        return out

    def _bone_stage(self, pix: np.ndarray, timer: _Timer) -> dict:
        """Preprocess, bone model, mask postprocessing and bone records of one (normalised) hand image."""
        h, w = pix.shape
        src = self._to_device(pix)
        x, tf, logits, masks, inst = self._segment(src, timer)
        masks_h = _host(masks)[0]
        logits_h = _host(logits)[0]
        timer.lap("postprocess")
        bones, model_masks = self._bones(inst, masks_h, logits_h, tf, (h, w))
        timer.lap("bone_records")
        return {"pix": pix, "src": src, "x": x, "tf": tf, "inst": inst, "masks_h": masks_h, "bones": bones,
                "model_masks": model_masks}

    def _analyze_hand(self, loaded: io.LoadedImage, region: understand.HandRegion, timer: _Timer, *,
                      trusted_side: bool) -> Analysis:
        film = loaded.pixels
        frame = understand.HandFrame(region.box, region.rotation_deg, film.shape)
        # The silhouette's turn first; the other turns only when it was unsure or its turn gives no hand.
        rot0 = frame.rotation_deg
        turns = [rot0] + [r for r in (0, 90, 180, 270) if r != rot0]
        best = None
        for n, rot in enumerate(turns):
            if n == 1 and region.turn_known and best[2].is_hand:
                break
            fr = understand.HandFrame(region.box, rot, film.shape)
            st = self._bone_stage(fr.normalise(film), timer)
            ass = understand.assess_bones(st["bones"], fr.shape, region, rot)
            # Another turn must beat the silhouette's clearly: the bone layout of a film far from the training
            # domain is noisy.
            if best is None or ass.score > best[2].score + (12.0 if n and best[0].rotation_deg == rot0 else 0.0):
                best = (fr, st, ass)
        timer.lap("anatomy")
        frame, st, ass = best
        if not ass.is_hand:
            raise NotAHandError(f"{loaded.source}: the bones found do not make a hand in any orientation "
                                f"(field of view {ass.field_of_view}, layout score {ass.score:.0f})")
        pix, src, x, tf, masks_h = st["pix"], st["src"], st["x"], st["tf"], st["masks_h"]
        h, w = pix.shape
        bones = [b for b in st["bones"] if b.name in ass.keep]
        model_masks = {k: v for k, v in st["model_masks"].items() if k in ass.keep}
        given = (loaded.side, loaded.side_source) if trusted_side else (None, None)
        side, side_source, mirrored, side_reasons = understand.side_reasons(ass.side, *given)
        warnings = list(loaded.warnings) + ([tf.window_warning] if tf.window_warning else [])
        warnings += [message for code, message, _ in side_reasons if code == "side_conflict"]
        rois = geometry.rois_to_image(geometry.joint_rois(model_masks), tf)
        timer.lap("geometry")
        joints, ero_full = self._joints(src, pix, rois, masks_h, tf, loaded.spacing_mm, timer)
        totals, cam = self._totals(joints, x)
        if ass.field_of_view != "hand":
            qc.withhold_hand_estimates(totals, ass.field_of_view)
        timer.lap("global_model")
        missing = [j.stem for j in joints if not j.located]
        if missing:
            warnings.append(f"{len(missing)} SvdH area(s) not located: {', '.join(missing)}")
        reasons = (understand.orientation_reasons(frame, region) + ass.reasons +
                   understand.view_reasons(bones, ass) + side_reasons)
        meta = Meta(side=side, side_source=side_source, spacing_mm=loaded.spacing_mm,
                    spacing_source=loaded.spacing_source, image_shape=(h, w), source=loaded.source,
                    bundle_id=self.bundle.id, bundle_version=self.bundle.version, backend=self.backend.name,
                    device=self.device_name, ramh_rt_version=__version__, timings_ms=timer.total(),
                    warnings=warnings, hand_box=tuple(int(v) for v in (region.hand_box or frame.box)),
                    orientation={"rotation_deg": frame.rotation_deg, "mirrored": mirrored},
                    field_of_view=ass.field_of_view, understanding_reasons=[list(r) for r in reasons])
        analysis = Analysis(bones=bones, joints=joints, totals=totals, meta=meta, erosion_mask_fn=ero_full,
                            image=pix if self.keep_image else None, cam=cam)
        # ---- quality control (ramh_rt.qc): uncertainty, then the coded reasons and status; in the hand's upright
        # frame, where its bones and pixels are, before the results are mapped back to the film
        qc.annotate_uncertainty(analysis, self.qc_calibration)
        analysis.qc = qc.assess(analysis, features=self._domain_features(x, tf, st["inst"]), domain=self.qc_domain,
                                image_reasons=qc.image_quality(pix, tf.window, loaded.bits_stored)
                                + qc.maturity_reasons(pix, bones, meta.field_of_view))
        timer.lap("qc")
        meta.timings_ms = timer.total()
        return understand.map_analysis(analysis, frame, film if self.keep_image else None)

    def _segment(self, src, timer: _Timer):
        """Preprocess, bone model, mask postprocess: ``(x, tf, logits, masks, instances)``."""
        pp = self.bones_cfg["preprocess"]
        x, tf = ops.preprocess(src, pp["input_hw"], percentiles=pp["window"]["percentiles"],
                               mean=pp["window"]["mean"], std=pp["window"]["std"], antialias=pp["antialias"])
        timer.lap("preprocess")
        logits = self.sessions["bones"].run({"image": x})["logits"]
        timer.lap("bone_model")
        post = self.bones_cfg["postprocess"]
        masks, inst = ops.postprocess_masks(logits, mode=post["mode"], threshold=post["threshold"], keep=self.keep,
                                            min_area=post["min_area"], fill_holes=post["fill_holes"])
        return x, tf, logits, masks, inst

    def _domain_features(self, x, tf, inst) -> np.ndarray:
        """The :func:`ramh_rt.qc.domain_features` of a segmented image (the model input comes to the host once)."""
        window = self.bones_cfg["preprocess"]["window"]
        return qc.domain_features(_host(x), tf, inst, self.classes, window["mean"], window["std"])

    def domain_features(self, image: ImageLike) -> np.ndarray:
        """The :func:`ramh_rt.qc.domain_features` vector of one image (decode, preprocess, bone model only): what a
        bundle's training-domain statistics are fitted on (``ramh-train qc-stats``).

        Raises:
            ImageLoadError: unreadable or unacceptable input.
            RamhError: a model or kernel failure.
        """
        x, tf, _, _, inst = self._segment(self._to_device(self._load(image, None, None).pixels), _Timer())
        return self._domain_features(x, tf, inst)

    def _to_device(self, pix: np.ndarray):
        """The image where the kernels and models of this backend read it (a DeviceArray on CUDA)."""
        from . import DeviceArray

        return DeviceArray.from_host(pix, int(self.device or 0)) if self.on_cuda else pix

    # ---- stages ----------------------------------------------------------------------------------------------
    def _bones(self, inst: np.ndarray, masks: np.ndarray, logits: np.ndarray, tf, shape):
        """Bone records with full-resolution masks, and the model-canvas masks of single-instance bones."""
        h, w = shape
        sx, sy = tf.scale_x, tf.scale_y
        thr = float(self.bones_cfg["postprocess"]["threshold"])
        records: list[BoneRecord] = []
        model_masks: dict[str, np.ndarray] = {}
        near_canvas = np.zeros(masks.shape[1:], np.uint8)  # zero but for the instance being resampled
        for r in inst:
            c = int(r["channel"])
            name = self.classes[c]
            mx0, my0, mx1, my1 = (int(r["bbox"][i]) for i in range(4))
            # Image-pixel bbox of the model bbox, one model pixel of margin for the sub-pixel boundary.
            x0 = max(0, int(np.floor((mx0 - 1 - tf.pad_x) / sx)))
            y0 = max(0, int(np.floor((my0 - 1 - tf.pad_y) / sy)))
            x1 = min(w, int(np.ceil((mx1 + 1 - tf.pad_x) / sx)))
            y1 = min(h, int(np.ceil((my1 + 1 - tf.pad_y) / sy)))
            if x1 <= x0 or y1 <= y0:
                continue
            # Full-resolution mask: the class logits resampled (bilinear) to the image grid, thresholded, and kept
            # where this instance's (one model pixel dilated) mask is.
            # A multi-instance class's instance is its bbox's part of the plane; a single-instance plane holds only
            # what postprocess kept, so its own bounds enclose it. Only that window is dilated (not the canvas).
            win = (mx0, my0, mx1, my1) if anatomy.bone(name).multi_instance else geometry.mask_bounds(masks[c])
            if win is None:
                continue
            near_win, (wx0, wy0) = _dilated_window(masks[c], *win)
            wy1, wx1 = wy0 + near_win.shape[0], wx0 + near_win.shape[1]
            near_canvas[wy0:wy1, wx0:wx1] = near_win
            box = _model_box(x0, y0, x1, y1, tf)
            up = ops.crop_rois(np.ascontiguousarray(logits[c]), box, (y1 - y0, x1 - x0))[0] > thr
            near = ops.crop_rois(near_canvas, box, (y1 - y0, x1 - x0), interpolation="nearest")[0] > 0
            near_canvas[wy0:wy1, wx0:wx1] = 0
            crop = up & near
            area = int(np.count_nonzero(crop))
            if area == 0:
                continue
            # Centroid from row/column counts (exact integer sums, as the mean of nonzero()'s indices would be).
            cx = int(crop.sum(axis=0, dtype=np.int64) @ np.arange(crop.shape[1])) / area
            cy = int(crop.sum(axis=1, dtype=np.int64) @ np.arange(crop.shape[0])) / area
            records.append(BoneRecord(
                name=name, instance=int(r["index"]), area_px=area,
                bbox=(x0, y0, x1, y1), centroid=(float(cx + 0.5 + x0), float(cy + 0.5 + y0)),
                orientation_deg=float(r["orientation"]), major_axis_px=float(r["major_axis_length"]) / sx,
                minor_axis_px=float(r["minor_axis_length"]) / sx, score=float(r["mean_score"]),
                image_shape=(h, w), mask_crop=crop))
            if anatomy.bone(name).is_bone:
                model_masks[name] = masks[c] > 0
        return records, model_masks

    def _joints(self, src, pix, rois: dict[str, geometry.RoiResult], masks: np.ndarray, tf, spacing, timer):
        cfg = self.joints_cfg
        size = tuple(cfg["roi"]["size"])
        thr = float(cfg.get("erosion_threshold", 0.5))
        # A degenerate ROI (zero width or height, from bones the model barely found) cannot be cropped: unlocated.
        rois = {k: (r if r.roi is None or (r.roi.w > 0 and r.roi.h > 0)
                    else geometry.RoiResult(k, None, "degenerate joint box (zero width or height)"))
                for k, r in rois.items()}
        stems = [s for s in self.areas if rois[s].roi is not None]
        boxes = np.array([rois[s].roi.as_tuple() for s in stems], np.float32).reshape(-1, 5)
        records: dict[str, JointRecord] = {}
        ero_bin = None
        if len(stems):
            crops = ops.crop_rois(src, boxes, size)
            timer.lap("roi_crop")
            n = len(stems)
            onehot = np.zeros((n, len(self.areas)), np.float32)
            onehot[np.arange(n), [self.areas.index(s) for s in stems]] = 1.0
            window = np.tile(np.asarray(tf.window, np.float32), (n, 1))
            feeds = {"roi": _reshape(crops, (n, 1, *size)), "window": window, "area": onehot}
            out = self.sessions["joints"].run(feeds)
            timer.lap("joint_model")
            ero = out["erosion_probs"]
            be, jsn = _host(out["be_probs"]), _host(out["jsn_probs"])
            bone_roi = self._anchor_masks(stems, boxes, masks, tf, size)
            q = ops.quantify_erosions(_reshape(ero, (n, *size)), bone_roi, boxes, spacing, threshold=thr,
                                      min_lesion_px=int(cfg.get("min_lesion_px", 4)))
            ero_bin = (_host(ero).reshape(n, *size) >= thr).astype(np.uint8)
            timer.lap("quantify")
            for k, stem in enumerate(stems):
                a = anatomy.area(stem)
                roi = rois[stem].roi
                rec = JointRecord(stem=stem, name=a.name, display=a.display, located=True, roi=roi.as_tuple(),
                                  bbox=roi.bbox(pix.shape))
                if a.be:
                    p = _probs(be[k])
                    rec.be_probs, rec.be_score = p, _ordinal_median(p)
                if a.jsn:
                    p = _probs(jsn[k])
                    rec.jsn_probs, rec.jsn_score = p, _ordinal_median(p)
                qk = q[k]
                rec.eroded_px = float(qk["eroded_px"])
                rec.eroded_mm2 = None if np.isnan(qk["eroded_mm2"]) else float(qk["eroded_mm2"])
                rec.eroded_fraction = float(qk["eroded_fraction"])
                rec.lesions = int(qk["lesions"])
                rec.largest_lesion_px = float(qk["largest_lesion_px"])
                records[stem] = rec
        joints = []
        for stem in anatomy.AREA_STEMS:
            if stem in records:
                joints.append(records[stem])
            else:
                a = anatomy.area(stem)
                joints.append(JointRecord(stem=stem, name=a.name, display=a.display, located=False,
                                          note=rois[stem].reason))
        shape = pix.shape

        def erosion_mask() -> np.ndarray:
            if ero_bin is None or not ero_bin.any():
                return np.zeros(shape, dtype=bool)
            return np.asarray(ops.paste_rois(ero_bin, boxes, shape, reduce="or")) > 0

        return joints, erosion_mask

    def _anchor_masks(self, stems, boxes, masks, tf, size) -> np.ndarray:
        """Per ROI, the union of its anchor bones' masks cut from the model-canvas masks (nearest)."""
        n = len(stems)
        out = np.zeros((n, *size), np.uint8)
        model_boxes = np.array([geometry.roi_to_model(geometry.Roi(*b), tf).as_tuple() for b in boxes], np.float32)
        by_channel: dict[int, list[int]] = {}
        for k, stem in enumerate(stems):
            for b in anatomy.area(stem).anchors:
                by_channel.setdefault(anatomy.BONE_INDEX[b], []).append(k)
        for c, ks in by_channel.items():
            if not masks[c].any():
                continue
            cut = ops.crop_rois(np.ascontiguousarray(masks[c]), model_boxes[ks], size, interpolation="nearest")
            out[ks] |= cut
        return out

    def _totals(self, joints: list[JointRecord], x) -> tuple[Totals, np.ndarray | None]:
        ero = sum(j.be_score for j in joints if j.be_score is not None)
        jsn = sum(j.jsn_score for j in joints if j.jsn_score is not None)
        expected = sum((j.be_expected or 0.0) + (j.jsn_expected or 0.0) for j in joints)
        complete = all(j.located for j in joints)
        g_total = g_probs = cam = None
        if "global" in self.sessions:
            out = self.sessions["global"].run({"image": x})
            g_total = float(np.clip(_host(out["svdh_total"]).reshape(-1)[0], 0, anatomy.SVDH_MAX_PER_HAND))
            g_probs = [float(v) for v in _host(out["severity_probs"]).reshape(-1)]
            cam = _host(out["cam"])[0, 0]
        # The class of the joint-score total when every area was scored (the better-validated estimate: see the
        # bundle's metrics); the whole-image model's class only where areas are missing and it is there.
        if complete or g_probs is None:
            severity, source = anatomy.severity_of(ero + jsn).name, "joint_scores"
        else:
            severity, source = anatomy.SEVERITY_NAMES[int(np.argmax(g_probs))], "global_model"
        return Totals(erosion=int(ero), jsn=int(jsn), svdh=int(ero + jsn), partial_svdh=int(ero + jsn),
                      expected_svdh=float(expected),
                      complete=complete, global_svdh=g_total, severity=severity, severity_probs=g_probs,
                      severity_source=source), cam

    # ---- many images ---------------------------------------------------------------------------------------------
    def analyze_batch(self, images: Iterable[ImageLike], *, spacing_mm: float | Sequence[float | None] | None = None,
                      side: str | Sequence[str | None] | None = None, prefetch: int = 2,
                      progress: bool = False) -> list[Analysis | AnalysisError]:
        """Analyse many images, in order; a failing image gives an :class:`AnalysisError` in its place.

        Decoding runs on a background thread ``prefetch`` images ahead of the inference, so file reading and
        decompression overlap with the models. ``spacing_mm`` / ``side`` may be one value for all or one per image.

        Raises:
            ValueError: ``prefetch`` < 0, or a per-image ``spacing_mm`` / ``side`` whose length is not the number of
                images (checked before any image is analysed when ``images`` has a length).
            TypeError: ``images`` is one image (a path, bytes, a 2-D array) instead of an iterable of them.
        """
        return list(self.iter_batch(images, spacing_mm=spacing_mm, side=side, prefetch=prefetch, progress=progress))

    def iter_batch(self, images: Iterable[ImageLike], *, spacing_mm=None, side=None, prefetch: int = 2,
                   progress: bool = False, per_hand: bool = False) -> Iterator[Analysis | AnalysisError]:
        """Generator form of :meth:`analyze_batch`: results as they are ready, in input order.

        ``images`` is consumed lazily, at most ``prefetch + 1`` items ahead of the result being produced, so a
        generator of large arrays streams through in bounded memory. With an unsized ``images`` and per-image
        ``spacing_mm`` / ``side`` sequences, a length mismatch is found when one of them runs out: ValueError then,
        after the results of the images that had both. An exception from ``images`` itself is likewise raised once
        the images taken before it have their results.

        ``per_hand=True`` yields, per image, the list of :meth:`analyze_hands` (one Analysis per hand) instead of one
        Analysis (a two-hand film is then no MultipleHandsError).
        """
        if isinstance(prefetch, bool) or not isinstance(prefetch, int) or prefetch < 0:
            raise ValueError(f"prefetch must be an integer >= 0, got {prefetch!r}")
        if isinstance(images, (str, bytes, os.PathLike, io.LoadedImage)) or (
                isinstance(images, np.ndarray) and images.ndim < 3):
            raise TypeError(f"images must be an iterable of images (one image: use analyze()), got "
                            f"{type(images).__name__}")
        n = len(images) if hasattr(images, "__len__") else None
        sp = _PerImage(spacing_mm, n, "spacing_mm", io.check_spacing)
        sd = _PerImage(side, n, "side", anatomy.normalise_side)
        source = iter(images)

        def decode(item, spacing, side_):
            t = _Timer()
            try:
                if isinstance(item, io.LoadedImage):
                    loaded = io.with_overrides(item, spacing_mm=spacing, side=side_)
                else:
                    loaded = io.load_image(item, spacing_mm=spacing, side=side_)
            except BaseException as e:  # noqa: BLE001 - reported per image
                return e, t
            # The time the decoded image then waits in the prefetch queue is not this image's: leave it out.
            t.lap("decode")
            t.pause()
            return loaded, t

        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=n, desc="analyze", unit="image", dynamic_ncols=True)
        pending: deque = deque()  # (source name, decode future), oldest first
        taken = 0  # images taken from `images`
        # Raised once the images taken so far have their results: a per-image argument that does not match the
        # images (ValueError), or the exception of the caller's own iterator.
        deferred: BaseException | None = None
        exhausted = False

        def refill(pool) -> None:
            nonlocal taken, deferred, exhausted
            while not exhausted and len(pending) <= prefetch:
                try:
                    item = next(source)
                except StopIteration:
                    exhausted = True
                    extra = [name for name, per in (("spacing_mm", sp), ("side", sd)) if per.left_over(taken)]
                    if extra:
                        deferred = ValueError(f"{extra[0]} has more values than there are images ({taken})")
                    return
                except Exception as e:  # noqa: BLE001 - the caller's iterator failed: finish what was taken
                    exhausted, deferred = True, e
                    return
                missing = [name for name, per in (("spacing_mm", sp), ("side", sd)) if not per.has_value(taken)]
                if missing:
                    exhausted = True
                    deferred = ValueError(f"{missing[0]} has {taken} values but there are more images")
                    return
                pending.append((_source_name(item), pool.submit(decode, item, sp[taken], sd[taken])))
                taken += 1

        try:
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="ramh-decode") as pool:
                refill(pool)
                while pending:
                    src, future = pending.popleft()
                    loaded, timer = future.result()
                    refill(pool)  # keep the decoder busy while this image is analysed
                    if isinstance(loaded, BaseException):
                        yield AnalysisError(src, f"{type(loaded).__name__}: {loaded}", loaded)
                    else:
                        try:
                            timer.resume()
                            yield (self._analyze_film(loaded, timer) if per_hand
                                   else self._analyze_loaded(loaded, timer))
                        except Exception as e:  # noqa: BLE001 - reported per image, the batch goes on
                            yield AnalysisError(src, f"{type(e).__name__}: {e}", e)
                    del loaded  # release the decoded image once analysed
                    if bar:
                        bar.update(1)
        finally:
            if bar:
                bar.close()
        if deferred is not None:
            raise deferred

    def describe(self) -> dict:
        """Bundle, backend, device and session details (for ``ramh info``)."""
        return {"bundle": self.bundle.describe(), "backend": self.backend.name, "device": self.device_name,
                "skipped_backends": self.skipped_backends, "models": sorted(self.sessions)}


# ---- helpers ---------------------------------------------------------------------------------------------------------

def _probs(p) -> list[float]:
    p = np.clip(np.asarray(p, np.float64), 0, None)
    s = p.sum()
    p = p / s if s > 0 else np.full_like(p, 1.0 / len(p))
    return [float(v) for v in p]


def _ordinal_median(p: list[float]) -> int:
    """The median class of an ordinal distribution: the smallest k with P(y <= k) >= 0.5. For ordinal scores it
    is the minimiser of the expected absolute error, and it does not jump between distant modes as argmax can."""
    return int(np.searchsorted(np.cumsum(p), 0.5 - 1e-9))


def _reshape(a, shape):
    if is_device_array(a) and not isinstance(a, np.ndarray):
        if tuple(a.shape) == tuple(shape):
            return a
        from . import DeviceArray

        # Device arrays are dense: a reshape is a view with another shape over the same pool block.
        return _DeviceView(a, shape) if isinstance(a, DeviceArray) else a.reshape(shape)
    return np.asarray(a).reshape(shape)


class _DeviceView:
    """A reshaped view of a dense device array (exposes __cuda_array_interface__ only)."""

    def __init__(self, base, shape):
        self.base = base
        self.shape = tuple(int(s) for s in shape)
        if int(np.prod(self.shape)) != int(np.prod(base.shape)):
            raise ValueError(f"cannot view {base.shape} as {self.shape}")

    @property
    def __cuda_array_interface__(self):
        d = dict(self.base.__cuda_array_interface__)
        d["shape"] = self.shape
        return d

    def to_host(self):
        return self.base.to_host().reshape(self.shape)


def _model_box(x0, y0, x1, y1, tf) -> np.ndarray:
    """The axis-aligned image box [x0, x1) x [y0, y1) as a box on the model canvas (for crop_rois)."""
    (ax, ay), (bx, by) = tf.to_model([[x0, y0], [x1, y1]])
    return np.array([[0.5 * (ax + bx), 0.5 * (ay + by), bx - ax, by - ay, 0.0]], np.float32)


def _dilate(m: np.ndarray) -> np.ndarray:
    m = m > 0
    out = m.copy()
    out[1:] |= m[:-1]
    out[:-1] |= m[1:]
    out[:, 1:] |= m[:, :-1]
    out[:, :-1] |= m[:, 1:]
    return out


def _dilated_window(plane: np.ndarray, x0: int, y0: int, x1: int, y1: int) -> tuple[np.ndarray, tuple[int, int]]:
    """The one-pixel dilation of ``plane[y0:y1, x0:x1] > 0`` (taken as zero elsewhere), clipped to the plane.

    Returns the dilated window, one pixel larger than the box on every side that the plane allows, and its top-left
    corner (x, y) in the plane: the same pixels as dilating the whole masked plane, at the cost of the box alone.
    """
    h, w = plane.shape
    d = _dilate(np.pad(plane[y0:y1, x0:x1] > 0, 1))
    wx0, wy0 = max(0, x0 - 1), max(0, y0 - 1)
    wx1, wy1 = min(w, x1 + 1), min(h, y1 + 1)
    return d[wy0 - y0 + 1:wy1 - y0 + 1, wx0 - x0 + 1:wx1 - x0 + 1], (wx0, wy0)


class _PerImage:
    """A batch argument given once for all images or once per image: ``per[i]`` is image i's value."""

    def __init__(self, value, n: int | None, name: str, check) -> None:
        # NumPy scalars and 0-d arrays are one value for all images, like Python numbers.
        self.shared = value is None or isinstance(value, (str, numbers.Number, np.generic)) or (
            isinstance(value, np.ndarray) and value.ndim == 0)
        try:
            self.value = value if self.shared else list(value)
        except TypeError:
            raise ValueError(f"{name} must be one value or a sequence of one value per image, got {value!r}") from None
        if not self.shared and n is not None and len(self.value) != n:
            raise ValueError(f"{name} must be one value or one per image ({n}), got {len(self.value)}")
        for i, v in enumerate([self.value] if self.shared else self.value):  # bad values fail the call, not each image
            if v is not None:
                try:
                    check(v)
                except ValueError as e:
                    raise ValueError(f"{name}{'' if self.shared else f'[{i}]'}: {e}") from None

    def has_value(self, i: int) -> bool:
        return self.shared or i < len(self.value)

    def left_over(self, count: int) -> bool:
        """Whether per-image values remain once ``count`` images were taken."""
        return not self.shared and count < len(self.value)

    def __getitem__(self, i: int):
        return self.value if self.shared else self.value[i]


def _source_name(item) -> str:
    if isinstance(item, (str, os.PathLike)):
        return str(item)
    if isinstance(item, io.LoadedImage):
        return item.source
    return "<array>" if isinstance(item, np.ndarray) else f"<{type(item).__name__}>"


# ---- module-level convenience ------------------------------------------------------------------------------------

_ANALYZERS: dict[tuple, Analyzer] = {}
_LOCK = threading.Lock()


def get_analyzer(bundle=None, backend: str = "auto", device=None) -> Analyzer:
    """A cached :class:`Analyzer` per (bundle, backend, device): the models load once per process."""
    key = (str(Path(bundle).resolve()) if isinstance(bundle, (str, os.PathLike)) else id(bundle) if bundle else None,
           backend, str(device))
    with _LOCK:
        if key not in _ANALYZERS:
            _ANALYZERS[key] = Analyzer(bundle, backend=backend, device=device)
        return _ANALYZERS[key]


def analyze(image: ImageLike, *, bundle=None, backend: str = "auto", device=None, spacing_mm: float | None = None,
            side: str | None = None) -> Analysis:
    """Analyse one hand radiograph with a cached :class:`Analyzer` (see :meth:`Analyzer.analyze`).

    Example::

        import ramh_rt
        a = ramh_rt.analyze("hand.dcm")
        print(a.totals.svdh, a.joint("MCP-I").be_score)
        a.overlay("hand_overlay.png")
    """
    return get_analyzer(bundle, backend, device).analyze(image, spacing_mm=spacing_mm, side=side)


def analyze_hands(image: ImageLike, *, bundle=None, backend: str = "auto", device=None,
                  spacing_mm: float | None = None, side: str | None = None) -> list[Analysis]:
    """Analyse every hand of a film (one or two) with a cached :class:`Analyzer` (see :meth:`Analyzer.analyze_hands`).

    Example::

        import ramh_rt
        for a in ramh_rt.analyze_hands("both_hands.png"):
            print(a.meta.side, a.meta.hand_box, a.totals.svdh)
    """
    return get_analyzer(bundle, backend, device).analyze_hands(image, spacing_mm=spacing_mm, side=side)
