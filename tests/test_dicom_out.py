"""DICOM outputs (ramh_rt.dicom_out, Analysis.to_dicom): objects read back with pydicom and highdicom, hold the
analysis' masks and values, reference the source and validate with dciodvfy (dicom3tools)."""
from __future__ import annotations

import io
import subprocess
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

pydicom = pytest.importorskip("pydicom")
hd = pytest.importorskip("highdicom")

from dicom_fixtures import SPACING_MM, binaries_missing, dx_dataset, phantom_pixels  # noqa: E402

from ramh_rt import anatomy, dicom_out  # noqa: E402
from ramh_rt.dicom_out import DicomExportError  # noqa: E402

SEED = 3


@pytest.fixture(scope="module")
def analyzer():
    from ramh_rt import Analyzer

    return Analyzer()


@pytest.fixture(scope="module")
def source():
    pix, side = phantom_pixels(SEED)
    return dx_dataset(pix, laterality=side, patient_id="RAMH-OUT-1")


@pytest.fixture(scope="module")
def analysis(analyzer, source):
    a = analyzer.analyze(io.BytesIO(dicom_out.dataset_bytes(source)).getvalue())
    assert a.meta.spacing_mm == pytest.approx(SPACING_MM)
    return a


@pytest.fixture(scope="module")
def objects(analysis, analyzer, source):
    """The three objects, written and read back from bytes (what a PACS receives)."""
    objs = analysis.to_dicom(source, bundle=analyzer.bundle)
    return {dicom_out.kind_of(o): pydicom.dcmread(io.BytesIO(dicom_out.dataset_bytes(o))) for o in objs}


class _Group:
    """One TID 1501 group found by highdicom, its items indexed by concept code value (read once: highdicom's
    per-name lookups walk the whole tree each time)."""

    def __init__(self, group):
        self.group = group
        self.finding_sites = group.finding_sites
        self.num: dict[str, list[float]] = {}
        self.code: dict[str, list[str]] = {}
        for item in group[0].ContentSequence:
            name = item.ConceptNameCodeSequence[0]
            key = name.get("CodeValue") or name.get("LongCodeValue")
            if item.ValueType == "NUM":
                self.num.setdefault(key, []).append(float(item.MeasuredValueSequence[0].NumericValue))
            elif item.ValueType == "CODE":
                c = item.ConceptCodeSequence[0]
                self.code.setdefault(key, []).append(c.get("CodeValue") or c.get("LongCodeValue"))


def _groups(sr_ds) -> dict[str, _Group]:
    sr = hd.sr.ComprehensiveSR.from_dataset(sr_ds)
    return {g.tracking_identifier: _Group(g) for g in sr.content.get_image_measurement_groups()}


def _value(group: _Group, value: str) -> float | None:
    ms = group.num.get(value, [])
    assert len(ms) <= 1
    return ms[0] if ms else None


def _evaluation(group: _Group, value: str) -> list[str]:
    return group.code.get(value, [])


@pytest.fixture(scope="module")
def png_objects(analyzer):
    """The objects of a non-DICOM input (an array), with identity given as arguments."""
    pix, side = phantom_pixels(SEED)
    a = analyzer.analyze(pix, spacing_mm=SPACING_MM, side=side)
    return pix, a, a.to_dicom(None, identity={"PatientID": "P-42", "PatientName": "Doe^Jane", "AccessionNumber": "A7"})


def _texts(group, dcm_name: str) -> list[str]:
    from pydicom.sr.codedict import codes

    return [item.TextValue for item in hd.sr.utils.find_content_items(group.group[0],
                                                                       name=getattr(codes.DCM, dcm_name))]


