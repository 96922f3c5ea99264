"""The DICOM node end to end against a real PACS, and the folder watcher.

Orthanc (Debian package ``orthanc``) is started by the test on loopback ports with a throwaway JSON configuration and
storage, ``ramh serve`` runs as a subprocess forwarding to it, and a modality (a pynetdicom SCU) sends radiographs; the
test then asks Orthanc's REST API what it holds. Skipped only when the Orthanc binary is absent
(tools/install_system_deps.sh installs it; CI does).
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

pydicom = pytest.importorskip("pydicom")
pytest.importorskip("pynetdicom")
pytest.importorskip("highdicom")

from dicom_fixtures import (binaries_missing, dx_dataset, hand_and_long_bone_pixels, noise_pixels,  # noqa: E402
                            phantom_pixels, two_hand_pixels)

from ramh_rt import dicom_out  # noqa: E402

# The ramh_rt under test (the installed one in CI, python/ in the developer loop): the node subprocess imports it too.
PACKAGE_ROOT = Path(dicom_out.__file__).resolve().parent.parent
SR_SOPS = ("1.2.840.10008.5.1.4.1.1.88.33", "1.2.840.10008.5.1.4.1.1.88.34", "1.2.840.10008.5.1.4.1.1.88.22")
SEG_SOP = "1.2.840.10008.5.1.4.1.1.66.4"
SC_SOP = "1.2.840.10008.5.1.4.1.1.7"
needs_orthanc = pytest.mark.skipif(bool(binaries_missing("Orthanc")),
                                   reason="Orthanc (Debian package orthanc) is not installed; run "
                                          "tools/install_system_deps.sh")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_json(url: str, timeout: float = 10.0):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.loads(r.read())


def wait_until(predicate, timeout: float, what: str, proc: subprocess.Popen | None = None, log: Path | None = None):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"{what}: process exited with {proc.returncode}\n"
                                 f"{log.read_text()[-3000:] if log else ''}")
        try:
            value = predicate()
            if value:
                return value
        except (OSError, urllib.error.URLError, ValueError, KeyError):
            pass
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n"
                         f"{log.read_text()[-3000:] if log else ''}")


def stop(proc: subprocess.Popen, sig=signal.SIGTERM, timeout: float = 60) -> int:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


class Orthanc:
    """An Orthanc of our own: loopback ports, temporary config and storage (never the system service)."""

    def __init__(self, root: Path):
        self.http_port, self.dicom_port = free_port(), free_port()
        self.aet = "ORTHANC"
        self.root = root
        cfg = {"Name": "ramh-test", "StorageDirectory": str(root / "storage"), "IndexDirectory": str(root / "index"),
               "HttpPort": self.http_port, "DicomPort": self.dicom_port, "DicomAet": self.aet,
               "RemoteAccessAllowed": False, "AuthenticationEnabled": False, "Plugins": [], "DicomModalities": {},
               "DicomCheckCalledAet": False, "StorageCompression": False, "HttpCompressionEnabled": False}
        self.config = root / "orthanc.json"
        self.config.write_text(json.dumps(cfg))
        self.log = root / "orthanc.log"
        self.proc = subprocess.Popen(["Orthanc", str(self.config)], stdout=open(self.log, "wb"),
                                     stderr=subprocess.STDOUT, cwd=root)
        wait_until(lambda: http_json(self.url("/system"))["Version"], 60, "Orthanc to start", self.proc, self.log)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.http_port}{path}"

    def instances(self) -> list[dict]:
        """Every stored instance's tags (simplified, by keyword)."""
        return [http_json(self.url(f"/instances/{i}/simplified-tags")) for i in http_json(self.url("/instances"))]

    def close(self) -> None:
        stop(self.proc)


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory):
    if binaries_missing("Orthanc"):
        pytest.skip("Orthanc (Debian package orthanc) is not installed; run tools/install_system_deps.sh")
    o = Orthanc(tmp_path_factory.mktemp("orthanc"))
    yield o
    o.close()


