"""benchmarks/harness.py: the ratio every benchmark row reports is computed against the right group."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

import ramh_rt

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import harness  # noqa: E402


def _t(ms: float) -> harness.Timing:
    return harness.Timing(name="x", median_ms=ms, min_ms=ms, max_ms=ms, runs=1)


def test_ratio_is_against_the_fastest_alternative_of_the_same_op_and_shape():
    rows = [harness.record("crop", "ramh_rt", "cpu", [32, 224, 224], _t(2.0)),
            harness.record("crop", "opencv", "cpu", [32, 224, 224], _t(5.0)),
            harness.record("crop", "skimage", "cpu", [32, 224, 224], _t(4.0)),
            harness.record("crop", "ramh_rt", "cpu", [8, 224, 224], _t(1.0)),  # other shape: no alternative timed
            harness.record("paste", "ramh_rt float16", "cpu", [32, 224, 224], _t(3.0)),
            harness.record("paste", "opencv", "cpu", [32, 224, 224], _t(6.0))]
    out = harness.with_ratios(rows)
    assert [r["ratio_vs_best_alternative"] for r in out] == [0.5, 1.25, 1.0, None, 0.5, 1.0]
    assert out[0]["median_ms"] == 2.0 and out[0]["runs"] == 1 and out[0]["note"] == ""


def test_table_prints_every_row(capsys):
    harness.print_table(harness.with_ratios([harness.record("op", "ramh_rt", "cpu", "4x4", _t(1.5)),
                                             harness.record("op", "numpy", "cpu", "4x4", _t(3.0))]))
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and lines[0].split()[0] == "op" and "0.500" in lines[1] and "1.500" in lines[1]


def test_check_device_refuses_an_unknown_device_and_cuda_without_a_device():
    harness.check_device("cpu")
    with pytest.raises(ValueError, match="device must be 'cpu' or 'cuda', got 'gpu'"):
        harness.check_device("gpu")
    if ramh_rt.cuda_available():
        harness.check_device("cuda")
    else:
        with pytest.raises(RuntimeError, match="no CUDA device is available for the cuda benchmark"):
            harness.check_device("cuda")


def test_cuda_wall_record_warms_up_then_syncs_after_every_run():
    calls = []
    row = harness.cuda_wall_record("crop", "ramh_rt", "4x4", lambda: calls.append("run"),
                                   lambda: calls.append("sync"), runs=3)
    assert calls == ["run", "sync"] * 8   # 5 warm-up runs and 3 timed ones, each followed by the sync
    assert (row["op"], row["impl"], row["device"], row["shape"], row["runs"], row["note"]) == \
        ("crop", "ramh_rt", "cuda", "4x4", 3, "wall time per call")
    assert 0 <= row["min_ms"] <= row["median_ms"] <= row["max_ms"]


def test_cuda_torch_is_torch_only_where_it_sees_a_cuda_device():
    try:
        import torch
    except ImportError:
        assert harness.cuda_torch() is None
        return
    assert harness.cuda_torch() is (torch if torch.cuda.is_available() else None)