def test_objects_copy_identity_and_reference_the_source(objects, source):
    assert "NumberOfFrames" not in source and "PixelSpacing" in source  # the source was not modified
    assert set(objects) == {"sr", "seg", "sc"}
    for kind, ds in objects.items():
        assert ds.StudyInstanceUID == source.StudyInstanceUID, kind
        assert ds.PatientID == source.PatientID and str(ds.PatientName) == str(source.PatientName), kind
        assert ds.AccessionNumber == source.AccessionNumber, kind
        assert ds.SeriesInstanceUID != source.SeriesInstanceUID and ds.SOPInstanceUID != source.SOPInstanceUID, kind
        assert "NOT FOR CLINICAL USE" in ds.SeriesDescription, kind  # the default bundle says so
    refs = objects["sr"].CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence[0]
    assert refs.SeriesInstanceUID == source.SeriesInstanceUID
    assert refs.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == source.SOPInstanceUID
    seg_ref = objects["seg"].ReferencedSeriesSequence[0]
    assert seg_ref.SeriesInstanceUID == source.SeriesInstanceUID
    assert seg_ref.ReferencedInstanceSequence[0].ReferencedSOPInstanceUID == source.SOPInstanceUID
    assert objects["sc"].SourceImageSequence[0].ReferencedSOPInstanceUID == source.SOPInstanceUID
    assert objects["sc"].PhotometricInterpretation == "RGB" and objects["sc"].BurnedInAnnotation == "YES"


def test_seg_masks_equal_the_analysis_masks(objects, analysis, source):
    seg = hd.seg.Segmentation.from_dataset(objects["seg"])
    n = len(analysis.bones) + 1
    assert seg.number_of_segments == n
    px = seg.get_pixels_by_source_instance([source.SOPInstanceUID], segment_numbers=list(range(1, n + 1)),
                                           assert_missing_frames_are_empty=True)[0]
    assert px.shape == (*analysis.meta.image_shape, n)
    for k, b in enumerate(analysis.bones):
        desc = seg.get_segment_description(k + 1)
        assert desc.segmented_property_type.value == b.name
        assert desc.segmented_property_type.scheme_designator == dicom_out.SCHEME
        np.testing.assert_array_equal(px[..., k] > 0, b.mask, err_msg=b.name)
    assert seg.get_segment_description(n).segment_label == "Erosion"
    assert analysis.erosion_mask.any(), "the phantom should show erosions, or this test checks nothing"
    np.testing.assert_array_equal(px[..., n - 1] > 0, analysis.erosion_mask)


def test_sr_values_equal_the_analysis_values(objects, analysis):
    groups = _groups(objects["sr"])
    assert set(groups) == {*anatomy.AREA_STEMS, "hand"}
    for j in analysis.joints:
        g = groups[j.stem]
        assert [s.value.value for s in g.finding_sites] == [j.stem]
        assert _evaluation(g, "LOCATED") == ["373066001" if j.located else "373067005"]
        assert _value(g, "BE") == j.be_score and _value(g, "JSN") == j.jsn_score
        for k, p in enumerate(j.be_probs or []):
            assert _value(g, f"BE-P{k}") == pytest.approx(p, rel=1e-6)
        for k, p in enumerate(j.jsn_probs or []):
            assert _value(g, f"JSN-P{k}") == pytest.approx(p, rel=1e-6)
        if j.located:
            assert _value(g, "ERODED-MM2") == pytest.approx(j.eroded_mm2, rel=1e-6)
            assert _value(g, "LESIONS") == j.lesions
        assert _texts(g, "AlgorithmName") == [analysis.meta.bundle_id]
        assert _texts(g, "AlgorithmVersion") == [analysis.meta.bundle_version]
    hand = groups["hand"]
    t = analysis.totals
    assert (_value(hand, "TOTAL-BE"), _value(hand, "TOTAL-JSN"), _value(hand, "TOTAL-SVDH")) == (t.erosion, t.jsn,
                                                                                                t.svdh)
    assert _value(hand, "EXPECTED-SVDH") == pytest.approx(t.expected_svdh, rel=1e-6)
    assert _evaluation(hand, "SEVERITY") == [f"SEV-{t.severity}"]
    assert _evaluation(hand, "CLINICAL-USE") == ["NOT-CLINICAL"]
    assert _evaluation(hand, "QC-STATUS") == [dicom_out.QC_STATUS_CODES[analysis.qc.status][0]]
    codes = {r.code for r in analysis.qc.reasons}
    assert set(_evaluation(hand, "QC-REVIEW-REASON") + _evaluation(hand, "QC-REJECT-REASON")
               + _evaluation(hand, "QC-INFO")) == codes


