"""Training on a tiny phantom set (CPU, seconds): the losses fall, a resumed run equals an unbroken one, and the
trained runs export to a bundle that ONNX Runtime loads."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="training needs the train extra")
pytest.importorskip("ramh_train.phantoms", reason="the phantom generator comes with the train extra")

from ramh_train.cache import Cache, CacheSpec, build_cache  # noqa: E402
from ramh_train.datasets.synthetic import build_phantom_dataset  # noqa: E402
from ramh_train.engine import TrainConfig, load_trained, use_channels_last  # noqa: E402
from ramh_train.models import from_config  # noqa: E402
from ramh_train.train import train_bones, train_global, train_joints  # noqa: E402

SPEC = CacheSpec(input_hw=(128, 96), roi_size=64)


@pytest.fixture(scope="module")
def tiny_cache(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("tiny")
    build_phantom_dataset(root / "ds", 3, seed=424242, split="train", workers=1)
    return str(build_cache(root / "ds", "train", root / "cache", SPEC, workers=1))


def _cfg(run: Path, steps: int, **kw) -> TrainConfig:
    base = dict(run_dir=str(run), steps=steps, batch_size=2, lr=3e-3, warmup_steps=2, seed=5, checkpoint_every=5,
                log_every=1, threads=1)
    base.update(kw)
    return TrainConfig(**base)


def _records(run: Path) -> list[dict]:
    return [r for r in (json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()) if "loss" in r]


def _losses(run: Path) -> list[float]:
    return [r["loss"] for r in _records(run)]


def test_cache_holds_model_ready_arrays(tiny_cache):
    c = Cache(tiny_cache)
    assert len(c) == 3 and c.image.shape == (3, 128, 96)
    assert c.bones.shape[1] == 30 and c.bones.max() == 255
    assert (c.roi_gt_iou[np.isfinite(c.roi_gt_iou)] > 0.3).mean() > 0.9  # ROI geometry on the true masks


@pytest.mark.parametrize("which", ["bones", "joints", "global"])
def test_a_few_steps_reduce_the_loss(tiny_cache, tmp_path, which):
    run = tmp_path / which
    if which == "bones":
        train_bones(tiny_cache, None, _cfg(run, 30, lr=1e-2), widths=(8, 16, 24), crop_hw=None)
    elif which == "joints":
        train_joints(tiny_cache, None, _cfg(run, 30, batch_size=8), widths=(8, 8, 16, 16, 24))
    else:
        train_global(tiny_cache, None, _cfg(run, 30, lr=1e-2), widths=(8, 8, 16, 16, 16))
    recs = _records(run)
    loss = [r["loss"] for r in recs]
    assert len(loss) == 30 and all(np.isfinite(loss))
    assert np.mean(loss[-5:]) < 0.99 * np.mean(loss[:5]), (loss[:5], loss[-5:])
    # Dice-type parts move slowly in 30 steps; at least one loss term must have fallen by a fifth.
    parts = [k for k in recs[0] if k not in ("step", "loss", "loss_ema", "lr", "elapsed_s")]
    drops = {k: np.mean([r[k] for r in recs[-5:]]) / max(np.mean([r[k] for r in recs[:5]]), 1e-12) for k in parts}
    assert min(drops.values()) < 0.8, drops
    model, state = load_trained(run, from_config)
    assert state["step"] == 30 and not model.training


def test_resume_continues_from_the_saved_step(tiny_cache, tmp_path):
    widths = (8, 16, 24)
    whole = tmp_path / "whole"
    _, s_whole = train_bones(tiny_cache, None, _cfg(whole, 10), widths=widths, crop_hw=(64, 64))
    split = tmp_path / "split"
    _, s_first = train_bones(tiny_cache, None, _cfg(split, 10, stop_at=5), widths=widths, crop_hw=(64, 64))
    assert s_first["stopped_early"] and s_first["step"] == 5
    _, s_split = train_bones(tiny_cache, None, _cfg(split, 10), widths=widths, crop_hw=(64, 64))
    assert s_split["resumed"] and s_split["start_step"] == 5 and not s_whole["resumed"]
    # same data order, augmentations and RNG state: the resumed run ends where the unbroken one does
    assert _losses(split)[5:] == pytest.approx(_losses(whole)[5:], rel=1e-4, abs=1e-6)
    a, _ = load_trained(whole, from_config)
    b, _ = load_trained(split, from_config)
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.allclose(pa.float(), pb.float(), rtol=1e-4, atol=1e-6), name
    # asking for no more steps than are done trains nothing
    _, again = train_bones(tiny_cache, None, _cfg(split, 10), widths=widths, crop_hw=(64, 64))
    assert again["resumed"] and again["step"] == 10


def test_a_crop_run_continues_on_whole_inputs_with_a_longer_schedule(tiny_cache, tmp_path):
    """The default bundle's bone recipe: crops first, then the same run resumed on whole inputs, a smaller batch and
    a longer schedule (the warm restart continues the step count and the weights)."""
    widths, run = (8, 16, 24), tmp_path / "bones"
    train_bones(tiny_cache, None, _cfg(run, 6), widths=widths, crop_hw=(64, 64))
    crop_model, _ = load_trained(run, from_config)
    _, s = train_bones(tiny_cache, None, _cfg(run, 10, batch_size=1), widths=widths, crop_hw=None)
    assert s["resumed"] and s["start_step"] == 6 and s["step"] == 10
    steps = [r["step"] for r in _records(run)]
    assert steps[-1] == 10 and len(steps) == len(set(steps))
    whole_model, state = load_trained(run, from_config)
    assert state["step"] == 10
    assert not torch.equal(crop_model.state_dict()["head.weight"], whole_model.state_dict()["head.weight"])


def test_channels_last_choice():
    cpu, cuda = torch.device("cpu"), torch.device("cuda", 0)
    assert use_channels_last("auto", cpu) and not use_channels_last("auto", cuda)
    assert use_channels_last("on", cuda) and not use_channels_last("off", cpu)
    with pytest.raises(ValueError, match="channels_last"):
        use_channels_last("yes", cpu)


def test_nchw_and_nhwc_training_agree(tiny_cache, tmp_path):
    for mode in ("on", "off"):
        train_bones(tiny_cache, None, _cfg(tmp_path / mode, 3, channels_last=mode), widths=(8, 16, 24), crop_hw=None)
    assert _losses(tmp_path / "on") == pytest.approx(_losses(tmp_path / "off"), rel=1e-3)


def test_trained_runs_export_to_a_bundle_that_runs(tiny_cache, tmp_path):
    from ramh_rt.bundle import Bundle
    from ramh_rt.pipeline import Analyzer
    from ramh_train import cli

    runs = {}
    for which, fn, kw in (("bones", train_bones, dict(widths=(8, 16, 24), crop_hw=None)),
                          ("joints", train_joints, dict(widths=(8, 8, 16, 16, 24))),
                          ("global", train_global, dict(widths=(8, 8, 16, 16, 16)))):
        runs[which] = tmp_path / which
        fn(tiny_cache, None, _cfg(runs[which], 2), **kw)
    metrics = tmp_path / "metrics.json"
    metrics.write_text(json.dumps({"split": "test", "images": 3, "backend": "onnxruntime-cpu",
                                   "bones": {"mean_dsc_28_bones": 0.5}, "totals": {"svdh": {"pcc": 0.1}}}))
    bundle = tmp_path / "bundle"
    rc = cli.main(["export", "--bones", str(runs["bones"]), "--joints", str(runs["joints"]), "--global",
                   str(runs["global"]), "--cache", tiny_cache, "--bundle", str(bundle), "--metrics", str(metrics),
                   "--command", "pytest tiny run"])
    assert rc == 0
    b = Bundle.load(bundle)
    assert set(b.manifest["models"]) == {"bones", "joints", "global"}
    assert b.manifest["metrics"]["bones"]["mean_dsc_28_bones"] == 0.5
    card = (bundle / "MODEL_CARD.md").read_text()
    assert "Not clinically validated" in card and "pytest tiny run" in card
    assert "| bone mean DSC (28 bones) | 0.500 | >= 0.95 | NO |" in card
    # the untrained tiny models run end to end: the contract (shapes, names, records) holds whatever the weights
    from ramh_train.datasets.ramh1200 import RamH1200

    ds = RamH1200(Path(tiny_cache).parent / "ds")
    s = ds.load(ds.stems("train")[0], "train")
    # Two steps of training find no plausible hand: the input understanding then refuses the film by name (the
    # documented NotAHandError) after the bone model ran; with bones it accepts, the full record comes back.
    from ramh_rt.errors import NotAHandError

    try:
        a = Analyzer(b, backend="onnxruntime-cpu").analyze(s.image, spacing_mm=s.spacing_mm)
    except NotAHandError as e:
        assert "bones found do not make a hand" in str(e)
    else:
        assert [j.stem for j in a.joints] == list(__import__("ramh_rt").anatomy.AREA_STEMS)
        assert a.meta.bundle_id == "ramh-default" and a.erosion_mask.shape == s.shape


def test_weighted_batches_oversample_and_resume_identically():
    from ramh_train.engine import batches

    w = np.ones(100)
    w[:10] = 9.0  # 10 items with 9x the weight: half of all draws
    stream = batches(100, 10, seed=3, weights=w)
    drawn = np.concatenate([next(stream) for _ in range(100)])
    assert 0.4 < (drawn < 10).mean() < 0.6
    again = batches(100, 10, seed=3, weights=w, start_step=37)
    stream = batches(100, 10, seed=3, weights=w)
    for _ in range(37):
        next(stream)
    np.testing.assert_array_equal(next(again), next(stream))
    for bad in (np.zeros(100), -w, np.ones(99), np.full(100, np.nan)):
        with pytest.raises(ValueError, match="weights"):
            next(batches(100, 10, seed=3, weights=bad))


def test_joint_sample_weights_mark_diseased_joints(tiny_cache):
    from ramh_train.train import joint_items, joint_sample_weights

    c = Cache(tiny_cache)
    items = joint_items(c)
    w = joint_sample_weights(c, items, 4.0)
    be = np.asarray(c.be)[items[:, 0], items[:, 1]]
    jsn = np.asarray(c.jsn)[items[:, 0], items[:, 1]]
    assert set(np.unique(w)) <= {1.0, 4.0}
    assert (w[(be > 0) | (jsn > 0)] == 4.0).all()
    with pytest.raises(ValueError, match="positive_weight"):
        joint_sample_weights(c, items, 0.0)


def test_joint_heads_refit_writes_an_exportable_run(tiny_cache, tmp_path):
    from ramh_train.train import refit_joint_heads

    run = tmp_path / "joints"
    train_joints(tiny_cache, None, _cfg(run, 2, batch_size=8), widths=(8, 8, 16, 16, 24))
    report = refit_joint_heads(str(run), tiny_cache, tiny_cache, str(tmp_path / "refit"), epochs=3)
    assert set(report) >= {"be", "jsn"} and len(report["be"]["val_qwk_per_epoch"]) == 3
    model, state = load_trained(tmp_path / "refit", from_config)
    before, _ = load_trained(run, from_config)
    # the trunk is untouched, the heads changed
    sb, sa = before.state_dict(), model.state_dict()
    assert torch.equal(sb["seg_head.weight"], sa["seg_head.weight"])
    assert not torch.equal(sb["jsn_mlp.0.weight"], sa["jsn_mlp.0.weight"])
    assert state["refit"]["train_rows"] > 0
    # the erosion threshold is chosen on the validation cache and travels with the run
    assert state["erosion_threshold"] == report["erosion"]["threshold"]
    table = report["erosion"]["table"]
    assert report["erosion"]["dsc"] == max(r["dsc"] for r in table.values())
    # calibrated in the validation features pass, before the heads changed: the same as a separate pass afterwards
    from ramh_train.train import choose_erosion_threshold
    again = choose_erosion_threshold(model, Cache(tiny_cache))
    assert again["threshold"] == report["erosion"]["threshold"] and set(again["table"]) == set(table)
    for t, row in table.items():
        assert again["table"][t] == pytest.approx(row, abs=1e-9), t


def test_erosion_threshold_table_matches_the_pooled_dice(tiny_cache, tmp_path):
    from ramh_train.train import choose_erosion_threshold, evaluate_joints

    model, _ = train_joints(tiny_cache, None, _cfg(tmp_path / "j", 2, batch_size=8), widths=(8, 8, 16, 16, 24))
    model.eval()
    c = Cache(tiny_cache)
    r = choose_erosion_threshold(model, c, thresholds=(0.2, 0.5, 0.8))
    assert set(r["table"]) == {0.2, 0.5, 0.8}
    # by hand at 0.8: pooled over every validation crop
    from ramh_train.train import joint_batch_maker, joint_items
    items = joint_items(c)
    roi, win, area, ero, *_ = joint_batch_maker(c, items, augment=False)(np.arange(len(items)), None)
    with torch.no_grad():
        p = (torch.sigmoid(model(roi, win, area)["erosion_logits"]) >= 0.8).numpy()
    g = ero.numpy() >= 0.5
    denom = p.sum() + g.sum()
    assert r["table"][0.8]["dsc"] == pytest.approx(2 * (p & g).sum() / denom if denom else 1.0, abs=1e-9)
    # the training loop's validation Dice is the same measure at 0.5
    assert r["table"][0.5]["dsc"] == pytest.approx(evaluate_joints(model, c)["erosion_dsc_pooled"], abs=1e-9)
    # a higher threshold never segments more: recall cannot rise
    recalls = [r["table"][t]["recall"] for t in (0.2, 0.5, 0.8)]
    assert recalls == sorted(recalls, reverse=True)
    with pytest.raises(ValueError, match="thresholds"):
        choose_erosion_threshold(model, c, thresholds=())


def test_oversampled_joint_training_runs_with_importance_weights(tiny_cache, tmp_path):
    _, summary = train_joints(tiny_cache, None, _cfg(tmp_path / "j", 3, batch_size=8), widths=(8, 8, 16, 16, 24),
                              positive_weight=4.0)
    assert summary["step"] == 3 and np.isfinite(_losses(tmp_path / "j")).all()


def test_global_model_at_full_input_size_exports_and_runs(tiny_cache, tmp_path):
    """--pool 1: the whole-image model sees the bone model's input unpooled; the exported graph then takes that input
    with no pool, so the runtime feeds both models the same tensor. A pool that does not divide the input is refused."""
    from ramh_train import cli
    from ramh_train.engine import load_trained
    from ramh_train.models import from_config

    runs = {}
    for which, fn, kw in (("bones", train_bones, dict(widths=(8, 16, 24), crop_hw=None)),
                          ("joints", train_joints, dict(widths=(8, 8, 16, 16, 24))),
                          ("global", train_global, dict(widths=(8, 8, 16, 16, 16), pool=1))):
        runs[which] = tmp_path / which
        # NCHW: torch 2.13's CPU (oneDNN) backward of a channels-last 1x1 stride-2 convolution with 8+ channels on a
        # ~64x48 map segfaults (this tiny model's first shortcut); the full-size models do not hit that shape.
        fn(tiny_cache, None, _cfg(runs[which], 2, channels_last="off"), **kw)
    state = torch.load(runs["global"] / "last.pt", weights_only=False)
    assert state["model_config"]["input_hw"] == [128, 96]
    bundle = tmp_path / "bundle"
    assert cli.main(["export", "--bones", str(runs["bones"]), "--joints", str(runs["joints"]), "--global",
                     str(runs["global"]), "--cache", tiny_cache, "--bundle", str(bundle)]) == 0
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["models"]["global"]["inputs"][0]["shape"] == ["N", 1, 128, 96]
    import onnxruntime as ort

    sess = ort.InferenceSession(str(bundle / "global.onnx"), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).normal(size=(1, 1, 128, 96)).astype(np.float32)
    model, _ = load_trained(runs["global"], from_config)
    with torch.no_grad():
        want = model(torch.from_numpy(x))["svdh_total"].numpy()
    np.testing.assert_allclose(sess.run(["svdh_total"], {"image": x})[0], want, rtol=1e-4, atol=1e-3)
    with pytest.raises(ValueError, match="pool 3 must divide"):
        train_global(tiny_cache, None, _cfg(tmp_path / "bad", 2), widths=(8, 8, 16, 16, 16), pool=3)


def test_score_density_puts_each_areas_points_at_its_joint(tiny_cache):
    """The map sums to the hand's SvdH total, each scored area's blob peaks in the cell of its ROI centre, and the
    flipped map is the mirror image (the input is flipped with it)."""
    from ramh_train.train import score_density

    c = Cache(tiny_cache)
    grid = (8, 6)  # the CAM of a 128x96 input
    for i in range(len(c)):
        d = score_density(c, i, grid)
        assert d.shape == grid and d.dtype == np.float32 and (d >= 0).all()
        assert d.sum() == pytest.approx(float(c.totals[i, 2]), abs=1e-3)
        np.testing.assert_allclose(score_density(c, i, grid, flip=True), d[:, ::-1], atol=1e-5)
    # one area alone: its blob's peak sits in the cell holding the ROI centre
    i = int(np.argmax(c.totals[:, 2]))
    located = np.isfinite(c.roi[i, :, 0])
    k = int(np.argmax(np.where(located, np.maximum(c.be[i], 0) + np.maximum(c.jsn[i], 0) + 1, 0)))
    lb = c.meta["items"][i]["letterbox"]
    x, y = c.roi[i, k, 0] * lb["scale_x"] + lb["pad_x"], c.roi[i, k, 1] * lb["scale_y"] + lb["pad_y"]
    saved = (c.be, c.jsn)
    try:
        c.be, c.jsn = np.full(c.be.shape, -1, np.int8), np.full(c.jsn.shape, -1, np.int8)
        c.be[i, k] = 3
        d = score_density(c, i, grid, sigma_cells=0.6)
    finally:
        c.be, c.jsn = saved
    assert d.sum() == pytest.approx(3.0, abs=1e-4)
    assert np.unravel_index(d.argmax(), grid) == (int(y // 16), int(x // 16))


def test_density_loss_is_zero_for_a_matching_cam_and_trains(tiny_cache, tmp_path):
    from ramh_train import losses

    cam = torch.zeros(2, 1, 8, 6)
    cam[0, 0, 3, 2] = 48 * 5.0  # 5 points in one cell of 48: cam / 48 is points per cell
    density = cam / 48
    out = {"svdh_total": torch.tensor([[5.0], [0.0]]), "severity_logits": torch.zeros(2, 5), "cam": cam}
    r = losses.global_loss(out, torch.tensor([5.0, 0.0]), density=density, density_weight=1.0)
    assert r.parts["density"] == 0.0
    r = losses.global_loss(out, torch.tensor([5.0, 0.0]), density=torch.zeros_like(density), density_weight=1.0)
    assert r.parts["density"] == pytest.approx(25.0 / 2)  # squared error summed over cells, mean over the batch
    with pytest.raises(ValueError, match="density must match cam"):
        losses.global_loss(out, torch.tensor([5.0, 0.0]), density=density[:, :, :4], density_weight=1.0)
    run = tmp_path / "g"
    _, summary = train_global(tiny_cache, None, _cfg(run, 3, channels_last="off"), pool=1, density_weight=0.1,
                              widths=(8, 8, 16, 16, 16))
    assert "density" in _records(run)[-1]
    with pytest.raises(ValueError, match="density_weight"):
        train_global(tiny_cache, None, _cfg(tmp_path / "bad", 2), density_weight=-1, widths=(8, 8, 16, 16, 16))
