"""DICOM results of an analysis: a Structured Report, a Segmentation and a Secondary Capture (built with highdicom).

:func:`analysis_to_dicom` (what :meth:`ramh_rt.result.Analysis.to_dicom` calls) turns one
:class:`~ramh_rt.result.Analysis` into DICOM objects that any PACS stores and shows:

* **SR** (``"sr"``): a Comprehensive SR holding a TID 1500 *Imaging Measurement Report*. One TID 1501 measurement group
  per SvdH area (tracking identifier ``"<stem>"``, finding site = the area) with the erosion score and its six class
  probabilities, the JSN score and its five probabilities, the eroded area (mm², and pixels), the eroded fraction, the
  lesion count, the score uncertainty when it was computed, and whether the area was located; one group
  ``"hand"`` with the totals (erosion, JSN, SvdH, expected SvdH, the whole-image estimate), the severity class, whether
  all areas were scored, the quality-control status and reasons, and "not for clinical
  use" when the bundle says so. Every group names the algorithm: the bundle id and version (TID 4019).
* **SEG** (``"seg"``): a binary Segmentation with one segment per bone instance (RAM-H1200 class names, Sesamoid
  instances as separate segments) and one segment for the bone-erosion mask, all on the source image's pixel grid.
* **SC** (``"sc"``): a Secondary Capture (RGB) of :meth:`Analysis.overlay`, for viewers that show only images.

References and identity: when the source is DICOM, every object copies the patient and study identity of the source
(same Study Instance UID, new series) and references the source instance (SR: evidence and the source image of each
measurement group; SEG: Referenced Series and Source Image Sequence; SC: Source Image Sequence). When the source is
not DICOM (a PNG, an array), a fourth object is made first: a Secondary Capture of the analysed image itself (kind
``"source"``), so that the SEG has an image to lie on and the references resolve inside what is sent; identity comes
from the ``identity`` argument (DICOM keywords, see :data:`IDENTITY_KEYWORDS`), else it is empty, with new UIDs.

Codes. Standard codes where one exists: SCT 91723000 "Anatomical Structure" and SCT 272673000 "Bone" (segment
category and type of the bones; SoftTissue and Sesamoid use the same category), SCT 49755003 "Morphologically Altered
Structure" (category of the erosion segment), SCT 39352004 "Joint" and SCT 85562004 "Hand" (finding sites and
anatomic region), SCT 373066001/373067005 "Yes"/"No", DCM 121106 "Comment", UCUM ``mm2``, ``1`` and ``{score}``,
DCM 113859 "Artificial Intelligence" (algorithm family). Everything else is in the private coding scheme
:data:`SCHEME` (``"99RAMH"``, "99" marks a private scheme in DICOM), whose code values are:

===================  ==========================================================================================
code value           meaning
===================  ==========================================================================================
``<bone class>``     a RAM-H1200 bone class (``"MC2"``, ``"Pisiform_Triquetrum"``...), segmented property type
``EROSION``          bone erosion (segmented property type of the erosion segment)
``<area stem>``      an SvdH area by RAM-H1200 ROI stem (``"MCP-I"``, ``"R"``...), finding site of a group
``BE``               SvdH erosion score of an area (0..5, unit ``{score}``)
``BE-P0``..``BE-P5``  probability of erosion score k (unit ``1``)
``JSN``              SvdH joint-space-narrowing score of an area (0..4)
``JSN-P0``..``JSN-P4``  probability of JSN score k
``UNCERTAINTY``      score uncertainty of an area (``JointRecord.uncertainty``, where set)
``ERODED-MM2``       eroded area (mm²; absent without a pixel spacing)
``ERODED-PX``        eroded area (image pixels)
``ERODED-FRAC``      eroded share of the joint's bone area (0..1)
``LESIONS``          number of erosion lesions
``LOCATED``          whether the area was located (value SCT Yes/No)
``TOTAL-BE``         hand erosion total (0..80)
``TOTAL-JSN``        hand JSN total (0..60)
``TOTAL-SVDH``       hand SvdH total (0..140)
``PARTIAL-SVDH``     the sum of the areas in view (``totals.partial_svdh``)
``SVDH-LOW`` / ``SVDH-HIGH``  bounds of ``totals.svdh_interval`` (where set)
``EXPECTED-SVDH``    the SvdH total from the score probabilities
``GLOBAL-SVDH``      the whole-image model's estimate of the total
``COMPLETE``         whether all 31 scores were produced (Yes/No)
``SEVERITY``         severity class; values ``SEV-<class>`` (:data:`ramh_rt.anatomy.SEVERITY_NAMES`)
``QC-STATUS``        quality-control status; values ``QC-OK``, ``QC-REVIEW``, ``QC-REJECT``
``FIELD-OF-VIEW``    ``qc.field_of_view``; values ``FOV-HAND``, ``FOV-WRIST``, ``FOV-FINGERS``...
``QC-INFO`` / ``QC-REVIEW-REASON`` / ``QC-REJECT-REASON``  a quality-control reason of that severity; the value's
                     code is the reason's code, its meaning the reason's message (cut to 64 characters)
``CLINICAL-USE``     the bundle's clinical-use statement; value ``NOT-CLINICAL`` "Not for clinical use"
``SVDH-REPORT``      the procedure reported: automated SvdH scoring of a hand radiograph
===================  ==========================================================================================

"Not for clinical use" is stated (in the SR, and in every object's Series Description) unless the bundle's manifest
has a ``clinical_use`` statement without a negation (no "not", "no", "none", "research", "test"); a bundle without the
statement, or no bundle given, counts as not cleared.
"""
from __future__ import annotations

