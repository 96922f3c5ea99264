"""GlobalNet: whole-image regression of the per-hand SvdH total with a severity-class head and an exact CAM."""
from __future__ import annotations

import torch
from torch import nn

from ramh_rt import anatomy

from .blocks import (ExportableModel, ResidualBlock, check_tensor, conv_bn_relu, example_image,
                     init_weights)


class GlobalNet(ExportableModel):
    """Small ResNet regressor of the per-hand SvdH total (0..140) plus severity classes, with a class-activation map.

    Input ``image`` [N, 1, H, W] float32 (default 320 x 256): the letterboxed image windowed to [0, 1] and
    normalised ``(v - mean) / std`` by the runtime preprocess (as for the bone model, without coordinate channels).
    H and W must be multiples of 16.

    Outputs (float32):
        * ``svdh_total`` [N, 1]: estimated total in SvdH points (not clipped; clip to 0..140 downstream).
        * ``severity_probs`` [N, 5] softmax over :data:`ramh_rt.anatomy.SEVERITY_CLASSES`;
          ``severity_logits`` [N, 5].
        * ``cam`` [N, 1, H/16, W/16]: the regression head's 1x1 convolution applied to the last feature map, in SvdH
          points per cell. Because global-average-pool + linear equals linear + average-pool,
          ``svdh_total = cam.mean((2, 3)) + bias_points`` exactly (up to float rounding); the map is the evidence of
          the estimate, computed without gradients (no Grad-CAM pass).

    Architecture: stride-2 stem, four residual stages (strides 2, 2, 2, 1; the last dilated), so the last map is
    H/16 x W/16 (20 x 16 at the default size). Training targets are the total divided by ``target_scale`` (140);
    the scale is folded into the head so that the outputs are in points.
    """

    task = "global_svdh"
    input_names = ("image",)
    output_names = ("svdh_total", "severity_probs", "cam", "severity_logits")

    def __init__(self, in_channels: int = 1, widths: tuple[int, ...] = (16, 32, 64, 128, 160),
                 blocks: tuple[int, ...] = (1, 2, 2, 2), input_hw: tuple[int, int] = (320, 256),
                 num_severity: int = len(anatomy.SEVERITY_CLASSES),
                 target_scale: float = float(anatomy.SVDH_MAX_PER_HAND)):
        super().__init__()
        widths = tuple(int(c) for c in widths)
        blocks = tuple(int(b) for b in blocks)
        if len(widths) != 5 or min(widths) < 1:
            raise ValueError(f"widths must hold 5 positive channel counts (stem + 4 stages), got {widths}")
        if len(blocks) != 4 or min(blocks) < 1:
            raise ValueError(f"blocks must hold 4 positive block counts, got {blocks}")
        if in_channels < 1 or num_severity < 2 or not target_scale > 0:
            raise ValueError(f"invalid in_channels={in_channels}, num_severity={num_severity} or "
                             f"target_scale={target_scale}")
        self.in_channels = int(in_channels)
        self.input_hw = (int(input_hw[0]), int(input_hw[1]))
        if self.input_hw[0] % 16 or self.input_hw[1] % 16 or min(self.input_hw) < 16:
            raise ValueError(f"input_hw {input_hw} must be positive multiples of 16")
        self.num_severity = int(num_severity)
        self.target_scale = float(target_scale)
        self.config = dict(arch="GlobalNet", in_channels=self.in_channels, widths=list(widths), blocks=list(blocks),
                           input_hw=list(self.input_hw), num_severity=self.num_severity,
                           target_scale=self.target_scale)
        self.stem = conv_bn_relu(in_channels, widths[0], stride=2)
        stages = []
        cin = widths[0]
        for i, (cout, n) in enumerate(zip(widths[1:], blocks)):
            stride = 1 if i == 3 else 2
            dilation = 2 if i == 3 else 1
            layers = [ResidualBlock(cin, cout, stride=stride)]
            layers += [ResidualBlock(cout, cout, dilation=dilation) for _ in range(n - 1)]
            stages.append(nn.Sequential(*layers))
            cin = cout
        self.stages = nn.Sequential(*stages)
        self.reg_conv = nn.Conv2d(cin, 1, kernel_size=1, bias=False)
        self.reg_bias = nn.Parameter(torch.zeros(1))
        self.severity = nn.Linear(cin, self.num_severity)
        init_weights(self.modules())
        nn.init.normal_(self.reg_conv.weight, std=1e-3)
        # start near a typical normalised total (~0.1 x 140) rather than 0
        nn.init.constant_(self.reg_bias, 0.1)

    @property
    def cam_hw(self) -> tuple[int, int]:
        return self.input_hw[0] // 16, self.input_hw[1] // 16

    def check_inputs(self, image: torch.Tensor) -> None:
        check_tensor(image, "image", ndim=4, dims={1: self.in_channels}, multiple_of={2: 16, 3: 16})

    def body(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        f = self.stages(self.stem(image))
        cam = self.reg_conv(f) * self.target_scale                      # points per cell
        total = cam.mean(dim=(2, 3)) + self.reg_bias * self.target_scale  # [N, 1]
        logits = self.severity(f.mean(dim=(2, 3)))
        return {"svdh_total": total, "severity_probs": torch.softmax(logits, dim=1), "cam": cam,
                "severity_logits": logits}

    def cam_bias(self) -> float:
        """The additive constant (points) with ``svdh_total == cam.mean((2, 3)) + cam_bias()``."""
        return float(self.reg_bias.detach() * self.target_scale)

    def input_spec(self) -> list[dict]:
        return [{"name": "image", "shape": ["N", self.in_channels, *self.input_hw], "dtype": "float32"}]

    def output_spec(self) -> list[dict]:
        return [{"name": "svdh_total", "shape": ["N", 1], "dtype": "float32"},
                {"name": "severity_probs", "shape": ["N", self.num_severity], "dtype": "float32"},
                {"name": "cam", "shape": ["N", 1, *self.cam_hw], "dtype": "float32"},
                {"name": "severity_logits", "shape": ["N", self.num_severity], "dtype": "float32"}]

    def example_inputs(self, batch: int = 1, *, kind: str = "random", seed: int = 0) -> tuple[torch.Tensor, ...]:
        """``kind="random"``: standard-normal image; ``"realistic"``: smooth synthetic image normalised with
        mean 0.5 / std 0.25."""
        return (example_image(batch, self.in_channels, self.input_hw, kind, seed).contiguous(),)

    def manifest_fields(self, *, window: dict, antialias: bool = True) -> dict:
        """Task-specific manifest entry (schema ``$defs/global``); ``window`` as for the bone model."""
        return {
            "task": self.task,
            "preprocess": {"input_hw": list(self.input_hw), "window": dict(window), "coord_channels": False,
                           "antialias": bool(antialias)},
            "severity_classes": list(anatomy.SEVERITY_NAMES) if self.num_severity == len(anatomy.SEVERITY_CLASSES)
            else [f"class{i}" for i in range(self.num_severity)],
            "target": f"per-hand SvdH total in points (0..{anatomy.SVDH_MAX_PER_HAND}; svdh_total output, not "
                      f"clipped); cam = 1x1 regression conv on the last feature map, svdh_total = mean(cam) + "
                      f"{self.cam_bias():.6g}",
        }
