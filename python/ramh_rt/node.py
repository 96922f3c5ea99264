"""A DICOM node for radiography stations (``ramh serve``) and a folder watcher (``ramh watch``).

``ramh serve``: a DICOM Storage SCP (pynetdicom) that a station sends its hand radiographs to.

* Accepts C-ECHO (Verification) and C-STORE of CR, DX For Presentation and DX For Processing images
  (:data:`ramh_rt.dicom_out.IMAGE_SOP_CLASSES`), uncompressed or in the common lossless/JPEG transfer syntaxes.
* The C-STORE handler only queues the dataset and answers Success at once (or 0xA700 "Out of Resources" when the
  queue is full, so the station retries later); a pool of worker threads sharing one :class:`~ramh_rt.Analyzer`
  analyses the queue, so a slow image never delays the acknowledgement of the next.
* Each analysed hand gives an SR, a SEG and an overlay SC (:mod:`ramh_rt.dicom_out`); a two-hand film gives them per
  hand (``Analyzer.analyze_hands``). They are sent by C-STORE to the ``--forward``
  destination (one association per input, every status checked) and/or written under ``--store``. When forwarding
  fails and ``--store`` is set the objects are kept there.
* An image that cannot be analysed (any :class:`~ramh_rt.errors.RamhError`: unreadable pixels, not a hand...) is
  logged with its SOP Instance UID and answered with a quality-control SR whose status is *reject*; an unexpected
  exception is logged with its traceback and answered the same way. A result whose own ``qc.status`` is ``reject``
  is answered with its SR only. The node never stops for one image.
* Health: C-ECHO; a JSON status file rewritten atomically on every change (``--status-file``, default
  ``<store>/ramh_node_status.json`` when storing); and, with ``--http-port``, ``GET http://127.0.0.1:PORT/health``
  (200 and the same JSON while running, 503 while stopping). Counters: received, processed (results delivered),
  analysed, rejected, objects sent and stored, delivery failures, queue depth, in progress, the last error.
* SIGINT / SIGTERM: stop accepting associations, finish the queued images, deliver their results, exit 0.

Configuration: flags, or one JSON file (``--config FILE``) whose keys are the long flag names with ``_`` for ``-``
(``{"ae_title": "RAMH", "port": 11112, "forward": "PACS@10.0.0.5:104", "store": "/var/lib/ramh", "workers": 2,
"http_port": 8042, "log_file": "/var/log/ramh/node.log"}``); a flag given on the command line wins over the file.

``ramh watch DIR --out OUT``: for stations that export files to a folder. Polls ``DIR`` (recursively), and processes
each new image file once, when it is complete (its size and modification time unchanged over ``--settle`` seconds;
names starting with ``.`` or ending in ``.part``/``.tmp`` are skipped). Outputs are named as ``ramh analyze DIR --out
OUT`` names them (:class:`ramh_rt.fs.OutputNames`): per input ``<rel>`` (its path relative to ``DIR`` without the
extension, the folders mirrored under ``OUT``; ``<rel>~2`` when that name is taken, e.g. by ``a.png`` next to
``a.dcm``): ``OUT/<rel>.json`` and the DICOM objects ``OUT/<rel>_<kind>.dcm`` (per hand ``<rel>_L...``/``_R...`` for
two-hand films), or ``OUT/<rel>.error.json`` plus, for a DICOM input, a reject SR. All written atomically; inputs are
opened read-only and never moved or changed. What was processed, and the names given, are remembered in
``OUT/.ramh_watch_state.json`` (path, size, mtime), so a restart does not redo it and a replaced file is redone under
the same names.
"""
from __future__ import annotations

import json
import logging
import os
import queue
import signal
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from .errors import RamhError

log = logging.getLogger("ramh.node")

#: Exit status of ``ramh serve`` / ``ramh watch`` for a configuration error.
EXIT_CONFIG = 2


class NodeConfigError(RamhError, ValueError):
    """The node's configuration is invalid: an unknown key in the config file, a malformed ``--forward`` (expected
    ``AE@host:port``), a port outside 1..65535, an AE title longer than 16 characters. The message names it."""


@dataclass(frozen=True)
class Destination:
    """A DICOM peer: AE title, host and TCP port."""

    ae_title: str
    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> "Destination":
        """``"AE@host:port"`` -> Destination.

        Raises:
            NodeConfigError: not of that form, an AE title over 16 characters or a bad port.
        """
        try:
            ae, rest = text.split("@", 1)
            host, port = rest.rsplit(":", 1)
            dest = cls(ae.strip(), host.strip(), int(port))
        except ValueError:
            raise NodeConfigError(f"forward destination {text!r}: expected AE@host:port, e.g. PACS@10.0.0.5:104") \
                from None
        _check_ae(dest.ae_title, "forward AE title")
        _check_port(dest.port, "forward port")
        if not dest.host:
            raise NodeConfigError(f"forward destination {text!r}: empty host")
        return dest

    def __str__(self) -> str:
        return f"{self.ae_title}@{self.host}:{self.port}"


