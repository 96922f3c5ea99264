"""ramh-data: phantoms (with a stub generator), validate and stats."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from ramh_rt import anatomy
from ramh_train import data_cli
from ramh_train.datasets.ramh1200 import RamH1200
from ramh_train.datasets.synthetic import phantom_seed, phantom_stem, split_counts
from ramh_train.datasets.validate import validate

from ramh_data_fixtures import stub_generate

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")


def run(capsys, *argv, generator=stub_generate):
    code = data_cli.main([str(a) for a in argv], generator=generator)
    out, err = capsys.readouterr()
    return code, out, err


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_phantoms_writes_a_valid_dataset(tmp_path, capsys):
    code, out, err = run(capsys, "phantoms", "--out", tmp_path / "ds", "--n", 10, "--seed", 5, "--workers", 1)
    assert code == 0, err
    assert "wrote 10 of 10 hands (train 8, val 1, test 1)" in out and "images/s" in out
    ds = RamH1200(tmp_path / "ds")
    assert [len(ds.stems(s)) for s in ds.splits] == [8, 1, 1]
    # Hand i: seed from (S, i), stem from i and the generated side; contiguous split blocks.
    want_train = sorted(phantom_stem(i, stub_generate(phantom_seed(5, i)).side) for i in range(8))
    assert ds.stems("train") == want_train
    assert ds.stems("test") == [phantom_stem(9, stub_generate(phantom_seed(5, 9)).side)]
    got = ds.load(want_train[0])
    ref = stub_generate(phantom_seed(5, 0))
    np.testing.assert_array_equal(got.image, ref.image)
    assert got.be_scores == ref.be_scores
    assert [p for p in validate(tmp_path / "ds") if p.severity == "error"] == []


def test_seeds_and_split_counts():
    assert phantom_seed(5, 3) == phantom_seed(5, 3) != phantom_seed(5, 4) != phantom_seed(6, 3)
    assert phantom_seed(5, 3) == int(np.random.SeedSequence(5).spawn(4)[3].generate_state(1, np.uint64)[0]) >> 1
    assert all(0 <= phantom_seed(s, i) < 2**63 for s in range(3) for i in range(50))
    assert split_counts(10, (0.8, 0.1, 0.1)) == [8, 1, 1]
    assert split_counts(1, (0.8, 0.1, 0.1)) == [1, 0, 0]
    assert split_counts(7, (1, 1, 1)) == [3, 2, 2]
    assert sum(split_counts(1001, (0.7, 0.2, 0.1))) == 1001
    with pytest.raises(ValueError, match="fractions"):
        split_counts(5, (0, 0, 0))


def test_output_does_not_depend_on_the_worker_count(tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    assert run(capsys, "phantoms", "--out", a, "--n", 6, "--seed", 11, "--workers", 1)[0] == 0
    assert run(capsys, "phantoms", "--out", b, "--n", 6, "--seed", 11, "--workers", 2)[0] == 0
    ta, tb = tree(a), tree(b)
    assert list(ta) == list(tb) and len(ta) > 6 * 20
    assert [k for k in ta if ta[k] != tb[k]] == []


def test_a_failing_hand_is_reported_and_the_others_are_written(tmp_path, capsys):
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"fail_seeds": [phantom_seed(3, 2)]}))
    code, out, err = run(capsys, "phantoms", "--out", tmp_path / "ds", "--n", 5, "--seed", 3, "--split", "val",
                         "--workers", 2, "--config", cfg)
    assert code == 1
    assert f"hand 2 (seed {phantom_seed(3, 2)}) failed: RuntimeError: stub failure" in err
    assert "wrote 4 of 5 hands (val 4)" in out
    ds = RamH1200(tmp_path / "ds")
    assert ds.splits == ("val",) and len(ds) == 4
    assert not any("P000002" in s for s in ds.stems())
    assert [p for p in validate(tmp_path / "ds") if p.severity == "error"] == []


def test_phantoms_refuses_a_non_empty_split_unless_appending(tmp_path, capsys):
    out = tmp_path / "ds"
    assert run(capsys, "phantoms", "--out", out, "--n", 2, "--seed", 1, "--split", "train", "--workers", 1)[0] == 0
    before = tree(out)
    code, _, err = run(capsys, "phantoms", "--out", out, "--n", 2, "--seed", 1, "--split", "train")
    assert code == 2 and "already holds data" in err and "--append" in err
    assert tree(out) == before
    code, _, err = run(capsys, "phantoms", "--out", out, "--n", 2, "--seed", 1, "--split", "train", "--append",
                       "--workers", 1)
    assert code == 1 and "already exists" in err  # same stems again: refused per hand, nothing overwritten
    assert all(tree(out)[k] == v for k, v in before.items() if not k.endswith(".json"))
    code, _, err = run(capsys, "phantoms", "--out", out, "--n", 2, "--seed", 1, "--split", "train", "--append",
                       "--first-index", 2, "--workers", 1)
    assert code == 0, err
    assert len(RamH1200(out)) == 4
    assert validate(out) == []


def test_config_file_becomes_the_phantom_packages_config():
    from ramh_train.datasets.synthetic import phantom_config
    from ramh_train.phantoms import PhantomConfig

    cfg = phantom_config({"spacing_mm": [0.12, 0.13], "side": "L"})
    assert isinstance(cfg, PhantomConfig)
    assert cfg.spacing_mm == (0.12, 0.13) and cfg.side == "L"
    with pytest.raises(ValueError, match="bad phantom config"):
        phantom_config({"no_such_field": 1})


def test_phantoms_without_the_phantom_package_fails_clearly(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ramh_train.phantoms", None)  # import fails as if absent
    code, _, err = run(capsys, "phantoms", "--out", tmp_path / "ds", "--n", 1, "--seed", 0, generator=None)
    assert code == 1 and "ramh_train.phantoms could not be imported" in err and "Traceback" not in err


@pytest.mark.parametrize("argv, needle", [
    (["phantoms", "--out", "x", "--n", "0", "--seed", "1"], "positive integer"),
    (["phantoms", "--out", "x", "--n", "2", "--seed", "-1"], "non-negative integer"),
    (["phantoms", "--out", "x", "--n", "2", "--seed", "1", "--splits", "0.8,0.2"], "three non-negative"),
    (["phantoms", "--out", "x", "--n", "2", "--seed", "1", "--split", "train", "--splits", "1,0,0"],
     "not allowed with"),
    (["phantoms", "--out", "x", "--n", "2", "--seed", "1", "--split", "valid"], "invalid choice"),
    (["phantoms", "--n", "2", "--seed", "1"], "--out"),
    (["validate"], "DIR"),
    (["frobnicate"], "invalid choice"),
    ([], "COMMAND"),
])
def test_usage_errors_exit_2(capsys, argv, needle):
    code, out, err = run(capsys, *argv)
    assert code == 2 and needle in err and "Traceback" not in err


def test_usage_errors_found_after_parsing_exit_2(tmp_path, capsys):
    code, _, err = run(capsys, "validate", tmp_path / "missing")
    assert code == 2 and "is not a folder" in err
    code, _, err = run(capsys, "stats", tmp_path, "--out", tmp_path / "r.json")
    assert code == 2 and "FILE.md" in err
    bad = tmp_path / "cfg.json"
    bad.write_text("[1, 2]")
    code, _, err = run(capsys, "phantoms", "--out", tmp_path / "d", "--n", 1, "--seed", 0, "--config", bad)
    assert code == 2 and "must hold a JSON object" in err


@pytest.mark.parametrize("cmd", ["phantoms", "variants", "validate", "stats"])
def test_every_subcommand_has_help(capsys, cmd):
    code, out, _ = run(capsys, cmd, "--help")
    assert code == 0 and f"usage: ramh-data {cmd}" in out and len(out.splitlines()) > 5


def test_validate_exit_codes_and_grouped_report(tmp_path, capsys):
    ds = tmp_path / "ds"
    assert run(capsys, "phantoms", "--out", ds, "--n", 3, "--seed", 2, "--split", "train", "--workers", 1)[0] == 0
    code, out, _ = run(capsys, "validate", ds, "--workers", 1)
    assert code == 0 and "valid: 0 error(s), 0 warning(s)" in out
    scores = ds / "SvdH_Scoring/SvdH_BE_Scoring/train/_annotation_be_scores.json"
    top = json.loads(scores.read_text())
    first = next(iter(top))
    top[first]["BE_BOGUS"] = 1
    top[first][next(iter(top[first]))] = 9
    scores.write_text(json.dumps(top))
    (ds / "Segmentation/train/_annotations_be_rle.coco.json").write_text("nope")
    code, out, _ = run(capsys, "validate", ds, "--workers", 2)
    assert code == 1
    lines = out.splitlines()
    f1 = lines.index("SvdH_Scoring/SvdH_BE_Scoring/train/_annotation_be_scores.json")
    assert "key 'BE_BOGUS': unknown score key" in lines[f1 + 1] + lines[f1 + 2]
    assert "is outside 0..5" in lines[f1 + 1] + lines[f1 + 2]
    assert "Segmentation/train/_annotations_be_rle.coco.json" in lines
    assert "INVALID: 3 error(s)" in lines[-1]


def test_stats_report(tmp_path, capsys):
    ds = tmp_path / "ds"
    assert run(capsys, "phantoms", "--out", ds, "--n", 5, "--seed", 4, "--splits", "3,2,0", "--workers", 1)[0] == 0
    md = tmp_path / "report.md"
    code, out, _ = run(capsys, "stats", ds, "--out", md)
    assert code == 0 and "report.json" in out
    stats = json.loads((tmp_path / "report.json").read_text())
    text = md.read_text()
    assert list(stats["splits"]) == ["train", "val"]
    reader = RamH1200(ds)
    for split in ("train", "val"):
        s = stats["splits"][split]
        hands = [reader.load(st, split) for st in reader.stems(split)]
        assert s["images"] == len(hands)
        assert (s["height"]["min"], s["width"]["max"]) == (64, 80)
        assert s["pixel_spacing_mm"]["min"] == 0.1 and s["pixel_spacing_mm"]["unknown"] == 0
        for key in anatomy.BE_KEYS + anatomy.JSN_KEYS:
            counts = s["score_counts"].get(key, {})
            assert sum(counts.values()) == sum(key in h.scores for h in hands)
            for grade, c in counts.items():
                assert c == sum(h.scores.get(key) == int(grade) for h in hands)
        totals = [h.totals()["svdh"] for h in hands]
        assert s["totals"]["svdh"]["max"] == max(totals) and s["totals"]["svdh"]["n"] == len(hands)
        for cat in anatomy.EROSION_CATEGORIES:
            assert s["erosion_pixels"][cat]["total"] == sum(int(h.erosion_masks.get(cat, np.zeros(1)).sum())
                                                              for h in hands)
        pix = np.concatenate([h.image.ravel() for h in hands])
        assert s["intensity"]["pixels"] == pix.size and s["intensity"]["mean"] == pytest.approx(pix.mean())
        assert s["intensity"]["p50"] == int(np.percentile(pix, 50, method="inverted_cdf"))
    assert "| images | 3 | 2 |" in text and "## Score distributions" in text and "| BE_R |" in text
    code, out, _ = run(capsys, "stats", ds, "--no-intensity")
    assert code == 0 and out.startswith("# Dataset statistics") and "intensity" not in out


def test_stats_on_a_malformed_dataset_fails_clearly(tmp_path, capsys):
    ds = tmp_path / "ds"
    assert run(capsys, "phantoms", "--out", ds, "--n", 1, "--seed", 0, "--split", "test", "--workers", 1)[0] == 0
    (ds / "Segmentation/test/_annotations_bone_rle.coco.json").write_text("{")
    code, _, err = run(capsys, "stats", ds)
    assert code == 1 and "dataset error" in err and "not valid JSON" in err and "ramh-data validate" in err