def start_node(tmp: Path, orthanc: Orthanc, *extra: str) -> tuple[subprocess.Popen, int, int, Path, Path]:
    port, http = free_port(), free_port()
    log = tmp / "node.log"
    status = tmp / "status.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(PACKAGE_ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen(
        [sys.executable, "-m", "ramh_rt.cli", "serve", "--ae-title", "RAMH", "--host", "127.0.0.1", "--port",
         str(port), "--forward", f"{orthanc.aet}@127.0.0.1:{orthanc.dicom_port}", "--store", str(tmp / "store"),
         "--status-file", str(status), "--http-port", str(http), "--backend", "onnxruntime-cpu", *extra],
        stdout=open(log, "wb"), stderr=subprocess.STDOUT, env=env)
    wait_until(lambda: http_json(f"http://127.0.0.1:{http}/health")["state"] == "running", 120, "ramh serve", proc,
               log)
    return proc, port, http, status, log


def send(port: int, datasets: list, calling: str = "STATION") -> list[tuple[str, int, float]]:
    """C-STORE ``datasets`` to the node over one association (a modality): (SOP Instance UID, status, seconds to
    the response) per dataset."""
    from pynetdicom import AE

    ae = AE(ae_title=calling)
    for sop in {str(d.SOPClassUID) for d in datasets}:
        ae.add_requested_context(sop, pydicom.uid.ExplicitVRLittleEndian)
    ae.add_requested_context("1.2.840.10008.1.1")
    ae.maximum_pdu_size = 0
    assoc = ae.associate("127.0.0.1", port, ae_title="RAMH")
    assert assoc.is_established
    out = []
    try:
        echo = assoc.send_c_echo()
        assert echo.Status == 0
        for d in datasets:
            t = time.perf_counter()
            st = assoc.send_c_store(d)
            out.append((str(d.SOPInstanceUID), int(st.Status), time.perf_counter() - t))
    finally:
        assoc.release()
    return out


def results_for(instances: list[dict], sop_uid: str) -> dict[str, list[dict]]:
    """Orthanc's instances that reference ``sop_uid``, by kind (sr/seg/sc), from their referencing attributes."""
    out: dict[str, list[dict]] = {"sr": [], "seg": [], "sc": []}
    for tags in instances:
        sop = tags.get("SOPClassUID")
        if sop in SR_SOPS:
            ev = tags.get("CurrentRequestedProcedureEvidenceSequence", [])
            refs = [r["ReferencedSOPInstanceUID"] for e in ev for s in e.get("ReferencedSeriesSequence", [])
                    for r in s.get("ReferencedSOPSequence", [])]
            kind = "sr"
        elif sop == SEG_SOP:
            refs = [r["ReferencedSOPInstanceUID"] for s in tags.get("ReferencedSeriesSequence", [])
                    for r in s.get("ReferencedInstanceSequence", [])]
            kind = "seg"
        elif sop == SC_SOP:
            refs = [r["ReferencedSOPInstanceUID"] for r in tags.get("SourceImageSequence", [])]
            kind = "sc"
        else:
            continue
        if sop_uid in refs:
            out[kind].append(tags)
    return out


def qc_status_of(orthanc: Orthanc, sr_tags: dict) -> list[str]:
    """The QC-STATUS values of an SR stored in Orthanc (read back from its file)."""
    import io

    inst = next(i for i in http_json(orthanc.url("/instances"))
                if http_json(orthanc.url(f"/instances/{i}/simplified-tags"))["SOPInstanceUID"]
                == sr_tags["SOPInstanceUID"])
    with urllib.request.urlopen(orthanc.url(f"/instances/{inst}/file"), timeout=30) as r:
        ds = pydicom.dcmread(io.BytesIO(r.read()))
    values = []

    def walk(items):
        for it in items:
            name = it.ConceptNameCodeSequence[0].get("CodeValue") if "ConceptNameCodeSequence" in it else None
            if it.ValueType == "CODE" and name == "QC-STATUS":
                values.append(it.ConceptCodeSequence[0].CodeValue)
            walk(it.get("ContentSequence", []))

    walk(ds.ContentSequence)
    return values