def _check_ae(title: str, what: str) -> None:
    if not title or len(title) > 16 or "\\" in title or not title.isprintable():
        raise NodeConfigError(f"{what} {title!r}: 1 to 16 printable characters, no backslash")


def _check_port(port: int, what: str) -> None:
    if not 1 <= int(port) <= 65535:
        raise NodeConfigError(f"{what} {port}: outside 1..65535")


@dataclass
class NodeConfig:
    """Settings of :class:`DicomNode` (the ``ramh serve`` flags; see the module docstring for the config file).

    Attributes:
        ae_title: the node's AE title (what stations call).
        host: address to listen on (``0.0.0.0``: every interface; ``127.0.0.1`` for local tests).
        port: DICOM port.
        forward: where results go by C-STORE, ``"AE@host:port"`` (or None).
        store: folder where results are written (or None); at least one of ``forward``/``store`` is needed.
        workers: analysis threads (they share one Analyzer).
        max_queue: images waiting beyond which C-STORE answers "Out of Resources".
        status_file: JSON status path (default ``<store>/ramh_node_status.json`` when storing).
        http_port: loopback port of the ``/health`` endpoint (None: no endpoint).
        log_file: also log to this file.
        bundle / backend / device: as for ``ramh analyze``.
        kinds: result objects per hand (``sr``, ``seg``, ``sc``).
    """

    ae_title: str = "RAMH"
    host: str = "0.0.0.0"
    port: int = 11112
    forward: str | None = None
    store: str | None = None
    workers: int = 1
    max_queue: int = 64
    status_file: str | None = None
    http_port: int | None = None
    log_file: str | None = None
    bundle: str | None = None
    backend: str = "auto"
    device: str | None = None
    kinds: list[str] = field(default_factory=lambda: ["sr", "seg", "sc"])

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> dict[str, Any]:
        """The settings of a JSON config file, as a dict of known keys.

        Raises:
            NodeConfigError: unreadable, not a JSON object, or an unknown key (listed with the known ones).
        """
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise NodeConfigError(f"config file {path}: {e}") from None
        if not isinstance(data, dict):
            raise NodeConfigError(f"config file {path}: expected a JSON object")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise NodeConfigError(f"config file {path}: unknown key(s) {unknown}; known: {sorted(known)}")
        return data

    def validate(self) -> None:
        """Raise :class:`NodeConfigError` for an invalid setting."""
        _check_ae(self.ae_title, "AE title")
        _check_port(self.port, "port")
        if self.http_port is not None:
            _check_port(self.http_port, "http port")
        if self.forward is None and self.store is None:
            raise NodeConfigError("nowhere to send results: give --forward AE@host:port and/or --store DIR")
        if self.forward is not None:
            Destination.parse(self.forward)
        if self.workers < 1 or self.max_queue < 1:
            raise NodeConfigError("workers and max_queue must be at least 1")
        bad = [k for k in self.kinds if k not in ("sr", "seg", "sc")]
        if bad or "sr" not in self.kinds:
            raise NodeConfigError(f"kinds {self.kinds}: choose among sr, seg, sc, and keep sr")


def _setup_logging(log_file: str | None) -> None:
    fmt = logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    root = logging.getLogger("ramh")
    root.setLevel(logging.INFO)
    if not root.handlers:
        h = logging.StreamHandler()
        h.setFormatter(fmt)
        root.addHandler(h)
    if log_file:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        fh = logging.FileHandler(log_file, encoding="utf-8")
        fh.setFormatter(fmt)
        root.addHandler(fh)
    # pynetdicom logs every PDU at DEBUG and every association at INFO: keep an operator's log readable.
    logging.getLogger("pynetdicom").setLevel(logging.WARNING)


# ---------------------------------------------------------------------------------------------------------------------
# analysis of one input (shared by the node and the watcher)
# ---------------------------------------------------------------------------------------------------------------------

def analyses_of(analyzer, image: Any) -> list:
    """The analyses of one image, one per hand (:meth:`~ramh_rt.pipeline.Analyzer.analyze_hands`)."""
    return list(analyzer.analyze_hands(image))


