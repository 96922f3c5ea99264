"""Throughput of the DICOM node (``ramh serve``): images per minute, and how fast a station gets its acknowledgements.

A modality (pynetdicom SCU) sends N phantom hand radiographs (DX, 8 bits) over one association to an in-process
:class:`ramh_rt.node.DicomNode` that stores its results (SR, SEG, SC per image) in a temporary folder. Measured:

* ``ack_s``: per image, the time from sending the C-STORE to its response (a transfer and a queue insert);
* ``images_per_minute``: N over the time from the first send until every result is written;
* the per-image analysis and DICOM-building times from the node's counters and log.

The machine's load average is recorded with the figures (on a shared machine it dominates them).

    PYTHONPATH=python python benchmarks/node_throughput.py [--images 6] [--workers 2] [--out FILE]
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import socket
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the phantom radiographs as a station sends them (tests/dicom_fixtures.py)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=6)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", help="write the report as JSON")
    args = ap.parse_args(argv)

    import pydicom
    from dicom_fixtures import dx_dataset, phantom_pixels
    from pynetdicom import AE

    from ramh_rt import Analyzer
    from ramh_rt.node import DicomNode, NodeConfig

    logging.basicConfig(level=logging.WARNING)
    pix, side = phantom_pixels(3)
    datasets = [dx_dataset(pix, laterality=side) for _ in range(args.images)]
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        node = DicomNode(NodeConfig(store=tmp, host="127.0.0.1", port=port, workers=args.workers),
                         Analyzer(backend="onnxruntime-cpu"))
        node.start()
        try:
            ae = AE(ae_title="BENCH")
            ae.add_requested_context(datasets[0].SOPClassUID, pydicom.uid.ExplicitVRLittleEndian)
            ae.maximum_pdu_size = 0
            t0 = time.perf_counter()
            assoc = ae.associate("127.0.0.1", port, ae_title="RAMH")
            acks = []
            for ds in datasets:
                t = time.perf_counter()
                status = assoc.send_c_store(ds)
                acks.append((int(status.Status), time.perf_counter() - t))
            assoc.release()
            acked = time.perf_counter() - t0
            analysed_when_acked = node.status()["analysed"]
            while node.status()["processed"] < args.images:
                time.sleep(0.2)
            elapsed = time.perf_counter() - t0
        finally:
            node.shutdown()
    report = {
        "images": args.images, "workers": args.workers, "cpu_cores": os.cpu_count(), "machine": platform.machine(),
        "load_average_before": [round(v, 1) for v in load_before],
        "load_average_after": [round(v, 1) for v in os.getloadavg()],
        "statuses": sorted({s for s, _ in acks}), "all_acked_after_s": round(acked, 2),
        "analysed_when_all_acked": analysed_when_acked,
        "ack_s": {"max": round(max(a for _, a in acks), 3), "mean": round(sum(a for _, a in acks) / len(acks), 3)},
        "seconds": round(elapsed, 1), "images_per_minute": round(args.images / elapsed * 60, 1),
    }
    print(json.dumps(report, indent=2))
    if args.out:
        from ramh_rt.fs import write_atomic

        write_atomic(Path(args.out), json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
