"""``ramh info``: a short readable summary by default, the full record with --json, a broken bundle named as such."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import onnx_factory
import ramh_rt
from ramh_rt import cli
from ramh_rt.backends import backend_names


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("RAMH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("RAMH_BUNDLE", raising=False)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return onnx_factory.make_bundle(tmp_path_factory.mktemp("bundle") / "b")


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(["info", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_summary_is_short_and_names_build_backends_and_bundle(capsys):
    code, out, _ = _run(capsys)
    assert code == 0
    lines = out.strip().splitlines()
    assert len(lines) <= 25, f"ramh info printed {len(lines)} lines"
    assert lines[0].startswith(f"ramh_rt {ramh_rt.__version__}")
    info = cli.info_record()
    for be in info["backends"]:
        line = next(l for l in lines if l.strip().startswith(be["name"] + " "))
        if be["available"]:
            assert "available on" in line
        else:
            assert f"unavailable: {be['reason']}" in line and be["reason"]
    assert {b["name"] for b in info["backends"]} == set(backend_names())
    bundle = info["bundle"]
    assert f"Bundle:   {bundle['id']} {bundle['version']}" in out
    assert bundle["clinical_use"] in out
    # The default bundle's headline figures, rounded as printed, taken from its own manifest.
    mean_dsc = bundle["metrics"]["bones"]["mean_dsc_28_bones"]
    assert f"bones mean DSC {mean_dsc:.3g}" in out
    assert f"BE QWK {bundle['metrics']['be']['overall']['qwk']:.3g}" in out
    assert "per_class" not in out and "{" not in out, "the summary must not dump the raw record"


def test_json_prints_the_full_record(capsys):
    code, out, _ = _run(capsys, "--json")
    assert code == 0
    record = json.loads(out)
    assert record["ramh_rt"] == ramh_rt.__version__ and record["build"] == ramh_rt.build_info()
    per_class = record["bundle"]["metrics"]["bones"]["per_class"]
    assert len(per_class) == 30  # every class's metrics, which the summary leaves out
    assert all("versions" in b for b in record["backends"])


def test_a_bundle_that_does_not_load_is_shown_broken(capsys, model_dir, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(model_dir, bad)
    manifest = json.loads((bad / "manifest.json").read_text())
    manifest["version"] = "not-a-version"
    (bad / "manifest.json").write_text(json.dumps(manifest))
    code, out, _ = _run(capsys, "--bundle", str(bad))
    assert code == 1
    broken = [l for l in out.splitlines() if l.startswith("Bundle:")]
    assert len(broken) == 1 and broken[0].startswith("Bundle:   BROKEN: ") and str(bad) in broken[0]
    assert "  version: must be a semantic version such as 1.2.0, got 'not-a-version'" in out.splitlines()
    assert "Backends:" in out  # the rest of the report is still there
    code, out, _ = _run(capsys, "--bundle", str(bad), "--json")
    assert code == 1 and "not-a-version" in json.loads(out)["bundle"]["broken"]


def test_a_valid_custom_bundle_is_summarised(capsys, model_dir):
    code, out, _ = _run(capsys, "--bundle", str(model_dir))
    assert code == 0
    info = cli.info_record(str(model_dir))
    assert f"Bundle:   {info['bundle']['id']} {info['bundle']['version']}" in out
    assert "BROKEN" not in out


def test_summary_of_a_cuda_build_lists_devices():
    """The CUDA lines, from a record as a GPU machine produces it (this machine may have no GPU)."""
    info = cli.info_record()
    info["build"] = dict(info["build"], cuda=True, cuda_architectures="87,90", cuda_compiler="NVIDIA 13.0")
    info["cuda_available"] = True
    info["devices"] = [{"id": 0, "name": "NVIDIA H200", "compute_capability": (9, 0), "total_memory": 150 * 2 ** 30,
                        "multiprocessors": 132, "integrated": False}]
    text = cli.format_info(info)
    assert "CUDA:     kernels for sm 87,90 (NVIDIA 13.0)" in text
    assert "  cuda:0  NVIDIA H200  (compute 9.0, 150 GiB, 132 SMs)" in text.splitlines()
    info["cuda_available"] = False
    info["devices"] = []
    assert "no usable CUDA device now" in cli.format_info(info)


def test_a_bundle_with_values_that_cannot_work_is_shown_broken(capsys, model_dir, tmp_path):
    """Issue 14 item 10: such a bundle used to load and then fail every image; ramh info now says why it is broken."""
    bad = tmp_path / "bad"
    shutil.copytree(model_dir, bad)
    manifest = json.loads((bad / "manifest.json").read_text())
    manifest["models"]["bones"]["preprocess"]["input_hw"] = [20000, 20000]
    manifest["models"]["joints"]["erosion_threshold"] = 1e300
    (bad / "manifest.json").write_text(json.dumps(manifest))
    code, out, _ = _run(capsys, "--bundle", str(bad))
    assert code == 1 and "Bundle:   BROKEN: " in out
    lines = out.splitlines()
    assert "  models.bones.preprocess.input_hw[0]: must be an integer in [16, 4096], got 20000" in lines
    assert "  models.joints.erosion_threshold: must be a number in (0, 1], got 1e+300" in lines
