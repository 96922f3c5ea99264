"""Model architecture tests: I/O contracts, input checks, BatchNorm folding, conditioning, ordinal heads, CAM."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from ramh_rt import anatomy
from ramh_train import ordinal
from ramh_train.models import (BoneSegNet, GlobalNet, JointNet, area_one_hot, coord_channels, count_parameters,
                               fold_batchnorm, from_config, score_masks, with_coords)
from ramh_train.models.blocks import FiLM, prepare_for_export


def small_models():
    return [BoneSegNet(widths=(4, 8, 16), input_hw=(64, 64)),
            BoneSegNet(widths=(4, 8, 16), input_hw=(32, 64), stem_stride=1),
            JointNet(roi_size=64, widths=(4, 4, 8, 8, 8), head_hidden=8),
            GlobalNet(widths=(4, 8, 8, 8, 8), blocks=(1, 1, 1, 1), input_hw=(64, 48))]


def randomize_bn(model: nn.Module, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.rand(n, generator=g) * 0.4 - 0.2)
            m.running_var.copy_(torch.rand(n, generator=g) * 1.5 + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.data.copy_(torch.rand(n, generator=g) * 0.4 - 0.2)


@pytest.mark.parametrize("model", small_models(), ids=lambda m: type(m).__name__ + str(m.config.get("stem_stride", "")))
def test_outputs_match_spec(model):
    model.eval()
    for batch in (1, 3):
        inputs = model.example_inputs(batch, kind="realistic")
        spec_in = model.input_spec()
        assert [s["name"] for s in spec_in] == list(model.input_names)
        for t, s in zip(inputs, spec_in):
            assert tuple(t.shape) == tuple(batch if d == "N" else d for d in s["shape"])
        with torch.no_grad():
            out = model(*inputs)
        for s in model.output_spec():
            assert tuple(out[s["name"]].shape) == tuple(batch if d == "N" else d for d in s["shape"]), s["name"]
            assert torch.isfinite(out[s["name"]]).all()


def test_default_sizes_fit_the_budget():
    bones, joints, glob = BoneSegNet(), JointNet(), GlobalNet()
    # brief: ~1-2 M parameters for the bone model; whole fp32 bundle under 30 MB
    assert 1_000_000 <= count_parameters(bones) <= 2_000_000
    total = sum(count_parameters(m) for m in (bones, joints, glob))
    assert total * 4 < 30e6
    assert bones.input_spec()[0]["shape"] == ["N", 3, 640, 512]
    assert joints.input_spec()[0]["shape"] == ["N", 1, 224, 224]
    assert glob.input_spec()[0]["shape"] == ["N", 1, 320, 256]
    assert glob.output_spec()[2]["shape"] == ["N", 1, 20, 16]


def test_input_checks_name_the_argument():
    bones = BoneSegNet(widths=(4, 8, 16), input_hw=(64, 64))
    with pytest.raises(ValueError, match="image.*axis 1"):
        bones(torch.zeros(1, 1, 64, 64))                      # coordinate channels missing
    with pytest.raises(ValueError, match="multiple of 8"):
        bones(torch.zeros(1, 3, 60, 64))
    with pytest.raises(TypeError, match="image must be a floating-point"):
        bones(torch.zeros(1, 3, 64, 64, dtype=torch.uint8))
    with pytest.raises(ValueError, match="takes 1 inputs"):
        bones(torch.zeros(1, 3, 64, 64), torch.zeros(1))
    joints = JointNet(roi_size=64, widths=(4, 4, 8, 8, 8))
    roi, window, area = joints.example_inputs(2)
    with pytest.raises(ValueError, match="window"):
        joints(roi, window[:1], area)
    with pytest.raises(ValueError, match="area.*axis 1"):
        joints(roi, window, area[:, :5])
    with pytest.raises(ValueError, match="roi"):
        joints(roi[:, :, :32], window, area)
    with pytest.raises(ValueError, match="widths"):
        BoneSegNet(widths=(4,))
    with pytest.raises(ValueError, match="input_hw"):
        BoneSegNet(input_hw=(100, 512))
    with pytest.raises(ValueError, match="roi_size"):
        JointNet(roi_size=100)
    with pytest.raises(ValueError, match="kind"):
        joints.example_inputs(1, kind="fancy")


def test_coord_channels_are_pixel_centres():
    g = coord_channels(2, 4)
    # x = (col + 0.5) / 4, y = (row + 0.5) / 2
    assert torch.allclose(g[0], torch.tensor([[0.125, 0.375, 0.625, 0.875]] * 2))
    assert torch.allclose(g[1], torch.tensor([[0.25] * 4, [0.75] * 4]))
    # a 1 x 2 crop at (row 1, col 2) of the same 2 x 4 image carries the full image's coordinates
    c = coord_channels(1, 2, full_hw=(2, 4), offset=(1, 2))
    assert torch.allclose(c, g[:, 1:2, 2:4])
    with pytest.raises(ValueError, match="does not fit"):
        coord_channels(2, 2, full_hw=(2, 4), offset=(1, 0))
    x = with_coords(torch.zeros(3, 1, 2, 4))
    assert x.shape == (3, 3, 2, 4) and torch.equal(x[2, 1:], g)


def test_fold_batchnorm_is_exact():
    torch.manual_seed(0)
    for model in small_models():
        randomize_bn(model)
        model.eval()
        inputs = model.example_inputs(2, kind="realistic", seed=3)
        with torch.no_grad():
            ref = model(*inputs)
            folded = prepare_for_export(model)
            out = folded(*inputs)
        assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
        assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules()), "original must stay untouched"
        for k in ref:
            scale = ref[k].abs().max().item() + 1e-6
            assert (ref[k] - out[k]).abs().max().item() <= 1e-5 * scale + 1e-6, k
    # the ConvTranspose2d + BatchNorm path (output channels on weight axis 1)
    seq = nn.Sequential(nn.ConvTranspose2d(3, 5, 2, stride=2), nn.BatchNorm2d(5))
    randomize_bn(seq, seed=1)
    seq.eval()
    x = torch.randn(2, 3, 4, 4)
    with torch.no_grad():
        assert torch.allclose(fold_batchnorm(seq)(x), seq(x), atol=1e-5)
    with pytest.raises(ValueError, match="cannot be folded"):
        fold_batchnorm(nn.Sequential(nn.ReLU(), nn.BatchNorm2d(3)))


def test_film_starts_as_identity_and_conditions():
    film = FiLM(4, 3)
    x = torch.randn(2, 3, 5, 5)
    cond = torch.eye(4)[:2]
    assert torch.equal(film(x, cond), x)
    with torch.no_grad():
        film.gamma.weight.fill_(1.0)
        film.beta.bias.fill_(0.5)
    # gamma = 1 for any one-hot -> x * 2 + 0.5
    assert torch.allclose(film(x, cond), x * 2 + 0.5)


def test_joint_area_identity_changes_scores():
    torch.manual_seed(0)
    model = JointNet(roi_size=64, widths=(4, 4, 8, 8, 8), head_hidden=8).eval()
    with torch.no_grad():
        model.be_head.score.weight.normal_()     # small at initialisation (predictions start near the prior)
    roi, window, _ = model.example_inputs(1, kind="realistic")
    with torch.no_grad():
        a = model(roi, window, area_one_hot(["MCP-I"]))["be_logits"]
        b = model(roi, window, area_one_hot(["R"]))["be_logits"]
    assert not torch.allclose(a, b)      # the one-hot reaches the heads directly, even with FiLM at identity


def test_joint_window_normalisation_in_graph():
    model = JointNet(roi_size=64, widths=(4, 4, 8, 8, 8), norm_mean=0.5, norm_std=0.25)
    roi = torch.tensor([0.0, 100.0, 150.0, 300.0]).repeat(1, 1, 64, 16)
    window = torch.tensor([[100.0, 200.0]])
    x, _ = model.prepare(roi, window, area_one_hot(["IP"]))
    # clip((x - 100) / 100, 0, 1) = [0, 0, 0.5, 1] -> (v - 0.5) / 0.25 = [-2, -2, 0, 2]
    assert torch.allclose(x[0, 0, 0, :4], torch.tensor([-2.0, -2.0, 0.0, 2.0]))
    # a degenerate window (hi == lo) does not divide by zero
    x, _ = model.prepare(roi, torch.tensor([[100.0, 100.0]]), area_one_hot(["IP"]))
    assert torch.isfinite(x).all()


def test_area_helpers():
    oh = area_one_hot(["MCP-T", "U"])
    assert oh.shape == (2, 22) and oh[0, anatomy.AREA_INDEX["MCP-T"]] == 1 and oh[1, anatomy.AREA_INDEX["U"]] == 1
    assert oh.sum().item() == 2
    be, jsn = score_masks(["IP", "SC", "MCP-I"])
    # IP: erosion only; SC: narrowing only; MCP-I: both
    assert be.tolist() == [True, False, True] and jsn.tolist() == [False, True, True]
    with pytest.raises(ValueError, match="unknown area stem"):
        area_one_hot(["XYZ"])


def test_ordinal_head_rank_consistent_and_normalised():
    torch.manual_seed(0)
    head = ordinal.OrdinalHead(7, 6)
    assert 0 < float(head.score.weight.detach().abs().max()) < 1.0    # starts near the threshold prior
    with torch.no_grad():
        head.score.weight.normal_()
        head.gaps_raw.normal_(0, 3)        # arbitrary parameters: still strictly decreasing thresholds
        head.first.normal_(0, 3)
    feats = torch.randn(50, 7) * 5
    z = head(feats)
    assert z.shape == (50, 5)
    assert bool((z[:, 1:] < z[:, :-1]).all())
    p = head.probs(z)
    assert p.shape == (50, 6) and bool((p >= 0).all())
    assert torch.allclose(p.sum(1), torch.ones(50), atol=1e-6)
    # p_k = c_{k-1} - c_k exactly when the cumulative probabilities are monotone
    c = torch.sigmoid(z)
    assert torch.allclose(p[:, 2], c[:, 1] - c[:, 2], atol=1e-6)
    assert torch.allclose(p[:, 0], 1 - c[:, 0], atol=1e-6)
    assert torch.allclose(p[:, 5], c[:, 4], atol=1e-6)
    # freezing keeps the function and removes the parametrisation
    ref = head(feats)
    head.freeze()
    assert torch.allclose(head(feats), ref) and not hasattr(head, "gaps_raw")


def test_ordinal_prior_initialisation():
    head = ordinal.OrdinalHead(4, 4)
    # histogram 50/25/15/10 %: P(y > k) = 0.5, 0.25, 0.10 -> b = logit of those; g = 0 reproduces the prior
    head.set_prior([50, 25, 15, 10])
    b = head.biases().detach()
    assert torch.allclose(torch.sigmoid(b), torch.tensor([0.5, 0.25, 0.10]), atol=1e-5)
    p = head.probs(b.unsqueeze(0))
    assert torch.allclose(p[0], torch.tensor([0.5, 0.25, 0.15, 0.10]), atol=1e-5)
    # an unobserved top class stays strictly ordered (probabilities clipped at 1e-3, gaps >= 0.01)
    head.set_prior([10, 5, 0, 0])
    b = head.biases().detach()
    assert bool((b[1:] < b[:-1]).all())
    with pytest.raises(ValueError, match="class_counts"):
        head.set_prior([1, 2])


def test_probs_from_non_monotone_logits_stay_valid():
    # c = sigmoid([0, 2]) is increasing (not rank-consistent): q_1 < 0 is clipped, the rest renormalised
    p = ordinal.probs_from_logits(torch.tensor([[0.0, 2.0]]))
    c0, c1 = 0.5, torch.sigmoid(torch.tensor(2.0)).item()
    q = torch.tensor([1 - c0, 0.0, c1])
    assert torch.allclose(p[0], q / q.sum(), atol=1e-6)


def test_ordinal_predict_modes():
    probs = np.array([[0.1, 0.2, 0.3, 0.4],     # median: cdf [.1 .3 .6 1] -> 2; argmax 3; expected 2.0 -> 2
                      [0.5, 0.0, 0.0, 0.5],     # median: cdf reaches 0.5 at 0; argmax 0 (first); expected 1.5 -> 2
                      [0.0, 0.0, 0.2, 0.8]])    # median 3; argmax 3; expected 2.8 -> 3
    assert ordinal.predict(probs, "median").tolist() == [2, 0, 3]
    assert ordinal.predict(probs, "argmax").tolist() == [3, 0, 3]
    assert ordinal.predict(probs, "expected").tolist() == [2, 2, 3]
    assert np.allclose(ordinal.expected_score(probs), [2.0, 1.5, 2.8])
    assert np.allclose(ordinal.cumulative_from_probs(probs[:1]), [[0.9, 0.7, 0.4]])
    with pytest.raises(ValueError, match="mode"):
        ordinal.predict(probs, "mode")
    with pytest.raises(ValueError, match="non-negative"):
        ordinal.predict(np.array([[0.5, -0.1]]))
    # CORAL's rule (count of cumulative probabilities > 0.5) agrees with the median for monotone heads
    head = ordinal.OrdinalHead(3, 6)
    with torch.no_grad():
        head.score.weight.normal_()
    z = head(torch.randn(40, 3) * 4)
    coral = (torch.sigmoid(z) > 0.5).sum(1).numpy()
    assert np.array_equal(ordinal.predict(head.probs(z), "median"), coral)


def test_global_cam_identity():
    torch.manual_seed(0)
    model = GlobalNet(widths=(4, 8, 8, 8, 8), blocks=(1, 2, 1, 1), input_hw=(64, 48))
    randomize_bn(model)
    with torch.no_grad():
        model.reg_conv.weight.normal_(0, 0.5)
        model.reg_bias.fill_(0.07)
    model.eval()
    (x,) = model.example_inputs(3, kind="realistic")
    with torch.no_grad():
        out = model(x)
        feats = model.stages(model.stem(x))
    cam = out["cam"]
    assert cam.shape == (3, 1, 4, 3)
    # svdh_total = mean(cam) + bias (points): GAP + linear == linear on the map, then average
    assert torch.allclose(out["svdh_total"][:, 0], cam.mean(dim=(1, 2, 3)) + model.cam_bias(), atol=1e-4)
    assert model.cam_bias() == pytest.approx(0.07 * 140, rel=1e-6)
    gap_linear = (feats.mean(dim=(2, 3)) @ model.reg_conv.weight.view(-1)) * 140 + model.cam_bias()
    assert torch.allclose(out["svdh_total"][:, 0], gap_linear, atol=1e-4)
    assert torch.allclose(out["severity_probs"].sum(1), torch.ones(3))


def test_from_config_round_trip():
    for model in small_models():
        clone = from_config(model.config)
        clone.load_state_dict(model.state_dict())
        model.eval()
        clone.eval()
        inputs = model.example_inputs(1, seed=5)
        with torch.no_grad():
            a, b = model(*inputs), clone(*inputs)
        assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(ValueError, match="arch"):
        from_config({"arch": "ResNet50"})


@pytest.fixture
def one_thread():
    # tiny tensors: a second intra-op thread only adds contention on a shared 2-core machine
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_bone_model_learns_a_toy_problem(one_thread):
    """Two overlapping classes (multilabel) at a coordinate-dependent place: a tiny model must fit them in a few
    dozen steps - catches wiring mistakes (skips, heads, coordinate channels) that shape tests cannot."""
    from ramh_train.losses import multilabel_seg_loss
    from ramh_train.metrics import binary_metrics

    torch.manual_seed(0)
    model = BoneSegNet(num_classes=2, widths=(8, 16, 16), input_hw=(32, 32))
    img = torch.zeros(4, 1, 32, 32)
    tgt = torch.zeros(4, 2, 32, 32)
    for i in range(4):
        r, c = 6 + 3 * i, 5 + 2 * i
        img[i, 0, r:r + 10, c:c + 14] = 1.0
        tgt[i, 0, r:r + 10, c:c + 8] = 1.0          # left part of the bright block
        tgt[i, 1, r:r + 10, c + 6:c + 14] = 1.0     # right part, overlapping class 0 by 2 columns
    x = with_coords((img - 0.5) / 0.25)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(60):
        loss = multilabel_seg_loss(model(x)["logits"], tgt)
        opt.zero_grad()
        loss.total.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        pred = (model(x)["logits"] > 0).numpy()
    dsc = [binary_metrics(pred[i, c], tgt[i, c].numpy())["dsc"] for i in range(4) for c in range(2)]
    assert min(dsc) > 0.9, dsc