@needs_orthanc
@pytest.mark.slow
def test_node_forwards_results_to_orthanc(orthanc, tmp_path):
    """A modality sends 5 radiographs (+1 broken one); Orthanc ends up with, per input, an SR referencing it, and
    a SEG and an overlay SC for each hand; the broken image gets a reject SR and the node keeps running."""
    from ramh_rt.errors import RamhError  # noqa: F401 - NotAHandError, when present, derives from it
    import ramh_rt.errors as errors

    study = pydicom.uid.generate_uid()
    p3, s3 = phantom_pixels(3)
    p5, s5 = phantom_pixels(5)
    p7, s7 = phantom_pixels(7)
    inputs = {
        "hand_mono2": dx_dataset(p3, laterality=s3, study_uid=study),
        "hand_mono1": dx_dataset(p5, photometric="MONOCHROME1", laterality=s5, study_uid=study),
        "hand_16bit": dx_dataset((p7.astype(np.uint16) * 257), laterality=s7, study_uid=study),
        "two_hands": dx_dataset(two_hand_pixels(11, 12), study_uid=study, description="hands PA both"),
        "non_hand": dx_dataset(noise_pixels(), study_uid=study, description="noise"),
    }
    broken = dx_dataset(p3, study_uid=study)
    broken.PixelData = broken.PixelData[:1000]  # truncated pixel data: an ImageLoadError
    proc, port, http, status, log = start_node(tmp_path, orthanc, "--workers", "2")
    try:
        acks = send(port, [*inputs.values(), broken])
        assert [a[1] for a in acks] == [0] * 6, acks
        n_expected = 6
        wait_until(lambda: http_json(f"http://127.0.0.1:{http}/health")["processed"] >= n_expected, 600,
                   "the node to analyse every input and deliver its results", proc, log)
        health = http_json(f"http://127.0.0.1:{http}/health")
        assert health["received"] == health["processed"] == 6 and health["delivery_failures"] == 0, health
        assert json.loads(status.read_text())["received"] == 6
        instances = orthanc.instances()
        for name, ds in inputs.items():
            res = results_for(instances, str(ds.SOPInstanceUID))
            assert len(res["sr"]) >= 1, f"{name}: no SR in Orthanc"
            for kind, tags_list in res.items():
                for tags in tags_list:
                    assert tags["StudyInstanceUID"] == study and tags["PatientID"] == ds.PatientID, (name, kind)
            rejected = qc_status_of(orthanc, res["sr"][0]) == ["QC-REJECT"]
            if name.startswith("hand"):
                assert not rejected and len(res["sr"]) == len(res["seg"]) == len(res["sc"]) == 1, (name, res.keys())
            elif name == "two_hands":
                hands = len(res["sr"])
                assert hands in (1, 2) and len(res["seg"]) == len(res["sc"]) == hands, name
                if hasattr(errors, "MultipleHandsError"):  # the runtime knows two-hand films: one result per hand
                    assert hands == 2
            elif hasattr(errors, "NotAHandError"):  # the runtime recognises non-hands: a reject SR only
                assert rejected and not res["seg"] and not res["sc"], name
        res = results_for(instances, str(broken.SOPInstanceUID))
        assert len(res["sr"]) == 1 and not res["seg"] and not res["sc"]
        assert qc_status_of(orthanc, res["sr"][0]) == ["QC-REJECT"]
        text = log.read_text()
        assert f"rejected {broken.SOPInstanceUID}: ImageLoadError" in text
        # Stored too (--store), one folder per input.
        assert len([p for p in (tmp_path / "store").iterdir() if p.is_dir()]) == 6
    finally:
        rc = stop(proc)
    assert rc == 0, log.read_text()[-3000:]
    assert "stopped:" in log.read_text()
    assert json.loads(status.read_text())["state"] == "stopped"