import io as _io
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

import numpy as np

from . import __version__, anatomy
from .errors import RamhError

if TYPE_CHECKING:  # pragma: no cover
    from pydicom import Dataset

    from .bundle import Bundle
    from .result import Analysis

#: The private coding scheme designator of ramh_rt's concepts (see the module docstring for the codes).
SCHEME = "99RAMH"
#: Manufacturer written into every object.
MANUFACTURER = "ramh_rt"
#: Kinds :func:`analysis_to_dicom` can make, in the order they are returned.
KINDS = ("source", "sr", "seg", "sc")
#: Series numbers of the objects (a PACS lists series by number; fixed numbers keep the results together).
SERIES_NUMBER = {"source": 9000, "sr": 9001, "seg": 9002, "sc": 9003}
#: Identity attributes taken from the ``identity`` argument for non-DICOM sources (DICOM keywords).
IDENTITY_KEYWORDS = ("PatientID", "PatientName", "PatientBirthDate", "PatientSex", "AccessionNumber", "StudyID",
                     "StudyInstanceUID", "StudyDate", "StudyTime", "ReferringPhysicianName")
#: SOP Class UIDs of the storage classes the node accepts as input (CR, DX for presentation and for processing).
IMAGE_SOP_CLASSES = {"1.2.840.10008.5.1.4.1.1.1": "CR", "1.2.840.10008.5.1.4.1.1.1.1": "DX",
                     "1.2.840.10008.5.1.4.1.1.1.1.1": "DX-processing"}

_NEGATION = re.compile(r"\b(not|no|none|research|test)\b", re.IGNORECASE)


class DicomExportError(RamhError, ValueError):
    """The DICOM objects of an analysis cannot be made: an unknown kind, a source whose image size differs from the
    analysed image, a non-DICOM source without the analysed image kept, or the ``dicom`` extra (highdicom) missing.
    The message says which."""


# ---------------------------------------------------------------------------------------------------------------------
# codes
# ---------------------------------------------------------------------------------------------------------------------

def _hd():
    try:
        import highdicom
    except ImportError as e:  # pragma: no cover - the dicom extra is a declared dependency of this module
        raise DicomExportError(f"DICOM outputs need highdicom (pip install ramh-rt[dicom]): {e}") from None
    return highdicom


def code(value: str, meaning: str):
    """A concept of the private scheme :data:`SCHEME` (``pydicom.sr.coding.Code``; meaning cut to 64 characters)."""
    from pydicom.sr.coding import Code

    return Code(value, SCHEME, meaning[:64])


def bone_code(name: str):
    """The coded RAM-H1200 bone class ``name`` (value = class name, meaning = its display name)."""
    b = anatomy.bone(name)
    return code(b.name, b.display)


def area_code(stem: str):
    """The coded SvdH area ``stem`` (value = RAM-H1200 ROI stem, meaning = its display name)."""
    a = anatomy.area(stem)
    return code(a.stem, a.display)


def _std():
    from pydicom.sr.codedict import codes
    from pydicom.sr.coding import Code

    return {
        "anatomical_structure": codes.SCT.AnatomicalStructure,
        "bone": codes.SCT.Bone,
        "altered": Code("49755003", "SCT", "Morphologically Altered Structure"),
        "joint": codes.SCT.Joint,
        "hand": codes.SCT.Hand,
        "yes": codes.SCT.Yes,
        "no": codes.SCT.No,
        "mm2": codes.UCUM.SquareMillimeter,
        "one": codes.UCUM.NoUnits,
        "score": Code("{score}", "UCUM", "score"),
        "pixels": Code("{pixels}", "UCUM", "pixels"),
        "count": Code("{count}", "UCUM", "count"),
        "ai": Code("113859", "DCM", "Artificial Intelligence"),
    }


QC_STATUS_CODES = {"ok": ("QC-OK", "Quality control passed"), "review": ("QC-REVIEW", "Needs review"),
                   "reject": ("QC-REJECT", "Rejected")}
QC_REASON_NAMES = {"info": ("QC-INFO", "Quality-control note"),
                   "review": ("QC-REVIEW-REASON", "Quality-control reason for review"),
                   "reject": ("QC-REJECT-REASON", "Quality-control reason for rejection")}