def test_sr_carries_qc_and_uncertainty_when_the_analysis_has_them(analysis, analyzer, source):
    a = analysis
    located = [j for j in a.joints if j.located]
    saved = (a.qc, a.totals.svdh_interval, [j.uncertainty for j in located])
    try:
        a.qc = SimpleNamespace(status="review", field_of_view="hand",
                               reasons=[("side_conflict", "header says L, anatomy says R", "review"),
                                        ("orientation_applied", "turned by 90 degrees", "info")])
        a.totals.svdh_interval = (a.totals.svdh - 3, a.totals.svdh + 4)
        for k, j in enumerate(located):
            j.uncertainty = 0.1 * k
        sr = a.to_dicom(source, kinds=("sr",), bundle=analyzer.bundle)[0]
    finally:
        a.qc, a.totals.svdh_interval = saved[0], saved[1]  # the fixture is shared: put back what it had
        for j, u in zip(located, saved[2]):
            j.uncertainty = u
    groups = _groups(pydicom.dcmread(io.BytesIO(dicom_out.dataset_bytes(sr))))
    hand = groups["hand"]
    assert _evaluation(hand, "QC-STATUS") == ["QC-REVIEW"]
    assert _evaluation(hand, "QC-REVIEW-REASON") == ["side_conflict"]
    assert _evaluation(hand, "QC-INFO") == ["orientation_applied"]
    assert _evaluation(hand, "FIELD-OF-VIEW") == ["FOV-HAND"]
    assert (_value(hand, "SVDH-LOW"), _value(hand, "SVDH-HIGH")) == (a.totals.svdh - 3, a.totals.svdh + 4)
    for k, j in enumerate(located):
        assert _value(groups[j.stem], "UNCERTAINTY") == pytest.approx(0.1 * k)


def test_non_dicom_source_gives_valid_objects_with_given_identity(png_objects, tmp_path):
    pix, a, objs = png_objects
    assert [dicom_out.kind_of(o) for o in objs] == ["source", "sr", "seg", "sc"]
    src = objs[0]
    np.testing.assert_array_equal(src.pixel_array, pix)
    for o in objs:
        assert o.StudyInstanceUID == src.StudyInstanceUID and o.PatientID == "P-42" and o.AccessionNumber == "A7"
    assert objs[2].ReferencedSeriesSequence[0].ReferencedInstanceSequence[0].ReferencedSOPInstanceUID == \
        src.SOPInstanceUID
    paths = dicom_out.write_dicom_outputs(objs, tmp_path, "png_hand")
    assert sorted(p.name for p in paths) == sorted(f"png_hand_{k}.dcm" for k in ("source", "sr", "seg", "sc"))
    # Without identity: empty, not invented.
    bare = a.to_dicom(None, kinds=("sr",))
    assert bare[1].PatientID == "" and bare[1].StudyInstanceUID == bare[0].StudyInstanceUID


def test_bad_requests_are_named_errors(analysis, source):
    with pytest.raises(DicomExportError, match="unknown DICOM output kind"):
        analysis.to_dicom(source, kinds=("pdf",))
    small = dx_dataset(np.zeros((64, 64), np.uint8))
    with pytest.raises(DicomExportError, match="not the image that was analysed"):
        analysis.to_dicom(small)
    multi = dx_dataset(np.zeros(analysis.meta.image_shape, np.uint8))
    multi.NumberOfFrames = 2
    with pytest.raises(DicomExportError, match="2 frames"):
        analysis.to_dicom(multi)
    kept = analysis.image
    try:
        analysis.image = None
        with pytest.raises(DicomExportError, match="keep_image=True"):
            analysis.to_dicom(source, kinds=("sc",))
        with pytest.raises(DicomExportError, match="keep_image=True"):
            analysis.to_dicom(None, kinds=("sr",))
    finally:
        analysis.image = kept


def test_clinical_use_statement():
    assert dicom_out.not_for_clinical_use(None)
    assert dicom_out.not_for_clinical_use("NOT clinically validated: trained on phantoms")
    assert dicom_out.not_for_clinical_use("research use only")
    assert not dicom_out.not_for_clinical_use("CE-marked for SvdH scoring of adult PA hand radiographs")