@needs_orthanc
@pytest.mark.slow
def test_acknowledgements_do_not_wait_for_analysis(orthanc, tmp_path):
    """C-STORE responses come back while the images are still being analysed (the handler only queues), and the
    node's throughput is measured: images per minute from the first send to the last result in Orthanc."""
    n = 4
    pix, side = phantom_pixels(3)
    datasets = [dx_dataset(pix, laterality=side) for _ in range(n)]
    before = len(http_json(orthanc.url("/instances")))
    proc, port, http, status, log = start_node(tmp_path, orthanc, "--workers", "2")
    try:
        t0 = time.perf_counter()
        acks = send(port, datasets)
        t_acked = time.perf_counter() - t0
        assert all(a[1] == 0 for a in acks)
        health = http_json(f"http://127.0.0.1:{http}/health")
        assert health["received"] == n
        # Every image was acknowledged before the node had analysed them all.
        assert health["analysed"] < n, (health, t_acked)
        wait_until(lambda: len(http_json(orthanc.url("/instances"))) >= before + 3 * n, 900,
                   "all results in Orthanc", proc, log)
        elapsed = time.perf_counter() - t0
    finally:
        stop(proc)
    per_minute = n / elapsed * 60
    slowest_ack = max(a[2] for a in acks)
    report = {"images": n, "workers": 2, "cpu_cores": os.cpu_count(), "seconds": round(elapsed, 1),
              "images_per_minute": round(per_minute, 1), "all_acked_after_s": round(t_acked, 2),
              "slowest_ack_s": round(slowest_ack, 3), "mean_time_per_image_s": round(elapsed / n, 2)}
    print("node throughput:", json.dumps(report))
    # An acknowledgement takes a transfer and a queue insert, not an analysis (several seconds here).
    assert slowest_ack < elapsed / n, report


def test_watch_processes_each_complete_file_once(tmp_path):
    """The folder watcher: outputs per input, atomically, inputs untouched, nothing done twice, failures recorded."""
    from ramh_rt import Analyzer
    from ramh_rt.node import FolderWatcher, NodeConfigError

    inbox, out = tmp_path / "inbox", tmp_path / "out"
    (inbox / "sub").mkdir(parents=True)
    pix, side = phantom_pixels(3)
    good = inbox / "sub" / "hand.dcm"
    good.write_bytes(dicom_out.dataset_bytes(dx_dataset(pix, laterality=side)))
    bad = inbox / "broken.dcm"
    bad_ds = dx_dataset(pix)
    bad_ds.PixelData = bad_ds.PixelData[:100]
    bad.write_bytes(dicom_out.dataset_bytes(bad_ds))
    (inbox / ".hidden.dcm").write_bytes(b"partial")
    (inbox / "upload.dcm.part").write_bytes(b"partial")
    before = {p: p.read_bytes() for p in inbox.rglob("*") if p.is_file()}
    with pytest.raises(NodeConfigError):
        FolderWatcher(inbox, inbox / "out", None)
    watcher = FolderWatcher(inbox, out, Analyzer(backend="onnxruntime-cpu"), settle_s=0.0)
    assert watcher.run(once=True, poll_s=0.05) == 1  # one failure
    names = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert names == sorted([".ramh_watch_state.json", "broken.error.json", "broken_sr.dcm", "sub/hand.json",
                            "sub/hand_sc.dcm", "sub/hand_seg.dcm", "sub/hand_sr.dcm"]), names
    assert json.loads((out / "broken.error.json").read_text())["error"] == "ImageLoadError"
    sr = pydicom.dcmread(out / "sub/hand_sr.dcm")
    assert sr.PatientID == "RAMH-TEST-1"
    assert {p: p.read_bytes() for p in inbox.rglob("*") if p.is_file()} == before  # inputs untouched
    # A restart (`ramh watch --once` over the same folders) does nothing again.
    from ramh_rt.cli import main

    mtimes = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    assert FolderWatcher(inbox, out, watcher.analyzer, settle_s=0.0).ready_files() == []
    assert main(["watch", str(inbox), "--out", str(out), "--once", "--settle", "0", "--poll", "0.05",
                 "--backend", "onnxruntime-cpu"]) == 0
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == mtimes
    assert main(["watch", str(inbox), "--out", str(inbox / "results")]) == 2  # outputs inside the input folder
    # `ramh analyze` of the same folder names the same input's outputs alike (the one naming, fs.OutputNames).
    assert main(["analyze", str(inbox), "--out", str(tmp_path / "a"), "--dicom-out", str(tmp_path / "a"),
                 "--quiet", "--backend", "onnxruntime-cpu"]) == 1  # broken.dcm fails
    analyzed = sorted(p.relative_to(tmp_path / "a").as_posix() for p in (tmp_path / "a").rglob("sub/*"))
    assert analyzed == [n for n in names if n.startswith("sub/")]