def _declare_scheme(ds: "Dataset") -> None:
    """Name the private scheme in the SOP Common module's Coding Scheme Identification Sequence, so a reader can tell
    whose codes ``99RAMH`` are."""
    from pydicom import Dataset
    from pydicom.sequence import Sequence as DicomSequence

    item = Dataset()
    item.CodingSchemeDesignator = SCHEME
    item.CodingSchemeName = "ramh_rt concepts (RAM-H1200 anatomy, SvdH scoring, quality control)"
    item.CodingSchemeResponsibleOrganization = "ramh_rt project"
    ds.CodingSchemeIdentificationSequence = DicomSequence([item])


def not_for_clinical_use(clinical_use: str | None) -> bool:
    """True unless ``clinical_use`` (a bundle manifest's statement) states a use without a negation word."""
    return clinical_use is None or not clinical_use.strip() or bool(_NEGATION.search(clinical_use))


# ---------------------------------------------------------------------------------------------------------------------
# sources
# ---------------------------------------------------------------------------------------------------------------------

def read_source(source: Any) -> "Dataset | None":
    """The DICOM dataset of ``source``, or None when it is not DICOM.

    Args:
        source: a ``pydicom.Dataset`` (returned as is), a path or bytes of a DICOM file (read without its pixel data,
            read-only), or anything else (a PNG path, an array, None: not DICOM).

    Raises:
        DicomExportError: a DICOM file that pydicom cannot parse.
    """
    import pydicom

    if isinstance(source, pydicom.Dataset):
        return source
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            return None
        with open(path, "rb") as f:
            head = f.read(132)
        if head[128:132] != b"DICM" and path.suffix.lower() not in (".dcm", ".dicom"):
            return None
        try:
            return pydicom.dcmread(path, stop_before_pixels=True)
        except Exception as e:  # noqa: BLE001 - pydicom raises many types for a corrupt file
            raise DicomExportError(f"{path}: not a readable DICOM file: {e}") from None
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        if data[128:132] != b"DICM":
            return None
        try:
            return pydicom.dcmread(_io.BytesIO(data), stop_before_pixels=True)
        except Exception as e:  # noqa: BLE001
            raise DicomExportError(f"<bytes>: not a readable DICOM file: {e}") from None
    return None


def _reference_stub(src: "Dataset | None", identity: Mapping[str, Any] | None = None) -> "Dataset":
    """A dataset holding only what references and identity need (study, series, instance, patient), with empty or new
    values for what ``src`` lacks; used as SR evidence where the full source is absent or incomplete."""
    from pydicom import Dataset
    from pydicom.uid import generate_uid

    ds = Dataset()
    src = src if src is not None else Dataset()
    ids = dict(identity or {})
    for kw in IDENTITY_KEYWORDS:
        v = src.get(kw, ids.get(kw))
        setattr(ds, kw, "" if v is None else v)
    ds.StudyInstanceUID = ds.StudyInstanceUID or generate_uid()
    ds.SeriesInstanceUID = src.get("SeriesInstanceUID") or generate_uid()
    ds.SOPClassUID = src.get("SOPClassUID") or "1.2.840.10008.5.1.4.1.1.7"
    ds.SOPInstanceUID = src.get("SOPInstanceUID") or generate_uid()
    ds.Modality = src.get("Modality") or "OT"
    return ds


def _completed(src: "Dataset") -> "Dataset":
    """A shallow copy of ``src`` (the caller's dataset is never modified) with the identity attributes it lacks set
    empty: highdicom copies each of them and fails on an absent one."""
    from pydicom import Dataset

    # A new element dict sharing the (never modified) elements: pydicom's Dataset.copy() shares the dict itself, so
    # adding to it would change the caller's dataset. Pixel data is left out: nothing here needs it.
    ds = Dataset({tag: elem for tag, elem in src.items() if tag != 0x7FE00010})
    if hasattr(src, "file_meta"):
        ds.file_meta = src.file_meta
    for kw in IDENTITY_KEYWORDS:
        if kw not in ds:
            setattr(ds, kw, "")
    return ds


# highdicom wants an orientation for the PATIENT coordinate system; Patient Orientation is Type 2 in a Secondary
# Capture, so it is replaced right away by the source's own or by an empty value (unknown) rather than a guess.
_PLACEHOLDER_ORIENTATION = ("L", "F")


def _set_orientation(sc: "Dataset", src: "Dataset | None") -> None:
    value = src.get("PatientOrientation") if src is not None else None
    sc.PatientOrientation = list(value) if value is not None and len(list(value)) == 2 else ""


def _seg_source(src: "Dataset") -> "Dataset":
    """The source as highdicom's Segmentation constructor should see it.

    For a projection image (no Frame of Reference: CR, DX) highdicom 0.28 writes a Pixel Measures item with Pixel
    Spacing but no Slice Thickness, which its own reader (``Segmentation.from_dataset``) then rejects. The SEG of a
    projection image lies on the referenced source's pixel grid, whose spacing the source carries, so the spacing is
    left out of the SEG rather than written in a form that readers refuse.
    """
    ds = _completed(src)
    if "FrameOfReferenceUID" not in ds:
        for kw in ("PixelSpacing", "SliceThickness", "SpacingBetweenSlices"):
            if kw in ds:
                delattr(ds, kw)
    return ds