def _suffixes(analyses: list) -> list[str]:
    """The output-name suffix of each hand (:func:`ramh_rt.fs.hand_suffixes`); a failed hand has no side."""
    from .fs import hand_suffixes

    return hand_suffixes([None if _failed(a) else a.meta.side for a in analyses])


# ---------------------------------------------------------------------------------------------------------------------
# the node
# ---------------------------------------------------------------------------------------------------------------------

class DicomNode:
    """The DICOM node of ``ramh serve``: Storage SCP, analysis workers, result delivery, status.

    Args:
        config: a valid :class:`NodeConfig`.
        analyzer: an :class:`~ramh_rt.Analyzer` to use (default: one built from the config's bundle/backend/device).

    Raises:
        NodeConfigError: invalid configuration.
        BundleError / BackendError: the analyzer cannot be built.
    """

    def __init__(self, config: NodeConfig, analyzer=None):
        config.validate()
        self.config = config
        self.forward = Destination.parse(config.forward) if config.forward else None
        self.store = Path(config.store) if config.store else None
        if analyzer is None:
            from .pipeline import Analyzer

            analyzer = Analyzer(config.bundle, backend=config.backend, device=config.device)
        self.analyzer = analyzer
        self.status_path = Path(config.status_file) if config.status_file else (
            self.store / "ramh_node_status.json" if self.store else None)
        self._queue: queue.Queue = queue.Queue(maxsize=config.max_queue)
        self._lock = threading.Lock()
        self._status_lock = threading.Lock()
        self._workers: list[threading.Thread] = []
        self._server = None
        self._http = None
        self._stopped = threading.Event()
        # processed: inputs whose results were delivered (analysed or rejected); an input that is both analysed and
        # rejected by its own quality control counts once here.
        self.counters = {"received": 0, "refused_queue_full": 0, "processed": 0, "analysed": 0, "hands": 0,
                         "rejected": 0, "objects_sent": 0, "objects_stored": 0, "delivery_failures": 0,
                         "in_progress": 0}
        self.state = "starting"
        self.last_error: str | None = None
        self.started = time.time()

    # ---- lifecycle ----------------------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the workers, the SCP (non-blocking) and the health endpoint; log where it listens.

        Raises:
            OSError: the DICOM or HTTP port cannot be bound.
        """
        from pynetdicom import AE, evt

        for k in range(self.config.workers):
            t = threading.Thread(target=self._work, name=f"ramh-worker-{k}", daemon=True)
            t.start()
            self._workers.append(t)
        ae = AE(ae_title=self.config.ae_title)
        for ctx in _scp_contexts():
            ae.add_supported_context(ctx.abstract_syntax, ctx.transfer_syntax)
        ae.maximum_pdu_size = 0  # no limit: fewer PDUs for 10-20 MB radiographs
        ae.require_called_aet = False
        self._ae = ae
        handlers = [(evt.EVT_C_STORE, self._on_store), (evt.EVT_C_ECHO, self._on_echo)]
        self._server = ae.start_server((self.config.host, self.config.port), block=False, evt_handlers=handlers)
        if self.config.http_port is not None:
            self._http = _start_http(self.config.http_port, self.status)
        self.state = "running"
        self._write_status()
        log.info("listening as %s on %s:%d (forward: %s, store: %s, workers: %d, bundle %s %s)",
                 self.config.ae_title, self.config.host, self.config.port, self.forward or "-",
                 self.store or "-", self.config.workers, self.analyzer.bundle.id, self.analyzer.bundle.version)

    def shutdown(self, timeout: float | None = None) -> None:
        """Stop accepting, finish the queued images (deliver their results), stop the workers and the endpoint.

        Args:
            timeout: seconds to wait for the queue to drain (None: as long as it takes).
        """
        if self._stopped.is_set():
            return
        self.state = "stopping"
        self._write_status()
        log.info("stopping: no new associations; %d image(s) queued", self._queue.qsize())
        if self._server is not None:
            self._server.shutdown()
        for _ in self._workers:
            self._queue.put(None)  # one stop mark per worker, after the queued images
        deadline = None if timeout is None else time.time() + timeout
        for t in self._workers:
            t.join(None if deadline is None else max(0.0, deadline - time.time()))
        if self._http is not None:
            self._http.shutdown()
        self.state = "stopped"
        self._stopped.set()
        self._write_status()
        log.info("stopped: %s", json.dumps(self.counters))

    # ---- status ------------------------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """The node's status (what the status file and ``/health`` show)."""
        with self._lock:
            counters = dict(self.counters)
        return {"state": self.state, "ae_title": self.config.ae_title, "port": self.config.port,
                "forward": str(self.forward) if self.forward else None,
                "store": str(self.store) if self.store else None, "pid": os.getpid(),
                "bundle": f"{self.analyzer.bundle.id} {self.analyzer.bundle.version}",
                "started": _iso(self.started), "updated": _iso(time.time()), "queue": self._queue.qsize(),
                **counters, "last_error": self.last_error}

    def _write_status(self) -> None:
        if self.status_path is None:
            return
        from .fs import write_atomic

        with self._status_lock:  # one writer at a time: the file always holds one whole, recent status
            try:
                write_atomic(self.status_path, json.dumps(self.status(), indent=2))
            except OSError as e:
                log.warning("cannot write the status file %s: %s", self.status_path, e)

    def _count(self, key: str, n: int = 1) -> None:
        with self._lock:
            self.counters[key] += n

    # ---- SCP handlers (run on pynetdicom's association threads: queue only, no work) ------------------------------
    def _on_echo(self, event) -> int:
        log.info("C-ECHO from %s", event.assoc.requestor.ae_title)
        return 0x0000

    def _on_store(self, event) -> int:
        try:
            ds = event.dataset
            ds.file_meta = event.file_meta
        except Exception as e:  # noqa: BLE001 - a dataset pydicom cannot decode is refused, not fatal
            log.error("C-STORE from %s: undecodable dataset: %s", event.assoc.requestor.ae_title, e)
            return 0xC210  # Error: cannot understand
        uid = str(ds.get("SOPInstanceUID", "?"))
        try:
            self._queue.put_nowait((ds, event.assoc.requestor.ae_title, time.time()))
        except queue.Full:
            self._count("refused_queue_full")
            log.warning("C-STORE %s from %s refused: queue full (%d)", uid, event.assoc.requestor.ae_title,
                        self.config.max_queue)
            return 0xA700  # Refused: out of resources (the station retries)
        self._count("received")
        log.info("received %s (%s) from %s; queue %d", uid, ds.get("Modality", "?"),
                 event.assoc.requestor.ae_title, self._queue.qsize())
        return 0x0000

    # ---- workers ------------------------------------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            self._count("in_progress")
            try:
                self.process(*item)
            except Exception:  # noqa: BLE001 - the last line of defence: a worker never dies
                log.error("internal error:\n%s", traceback.format_exc())
            finally:
                with self._lock:
                    self.counters["processed"] += 1
                    self.counters["in_progress"] -= 1
                self._write_status()

    def process(self, ds, calling_ae: str = "", received: float | None = None) -> list:
        """Analyse one received dataset and deliver its results; returns the result objects.

        Never raises for a bad image: a :class:`RamhError` (or any unexpected exception) gives a reject SR.
        """
        from .dicom_out import dataset_bytes, reject_sr

        uid = str(ds.get("SOPInstanceUID", "?"))
        t0 = time.time()
        try:
            analyses = analyses_of(self.analyzer, dataset_bytes(ds))
            t1 = time.time()
            objs = []
            for a in analyses:
                if _failed(a):  # one hand of a two-hand film: a reject SR for it, the other hand's results
                    self._count("rejected")
                    log.warning("rejected one hand of %s: %s", uid, a.error)
                    objs.append([reject_sr(ds, type(a.exception).__name__, f"{a.source}: {a.error}",
                                           bundle=self.analyzer.bundle)])
                    continue
                # A result its own quality control rejects is answered with its SR only (which says so and why):
                # no segmentation or overlay for a PACS to show as if it were usable.
                rejected = a.qc is not None and a.qc.status == "reject"
                kinds = ("sr",) if rejected else tuple(self.config.kinds)
                objs.append(a.to_dicom(ds, kinds=kinds, bundle=self.analyzer.bundle))
                if rejected:
                    self._count("rejected")
                    log.warning("rejected %s by quality control: %s", uid, "; ".join(
                        str(r) for r in a.qc.reasons))
            self._count("analysed")
            self._count("hands", len(analyses))
            for a in (a for a in analyses if not _failed(a)):
                t = a.totals
                log.info("analysed %s: side %s, SvdH %s, severity %s, qc %s; %.1f s analysis + %.1f s DICOM "
                         "(queued %.1f s)", uid, a.meta.side or "?", t.svdh, t.severity,
                         a.qc.status if a.qc is not None else "-",
                         t1 - t0, time.time() - t1, t0 - (received or t0))
        except Exception as e:  # noqa: BLE001 - any failure of one image is answered, never fatal
            reason = type(e).__name__
            if isinstance(e, RamhError):
                log.warning("rejected %s: %s: %s", uid, reason, e)
            else:
                log.error("rejected %s: unexpected %s: %s\n%s", uid, reason, e, traceback.format_exc())
                reason = "InternalError"
            self.last_error = f"{uid}: {type(e).__name__}: {e}"
            self._count("rejected")
            try:
                objs = [[reject_sr(ds, reason, str(e) or reason, bundle=self.analyzer.bundle)]]
            except Exception:  # noqa: BLE001
                log.error("cannot build the reject SR for %s:\n%s", uid, traceback.format_exc())
                return []
            analyses = [None]
        flat = [o for group in objs for o in group]
        self._deliver(uid, objs, analyses)
        return flat

    def _deliver(self, uid: str, objs: list[list], analyses: list) -> None:
        # Store first: the local copy exists even when the forward destination is down.
        if self.store is not None:
            self._store(uid, objs, analyses)
        if self.forward is not None:
            self._send(uid, [o for group in objs for o in group])

    def _send(self, uid: str, datasets: list) -> bool:
        """C-STORE ``datasets`` to the forward destination over one association; True when all were stored."""
        from pynetdicom import AE
        from pydicom.uid import ExplicitVRLittleEndian

        ae = AE(ae_title=self.config.ae_title)
        for sop in sorted({str(d.SOPClassUID) for d in datasets}):
            ae.add_requested_context(sop, ExplicitVRLittleEndian)
        ae.maximum_pdu_size = 0
        dest = self.forward
        try:
            assoc = ae.associate(dest.host, dest.port, ae_title=dest.ae_title)
        except Exception as e:  # noqa: BLE001
            assoc = None
            log.error("forward to %s failed: %s", dest, e)
        if assoc is None or not assoc.is_established:
            self._count("delivery_failures")
            self.last_error = f"{uid}: forward to {dest}: association not established"
            log.error("results of %s not sent: association with %s not established", uid, dest)
            return False
        ok = True
        try:
            for d in datasets:
                try:
                    status = assoc.send_c_store(d)
                except (ValueError, RuntimeError) as e:  # no accepted context for this SOP class, association lost
                    log.error("C-STORE %s to %s failed: %s", d.SOPInstanceUID, dest, e)
                    status = None
                code = int(status.Status) if status is not None and "Status" in status else None
                if code is None or code not in (0x0000, 0xB000, 0xB007, 0xB006):
                    ok = False
                    self._count("delivery_failures")
                    self.last_error = f"{uid}: C-STORE of {d.SOPInstanceUID} to {dest}: status {code}"
                    log.error("C-STORE %s to %s failed: status %s", d.SOPInstanceUID, dest,
                              "none (timeout or abort)" if code is None else f"0x{code:04X}")
                else:
                    self._count("objects_sent")
        finally:
            assoc.release()
        if ok:
            log.info("sent %d object(s) for %s to %s", len(datasets), uid, dest)
        return ok

    def _store(self, uid: str, objs: list[list], analyses: list) -> None:
        from .dicom_out import write_dicom_outputs

        folder = self.store / _safe(uid)
        sfx = _suffixes(analyses) if analyses and analyses[0] is not None else [""]
        try:
            for group, s in zip(objs, sfx):
                write_dicom_outputs(group, folder, f"{_safe(uid)}{s}")
                self._count("objects_stored", len(group))
        except OSError as e:
            self._count("delivery_failures")
            self.last_error = f"{uid}: cannot store under {folder}: {e}"
            log.error("results of %s not stored under %s: %s", uid, folder, e)