def test_watch_waits_for_a_file_to_settle(tmp_path):
    from ramh_rt.node import FolderWatcher

    inbox, out = tmp_path / "in", tmp_path / "out"
    inbox.mkdir()
    f = inbox / "a.png"
    f.write_bytes(b"\x89PNG growing")
    w = FolderWatcher(inbox, out, None, settle_s=5.0)
    t = time.time()
    assert w.ready_files(now=t) == []          # first sight: not settled yet
    assert w.ready_files(now=t + 1.0) == []    # unchanged but not for long enough
    f.write_bytes(b"\x89PNG grown more")        # still being written: the clock restarts
    assert w.ready_files(now=t + 5.5) == []
    st = f.stat()
    assert w.ready_files(now=t + 11.0) == [("a.png", f.resolve(), [st.st_size, st.st_mtime_ns])]


def test_node_config_is_validated(tmp_path):
    from ramh_rt.node import Destination, NodeConfig, NodeConfigError

    assert Destination.parse("PACS@10.0.0.5:104") == Destination("PACS", "10.0.0.5", 104)
    for bad in ("PACS10.0.0.5:104", "PACS@host", "PACS@host:0", "A_TITLE_LONGER_THAN_16@h:104"):
        with pytest.raises(NodeConfigError):
            Destination.parse(bad)
    with pytest.raises(NodeConfigError, match="nowhere to send"):
        NodeConfig().validate()
    cfg = tmp_path / "node.json"
    cfg.write_text(json.dumps({"ae_title": "RAMH", "port": 104, "forward": "PACS@h:104", "colour": "red"}))
    with pytest.raises(NodeConfigError, match="unknown key"):
        NodeConfig.from_file(cfg)
    from ramh_rt.cli import main

    assert main(["serve", "--config", str(cfg)]) == 2


def test_node_survives_a_pacs_that_is_down_and_bad_images(tmp_path):
    """In process, no network peer: results are stored, the failed forward is counted, a broken image gets a reject
    SR, and the node's status says all of it."""
    from ramh_rt import Analyzer
    from ramh_rt.node import DicomNode, NodeConfig

    node = DicomNode(NodeConfig(forward=f"NOBODY@127.0.0.1:{free_port()}", store=str(tmp_path / "store"),
                                host="127.0.0.1", port=free_port()), Analyzer(backend="onnxruntime-cpu"))
    pix, side = phantom_pixels(3)
    good = dx_dataset(pix, laterality=side)
    broken = dx_dataset(pix)
    broken.PixelData = broken.PixelData[:10]
    objs = node.process(good)
    assert [dicom_out.kind_of(o) for o in objs] == ["sr", "seg", "sc"]
    rejected = node.process(broken)
    assert [dicom_out.kind_of(o) for o in rejected] == ["sr"]
    st = node.status()
    assert (st["analysed"], st["rejected"], st["objects_stored"], st["delivery_failures"]) == (1, 1, 4, 2), st
    assert "ImageLoadError" in st["last_error"] or "association" in st["last_error"]
    stored = sorted(p.relative_to(tmp_path / "store").as_posix() for p in (tmp_path / "store").rglob("*.dcm"))
    assert stored == sorted([f"{good.SOPInstanceUID}/{good.SOPInstanceUID}_{k}.dcm" for k in ("sr", "seg", "sc")]
                            + [f"{broken.SOPInstanceUID}/{broken.SOPInstanceUID}_sr.dcm"])