def _series_description(kind: str, not_clinical: bool) -> str:
    text = {"source": "ramh_rt analysed image", "sr": "ramh_rt SvdH scores", "seg": "ramh_rt bones and erosions",
            "sc": "ramh_rt overlay"}[kind]
    return f"{text} (NOT FOR CLINICAL USE)" if not_clinical else text


def _source_sc(analysis: "Analysis", identity: Mapping[str, Any] | None, not_clinical: bool) -> "Dataset":
    """Secondary Capture of the analysed image (MONOCHROME2, 8 or 16 bits) for a non-DICOM source."""
    hd = _hd()
    from pydicom.uid import generate_uid

    img = analysis.image
    if img is None:
        raise DicomExportError(f"{analysis.meta.source}: a non-DICOM source needs the analysed image to make the "
                               "DICOM objects (analyse with keep_image=True)")
    img = np.asarray(img)
    if img.dtype == np.uint8:
        pix, bits = img, 8
    elif img.dtype == np.uint16:
        pix, bits = img, 16
    else:  # float images (only DICOM sources give them; an array caller may too): rescale to 16 bits for display
        f = img.astype(np.float64)
        lo, hi = float(np.min(f)), float(np.max(f))
        pix = np.zeros(f.shape, np.uint16) if hi <= lo else np.round((f - lo) / (hi - lo) * 65535).astype(np.uint16)
        bits = 16
    ids = dict(identity or {})
    spacing = analysis.meta.spacing_mm
    sc = hd.sc.SCImage(
        pixel_array=np.ascontiguousarray(pix), photometric_interpretation="MONOCHROME2", bits_allocated=bits,
        coordinate_system="PATIENT", study_instance_uid=str(ids.get("StudyInstanceUID") or generate_uid()),
        series_instance_uid=generate_uid(), series_number=SERIES_NUMBER["source"], sop_instance_uid=generate_uid(),
        instance_number=1, manufacturer=MANUFACTURER, patient_id=ids.get("PatientID"),
        patient_name=ids.get("PatientName"), patient_birth_date=ids.get("PatientBirthDate"),
        patient_sex=ids.get("PatientSex"), accession_number=ids.get("AccessionNumber"), study_id=ids.get("StudyID"),
        study_date=ids.get("StudyDate"), study_time=ids.get("StudyTime"),
        referring_physician_name=ids.get("ReferringPhysicianName"),
        pixel_spacing=None if spacing is None else (float(spacing), float(spacing)),
        laterality=analysis.meta.side if analysis.meta.side in anatomy.SIDES else None,
        patient_orientation=_PLACEHOLDER_ORIENTATION)
    _set_orientation(sc, None)
    sc.SeriesDescription = _series_description("source", not_clinical)
    sc.BodyPartExamined = "HAND"
    return sc


# ---------------------------------------------------------------------------------------------------------------------
# the objects
# ---------------------------------------------------------------------------------------------------------------------

def analysis_to_dicom(analysis: "Analysis", source: Any = None, kinds: Sequence[str] = ("sr", "seg", "sc"), *,
                      bundle: "Bundle | None" = None, identity: Mapping[str, Any] | None = None,
                      overlay_max_side: int = 1600, overlay: Any = None) -> list["Dataset"]:
    """The DICOM objects of one analysis (see the module docstring for their content and codes).

    Args:
        analysis: the :class:`~ramh_rt.result.Analysis`.
        source: the analysed image's DICOM dataset, or the path / bytes of its DICOM file; anything else (a PNG path,
            None) means a non-DICOM source: a Secondary Capture of the analysed image is made first (kind
            ``"source"``) and the other objects reference it.
        kinds: which objects, any of ``"sr"``, ``"seg"``, ``"sc"`` (the overlay).
        bundle: the bundle that made the analysis, for its ``clinical_use`` statement (without it the objects say
            "not for clinical use").
        identity: patient/study attributes (DICOM keywords of :data:`IDENTITY_KEYWORDS`) for a non-DICOM source;
            ignored for a DICOM source, whose own identity is copied.
        overlay_max_side: longest side of the overlay capture, in pixels.
        overlay: the PIL image of :meth:`Analysis.overlay` when the caller has already rendered it (not redrawn).

    Returns:
        ``pydicom.Dataset`` objects in :data:`KINDS` order (``"source"`` first when made), each with its file meta,
        ready for ``dcmwrite`` or C-STORE.

    Raises:
        DicomExportError: an unknown kind; the source's Rows x Columns differ from ``analysis.meta.image_shape``; a
            multi-frame source; the analysed image is needed (non-DICOM source, or ``"sc"``) but was not kept;
            highdicom cannot build an object from this source (the message names the object and the reason).
    """
    bad = [k for k in kinds if k not in KINDS[1:]]
    if bad:
        raise DicomExportError(f"unknown DICOM output kind(s) {bad}; choose from {list(KINDS[1:])}")
    src = read_source(source)
    clinical_use = None if bundle is None else bundle.manifest.get("clinical_use")
    not_clinical = not_for_clinical_use(clinical_use)
    out: list[Dataset] = []
    if src is None:
        src = _source_sc(analysis, identity, not_clinical)
        out.append(src)
    else:
        shape = (int(src.Rows), int(src.Columns)) if "Rows" in src and "Columns" in src else None
        if shape != tuple(analysis.meta.image_shape):
            raise DicomExportError(f"source {src.get('SOPInstanceUID', '?')} is {shape} (rows, cols) but the analysed "
                                   f"image is {tuple(analysis.meta.image_shape)}: not the image that was analysed")
        if int(src.get("NumberOfFrames", 1) or 1) > 1:
            raise DicomExportError(f"source {src.get('SOPInstanceUID', '?')} has {src.NumberOfFrames} frames; results "
                                   "are made for single-frame radiographs (the analysis used the first frame only)")
    for kind in KINDS[1:]:
        if kind not in kinds:
            continue
        try:
            if kind == "sr":
                out.append(build_sr(src, analysis=analysis, bundle_id=analysis.meta.bundle_id,
                                    bundle_version=analysis.meta.bundle_version, clinical_use=clinical_use))
            elif kind == "seg":
                out.append(build_seg(src, analysis, not_clinical))
            else:
                out.append(build_overlay_sc(src, analysis, not_clinical, overlay_max_side, overlay))
        except (ValueError, TypeError, AttributeError, KeyError) as e:
            if isinstance(e, RamhError):
                raise
            # highdicom refuses what the source does not allow (a missing attribute it needs, an odd value): say
            # which object and why instead of a bare library error.
            raise DicomExportError(f"cannot make the {kind.upper()} for source {src.get('SOPInstanceUID', '?')}: "
                                   f"{type(e).__name__}: {e}") from e
    return out


