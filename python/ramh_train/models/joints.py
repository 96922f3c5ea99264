"""JointNet: one model for all 22 SvdH areas - erosion segmentation plus ordinal BE and JSN scores per ROI crop."""
from __future__ import annotations

import torch
from torch import nn

from ramh_rt import anatomy

from ..ordinal import OrdinalHead
from .blocks import (ExportableModel, FiLM, ResidualBlock, UpBlock, check_batch, check_kind, check_tensor,
                     conv_bn_relu, init_weights, smooth_field)


class JointNet(ExportableModel):
    """Erosion segmentation and BE/JSN ordinal scoring of joint ROI crops, conditioned on the SvdH area.

    Inputs (float32):
        * ``roi`` [N, 1, S, S] (S = ``roi_size``, 224): raw intensities as cut from the full image by
          ``ramh_rt.ops.crop_rois`` (no normalisation applied).
        * ``window`` [N, 2]: ``(lo, hi)`` intensity window of the *full* image (its percentiles), so a crop is
          normalised like its hand, not like itself. The graph computes ``v = clip((x - lo) / (hi - lo), 0, 1)``
          (``hi - lo`` floored at 1e-6) and then ``(v - norm_mean) / norm_std``: the runtime needs no extra op.
        * ``area`` [N, 22]: one-hot area identity in :data:`ramh_rt.anatomy.AREA_STEMS` order.

    Outputs:
        * ``erosion_logits`` [N, 1, S, S]: erosion (any category) logits at full crop resolution.
        * ``be_probs`` [N, be_classes], ``jsn_probs`` [N, jsn_classes]: class probabilities from the rank-consistent
          ordinal heads (non-negative, rows sum to 1; see :mod:`ramh_train.ordinal`).
        * ``be_logits`` [N, be_classes - 1], ``jsn_logits`` [N, jsn_classes - 1]: cumulative logits
          ``logit P(y > k)`` (the training losses take these).
        Every area gets both score outputs; an area without a BE (or JSN) score in SvdH
        (:attr:`ramh_rt.anatomy.SvdHArea.be` / ``.jsn``) must be ignored by the caller and masked in the loss.

    Architecture: a residual encoder (stride-2 stem, four stride-2 stages: S/2 .. S/32) whose last three stages are
    FiLM-modulated by the area one-hot; a U-Net decoder back to full resolution (the last step concatenates the
    normalised crop itself, so erosion boundaries are decided at full resolution); two score heads on pooled
    encoder and decoder features, the area one-hot and two statistics of the erosion map - its soft area (percent
    of the crop) and its maximum - because erosion extent is what the BE grade measures. ~0.5 M parameters with
    the default widths.
    """

    task = "joint_scoring"
    input_names = ("roi", "window", "area")
    output_names = ("erosion_logits", "be_probs", "jsn_probs", "be_logits", "jsn_logits")

    def __init__(self, roi_size: int = 224, widths: tuple[int, ...] = (16, 24, 32, 64, 96),
                 num_areas: int = len(anatomy.AREA_STEMS), be_classes: int = anatomy.BE_MAX + 1,
                 jsn_classes: int = anatomy.JSN_MAX + 1, norm_mean: float = 0.5, norm_std: float = 0.25,
                 head_hidden: int = 64, full_res_channels: int = 8, profile_bins: int | None = None):
        super().__init__()
        widths = tuple(int(c) for c in widths)
        if len(widths) != 5 or min(widths) < 1:
            raise ValueError(f"widths must hold 5 positive channel counts (stem + 4 stages), got {widths}")
        if roi_size < 32 or roi_size % 32:
            raise ValueError(f"roi_size must be a positive multiple of 32, got {roi_size}")
        if num_areas < 1:
            raise ValueError(f"num_areas must be >= 1, got {num_areas}")
        if not norm_std > 0:
            raise ValueError(f"norm_std must be > 0, got {norm_std}")
        if profile_bins is None:
            profile_bins = roi_size // 4   # 4-pixel bins (56 at 224)
        if profile_bins < 0 or (profile_bins and roi_size % profile_bins):
            raise ValueError(f"profile_bins must be 0 or divide roi_size={roi_size}, got {profile_bins}")
        if head_hidden < 1 or full_res_channels < 1:
            raise ValueError(f"head_hidden and full_res_channels must be >= 1, got {head_hidden}, "
                             f"{full_res_channels}")
        self.roi_size = int(roi_size)
        self.widths = widths
        self.num_areas = int(num_areas)
        self.be_classes = int(be_classes)
        self.jsn_classes = int(jsn_classes)
        self.norm_mean = float(norm_mean)
        self.norm_std = float(norm_std)
        self.config = dict(arch="JointNet", roi_size=self.roi_size, widths=list(widths), num_areas=self.num_areas,
                           be_classes=self.be_classes, jsn_classes=self.jsn_classes, norm_mean=self.norm_mean,
                           norm_std=self.norm_std, head_hidden=int(head_hidden),
                           full_res_channels=int(full_res_channels), profile_bins=int(profile_bins))
        self.profile_bins = int(profile_bins)
        w0, w1, w2, w3, w4 = widths
        self.stem = conv_bn_relu(1, w0, stride=2)                      # S/2
        self.stage1 = ResidualBlock(w0, w1, stride=2)                  # S/4
        self.stage2 = ResidualBlock(w1, w2, stride=2)                  # S/8
        self.stage3 = ResidualBlock(w2, w3, stride=2)                  # S/16
        self.stage4 = ResidualBlock(w3, w4, stride=2, dilation=1)      # S/32
        self.film2 = FiLM(num_areas, w2)
        self.film3 = FiLM(num_areas, w3)
        self.film4 = FiLM(num_areas, w4)
        self.up4 = UpBlock(w4, w3, w3)                                 # S/16
        self.up3 = UpBlock(w3, w2, w2)                                 # S/8
        self.up2 = UpBlock(w2, w1, w1)                                 # S/4
        self.up1 = UpBlock(w1, w0, w0)                                 # S/2
        self.up0 = UpBlock(w0, 1, full_res_channels)                   # S (skip = normalised crop)
        self.seg_head = nn.Conv2d(full_res_channels, 1, kernel_size=1)
        feat = w4 + w1 + num_areas + 2 + 2 * self.profile_bins
        self.be_mlp = nn.Sequential(nn.Linear(feat, head_hidden), nn.ReLU(inplace=True))
        self.jsn_mlp = nn.Sequential(nn.Linear(feat, head_hidden), nn.ReLU(inplace=True))
        self.be_head = OrdinalHead(head_hidden, self.be_classes)
        self.jsn_head = OrdinalHead(head_hidden, self.jsn_classes)
        init_weights(self.modules())
        # erosions cover a small share of a crop: start the erosion logits at a low prior (sigmoid ~ 0.02)
        nn.init.constant_(self.seg_head.bias, -4.0)

    def check_inputs(self, roi: torch.Tensor, window: torch.Tensor, area: torch.Tensor) -> None:
        s = self.roi_size
        check_tensor(roi, "roi", ndim=4, dims={1: 1, 2: s, 3: s})
        check_tensor(window, "window", ndim=2, dims={0: roi.shape[0], 1: 2})
        check_tensor(area, "area", ndim=2, dims={0: roi.shape[0], 1: self.num_areas})

    def prepare(self, roi: torch.Tensor, window: torch.Tensor, area: torch.Tensor) -> tuple[torch.Tensor, ...]:
        # fp32 even in an fp16 export: raw uint16 intensities (up to 65535) overflow fp16 (max 65504)
        lo = window[:, 0:1].unsqueeze(-1).unsqueeze(-1)
        hi = window[:, 1:2].unsqueeze(-1).unsqueeze(-1)
        v = torch.clamp((roi - lo) / torch.clamp(hi - lo, min=1e-6), 0.0, 1.0)
        return (v - self.norm_mean) / self.norm_std, area

    def trunk(self, x: torch.Tensor, area: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(erosion logits [N, 1, S, S], score features [N, F]) of a prepared crop batch."""
        e0 = self.stem(x)
        e1 = self.stage1(e0)
        e2 = self.film2(self.stage2(e1), area)
        e3 = self.film3(self.stage3(e2), area)
        e4 = self.film4(self.stage4(e3), area)
        d3 = self.up4(e4, e3)
        d2 = self.up3(d3, e2)
        d1 = self.up2(d2, e1)
        d0 = self.up1(d1, e0)
        seg = self.seg_head(self.up0(d0, x))
        # erosion evidence for the BE head: extent (percent of the crop, O(1) like the other features) and presence
        ero = torch.sigmoid(seg)
        ero_pct = ero.mean(dim=(2, 3)) * 100.0                     # [N, 1]
        ero_max = torch.amax(ero, dim=(2, 3))                       # [N, 1]
        parts = [e4.mean(dim=(2, 3)), d1.mean(dim=(2, 3)), area, ero_pct, ero_max]
        if self.profile_bins:
            parts += self.joint_profiles(x)
        feats = torch.cat(parts, dim=1)
        return seg, feats

    def trunk_outputs(self, roi: torch.Tensor, window: torch.Tensor,
                      area: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(erosion logits [N, 1, S, S], the [N, F] feature vector both score heads read: pooled encoder/decoder
        features, the area one-hot, erosion extent and presence, the joint profiles) of raw crops; for refitting the
        heads on fixed features and calibrating the erosion threshold in the same pass."""
        return self.trunk(*self.prepare(roi, window, area))

    def body(self, x: torch.Tensor, area: torch.Tensor) -> dict[str, torch.Tensor]:
        seg, feats = self.trunk(x, area)
        be_logits = self.be_head(self.be_mlp(feats))
        jsn_logits = self.jsn_head(self.jsn_mlp(feats))
        return {
            "erosion_logits": seg,
            "be_probs": self.be_head.probs(be_logits),
            "jsn_probs": self.jsn_head.probs(jsn_logits),
            "be_logits": be_logits,
            "jsn_logits": jsn_logits,
        }

    def joint_profiles(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Intensity profiles through the crop centre, [N, bins] each: along the ROI's long axis (rows, averaged over
        the central quarter of the columns) and across it (columns, central quarter of the rows).

        The ROI is centred on the joint with its axis along the bones, so the joint space is a dark band across the
        first profile: its width — what JSN grades — reads off these numbers almost linearly, where the pooled CNN
        features needed far more steps to express it (measured: no JSN signal after 600 steps without them).
        Static slices, means and reshapes only (TensorRT-friendly).
        """
        s, b = self.roi_size, self.profile_bins
        lo, hi = (3 * s) // 8, (5 * s) // 8
        # (x has one channel: reducing dim 1 too avoids an index op, which would export as Gather)
        rows = x[:, :, :, lo:hi].mean(dim=(1, 3))             # [N, S]: profile along the ROI axis
        cols = x[:, :, lo:hi, :].mean(dim=(1, 2))             # [N, S]: profile across it
        return [rows.reshape(-1, b, s // b).mean(dim=2), cols.reshape(-1, b, s // b).mean(dim=2)]

    def input_spec(self) -> list[dict]:
        s = self.roi_size
        return [{"name": "roi", "shape": ["N", 1, s, s], "dtype": "float32"},
                {"name": "window", "shape": ["N", 2], "dtype": "float32"},
                {"name": "area", "shape": ["N", self.num_areas], "dtype": "float32"}]

    def output_spec(self) -> list[dict]:
        s = self.roi_size
        return [{"name": "erosion_logits", "shape": ["N", 1, s, s], "dtype": "float32"},
                {"name": "be_probs", "shape": ["N", self.be_classes], "dtype": "float32"},
                {"name": "jsn_probs", "shape": ["N", self.jsn_classes], "dtype": "float32"},
                {"name": "be_logits", "shape": ["N", self.be_classes - 1], "dtype": "float32"},
                {"name": "jsn_logits", "shape": ["N", self.jsn_classes - 1], "dtype": "float32"}]

    def example_inputs(self, batch: int = 1, *, kind: str = "random", seed: int = 0) -> tuple[torch.Tensor, ...]:
        """``kind="random"``: uniform raw intensities in [0, 65535) with random windows; ``"realistic"``: smooth
        8-bit-range crops with their 1st/99th percentiles as the window. Areas cycle through the one-hot codes."""
        check_batch(batch)
        check_kind(kind)
        g = torch.Generator().manual_seed(seed)
        s = self.roi_size
        if kind == "random":
            roi = torch.rand(batch, 1, s, s, generator=g) * 65535.0
            lo = torch.rand(batch, generator=g) * 20000.0
            window = torch.stack([lo, lo + 1000.0 + torch.rand(batch, generator=g) * 40000.0], dim=1)
        else:
            roi = torch.round(smooth_field(batch, s, s, g) * 200.0 + 20.0)
            flat = roi.view(batch, -1)
            window = torch.stack([flat.quantile(0.01, dim=1), flat.quantile(0.99, dim=1)], dim=1)
        area = nn.functional.one_hot(torch.arange(batch) % self.num_areas, self.num_areas).to(torch.float32)
        return roi.contiguous(), window.contiguous(), area

    def manifest_fields(self, *, percentiles: tuple[float, float], roi_scale: float,
                        erosion_threshold: float = 0.5) -> dict:
        """Task-specific manifest entry (schema ``$defs/joints``).

        Args:
            percentiles: the full-image percentiles that give the ``window`` input (e.g. ``(1.0, 99.0)``).
            roi_scale: ROI side / local bone width used by the ROI geometry in training.
            erosion_threshold: probability threshold applied to ``sigmoid(erosion_logits)``.
        """
        areas = list(anatomy.AREA_STEMS) if self.num_areas == len(anatomy.AREA_STEMS) else \
            [f"area{i}" for i in range(self.num_areas)]
        return {
            "task": self.task,
            "areas": areas,
            "roi": {"size": [self.roi_size, self.roi_size], "scale": float(roi_scale),
                    "window": {"percentiles": [float(p) for p in percentiles], "mean": self.norm_mean,
                               "std": self.norm_std}},
            "be_classes": self.be_classes,
            "jsn_classes": self.jsn_classes,
            "erosion_threshold": float(erosion_threshold),
        }


def area_one_hot(stems: list[str] | tuple[str, ...]) -> torch.Tensor:
    """One-hot area codes [len(stems), 22] for ROI stems (:data:`ramh_rt.anatomy.AREA_STEMS` order).

    Raises:
        ValueError: an unknown stem.
    """
    idx = []
    for s in stems:
        if s not in anatomy.AREA_INDEX:
            raise ValueError(f"unknown area stem {s!r}; known: {', '.join(anatomy.AREA_STEMS)}")
        idx.append(anatomy.AREA_INDEX[s])
    return nn.functional.one_hot(torch.tensor(idx, dtype=torch.long),
                                 len(anatomy.AREA_STEMS)).to(torch.float32).reshape(len(idx), -1)


def score_masks(stems: list[str] | tuple[str, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """Boolean [N] masks: which ROIs have a BE score and which a JSN score in SvdH (for the masked losses)."""
    for s in stems:
        if s not in anatomy.AREA_BY_STEM:
            raise ValueError(f"unknown area stem {s!r}")
    be = torch.tensor([anatomy.AREA_BY_STEM[s].be for s in stems], dtype=torch.bool)
    jsn = torch.tensor([anatomy.AREA_BY_STEM[s].jsn for s in stems], dtype=torch.bool)
    return be, jsn