def test_watch_output_names_are_analyze_names_and_survive_a_restart(tmp_path):
    """The watcher names through fs.OutputNames rooted at the watched folder: a file next to one of the same stem
    (a.png, a.dcm) gets a mark instead of a shared name, the names are those `ramh analyze DIR` gives in the same
    order, and a restarted watcher gives every input it had named the same names (whatever order files come in)."""
    from ramh_rt.fs import OutputNames, expand_image_paths
    from ramh_rt.node import FolderWatcher

    inbox, out = tmp_path / "in", tmp_path / "out"
    (inbox / "d").mkdir(parents=True)
    for name in ("a.png", "a.dcm", "b.png", "b_L.png"):
        (inbox / "d" / name).write_bytes(b"x")
    inputs = expand_image_paths([inbox])
    w = FolderWatcher(inbox, out, None)
    got = {p.relative_to(inbox).as_posix(): w.outputs(p.relative_to(inbox).as_posix(), ".json") for p in inputs}
    ref = OutputNames(out, inputs, root=inbox)
    assert got == {p.relative_to(inbox).as_posix(): ref.claim_hands(p, ".json") for p in inputs}
    rel = {k: {h: p.relative_to(out).as_posix() for h, p in v.items()} for k, v in got.items()}
    assert (rel["d/a.dcm"][""], rel["d/a.png"][""], rel["d/b.png"]["_L"], rel["d/b_L.png"][""]) == \
        ("d/a.json", "d/a~2.json", "d/b_L.json", "d/b_L~2.json")
    assert len({p for v in got.values() for p in v.values()}) == 5 * len(inputs)  # no two outputs share a path
    # A later file (claimed last) and a restart: the state brings every earlier claim back in its order.
    (inbox / "d" / "0.png").write_bytes(b"x")
    late = w.outputs("d/0.png", ".json")
    w._save_state()
    w2 = FolderWatcher(inbox, out, None)
    assert w2.outputs("d/0.png", ".json") == late and w2.outputs("d/a.png", ".json") == got["d/a.png"]


def test_node_answers_a_failed_hand_with_a_reject_sr_and_the_other_with_its_results(tmp_path):
    """A two-hand film whose second region is no hand: the hand's SR, SEG and SC, and a reject SR for the other."""
    from ramh_rt import Analyzer
    from ramh_rt.node import DicomNode, NodeConfig

    node = DicomNode(NodeConfig(store=str(tmp_path / "store"), host="127.0.0.1", port=free_port()),
                     Analyzer(backend="onnxruntime-cpu"))
    ds = dx_dataset(hand_and_long_bone_pixels())
    objs = node.process(ds)
    assert [dicom_out.kind_of(o) for o in objs] == ["sr", "seg", "sc", "sr"]
    reject = str(objs[3])  # its qc reason: the error's class and where, for a person
    assert "NotAHandError" in reject and "hand 2 of 2" in reject
    st = node.status()
    assert (st["analysed"], st["hands"], st["rejected"]) == (1, 2, 1), st
    stored = sorted(p.name for p in (tmp_path / "store").rglob("*.dcm"))
    assert len(stored) == 4 and len({n.rsplit("_", 1)[0] for n in stored}) == 2  # one name per hand


def test_node_answers_a_qc_rejected_result_with_its_sr_only(tmp_path):
    """A result whose own quality control says reject (when the runtime has Analysis.qc) gets no SEG or overlay."""
    from types import SimpleNamespace

    from ramh_rt import Analyzer
    from ramh_rt.node import DicomNode, NodeConfig

    class QcRejecting:
        """The real Analyzer, with the verdict a QC-aware runtime would give for this image."""

        def __init__(self, analyzer):
            self.bundle = analyzer.bundle
            self._analyzer = analyzer

        def analyze(self, image):
            a = self._analyzer.analyze(image)
            a.qc = SimpleNamespace(status="reject", reasons=[("not_a_hand", "no hand found", "reject")])
            return a

    node = DicomNode(NodeConfig(store=str(tmp_path / "store"), host="127.0.0.1", port=free_port()),
                     QcRejecting(Analyzer(backend="onnxruntime-cpu")))
    pix, side = phantom_pixels(3)
    objs = node.process(dx_dataset(pix, laterality=side))
    assert [dicom_out.kind_of(o) for o in objs] == ["sr"]
    assert node.status()["rejected"] == 1