def hands_to_dicom(analyses: Sequence["Analysis"], source: Any = None, *, overlays: Sequence[Any] | None = None,
                   **kwargs) -> list[list["Dataset"]]:
    """The DICOM objects of every hand of one film (:func:`analysis_to_dicom` per hand), its source read once.

    A DICOM film's header is read once for all its hands (not once per hand); for a non-DICOM film the first
    hand's Secondary Capture (kind ``"source"``) is the source of the other hands' objects: one film, one capture,
    one study.

    Args:
        analyses: the film's analyses, in film order (the hands that were analysed).
        source: as for :func:`analysis_to_dicom`.
        overlays: per analysis, its already rendered overlay (PIL image) or None.
        **kwargs: ``kinds``, ``bundle``, ``identity``, ``overlay_max_side`` of :func:`analysis_to_dicom`.

    Returns:
        per analysis, its objects (:func:`analysis_to_dicom`).

    Raises:
        DicomExportError: as :func:`analysis_to_dicom`; ``overlays`` not one per analysis.
    """
    if overlays is not None and len(overlays) != len(analyses):
        raise DicomExportError(f"{len(overlays)} overlays for {len(analyses)} analyses")
    src = read_source(source) if analyses else None
    out = []
    for k, a in enumerate(analyses):
        objs = analysis_to_dicom(a, src, overlay=None if overlays is None else overlays[k], **kwargs)
        src = next((ds for ds in objs if kind_of(ds) == "source"), src)
        out.append(objs)
    return out


def _algorithm(hd, bundle_id: str, bundle_version: str):
    return hd.sr.AlgorithmIdentification(name=bundle_id[:64], version=bundle_version[:64],
                                         parameters=[f"ramh_rt {__version__}"], family=_std()["ai"],
                                         manufacturer=MANUFACTURER)


def _measure(hd, name, value, unit):
    return hd.sr.Measurement(name=name, value=float(value), unit=unit)


def _yes_no(flag: bool):
    s = _std()
    return s["yes"] if flag else s["no"]


def _reason_parts(reason: Any) -> tuple[str, str, str]:
    """(code, message, severity) of a qc reason: a :class:`ramh_rt.qc.Reason` or a ``(code, message, severity)``
    tuple (reject SRs for inputs that could not be analysed)."""
    if isinstance(reason, (tuple, list)):
        c, m, s = (list(reason) + ["", "", "review"])[:3]
    else:
        c, m, s = reason.code, reason.message, reason.severity
    return str(c), str(m), str(s)


def _qc_evaluations(hd, status: str | None, reasons: Iterable[Any]) -> list:
    evals = []
    if status is not None:
        value, meaning = QC_STATUS_CODES.get(str(status), (f"QC-{str(status).upper()}", str(status)))
        evals.append(hd.sr.QualitativeEvaluation(code("QC-STATUS", "Quality-control status"), code(value, meaning)))
    for reason in reasons:
        c, m, s = _reason_parts(reason)
        name = QC_REASON_NAMES.get(s, QC_REASON_NAMES["review"])
        evals.append(hd.sr.QualitativeEvaluation(code(*name), code(c or "UNSPECIFIED", m or c or "unspecified")))
    return evals


