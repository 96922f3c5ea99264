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

import contextlib
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from . import __version__, anatomy, geometry, io, ops, qc, understand, view
from .backends import get_backend, select_backend
from .bundle import Bundle
from .errors import BackendError, MultipleHandsError, NotAHandError, RamhError
from .io.batch import DecodeAhead
from .result import Analysis, BoneRecord, JointRecord, Meta, Totals

ImageLike = Any  # numpy array, path, bytes or io.LoadedImage


@dataclass
class AnalysisError:
    """The failure that :meth:`Analyzer.analyze_batch` returns in place of an image's analysis, and
    :meth:`Analyzer.analyze_hands` (and ``iter_batch(per_hand=True)``) in place of one failed hand of a two-hand film.

    Attributes:
        source: the image (for a hand: the image, the hand's number and its x range).
        error: ``"<exception type>: <message>"``.
        exception: the exception.
    """

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

    def carry(self, times: dict[str, float]) -> None:
        """Count stages that ran before this timer started (a film's decode and understanding, shared by its second
        hand), in its laps and in its total."""
        self.times.update(times)
        self._start -= sum(times.values()) / 1e3

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

        On a two-hand film one hand can fail while the other is analysed: the failed hand is an
        :class:`AnalysisError` in its place in the list (its ``source`` names the hand and its box, ``exception``
        the error), the other hand's :class:`Analysis` comes back. Each hand's ``meta.timings_ms`` holds the
        film's shared ``decode`` and ``understand`` times, and its ``total`` includes them.

        Returns:
            one :class:`Analysis` (or, on a two-hand film, :class:`AnalysisError`) per hand.

        Raises:
            ImageLoadError, NotAHandError, RamhError: as :meth:`analyze`, when the film cannot be decoded or
            understood, or when its only hand (every hand) fails.
        """
        timer = _Timer()
        loaded = self._load(image, spacing_mm, side)
        timer.lap("decode")
        return self._analyze_film(loaded, timer)

    def _load(self, image: ImageLike, spacing_mm, side) -> io.LoadedImage:
        """The one way every entry point decodes its input and applies the caller's spacing/side (io's checks)."""
        if isinstance(image, io.LoadedImage):
            return io.with_overrides(image, spacing_mm=spacing_mm, side=side)
        return io.load_image(image, spacing_mm=spacing_mm, side=side)

    def _analyze_loaded(self, loaded: io.LoadedImage, timer: _Timer) -> Analysis:
        """One hand: the film's only hand, or on a two-hand film the one ``side="L"|"R"`` (given by the caller)
        names; else MultipleHandsError."""
        results = self._analyze_film(loaded, timer)
        if len(results) == 1:
            return results[0]
        sides = [None if isinstance(r, AnalysisError) else r.meta.side for r in results]
        if loaded.side_source == "user":
            picked = [r for r, s in zip(results, sides) if s == loaded.side]
            if len(picked) == 1:
                return picked[0]
        found = ", ".join(f"one that failed ({r.error})" if isinstance(r, AnalysisError) else
                          f"{s or 'side unknown'} at x {r.meta.hand_box[0]}-{r.meta.hand_box[2]}"
                          for s, r in zip(sides, results))
        raise MultipleHandsError(f"{loaded.source}: the film holds {len(results)} hands ({found}); pass side='L' "
                                 "or 'R' to analyse one, or use analyze_hands()", sides)

    def _analyze_film(self, loaded: io.LoadedImage, timer: _Timer) -> list[Analysis | AnalysisError]:
        """Every hand of the film; on a two-hand film a hand that fails is an AnalysisError in its place (the other
        hand's analysis still comes back); when every hand fails, the first hand's exception is raised."""
        try:
            survey = understand.survey(loaded.pixels, self.view_model)
        except NotAHandError as e:
            raise NotAHandError(f"{loaded.source}: {e}") from None
        timer.lap("understand")
        two = len(survey.hands) > 1
        shared = {k: v for k, v in timer.times.items() if k in ("decode", "understand")}
        out: list[Analysis | AnalysisError] = []
        first_error: Exception | None = None
        for i, region in enumerate(survey.hands):
            t = timer
            if i:
                # The film's decode and understanding serve both hands: each hand's timings and total include them.
                t = _Timer()
                t.carry(shared)
            try:
                out.append(self._analyze_hand(loaded, region, t, trusted_side=not two))
            except Exception as e:  # noqa: BLE001 - one hand of two failing leaves the other's result
                if not two:
                    raise
                first_error = first_error or e
                box = region.hand_box or region.box
                out.append(AnalysisError(f"{loaded.source} [hand {i + 1} of {len(survey.hands)}, x {box[0]}-{box[2]}]",
                                         f"{type(e).__name__}: {e}", e))
        if first_error is not None and all(isinstance(r, AnalysisError) for r in out):
            raise first_error
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
        rois = geometry.map_rois(geometry.joint_rois(model_masks), tf.transform.inverse())
        timer.lap("geometry")
        joints, ero_full = self._joints(src, pix, rois, masks_h, tf, loaded.spacing_mm, timer)
        totals, cam = self._totals(joints, x, whole_hand=ass.field_of_view == "hand")
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
        sx = tf.scale_x
        to_image = tf.transform.inverse()
        thr = float(self.bones_cfg["postprocess"]["threshold"])
        records: list[BoneRecord] = []
        model_masks: dict[str, np.ndarray] = {}
        near_canvas = np.zeros(masks.shape[1:], np.uint8)  # upsample_instance's scratch, reused across instances
        for r in inst:
            c = int(r["channel"])
            name = self.classes[c]
            mx0, my0, mx1, my1 = (int(r["bbox"][i]) for i in range(4))
            # Image-pixel bbox of the model bbox, one model pixel of margin for the sub-pixel boundary.
            x0, y0, x1, y1 = geometry.enclosing_pixels(to_image.apply_bounds((mx0 - 1, my0 - 1, mx1 + 1, my1 + 1)),
                                                       (h, w))
            if x1 <= x0 or y1 <= y0:
                continue
            # Full-resolution mask (ops.upsample_instance). A multi-instance class's instance is its bbox's part of
            # the plane; a single-instance plane holds only what postprocess kept, so its own bounds enclose it.
            win = (mx0, my0, mx1, my1) if anatomy.bone(name).multi_instance else geometry.mask_bounds(masks[c])
            if win is None:
                continue
            box = geometry.Roi.from_bounds(*tf.transform.apply_bounds((x0, y0, x1, y1))).as_array()[None]
            crop = ops.upsample_instance(logits[c], masks[c], win, box,
                                         (y1 - y0, x1 - x0), thr, scratch=near_canvas)
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
            feeds = {"roi": crops.reshape((n, 1, *size)), "window": window, "area": onehot}
            out = self.sessions["joints"].run(feeds)
            timer.lap("joint_model")
            ero = out["erosion_probs"]
            be, jsn = _host(out["be_probs"]), _host(out["jsn_probs"])
            bone_roi = self._anchor_masks(stems, boxes, masks, tf, size)
            q = ops.quantify_erosions(ero.reshape((n, *size)), bone_roi, boxes, spacing, threshold=thr,
                                      min_lesion_px=int(cfg.get("min_lesion_px", 4)))
            ero_bin = (_host(ero).reshape(n, *size) >= thr).astype(np.uint8)
            timer.lap("quantify")
            for k, stem in enumerate(stems):
                a = anatomy.area(stem)
                roi = rois[stem].roi
                be_p = _probs(be[k]) if a.be else None
                jsn_p = _probs(jsn[k]) if a.jsn else None
                qk = q[k]
                records[stem] = JointRecord(
                    stem=stem, name=a.name, display=a.display, located=True, roi=roi.as_tuple(),
                    bbox=roi.bbox(pix.shape),
                    be_score=None if be_p is None else _ordinal_median(be_p), be_probs=be_p,
                    jsn_score=None if jsn_p is None else _ordinal_median(jsn_p), jsn_probs=jsn_p,
                    eroded_px=float(qk["eroded_px"]),
                    eroded_mm2=None if np.isnan(qk["eroded_mm2"]) else float(qk["eroded_mm2"]),
                    eroded_fraction=float(qk["eroded_fraction"]), lesions=int(qk["lesions"]),
                    largest_lesion_px=float(qk["largest_lesion_px"]))
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
        """Per ROI, the union of its anchor bones' masks cut from the model-canvas masks (nearest).

        ``boxes`` are the float32 image boxes the ROIs were cropped at, mapped onto the canvas, so that a mask covers
        the very region its crop shows (not the ROI as found on the canvas, which differs by the float32 rounding).
        """
        n = len(stems)
        out = np.zeros((n, *size), np.uint8)
        model_boxes = np.array([tf.transform.apply_roi(geometry.Roi(*b)).as_tuple() for b in boxes], np.float32)
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

    def _totals(self, joints: list[JointRecord], x, *, whole_hand: bool) -> tuple[Totals, np.ndarray | None]:
        """The hand totals and the global model's class-activation map. Unless ``whole_hand``, every whole-hand
        estimate is None (``svdh``, ``global_svdh``, ``severity``, ``severity_probs``; ``severity_source``
        ``"not_reported"``): a partial view has only ``partial_svdh``."""
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
        # bundle's metrics); the whole-image model's class only where areas are missing and it is there. A view of
        # less than the whole hand has no whole-hand estimate: the whole-image model was trained on whole hands (on a
        # wrist crop it still answers, e.g. "71 points", and means nothing); the field_of_view reason says so.
        if not whole_hand:
            g_total = g_probs = severity = None
            source = "not_reported"
        elif complete or g_probs is None:
            severity, source = anatomy.severity_of(ero + jsn).name, "joint_scores"
        else:
            severity, source = anatomy.SEVERITY_NAMES[int(np.argmax(g_probs))], "global_model"
        return Totals(erosion=int(ero), jsn=int(jsn), svdh=int(ero + jsn) if whole_hand else None,
                      partial_svdh=int(ero + jsn),
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

        ``per_hand=True`` yields, per image, the list of :meth:`analyze_hands` (one Analysis per hand, an
        AnalysisError for a failed hand of a two-hand film) instead of one Analysis (a two-hand film is then no
        MultipleHandsError).
        """
        def decode(item, spacing, side_):
            t = _Timer()
            loaded = self._load(item, spacing, side_)
            # The time the decoded image then waits in the prefetch queue is not this image's: leave it out.
            t.lap("decode")
            t.pause()
            return loaded, t

        batch = DecodeAhead(images, decode, spacing_mm=spacing_mm, side=side, prefetch=prefetch)
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=batch.count, desc="analyze", unit="image", dynamic_ncols=True)
        try:
            with contextlib.closing(iter(batch)) as decoded:  # closing the results stops the decoder thread
                for src, value, error in decoded:
                    if error is not None:
                        yield AnalysisError(src, f"{type(error).__name__}: {error}", error)
                    else:
                        loaded, timer = value
                        try:
                            timer.resume()
                            yield (self._analyze_film(loaded, timer) if per_hand
                                   else self._analyze_loaded(loaded, timer))
                        except Exception as e:  # noqa: BLE001 - reported per image, the batch goes on
                            yield AnalysisError(src, f"{type(e).__name__}: {e}", e)
                    value = loaded = error = None  # release the decoded image once analysed
                    if bar:
                        bar.update(1)
        finally:
            if bar:
                bar.close()

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