def test_reject_sr_for_unusable_input(source):
    for src in (source, None, pydicom.Dataset()):
        ds = pydicom.dcmread(io.BytesIO(dicom_out.dataset_bytes(
            dicom_out.reject_sr(src, "ImageLoadError", "no pixel data"))))
        hand = _groups(ds)["hand"]
        assert _evaluation(hand, "QC-STATUS") == ["QC-REJECT"]
        assert _evaluation(hand, "QC-REJECT-REASON") == ["ImageLoadError"]
        if src is source:
            assert ds.StudyInstanceUID == source.StudyInstanceUID and ds.PatientID == source.PatientID
            ev = ds.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence[0].ReferencedSOPSequence[0]
            assert ev.ReferencedSOPInstanceUID == source.SOPInstanceUID


def test_cli_writes_dicom_outputs(source, tmp_path):
    from ramh_rt.cli import main

    src = tmp_path / "in" / "hand.dcm"
    src.parent.mkdir()
    src.write_bytes(dicom_out.dataset_bytes(source))
    before = src.read_bytes()
    assert main(["analyze", str(src), "--out", str(tmp_path / "out"), "--dicom-out", str(tmp_path / "dcm"),
                 "--quiet"]) == 0
    assert sorted(p.name for p in (tmp_path / "dcm").iterdir()) == ["hand_sc.dcm", "hand_seg.dcm", "hand_sr.dcm"]
    sr = pydicom.dcmread(tmp_path / "dcm" / "hand_sr.dcm")
    ev = sr.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence[0].ReferencedSOPSequence[0]
    assert ev.ReferencedSOPInstanceUID == source.SOPInstanceUID
    assert src.read_bytes() == before  # the input is never touched


def test_a_two_hand_dicom_film_is_read_once_for_its_outputs(tmp_path, monkeypatch):
    """The DICOM outputs of both hands of a film come from one reading of its header (hands_to_dicom), not one per
    hand: pydicom reads the file twice in all, once to decode the pixels and once for the outputs."""
    from dicom_fixtures import two_hand_pixels

    from ramh_rt.cli import main

    src = tmp_path / "both.dcm"
    ds = dx_dataset(two_hand_pixels(11, 12))
    src.write_bytes(dicom_out.dataset_bytes(ds))
    reads = []
    real = pydicom.dcmread

    def counting(fp, *args, **kwargs):  # the real reader, counted
        if isinstance(fp, (str, Path)) and Path(fp) == src:
            reads.append(kwargs.get("stop_before_pixels", False))
        return real(fp, *args, **kwargs)

    monkeypatch.setattr(pydicom, "dcmread", counting)
    assert main(["analyze", str(src), "--out", str(tmp_path / "out"), "--dicom-out", str(tmp_path / "dcm"),
                 "--quiet"]) == 0
    names = sorted(p.name for p in (tmp_path / "dcm").iterdir())
    hands = sorted({n.rsplit("_", 1)[0] for n in names})  # both_L/both_R, or both_hand1/2 when a side is unknown
    assert len(hands) == 2 and names == sorted(f"{h}_{k}.dcm" for h in hands for k in ("sc", "seg", "sr"))
    assert reads == [False, True], reads  # pixels once, the header once for both hands
    for h in hands:
        sr = pydicom.dcmread(tmp_path / "dcm" / f"{h}_sr.dcm")
        ev = sr.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence[0].ReferencedSOPSequence[0]
        assert ev.ReferencedSOPInstanceUID == ds.SOPInstanceUID


@pytest.mark.skipif(bool(binaries_missing("dciodvfy")),
                    reason="dciodvfy (Debian package dicom3tools) is not installed; tools/install_system_deps.sh")
def test_dciodvfy_reports_no_error(objects, png_objects, source, tmp_path):
    objs = dict(objects)
    objs.update({f"png_{dicom_out.kind_of(o)}": o for o in png_objects[2]})
    objs["reject"] = dicom_out.reject_sr(source, "NotAHandError", "no hand in this image")
    objs["reject_bare"] = dicom_out.reject_sr(None, "ImageLoadError", "unreadable")
    for name, ds in objs.items():
        path = tmp_path / f"{name}.dcm"
        path.write_bytes(dicom_out.dataset_bytes(ds))
        out = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=120)
        report = out.stdout + out.stderr
        errors = [line for line in report.splitlines() if line.startswith("Error")]
        assert not errors, f"{name}: {errors}"
        assert "Error" not in report, f"{name}: {report[-2000:]}"