def _joint_group(hd, j, algorithm, source_ref) -> Any:
    s = _std()
    ms = []
    if j.located:
        if j.be_score is not None:
            ms.append(_measure(hd, code("BE", "SvdH erosion score"), j.be_score, s["score"]))
            ms += [_measure(hd, code(f"BE-P{k}", f"Probability of erosion score {k}"), p, s["one"])
                   for k, p in enumerate(j.be_probs or [])]
        if j.jsn_score is not None:
            ms.append(_measure(hd, code("JSN", "SvdH joint space narrowing score"), j.jsn_score, s["score"]))
            ms += [_measure(hd, code(f"JSN-P{k}", f"Probability of JSN score {k}"), p, s["one"])
                   for k, p in enumerate(j.jsn_probs or [])]
        unc = j.uncertainty
        if unc is not None and np.isfinite(unc):
            ms.append(_measure(hd, code("UNCERTAINTY", "Score uncertainty"), unc, s["score"]))
        for value, c, meaning, unit in ((j.eroded_mm2, "ERODED-MM2", "Eroded area", s["mm2"]),
                                        (j.eroded_px, "ERODED-PX", "Eroded area in image pixels", s["pixels"]),
                                        (j.eroded_fraction, "ERODED-FRAC", "Eroded fraction of bone area", s["one"]),
                                        (j.lesions, "LESIONS", "Number of erosion lesions", s["count"])):
            if value is not None and np.isfinite(value):
                ms.append(_measure(hd, code(c, meaning), value, unit))
    evals = [hd.sr.QualitativeEvaluation(code("LOCATED", "Area located"), _yes_no(j.located))]
    return hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=_uid(), identifier=j.stem),
        finding_type=s["joint"], algorithm_id=algorithm,
        finding_sites=[hd.sr.FindingSite(area_code(j.stem))], measurements=ms or None,
        qualitative_evaluations=evals, source_images=source_ref)


def _uid() -> str:
    from pydicom.uid import generate_uid

    return generate_uid()


def build_sr(source: "Dataset", *, analysis: "Analysis | None" = None, bundle_id: str = "", bundle_version: str = "",
             clinical_use: str | None = None, qc_status: str | None = None,
             qc_reasons: Sequence[Any] = ()) -> "Dataset":
    """A Comprehensive SR (TID 1500) of one analysis, or a quality-control-only report when ``analysis`` is None.

    Args:
        source: the analysed image's dataset (identity and references are taken from it; a partial one is completed
            with empty identity and new UIDs).
        analysis: the analysis; None makes a report with only the ``"hand"`` group's quality-control entries (what the
            node answers for an image it could not analyse).
        bundle_id / bundle_version: the algorithm named in every group.
        clinical_use: the bundle's clinical-use statement (see :func:`not_for_clinical_use`).
        qc_status / qc_reasons: used when ``analysis`` is None or has no ``qc`` attribute; reasons are
            ``(code, message, severity)``.

    Returns:
        the SR ``pydicom.Dataset`` (with file meta).

    Raises:
        DicomExportError: highdicom is not installed.
    """
    hd = _hd()
    s = _std()
    from pydicom.uid import generate_uid

    evidence = _reference_stub(source)  # highdicom reads every identity attribute: absent ones become empty
    algorithm = _algorithm(hd, bundle_id or "unknown", bundle_version or "unknown")
    source_ref = [hd.sr.SourceImageForMeasurementGroup(evidence.SOPClassUID, evidence.SOPInstanceUID)]
    groups = []
    hand_ms, hand_evals = [], []
    if analysis is not None:
        groups += [_joint_group(hd, j, algorithm, source_ref) for j in analysis.joints]
        t = analysis.totals
        interval = t.svdh_interval or (None, None)
        for value, c, meaning in ((t.erosion, "TOTAL-BE", "SvdH erosion total"),
                                  (t.jsn, "TOTAL-JSN", "SvdH joint space narrowing total"),
                                  (t.svdh, "TOTAL-SVDH", "SvdH total"),
                                  (t.partial_svdh, "PARTIAL-SVDH", "SvdH sum of the areas in view"),
                                  (interval[0], "SVDH-LOW", "SvdH total interval, lower bound"),
                                  (interval[-1], "SVDH-HIGH", "SvdH total interval, upper bound"),
                                  (t.expected_svdh, "EXPECTED-SVDH", "Expected SvdH total from probabilities"),
                                  (t.global_svdh, "GLOBAL-SVDH", "Whole-image SvdH estimate")):
            if value is not None and np.isfinite(value):
                hand_ms.append(_measure(hd, code(c, meaning), value, s["score"]))
        if t.severity is not None:  # None: not reported for a partial field of view
            hand_evals.append(hd.sr.QualitativeEvaluation(code("SEVERITY", "Severity class"),
                                                          code(f"SEV-{t.severity}", f"Severity {t.severity}")))
        hand_evals.append(hd.sr.QualitativeEvaluation(code("COMPLETE", "All areas scored"), _yes_no(t.complete)))
        qc = analysis.qc
        if qc is not None:
            qc_status, qc_reasons = qc.status, list(qc.reasons)
            fov = qc.field_of_view
            if fov:
                hand_evals.append(hd.sr.QualitativeEvaluation(code("FIELD-OF-VIEW", "Field of view"),
                                                              code(f"FOV-{str(fov).upper()}", f"Field of view {fov}")))
    hand_evals += _qc_evaluations(hd, qc_status, qc_reasons)
    not_clinical = not_for_clinical_use(clinical_use)
    if not_clinical:
        hand_evals.append(hd.sr.QualitativeEvaluation(code("CLINICAL-USE", "Clinical use"),
                                                      code("NOT-CLINICAL", "Not for clinical use")))
    groups.append(hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=generate_uid(), identifier="hand"),
        finding_type=s["hand"], algorithm_id=algorithm, finding_sites=[hd.sr.FindingSite(s["hand"])],
        measurements=hand_ms or None, qualitative_evaluations=hand_evals or None, source_images=source_ref))
    observer = hd.sr.ObserverContext(
        observer_type=_device_code(),
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=generate_uid(), name="ramh_rt", manufacturer_name=MANUFACTURER, model_name=bundle_id[:64] or None))
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=observer),
        procedure_reported=code("SVDH-REPORT", "Automated SvdH scoring of a hand radiograph"),
        imaging_measurements=groups)
    sr = hd.sr.ComprehensiveSR(
        evidence=[evidence], content=report[0], series_instance_uid=generate_uid(),
        series_number=SERIES_NUMBER["sr"], sop_instance_uid=generate_uid(), instance_number=1,
        manufacturer=MANUFACTURER, is_complete=True, is_final=False, is_verified=False)
    sr.SeriesDescription = _series_description("sr", not_clinical)
    _declare_scheme(sr)
    sr.SoftwareVersions = f"ramh_rt {__version__}"
    return sr