def _failed(a) -> bool:
    """Whether an entry of :func:`analyses_of` is a failed hand (an AnalysisError) of a two-hand film."""
    from .pipeline import AnalysisError

    return isinstance(a, AnalysisError)


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in ".-_" else "_" for c in name) or "unnamed"


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def _scp_contexts():
    """Presentation contexts the node accepts: Verification, and CR / DX images in the usual transfer syntaxes."""
    from pynetdicom import DEFAULT_TRANSFER_SYNTAXES, build_context
    from pydicom import uid as U

    from .dicom_out import IMAGE_SOP_CLASSES

    syntaxes = list(DEFAULT_TRANSFER_SYNTAXES) + [U.RLELossless, U.JPEGBaseline8Bit, U.JPEGExtended12Bit,
                                                  U.JPEGLosslessSV1, U.JPEGLSLossless, U.JPEG2000Lossless]
    return [build_context("1.2.840.10008.1.1")] + [build_context(sop, syntaxes) for sop in IMAGE_SOP_CLASSES]


def _start_http(port: int, status_fn):
    """A tiny loopback HTTP server: ``GET /health`` -> the status JSON (200 running, 503 otherwise)."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the http.server API
            if self.path.split("?")[0] not in ("/health", "/status"):
                self.send_error(404, "try /health")
                return
            st = status_fn()
            body = json.dumps(st).encode()
            self.send_response(200 if st["state"] == "running" else 503)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, fmt, *args):  # health polls every few seconds must not flood the log
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, name="ramh-health", daemon=True).start()
    return server


# ---------------------------------------------------------------------------------------------------------------------
# the folder watcher
# ---------------------------------------------------------------------------------------------------------------------

class FolderWatcher:
    """``ramh watch``: analyse each complete new image file of a folder once (see the module docstring).

    Args:
        in_dir: the folder the station exports to (read-only for the watcher).
        out_dir: where results go (must not be inside ``in_dir``).
        analyzer: the :class:`~ramh_rt.Analyzer`.
        settle_s: a file counts as complete once its size and mtime have not changed for this long.
        dicom: also write the DICOM objects (SR, SEG, SC; a reject SR for a DICOM input that fails).

    Raises:
        NodeConfigError: ``in_dir`` is missing, or ``out_dir`` lies inside it (outputs would be taken as inputs).
    """

    STATE_NAME = ".ramh_watch_state.json"

    def __init__(self, in_dir: str | os.PathLike[str], out_dir: str | os.PathLike[str], analyzer, *,
                 settle_s: float = 2.0, dicom: bool = True):
        self.in_dir = Path(in_dir).resolve()
        self.out_dir = Path(out_dir).resolve()
        if not self.in_dir.is_dir():
            raise NodeConfigError(f"watch folder {self.in_dir} does not exist")
        if self.out_dir == self.in_dir or self.in_dir in self.out_dir.parents:
            raise NodeConfigError(f"output folder {self.out_dir} must not lie inside the watched folder")
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.analyzer = analyzer
        self.settle_s = float(settle_s)
        self.dicom = dicom
        self.state_path = self.out_dir / self.STATE_NAME
        from .fs import OutputNames

        # The one output naming (as `ramh analyze IN_DIR --out OUT_DIR` names): mirrored under out_dir, collision
        # marks in claim order. The claims are remembered with the state and made again in the same order on a
        # restart, so every input keeps its names.
        self.names = OutputNames(self.out_dir, [], root=self.in_dir)
        self._claims: dict[tuple[str, str], dict[str, Path]] = {}  # (rel, suffix) -> {hand suffix: path}
        self.done: dict[str, list[int]] = {}
        self._load_state()
        self._seen: dict[str, tuple[int, int, float]] = {}  # rel -> (size, mtime_ns, first time seen so)
        self.counters = {"analysed": 0, "failed": 0}

    def _load_state(self) -> None:
        try:
            data = json.loads(self.state_path.read_text(encoding="utf-8"))
            done = {str(k): list(v) for k, v in data.get("done", {}).items()}
            claims = [(str(rel), str(suffix)) for rel, suffix in data.get("claims", [])]
        except (OSError, ValueError, AttributeError, TypeError):
            return
        self.done = done
        for rel, suffix in claims:
            try:
                self.outputs(rel, suffix)
            except ValueError as e:  # a state file edited by hand: that input is named afresh when it comes
                log.warning("watch state: claim %r of %r not restored: %s", suffix, rel, e)

    def _save_state(self) -> None:
        from .fs import write_atomic

        write_atomic(self.state_path, json.dumps({"done": self.done, "claims": [list(k) for k in self._claims]},
                                                 indent=1))

    def outputs(self, rel: str, suffix: str) -> dict[str, Path]:
        """The output paths of the input ``rel`` (relative to the watched folder) for one kind of output, ``{hand
        suffix: path}`` (:meth:`ramh_rt.fs.OutputNames.claim_hands`); the same paths when a replaced file is
        redone."""
        key = (rel, suffix)
        if key not in self._claims:
            path = self.in_dir / rel
            self.names.add(path)
            self._claims[key] = self.names.claim_hands(path, suffix)
        return self._claims[key]

    def ready_files(self, now: float | None = None) -> list[tuple[str, Path, list[int]]]:
        """Files that are complete and not yet processed in their current version: (rel, path, [size, mtime_ns])."""
        from .fs import IMAGE_SUFFIXES

        now = time.time() if now is None else now
        ready = []
        for p in sorted(self.in_dir.rglob("*")):
            name = p.name
            if name.startswith(".") or name.endswith((".part", ".tmp")) or not p.is_file():
                continue
            if p.suffix.lower() not in IMAGE_SUFFIXES and p.suffix:
                continue  # extension-less files are DICOM exports often enough to try them
            try:
                st = p.stat()
            except OSError:
                continue  # vanished between listing and stat
            rel = p.relative_to(self.in_dir).as_posix()
            sig = [st.st_size, st.st_mtime_ns]
            if self.done.get(rel) == sig:
                continue
            prev = self._seen.get(rel)
            if prev is None or list(prev[:2]) != sig:
                self._seen[rel] = (sig[0], sig[1], now)
                if self.settle_s > 0:
                    continue
            elif now - prev[2] < self.settle_s:
                continue
            ready.append((rel, p, sig))
        return ready

    def process(self, rel: str, path: Path, sig: list[int]) -> bool:
        """Analyse one file and write its outputs atomically; True on success. Never raises for a bad image.

        On a two-hand film whose one hand fails, the other hand's outputs are written and the failed hand gets an
        ``.error.json`` (and, for a DICOM input, a reject SR) under its own hand suffix; False then.
        """
        from .dicom_out import dataset_bytes, hands_to_dicom, kind_of, read_source
        from .fs import write_atomic

        ok = True
        src = None
        try:
            analyses = analyses_of(self.analyzer, str(path))
            sfx = _suffixes(analyses)
            good = [(a, s) for a, s in zip(analyses, sfx) if not _failed(a)]
            objects = [[] for _ in good]
            if self.dicom:
                src = read_source(str(path))  # the film's header, read once for every hand
                objects = hands_to_dicom([a for a, _ in good], src, bundle=self.analyzer.bundle)
            for (a, s), objs in zip(good, objects):
                write_atomic(self.outputs(rel, ".json")[s], a.to_json())
                for ds in objs:
                    write_atomic(self.outputs(rel, f"_{kind_of(ds)}.dcm")[s], dataset_bytes(ds))
            for a, s in zip(analyses, sfx):
                if _failed(a):
                    ok = False
                    self._failure(rel, s, a.exception, src, f"{a.source}: {a.error}")
            self.counters["analysed"] += 1
            log.info("analysed %s: %s", rel, ", ".join(f"SvdH {a.totals.svdh} ({a.meta.side or '?'})"
                                                      for a, _ in good))
        except Exception as e:  # noqa: BLE001 - one bad file is reported, the watcher goes on
            ok = False
            if isinstance(e, RamhError):
                log.warning("failed %s: %s: %s", rel, type(e).__name__, e)
            else:
                log.error("failed %s: unexpected %s: %s\n%s", rel, type(e).__name__, e, traceback.format_exc())
            if self.dicom and src is None:
                try:
                    src = read_source(str(path))
                except RamhError:
                    src = None
            self._failure(rel, "", e, src, str(e))
        if not ok:
            self.counters["failed"] += 1
        self.done[rel] = sig
        self._save_state()
        return ok

    def _failure(self, rel: str, hand: str, e: BaseException, src, message: str) -> None:
        """Write the ``.error.json`` of an input (``hand`` "") or of one of its hands, and a reject SR for a DICOM
        input (``src`` its dataset)."""
        from .dicom_out import dataset_bytes, reject_sr
        from .fs import write_atomic

        write_atomic(self.outputs(rel, ".error.json")[hand],
                     json.dumps({"input": rel, "hand": hand.lstrip("_") or None, "error": type(e).__name__,
                                 "message": message}, indent=2))
        if self.dicom and src is not None:
            sr = reject_sr(src, type(e).__name__, message, bundle=self.analyzer.bundle)
            write_atomic(self.outputs(rel, "_sr.dcm")[hand], dataset_bytes(sr))

    def run(self, *, once: bool = False, poll_s: float = 1.0, stop: threading.Event | None = None) -> int:
        """Poll and process until ``stop`` is set (or, with ``once``, until every present file is done).

        Returns:
            the number of inputs that failed.
        """
        stop = stop or threading.Event()
        log.info("watching %s -> %s (settle %.1f s)", self.in_dir, self.out_dir, self.settle_s)
        while not stop.is_set():
            ready = self.ready_files()
            for rel, path, sig in ready:
                if stop.is_set():
                    break
                self.process(rel, path, sig)
            if once and not ready and not self._pending():
                break
            stop.wait(poll_s if not ready else 0)
        return self.counters["failed"]

    def _pending(self) -> bool:
        return any(self.done.get(rel) != list(v[:2]) for rel, v in self._seen.items()
                   if (self.in_dir / rel).exists())


# ---------------------------------------------------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------------------------------------------------

def add_parsers(sub, common) -> None:
    """Add ``serve`` and ``watch`` to the ``ramh`` command line (``common`` adds --bundle/--backend/--device)."""
    p = sub.add_parser("serve", help="DICOM node: receive CR/DX hand radiographs, send back SR/SEG/SC results")
    p.add_argument("--config", help="JSON config file (keys: the long flag names with _; flags win)")
    p.add_argument("--ae-title", help="this node's AE title (default RAMH)")
    p.add_argument("--host", help="address to listen on (default 0.0.0.0)")
    p.add_argument("--port", type=int, help="DICOM port (default 11112)")
    p.add_argument("--forward", metavar="AE@HOST:PORT", help="send results here by C-STORE (e.g. the PACS)")
    p.add_argument("--store", metavar="DIR", help="write results under DIR/<SOPInstanceUID>/")
    p.add_argument("--workers", type=int, help="analysis threads sharing one model (default 1)")
    p.add_argument("--max-queue", type=int, help="images waiting before C-STORE answers Out of Resources (64)")
    p.add_argument("--status-file", help="JSON status file (default DIR/ramh_node_status.json with --store)")
    p.add_argument("--http-port", type=int, help="serve GET http://127.0.0.1:PORT/health")
    p.add_argument("--log-file", help="also log to this file")
    common(p)
    p.set_defaults(func=cmd_serve, backend=None)

    p = sub.add_parser("watch", help="analyse each new image file exported to a folder, once")
    p.add_argument("dir", help="the folder a station exports to (never modified)")
    p.add_argument("--out", required=True, help="output folder (outside DIR)")
    p.add_argument("--settle", type=float, default=2.0, help="seconds a file must stay unchanged (default 2)")
    p.add_argument("--poll", type=float, default=1.0, help="seconds between folder scans (default 1)")
    p.add_argument("--once", action="store_true", help="process what is there, then exit")
    p.add_argument("--no-dicom", action="store_true", help="write JSON only, no DICOM objects")
    p.add_argument("--log-file", help="also log to this file")
    common(p)
    p.set_defaults(func=cmd_watch)


def _config_from_args(args) -> NodeConfig:
    values: dict[str, Any] = NodeConfig.from_file(args.config) if args.config else {}
    for f in fields(NodeConfig):
        v = getattr(args, f.name, None)
        if v is not None:
            values[f.name] = v
    return NodeConfig(**values)


def _stop_on_signals(stop: threading.Event) -> dict:
    """SIGINT and SIGTERM set ``stop``; returns the previous handlers (for :func:`_restore_signals`)."""
    def handler(signum, _frame):
        log.info("signal %s: shutting down", signal.Signals(signum).name)
        stop.set()

    return {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}


def _restore_signals(previous: dict) -> None:
    for sig, h in previous.items():
        signal.signal(sig, h)


def cmd_serve(args) -> int:
    """``ramh serve``: run the node until SIGINT/SIGTERM; 0 after a clean shutdown, 2 for a configuration error."""
    try:
        config = _config_from_args(args)
        config.validate()
    except NodeConfigError as e:
        print(f"ramh serve: {e}", file=sys.stderr)
        return EXIT_CONFIG
    _setup_logging(config.log_file)
    node = DicomNode(config)
    stop = threading.Event()
    previous = _stop_on_signals(stop)
    try:
        node.start()
        while not stop.wait(1.0):
            pass
        node.shutdown()
    finally:
        _restore_signals(previous)
    return 0


def cmd_watch(args) -> int:
    """``ramh watch``: 0 when every input was analysed (with ``--once``), 1 when some failed."""
    from .pipeline import Analyzer

    _setup_logging(args.log_file)
    analyzer = Analyzer(args.bundle, backend=args.backend, device=args.device)
    try:
        watcher = FolderWatcher(args.dir, args.out, analyzer, settle_s=args.settle, dicom=not args.no_dicom)
    except NodeConfigError as e:
        print(f"ramh watch: {e}", file=sys.stderr)
        return EXIT_CONFIG
    stop = threading.Event()
    previous = _stop_on_signals(stop)
    try:
        failed = watcher.run(once=args.once, poll_s=args.poll, stop=stop)
    finally:
        _restore_signals(previous)
    log.info("watcher stopped: %s", json.dumps(watcher.counters))
    return 1 if failed else 0


__all__ = ["DicomNode", "Destination", "FolderWatcher", "NodeConfig", "NodeConfigError", "add_parsers",
           "analyses_of", "cmd_serve", "cmd_watch"]
