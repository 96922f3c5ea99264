"""The README's Quick start, run literally from a fresh copy of the repository into a fresh virtual environment.

The main-job block is parsed out of README.md (the fenced block after the ``<!-- quickstart:main-job`` marker), so
README and test cannot drift. It builds and installs the wheel (``pip install ".[dicom]"``), then runs
``ramh analyze --sample`` from the installed package: this is what catches a wheel that lacks package data (the
sample radiograph, the schemas, the default bundle). torch must not be needed: the fresh venv is checked to hold none.

Environment: ``RAMH_CUDA=OFF`` is set for the build (CI has nvcc and would otherwise compile the CUDA kernels for two
architectures, several minutes; the CUDA build is covered by tests/test_build.py and tests/gpu). pip resolves from
whatever the machine's pip configuration names (local mirrors here). About 2 minutes on a 2-core machine.
"""
from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ramh_rt import anatomy

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
MAIN_JOB_MARKER = "<!-- quickstart:main-job"
TESTS_MARKER = "<!-- quickstart:tests"


def readme_block(marker: str) -> str:
    """The body of the first fenced ``bash`` block after ``marker`` in README.md.

    Raises:
        AssertionError: the marker or the block after it is missing.
    """
    text = README.read_text(encoding="utf-8")
    at = text.find(marker)
    assert at >= 0, f"README.md has no {marker!r} marker"
    m = re.compile(r"```bash\n(.*?)```", re.S).search(text, at)
    assert m is not None, f"README.md has no ```bash block after {marker!r}"
    return m.group(1)


def _copy_checkout(dest: Path) -> None:
    """Copy the files git would ship (tracked, and untracked but not ignored) into ``dest``: a fresh clone's view."""
    try:
        listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                                check=True, capture_output=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        pytest.skip(f"the repository is not a git checkout, cannot make a fresh copy ({e})")
    for rel in filter(None, listed.decode("utf-8", "surrogateescape").split("\0")):
        src = REPO / rel
        if not src.is_file():  # deleted in the working tree but still in the index
            continue
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target)


def test_readme_has_both_quick_start_blocks():
    main = readme_block(MAIN_JOB_MARKER)
    assert "pip install" in main and "ramh analyze --sample" in main
    assert "torch" not in main, "the Quick start main job must not install torch (the training extra's)"
    assert readme_block(TESTS_MARKER).strip() == "tools/test.sh"
    assert (REPO / "tools" / "test.sh").is_file()