def _device_code():
    from pydicom.sr.codedict import codes

    return codes.DCM.Device


def build_seg(source: "Dataset", analysis: "Analysis", not_clinical: bool = True) -> "Dataset":
    """A binary Segmentation: one segment per bone instance of ``analysis.bones`` (in order), then the erosion mask.

    Segment k+1 is ``analysis.bones[k]`` (label ``<class>`` or ``<class> <instance+1>`` for Sesamoid instances; type
    the coded class); the last segment is the erosion mask (label ``Erosion``). Masks are full-image H x W booleans on
    the source's grid, overlapping where bones overlap (one frame per non-empty segment).

    Raises:
        DicomExportError: highdicom is not installed.
    """
    hd = _hd()
    s = _std()
    from pydicom.uid import generate_uid

    h, w = analysis.meta.image_shape
    algo = hd.AlgorithmIdentificationSequence(name=analysis.meta.bundle_id[:64], family=s["ai"],
                                              version=analysis.meta.bundle_version[:64], source=MANUFACTURER)
    descriptions = []
    planes = []
    for k, b in enumerate(analysis.bones):
        cls = anatomy.bone(b.name)
        label = f"{b.name} {b.instance + 1}" if cls.multi_instance else b.name
        descriptions.append(hd.seg.SegmentDescription(
            segment_number=k + 1, segment_label=label, segmented_property_category=s["anatomical_structure"],
            segmented_property_type=bone_code(b.name), algorithm_type="AUTOMATIC", algorithm_identification=algo,
            tracking_id=label, tracking_uid=generate_uid(), anatomic_regions=[s["hand"]]))
        planes.append(b.mask)
    descriptions.append(hd.seg.SegmentDescription(
        segment_number=len(descriptions) + 1, segment_label="Erosion", segmented_property_category=s["altered"],
        segmented_property_type=code("EROSION", "Bone erosion"), algorithm_type="AUTOMATIC",
        algorithm_identification=algo, tracking_id="Erosion", tracking_uid=generate_uid(),
        anatomic_regions=[s["hand"]]))
    planes.append(np.asarray(analysis.erosion_mask, dtype=bool))
    pixels = np.stack(planes, axis=-1)[None]  # (1 frame, H, W, segments): overlapping segments need this layout
    if pixels.shape[1:3] != (h, w):
        raise DicomExportError(f"masks are {pixels.shape[1:3]} but the image is {(h, w)}")
    seg = hd.seg.Segmentation(
        source_images=[_seg_source(source)], pixel_array=pixels, segmentation_type="BINARY", segment_descriptions=descriptions,
        series_instance_uid=generate_uid(), series_number=SERIES_NUMBER["seg"], sop_instance_uid=generate_uid(),
        instance_number=1, manufacturer=MANUFACTURER, manufacturer_model_name=analysis.meta.bundle_id[:64],
        software_versions=f"ramh_rt {__version__}", device_serial_number="0", omit_empty_frames=True)
    _set_orientation(seg, source)  # General Image Type 2C for a projection image: the source's, or empty
    seg.SeriesDescription = _series_description("seg", not_clinical)
    _declare_scheme(seg)
    return seg


