"""Loss functions on hand-computed cases."""
from __future__ import annotations

import math

import pytest
import torch

from ramh_train import losses
from ramh_train.ordinal import probs_from_logits

LOG2 = math.log(2.0)


def test_soft_dice_hand_computed():
    # p = sigmoid(0) = 0.5 on 4 pixels, target one pixel: I = 0.5, P + T = 2 + 1, s = 1 -> Dice = 2/4
    logits = torch.zeros(1, 1, 2, 2)
    target = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]])
    assert losses.soft_dice_loss(logits, target).item() == pytest.approx(0.5)
    # near-perfect prediction -> ~0
    perfect = (target * 2 - 1) * 30
    assert losses.soft_dice_loss(perfect, target).item() == pytest.approx(0.0, abs=1e-6)


def test_soft_dice_skips_absent_classes_and_weights():
    logits = torch.zeros(1, 2, 2, 2)
    target = torch.zeros(1, 2, 2, 2)
    target[0, 0, 0, 0] = 1.0      # class 0 present (Dice 0.5, see above), class 1 absent everywhere
    assert losses.soft_dice_loss(logits, target).item() == pytest.approx(0.5)
    # class 1 present too: I = 0.5 * 2 = 1, P + T = 2 + 2 -> Dice = 3 / 5; weights 1:3 -> (0.5 + 3 * 0.4) / 4
    target[0, 1, 1, :] = 1.0
    w = torch.tensor([1.0, 3.0])
    assert losses.soft_dice_loss(logits, target, class_weights=w).item() == pytest.approx((0.5 + 3 * 0.4) / 4)
    # nothing present at all -> 0, still differentiable
    logits.requires_grad_(True)
    zero = losses.soft_dice_loss(logits, torch.zeros_like(target))
    zero.backward()
    assert zero.item() == 0.0 and logits.grad is not None
    with pytest.raises(ValueError, match="does not match"):
        losses.soft_dice_loss(logits, target[:, :1])


def test_bce_and_focal_hand_computed():
    logits = torch.zeros(1, 1, 2, 2)
    target = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]])
    assert losses.bce_loss(logits, target).item() == pytest.approx(LOG2)
    # pos_weight 3 scales the one foreground pixel: (3 log2 + 3 log2) / 4
    assert losses.bce_loss(logits, target, pos_weight=3.0).item() == pytest.approx(6 * LOG2 / 4)
    # focal at p = 0.5: ce = log 2, (1 - p_t)^2 = 1/4, alpha 0.75 on the foreground pixel, 0.25 on 3 background
    expected = (0.75 * 0.25 * LOG2 + 3 * 0.25 * 0.25 * LOG2) / 4
    assert losses.focal_loss(logits, target, gamma=2.0, alpha=0.75).item() == pytest.approx(expected)
    # gamma 0, no alpha == BCE
    assert losses.focal_loss(logits, target, gamma=0.0, alpha=None).item() == pytest.approx(LOG2)


def test_erosion_loss_masks_samples():
    logits = torch.zeros(2, 1, 2, 2, requires_grad=True)
    target = torch.zeros(2, 1, 2, 2)
    target[1, 0, 0, 0] = 1.0
    only_first = losses.erosion_seg_loss(logits, target, valid=torch.tensor([True, False]))
    # sample 0 has no erosion: the Dice term is skipped, focal on 4 background pixels at p = 0.5
    assert only_first.parts["dice"] == 0.0
    assert only_first.parts["focal"] == pytest.approx(0.25 * 0.25 * LOG2)
    none = losses.erosion_seg_loss(logits, target, valid=torch.tensor([False, False]))
    none.total.backward()
    assert none.total.item() == 0.0


def test_coral_loss_hand_computed_and_masked():
    logits = torch.zeros(3, 5, requires_grad=True)
    target = torch.tensor([2, 0, -1])          # row 2 has no score
    valid = torch.tensor([True, True, False])
    # every binary task at p = 0.5 costs log 2; 5 tasks per row
    assert losses.coral_loss(logits, target, valid).item() == pytest.approx(5 * LOG2)
    # sign check: large correct logits -> ~0 (row 0: y > 0, y > 1 true; rest false)
    good = torch.tensor([[20.0, 20.0, -20.0, -20.0, -20.0]])
    assert losses.coral_loss(good, torch.tensor([2])).item() == pytest.approx(0.0, abs=1e-6)
    none = losses.coral_loss(logits, target, torch.zeros(3, dtype=torch.bool))
    none.backward()
    assert none.item() == 0.0
    with pytest.raises(ValueError, match="0..5"):
        losses.coral_loss(logits, torch.tensor([2, 6, 0]), valid)
    with pytest.raises(ValueError, match="target must be"):
        losses.coral_loss(logits, torch.tensor([1, 2]))