@pytest.mark.slow
def test_readme_quick_start_from_a_fresh_venv(tmp_path):
    block = readme_block(MAIN_JOB_MARKER)
    work = tmp_path / "clone"
    _copy_checkout(work)
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME", "RAMH_BUNDLE") and not k.startswith("CONDA")}
    # The outer venv's python would do too, but a venv made from the base interpreter is what a newcomer gets.
    base_bin = Path(sys.base_prefix) / "bin"
    env["PATH"] = os.pathsep.join([str(base_bin)] + [p for p in env.get("PATH", "").split(os.pathsep)
                                                     if p and not p.startswith(sys.prefix)])
    env.update(RAMH_CUDA="OFF", RAMH_CACHE_DIR=str(tmp_path / "cache"), PIP_NO_INPUT="1")
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=work, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, f"Quick start failed (exit {proc.returncode}):\n{proc.stdout[-4000:]}\n" \
                                 f"{proc.stderr[-4000:]}"

    venv_python = work / ".venv" / "bin" / "python"
    assert venv_python.is_file(), "the Quick start block no longer creates .venv"
    probe = subprocess.run(
        [str(venv_python), "-c",
         "import importlib.util, json, ramh_rt, ramh_rt.pipeline, sys\n"
         "print(json.dumps({'torch': importlib.util.find_spec('torch') is not None,\n"
         "                  'loaded': sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'ramh_train')),\n"
         "                  'package': ramh_rt.__file__}))"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert probe.returncode == 0, probe.stderr
    facts = json.loads(probe.stdout)
    assert facts["torch"] is False, "torch is installed in the Quick start's venv: the main job must not need it"
    assert facts["loaded"] == [], f"the runtime imported {facts['loaded']}"
    package = Path(facts["package"]).parent
    assert ".venv" in package.parts and "site-packages" in package.parts, f"ran {package}, not the installed wheel"
    for shipped in ("data/sample_hand_R.png", "schemas/analysis.schema.json", "schemas/bundle_manifest.schema.json",
                    "models/ramh-default/manifest.json", "py.typed", "_core.pyi"):
        assert (package / shipped).is_file(), f"the wheel lacks ramh_rt/{shipped}"
    # Every runtime module of the checkout is installed, subpackages (io/, ops/, backends/) included.
    checkout = work / "python" / "ramh_rt"
    modules = sorted(str(p.relative_to(checkout)) for p in checkout.rglob("*.py"))
    assert "io/load.py" in modules and "io/batch.py" in modules
    assert [m for m in modules if not (package / m).is_file()] == [], "the wheel lacks runtime modules"

    # `ramh bench` times the same bundled sample by default: it must find it in the installed package too.
    bench = subprocess.run([str(work / ".venv" / "bin" / "ramh"), "bench", "--backend", "onnxruntime-cpu", "--runs", "1",
                            "--warmup", "0", "--out", str(tmp_path / "bench.json")], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=300)
    assert bench.returncode == 0, bench.stderr[-3000:]
    from PIL import Image

    with Image.open(package / "data" / "sample_hand_R.png") as sample:
        sample_shape = [sample.height, sample.width]
    (record,) = json.loads((tmp_path / "bench.json").read_text(encoding="utf-8"))
    assert record["backend"] == "onnxruntime-cpu" and record["image_shape"][:2] == sample_shape

    out = work / "out"
    _check_json(out / "sample_hand_R.json", package / "schemas" / "analysis.schema.json")
    _check_overlay(out / "sample_hand_R_overlay.png", package / "data" / "sample_hand_R.png")
    _check_csv(out / "ra2_scores.csv")


def _check_json(path: Path, schema_path: Path) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    doc = json.loads(path.read_text(encoding="utf-8"))
    jsonschema.validate(doc, json.loads(schema_path.read_text(encoding="utf-8")))
    assert doc["meta"]["side"] == "R"
    assert len(doc["bones"]) >= 20, f"only {len(doc['bones'])} bones found on the sample hand"
    totals = doc["totals"]
    # The sample is a right hand with real damage (SvdH 30 by construction, see data/sample_hand_R.truth.json).
    assert 0 < totals["svdh"] <= anatomy.SVDH_MAX_PER_HAND
    assert totals["svdh"] == pytest.approx(totals["erosion"] + totals["jsn"])


def _check_overlay(path: Path, source: Path) -> None:
    import numpy as np
    from PIL import Image

    with Image.open(source) as src:
        film = np.asarray(src, dtype=np.float64)
    with Image.open(path) as im:
        assert im.format == "PNG"
        assert im.mode in ("RGB", "RGBA"), f"overlay is {im.mode}, expected a colour picture"
        rgb = im.convert("RGB")
    w, h = rgb.size
    colours = len(np.unique(np.asarray(rgb.resize((128, 128))).reshape(-1, 3), axis=0))
    assert colours > 16, "the overlay has almost no colours: nothing was drawn"
    # The film, scaled to the overlay's height, fills its left part (the legend panel is beside it); under the
    # drawings it is still the sample radiograph: its grey levels correlate with the source's.
    film_w = round(film.shape[1] * h / film.shape[0])
    assert 256 <= film_w <= w, (rgb.size, film.shape)
    drawn = np.asarray(rgb.crop((0, 0, film_w, h)).convert("L"), dtype=np.float64)
    scaled = (film - film.min()) / max(np.ptp(film), 1e-12) * 255
    ref = np.asarray(Image.fromarray(scaled.astype(np.uint8)).resize((film_w, h), Image.BILINEAR), dtype=np.float64)
    r = np.corrcoef(drawn.ravel(), ref.ravel())[0, 1]
    assert r > 0.7, f"the overlay's film does not look like the sample radiograph (correlation {r:.2f})"


def _check_csv(path: Path) -> None:
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    header = ["Patient_ID"] + anatomy.ra2_columns("L") + anatomy.ra2_columns("R")
    assert rows[0] == header
    assert len(rows) == 2, f"expected one row for the sample hand, got {len(rows) - 1}"
    row = dict(zip(header, rows[1]))
    assert row["Patient_ID"].lstrip("'") == "sample_hand_R"
    right = [row[c] for c in anatomy.ra2_columns("R")]
    assert all(v != "" for v in right), "a right-hand column is empty"
    assert all(float(v) >= 0 for v in right)
    assert all(row[c] == "" for c in anatomy.ra2_columns("L")), "a right hand filled left-hand columns"
