"""``ramh analyze`` as a user runs it (a real subprocess of the real CLI): output names over a folder tree with
colliding names, a file name that is not UTF-8, --out inside the input folder, formula-looking names, and SIGINT /
SIGTERM in the middle of a run. Checks: every finished image has its JSON and its CSV row, no input is modified
(checksums before and after), nothing is written twice or half, and the exit codes are the documented ones."""
from __future__ import annotations

import csv
import hashlib
import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import ramh_rt
from ramh_rt.cli import CSV_NAME, EXIT_OK, EXIT_SIGINT, EXIT_SIGTERM, EXIT_USAGE, csv_cell, sample_image_path

PYTHON_DIR = Path(ramh_rt.__file__).resolve().parent.parent  # the ramh_rt under test, also in the subprocess


@pytest.fixture(scope="module")
def tiny_png() -> bytes:
    """The bundled sample hand at a quarter of its size (about 0.3 s per analysis on a CPU)."""
    im = Image.open(sample_image_path())
    im = im.resize((im.size[0] // 4, im.size[1] // 4), Image.BILINEAR)
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def _put(root: Path, rel: str | bytes, data: bytes) -> Path:
    p = Path(os.fsdecode(os.path.join(os.fsencode(root), os.fsencode(rel))))
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)
    return p


def _checksums(paths) -> dict[Path, str]:
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}


def _ramh(*args, **kw) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(PYTHON_DIR), os.environ.get("PYTHONPATH", "")]))
    return subprocess.Popen([sys.executable, "-m", "ramh_rt.cli", "analyze", *map(str, args), "--quiet",
                             "--backend", "onnxruntime-cpu"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, **kw)


def _run(*args, timeout: float = 300) -> tuple[int, str]:
    p = _ramh(*args)
    _, err = p.communicate(timeout=timeout)
    return p.returncode, err.decode("utf-8", "replace")


def _csv_ids(out: Path) -> list[str]:
    with open(out / CSV_NAME, newline="", encoding="utf-8") as f:
        return [row["Patient_ID"] for row in csv.DictReader(f)]


def _jsons(out: Path) -> set[str]:
    return {os.fsencode(p.relative_to(out))[:-5].decode("utf-8", "backslashreplace") for p in out.rglob("*.json")}


def test_tree_with_collisions_non_utf8_names_and_out_inside_the_input(tmp_path, tiny_png):
    root = tmp_path / "in"
    inputs = [_put(root, rel, tiny_png) for rel in
              ("a/x.png", "b/x.png", "c/x_1.png", "d/h.png", "d/h_overlay.png", b"d/caf\xe9_R.png", "=1+2.png")]
    out = root / "results"  # --out inside the input folder
    _put(out, "old_overlay.png", tiny_png)  # an earlier output there: not an input of this run
    before = _checksums(inputs)

    rc, err = _run(root, "--out", out, "--json", "--overlay", "--csv")
    assert rc == EXIT_OK, err
    assert _checksums(inputs) == before  # no input modified
    got = _jsons(out)
    assert got == {"a/x", "b/x", "c/x_1", "d/h", "d/h_overlay", "d/caf\\xe9_R", "=1+2"}
    overlays = {p.relative_to(out).as_posix() for p in out.rglob("*_overlay.png")}
    assert {"a/x_overlay.png", "b/x_overlay.png", "d/h_overlay.png", "d/h_overlay_overlay.png"} <= overlays
    ids = _csv_ids(out)
    assert sorted(ids) == sorted(["a/x", "b/x", "c/x_1", "d/h", "d/h_overlay", "d/caf\\xe9_R", "'=1+2"])
    assert not list(out.rglob(".ramh-*.tmp"))



def test_out_equal_to_the_input_folder_never_overwrites_an_input(tmp_path, tiny_png):
    d = tmp_path / "d"
    inputs = [_put(d, "h.png", tiny_png), _put(d, "h_overlay.png", tiny_png)]
    before = _checksums(inputs)
    rc, err = _run(d, "--out", d, "--overlay")
    assert rc == EXIT_OK, err
    assert _checksums(inputs) == before
    assert {p.name for p in d.iterdir()} == {"h.png", "h_overlay.png", "h~2_overlay.png", "h_overlay_overlay.png",
                                            ".ramh-outputs"}
    rc, err = _run(d, "--out", d, "--overlay")  # a rerun: same names, the two overlays it wrote are not inputs
    assert rc == EXIT_OK, err
    assert len(list(d.iterdir())) == 5 and _checksums(inputs) == before


def test_failed_input_is_named_and_the_rest_is_kept(tmp_path, tiny_png):
    root = tmp_path / "in"
    _put(root, "good.png", tiny_png)
    _put(root, b"bad\xff.png", b"not a png")
    rc, err = _run(root, "--out", tmp_path / "out", "--csv", "--json")
    assert rc == 1
    assert "bad\\xff.png" in err  # the message names the file, readably
    assert _csv_ids(tmp_path / "out") == ["good"] and _jsons(tmp_path / "out") == {"good"}


def test_usage_errors_exit_2(tmp_path):
    assert _run()[0] == EXIT_USAGE  # no input
    assert _run(tmp_path / "a.png", tmp_path / "b.png")[0] == EXIT_USAGE  # several inputs need --out
    (tmp_path / "file").write_text("x")
    assert _run(tmp_path / "a.png", "--out", tmp_path / "file")[0] == EXIT_USAGE
    for bad in ("nan", "inf", "0", "-0.1"):
        rc, err = _run(tmp_path / "a.png", "--spacing-mm", bad)
        assert rc == EXIT_USAGE and "spacing" in err


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, EXIT_SIGINT), (signal.SIGTERM, EXIT_SIGTERM)])
def test_interrupted_run_keeps_every_finished_result(tmp_path, tiny_png, sig, code):
    root = tmp_path / "in"
    inputs = [_put(root, f"p{i:02d}_R.png", tiny_png) for i in range(10)]
    before = _checksums(inputs)
    out = tmp_path / "out"
    proc = _ramh(root, "--out", out, "--csv", "--json")
    deadline = time.monotonic() + 240
    while not list(out.glob("*.json")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, "the run ended before a first result was seen"
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err.decode()
    done = _jsons(out)
    assert 1 <= len(done) < len(inputs), "the signal should have arrived mid-run"
    assert sorted(_csv_ids(out)) == sorted(done)  # a CSV row for every finished image, and only for those
    assert _checksums(inputs) == before
    assert not list(out.rglob(".ramh-*.tmp"))


def test_csv_cell_neutralises_formulas():
    for s in ("=cmd|' /C calc'!A0", "+1", "-1", "@SUM(A1)", "\t=1", "\r=1"):
        assert csv_cell(s) == "'" + s
    assert csv_cell("a/x") == "a/x" and csv_cell(3) == 3 and csv_cell(-3) == -3
    assert np.isclose(csv_cell(0.5), 0.5)