def build_overlay_sc(source: "Dataset", analysis: "Analysis", not_clinical: bool = True,
                     max_side: int = 1600, overlay: Any = None) -> "Dataset":
    """A Secondary Capture (RGB, 8 bits) of :meth:`Analysis.overlay` (``overlay``: that picture, already rendered),
    in the source's study, referencing it.

    Raises:
        DicomExportError: the analysed image was not kept (the overlay needs it).
    """
    hd = _hd()
    from pydicom import Dataset
    from pydicom.sequence import Sequence as DicomSequence
    from pydicom.uid import generate_uid

    if overlay is None and analysis.image is None:
        raise DicomExportError(f"{analysis.meta.source}: the overlay capture needs the analysed image "
                               "(analyse with keep_image=True)")
    picture = overlay if overlay is not None else analysis.overlay(max_side=max_side)
    rgb = np.ascontiguousarray(np.asarray(picture.convert("RGB")), dtype=np.uint8)
    sc = hd.sc.SCImage.from_ref_dataset(
        ref_dataset=_reference_stub(source), pixel_array=rgb,
        photometric_interpretation="RGB", bits_allocated=8, coordinate_system="PATIENT",
        series_instance_uid=generate_uid(), series_number=SERIES_NUMBER["sc"], sop_instance_uid=generate_uid(),
        instance_number=1, manufacturer=MANUFACTURER,
        laterality=analysis.meta.side if analysis.meta.side in anatomy.SIDES else None,
        patient_orientation=_PLACEHOLDER_ORIENTATION)
    _set_orientation(sc, source)  # the overlay is the source picture scaled: same orientation
    ref = Dataset()
    ref.ReferencedSOPClassUID = source.SOPClassUID
    ref.ReferencedSOPInstanceUID = source.SOPInstanceUID
    sc.SourceImageSequence = DicomSequence([ref])
    sc.ImageType = ["DERIVED", "SECONDARY"]
    sc.BurnedInAnnotation = "YES"
    sc.SeriesDescription = _series_description("sc", not_clinical)
    return sc


def reject_sr(source: Any, code_value: str, message: str, *, bundle: "Bundle | None" = None) -> "Dataset":
    """The quality-control-only SR the node answers for an image it could not analyse (status ``reject``).

    Args:
        source: the received dataset (or None when nothing usable was received); its identity and references are
            copied where present.
        code_value: the reason's code (e.g. the error class, ``"ImageLoadError"``).
        message: the reason, for a person (the first 64 characters go into the SR).
        bundle: for the bundle id/version and its clinical-use statement.
    """
    return build_sr(_reference_stub(source), bundle_id=bundle.id if bundle else "", bundle_version=bundle.version if bundle else "",
                    clinical_use=bundle.manifest.get("clinical_use") if bundle else None, qc_status="reject",
                    qc_reasons=[(code_value, message, "reject")])


# ---------------------------------------------------------------------------------------------------------------------
# files
# ---------------------------------------------------------------------------------------------------------------------

def kind_of(ds: "Dataset") -> str:
    """``"sr"``, ``"seg"``, ``"sc"`` (overlay) or ``"source"`` for an object made by this module (by SOP class and
    series number)."""
    sop = str(ds.SOPClassUID)
    if sop == "1.2.840.10008.5.1.4.1.1.66.4":
        return "seg"
    if sop.startswith("1.2.840.10008.5.1.4.1.1.88."):
        return "sr"
    return "source" if int(ds.get("SeriesNumber", 0) or 0) == SERIES_NUMBER["source"] else "sc"


def dataset_bytes(ds: "Dataset") -> bytes:
    """``ds`` encoded as a DICOM Part 10 file (preamble, file meta, the dataset in its transfer syntax)."""
    import pydicom

    buf = _io.BytesIO()
    pydicom.dcmwrite(buf, ds, enforce_file_format=True)
    return buf.getvalue()


def write_dicom_outputs(datasets: Sequence["Dataset"], out_dir: str | os.PathLike[str], base: str) -> list[Path]:
    """Write the objects of one analysis to ``out_dir`` as ``<base>_<kind>.dcm`` (kinds of :func:`kind_of`), each
    atomically (a reader never sees a half-written file; an existing file of that name is replaced whole).

    Returns:
        the written paths, in the order of ``datasets``.

    Raises:
        OSError: the folder cannot be created or written.
        DicomExportError: two objects of one kind (their file names would collide).
    """
    from .fs import write_atomic

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    kinds = [kind_of(ds) for ds in datasets]
    if len(set(kinds)) != len(kinds):
        raise DicomExportError(f"{base}: several objects of one kind ({kinds}); write each analysis separately")
    return [write_atomic(out / f"{base}_{k}.dcm", dataset_bytes(ds)) for k, ds in zip(kinds, datasets)]


__all__ = ["DicomExportError", "IDENTITY_KEYWORDS", "IMAGE_SOP_CLASSES", "KINDS", "SCHEME", "analysis_to_dicom",
           "area_code", "bone_code", "build_overlay_sc", "build_seg", "build_sr", "dataset_bytes", "hands_to_dicom",
           "kind_of", "not_for_clinical_use", "read_source", "reject_sr", "write_dicom_outputs"]
