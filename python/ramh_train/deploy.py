"""Deployment adapters: the trained models wrapped into the exact graphs the runtime pipeline feeds.

The runtime preprocesses an image once (``ramh_rt.ops.preprocess``: 1 x H x W, windowed and normalised) and feeds
that tensor to both the bone model and the whole-image model, and it reads erosion *probabilities* from the joint
model. So:

* :class:`BoneGraph` takes ``image`` [N, 1, H, W] and appends the coordinate channels inside the graph (constants of
  the fixed input size), so the runtime never builds them;
* :class:`GlobalGraph` takes the same [N, 1, H, W] input and average-pools it by 2 to the global model's size;
* :class:`JointGraph` adds ``erosion_probs = sigmoid(erosion_logits)``.

They are :class:`~ramh_train.models.ExportableModel` s, so :func:`ramh_train.export.export_onnx` exports them with
its parity check.
"""
from __future__ import annotations

import torch
from torch import nn

from .models import BoneSegNet, GlobalNet, JointNet
from .models.blocks import ExportableModel
from .models.bones import coord_channels


class BoneGraph(ExportableModel):
    """``image`` [N, 1, H, W] -> ``logits`` [N, 30, H, W] (coordinate channels built in)."""

    task = "bone_segmentation"
    input_names = ("image",)
    output_names = ("logits",)

    def __init__(self, net: BoneSegNet):
        super().__init__()
        if not net.coord_channels or net.in_channels != 1:
            raise ValueError("BoneGraph wraps a 1-channel BoneSegNet with coordinate channels")
        self.net = net
        self.config = net.config
        h, w = net.input_hw
        self.register_buffer("coords", coord_channels(h, w).unsqueeze(0), persistent=False)

    def check_inputs(self, image: torch.Tensor) -> None:
        h, w = self.net.input_hw
        if image.ndim != 4 or tuple(image.shape[1:]) != (1, h, w):
            raise ValueError(f"image must be [N, 1, {h}, {w}], got {tuple(image.shape)}")

    def body(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        # coords [1, 2, H, W] + 0 * image [N, 1, H, W] broadcasts to [N, 2, H, W] with Mul/Add only: no Shape/Expand
        # ops in the graph (TensorRT-friendly, and the batch stays dynamic).
        x = torch.cat([image, self.coords + 0.0 * image], dim=1)
        return {"logits": self.net(x)["logits"]}

    def input_spec(self) -> list[dict]:
        h, w = self.net.input_hw
        return [{"name": "image", "shape": ["N", 1, h, w], "dtype": "float32"}]

    def output_spec(self) -> list[dict]:
        return [s for s in self.net.output_spec() if s["name"] == "logits"]

    def example_inputs(self, batch: int = 1, *, kind: str = "random", seed: int = 0):
        (x,) = self.net.example_inputs(batch, kind=kind, seed=seed)
        return (x[:, :1].contiguous(),)

    def manifest_fields(self, **kw) -> dict:
        return self.net.manifest_fields(**kw)


class GlobalGraph(ExportableModel):
    """``image`` [N, 1, H, W] (the bone model's input) -> GlobalNet outputs, after a ``pool`` x ``pool`` average pool
    (2 by default, as the model was trained; 1 for a model trained on the full-size input)."""

    task = "global_svdh"
    input_names = ("image",)
    output_names = ("svdh_total", "severity_probs", "cam")

    def __init__(self, net: GlobalNet, pool: int = 2):
        super().__init__()
        if int(pool) < 1:
            raise ValueError(f"pool must be >= 1, got {pool}")
        self.net = net
        self.config = net.config
        self.factor = int(pool)
        self.pool = nn.AvgPool2d(self.factor) if self.factor > 1 else nn.Identity()

    @property
    def input_hw(self) -> tuple[int, int]:
        h, w = self.net.input_hw
        return self.factor * h, self.factor * w

    def check_inputs(self, image: torch.Tensor) -> None:
        h, w = self.input_hw
        if image.ndim != 4 or tuple(image.shape[1:]) != (1, h, w):
            raise ValueError(f"image must be [N, 1, {h}, {w}], got {tuple(image.shape)}")

    def body(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.net(self.pool(image))
        return {k: out[k] for k in self.output_names}

    def input_spec(self) -> list[dict]:
        h, w = self.input_hw
        return [{"name": "image", "shape": ["N", 1, h, w], "dtype": "float32"}]

    def output_spec(self) -> list[dict]:
        return [s for s in self.net.output_spec() if s["name"] in self.output_names]

    def example_inputs(self, batch: int = 1, *, kind: str = "random", seed: int = 0):
        (x,) = self.net.example_inputs(batch, kind=kind, seed=seed)
        if self.factor == 1:
            return (x,)
        return (nn.functional.interpolate(x, scale_factor=self.factor, mode="nearest"),)

    def manifest_fields(self, **kw) -> dict:
        f = self.net.manifest_fields(**kw)
        f["preprocess"]["input_hw"] = list(self.input_hw)
        f["preprocess"]["note"] = (f"the bone model's input, average-pooled {self.factor} x {self.factor} inside the graph"
                                   if self.factor > 1 else "the bone model's input, at its full size")
        return f


class JointGraph(ExportableModel):
    """JointNet plus ``erosion_probs`` = sigmoid(``erosion_logits``) [N, 1, S, S]."""

    task = "joint_scoring"
    input_names = ("roi", "window", "area")
    output_names = ("erosion_probs", "be_probs", "jsn_probs", "erosion_logits")

    def __init__(self, net: JointNet):
        super().__init__()
        self.net = net
        self.config = net.config

    def check_inputs(self, *inputs: torch.Tensor) -> None:
        self.net.check_inputs(*inputs)

    def prepare(self, *inputs: torch.Tensor):
        return self.net.prepare(*inputs)

    def body(self, *inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.net.body(*inputs)
        out["erosion_probs"] = torch.sigmoid(out["erosion_logits"])
        return out

    def input_spec(self) -> list[dict]:
        return self.net.input_spec()

    def output_spec(self) -> list[dict]:
        specs = {s["name"]: s for s in self.net.output_spec()}
        specs["erosion_probs"] = {**specs["erosion_logits"], "name": "erosion_probs"}
        return [specs[n] for n in self.output_names]

    def example_inputs(self, batch: int = 1, *, kind: str = "random", seed: int = 0):
        return self.net.example_inputs(batch, kind=kind, seed=seed)

    def manifest_fields(self, **kw) -> dict:
        return self.net.manifest_fields(**kw)