def test_cumulative_link_loss_hand_computed():
    # c = sigmoid([2, -2]) = [0.8808, 0.1192]; p = [0.1192, 0.7616, 0.1192]; -log p_1 = 0.2723
    logits = torch.tensor([[2.0, -2.0]])
    p = probs_from_logits(logits)
    assert p[0, 1].item() == pytest.approx(0.76159, abs=1e-4)
    assert losses.cumulative_link_loss(logits, torch.tensor([1])).item() == pytest.approx(-math.log(0.761594),
                                                                                          abs=1e-4)


def test_joint_loss_uses_masks():
    out = {"erosion_logits": torch.zeros(2, 1, 4, 4), "be_logits": torch.zeros(2, 5),
           "jsn_logits": torch.zeros(2, 4)}
    ero = torch.zeros(2, 1, 4, 4)
    be = torch.tensor([1, -1])
    jsn = torch.tensor([-1, 3])
    res = losses.joint_loss(out, ero, be, jsn, torch.tensor([True, False]), torch.tensor([False, True]))
    assert res.parts["be"] == pytest.approx(5 * LOG2)
    assert res.parts["jsn"] == pytest.approx(4 * LOG2)
    with pytest.raises(ValueError, match="ordinal"):
        losses.joint_loss(out, ero, be, jsn, torch.tensor([True, False]), torch.tensor([False, True]),
                          ordinal="softmax")


def test_severity_targets_follow_anatomy_classes():
    totals = torch.tensor([0.0, 1.0, 5.0, 5.4, 5.6, 20.0, 21.0, 50.0, 51.0, 140.0, 150.0, -3.0])
    # none 0 | minimal 1-5 | mild 6-20 | moderate 21-50 | severe 51-140 (rounded, clipped)
    assert losses.severity_targets(totals).tolist() == [0, 1, 1, 1, 2, 2, 3, 3, 4, 4, 4, 0]


def test_global_loss_hand_computed():
    out = {"svdh_total": torch.tensor([[14.0], [28.0]]), "severity_logits": torch.zeros(2, 5)}
    totals = torch.tensor([14.0, 0.0])
    # normalised errors 0 and 0.2 (> beta 0.05): Huber = (0 + (0.2 - 0.025)) / 2 ; CE of uniform logits = log 5
    res = losses.global_loss(out, totals, beta=0.05, severity_weight=0.5)
    assert res.parts["regression"] == pytest.approx(0.0875)
    assert res.parts["severity_ce"] == pytest.approx(math.log(5))
    assert res.total.item() == pytest.approx(0.0875 + 0.5 * math.log(5))
    with pytest.raises(ValueError, match="svdh_total"):
        losses.global_loss({"svdh_total": torch.zeros(2), "severity_logits": torch.zeros(2, 5)}, totals)


def test_class_weights_from_frequency():
    w = losses.class_weights_from_frequency(torch.tensor([0.01, 0.04, 0.0]), power=0.5, max_ratio=10.0)
    # raw f^-0.5 = [10, 5, inf]; the cap is max_ratio x the smallest weight = 50, which the zero fraction gets;
    # normalised to mean 1: [10, 5, 50] / (65 / 3)
    assert torch.allclose(w, torch.tensor([10.0, 5.0, 50.0]) / (65.0 / 3))


def test_coral_sample_weights_give_the_weighted_mean():
    import torch

    from ramh_train.losses import coral_loss

    logits = torch.tensor([[0.5, -1.0], [2.0, 0.3], [-0.4, -2.0]])
    target = torch.tensor([1, 2, 0])
    rows = [coral_loss(logits[i:i + 1], target[i:i + 1]) for i in range(3)]
    w = torch.tensor([1.0, 3.0, 0.5])
    expect = sum(float(r) * float(wi) for r, wi in zip(rows, w)) / float(w.sum())
    assert float(coral_loss(logits, target, sample_weights=w)) == pytest.approx(expect, rel=1e-6)
    valid = torch.tensor([True, False, True])
    expect_v = (float(rows[0]) * 1.0 + float(rows[2]) * 0.5) / 1.5
    assert float(coral_loss(logits, target, valid, sample_weights=w)) == pytest.approx(expect_v, rel=1e-6)
    assert float(coral_loss(logits, target, sample_weights=torch.ones(3))) == pytest.approx(
        float(coral_loss(logits, target)), rel=1e-6)
    with pytest.raises(ValueError, match="sample_weights"):
        coral_loss(logits, target, sample_weights=torch.ones(2))
