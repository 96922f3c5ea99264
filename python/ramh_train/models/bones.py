"""BoneSegNet: 30-channel multilabel bone segmentation of the whole letterboxed hand image (U-Net family)."""
from __future__ import annotations

import torch
from torch import nn

from ramh_rt import anatomy

from .blocks import (DoubleConv, ExportableModel, UpBlock, check_tensor, conv_bn_relu, example_image,
                     init_weights)


def coord_channels(h: int, w: int, *, full_hw: tuple[int, int] | None = None, offset: tuple[int, int] = (0, 0),
                   dtype: torch.dtype = torch.float32, device: torch.device | str | None = None) -> torch.Tensor:
    """The 2 coordinate channels [2, h, w]: channel 0 is x, channel 1 is y of each pixel centre in [0, 1].

    Pixel ``(row, col)`` of the model input has centre ``x = (col + 0.5) / W``, ``y = (row + 0.5) / H``
    (RAM-H1200 benchmark's coord option; the runtime preprocess writes the same). For a training crop of a larger
    model-input-sized image give ``full_hw = (H, W)`` of that image and the crop's top-left ``offset = (row0, col0)``
    so that the crop carries the coordinates it has in the full input.

    Raises:
        ValueError: non-positive sizes, or a crop that does not fit in ``full_hw``.
    """
    if h < 1 or w < 1:
        raise ValueError(f"h and w must be positive, got h={h}, w={w}")
    fh, fw = full_hw if full_hw is not None else (h, w)
    r0, c0 = offset
    if fh < 1 or fw < 1 or r0 < 0 or c0 < 0 or r0 + h > fh or c0 + w > fw:
        raise ValueError(f"crop of {h}x{w} at offset {offset} does not fit in full_hw={full_hw}")
    xs = (torch.arange(c0, c0 + w, dtype=torch.float64) + 0.5) / fw
    ys = (torch.arange(r0, r0 + h, dtype=torch.float64) + 0.5) / fh
    grid = torch.stack([xs.view(1, w).expand(h, w), ys.view(h, 1).expand(h, w)])
    return grid.to(dtype=dtype, device=device)


def with_coords(image: torch.Tensor, **kwargs) -> torch.Tensor:
    """Append the 2 coordinate channels to a batch ``image`` [N, C, H, W] -> [N, C + 2, H, W] (kwargs as
    :func:`coord_channels`)."""
    if image.ndim != 4:
        raise ValueError(f"image must be [N, C, H, W], got shape {tuple(image.shape)}")
    n, _, h, w = image.shape
    grid = coord_channels(h, w, dtype=image.dtype, device=image.device, **kwargs)
    return torch.cat([image, grid.unsqueeze(0).expand(n, -1, -1, -1)], dim=1)


class BoneSegNet(ExportableModel):
    """Multilabel encoder-decoder: normalised image (+ coordinate channels) -> per-class logits at full resolution.

    Input ``image`` [N, in_channels (+2), H, W] float32: the letterboxed image windowed to [0, 1] and normalised
    ``(v - mean) / std`` by the runtime preprocess, followed by the x and y coordinate channels
    (:func:`coord_channels`) when ``coord_channels`` is set. H and W must be multiples of
    ``stem_stride * 2 ** (len(widths) - 1)`` (32 with the defaults; the default input is 640 x 512, portrait).
    Output ``logits`` [N, num_classes, H, W] float32, one independent sigmoid channel per class
    (:data:`ramh_rt.anatomy.BONE_NAMES` order): masks overlap, so this is not a softmax.

    Architecture: a U-Net with ``len(widths) - 1`` down-levels (2x2 max-pool + two 3x3 conv-BN-ReLU), transposed-
    conv up-steps with skip concatenation; the deepest conv is dilated (x2) so the receptive field covers the whole
    hand, which the model needs to tell the fingers apart. ``stem_stride=2`` (default) runs the U-Net at half
    resolution behind a stride-2 stem and restores full resolution with one transposed conv concatenated with a
    full-resolution 3x3 feature of the input: about half the compute of a full-resolution U-Net at the same
    widths, while boundaries are still decided at full resolution. ``stem_stride=1`` is the classic U-Net.

    Args:
        num_classes: output channels (30 for RAM-H1200).
        in_channels: image channels before the coordinate channels (1: grayscale).
        coord_channels: whether 2 coordinate channels are appended to the image channels.
        widths: channels per level, shallowest first (default 16..256: 4 down-levels, ~1.9 M parameters).
        stem_stride: 1 or 2 (see above).
        input_hw: the export/default input size (H, W).
        full_res_channels: channels of the full-resolution branch when ``stem_stride == 2``.
    """

    task = "bone_segmentation"
    input_names = ("image",)
    output_names = ("logits",)

    def __init__(self, num_classes: int = anatomy.NUM_BONE_CLASSES, in_channels: int = 1, coord_channels: bool = True,
                 widths: tuple[int, ...] = (16, 32, 64, 128, 256), stem_stride: int = 2,
                 input_hw: tuple[int, int] = (640, 512), full_res_channels: int = 8):
        super().__init__()
        widths = tuple(int(c) for c in widths)
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        if in_channels < 1:
            raise ValueError(f"in_channels must be >= 1, got {in_channels}")
        if len(widths) < 2 or min(widths) < 1:
            raise ValueError(f"widths needs >= 2 positive entries (one per level), got {widths}")
        if stem_stride not in (1, 2):
            raise ValueError(f"stem_stride must be 1 or 2, got {stem_stride}")
        if full_res_channels < 1:
            raise ValueError(f"full_res_channels must be >= 1, got {full_res_channels}")
        self.num_classes = int(num_classes)
        self.in_channels = int(in_channels)
        self.coord_channels = bool(coord_channels)
        self.widths = widths
        self.stem_stride = int(stem_stride)
        self.divisor = self.stem_stride * 2 ** (len(widths) - 1)
        self.input_hw = (int(input_hw[0]), int(input_hw[1]))
        if self.input_hw[0] % self.divisor or self.input_hw[1] % self.divisor or min(self.input_hw) < self.divisor:
            raise ValueError(f"input_hw {input_hw} must be positive multiples of {self.divisor}")
        self.config = dict(arch="BoneSegNet", num_classes=self.num_classes, in_channels=self.in_channels,
                           coord_channels=self.coord_channels, widths=list(widths), stem_stride=self.stem_stride,
                           input_hw=list(self.input_hw), full_res_channels=int(full_res_channels))
        cin = self.total_in_channels
        if self.stem_stride == 2:
            self.full_res = conv_bn_relu(cin, full_res_channels)
            self.stem = DoubleConv(full_res_channels, widths[0], stride=2)
        else:
            self.full_res = None
            self.stem = DoubleConv(cin, widths[0])
        last = len(widths) - 2
        self.down = nn.ModuleList(
            nn.Sequential(nn.MaxPool2d(2), DoubleConv(widths[i], widths[i + 1], dilation=2 if i == last else 1))
            for i in range(len(widths) - 1))
        self.up = nn.ModuleList(UpBlock(widths[i + 1], widths[i], widths[i]) for i in range(len(widths) - 1))
        if self.stem_stride == 2:
            self.final_up = UpBlock(widths[0], full_res_channels, max(full_res_channels, widths[0] // 2))
            head_in = max(full_res_channels, widths[0] // 2)
        else:
            self.final_up = None
            head_in = widths[0]
        self.head = nn.Conv2d(head_in, self.num_classes, kernel_size=1)
        init_weights(self.modules())
        # Classes are mostly absent from most pixels: start the logits at a low prior (sigmoid ~ 0.05) so early BCE
        # gradients do not push the whole image to foreground first.
        nn.init.constant_(self.head.bias, -3.0)

    @property
    def total_in_channels(self) -> int:
        return self.in_channels + (2 if self.coord_channels else 0)

    def check_inputs(self, image: torch.Tensor) -> None:
        check_tensor(image, "image", ndim=4, dims={1: self.total_in_channels},
                     multiple_of={2: self.divisor, 3: self.divisor})

    def body(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.full_res is not None:
            full = self.full_res(image)
            h = self.stem(full)
        else:
            full = None
            h = self.stem(image)
        skips = [h]
        for down in self.down:
            h = down(h)
            skips.append(h)
        h = skips.pop()
        for i in reversed(range(len(self.up))):
            h = self.up[i](h, skips[i])
        if self.final_up is not None:
            h = self.final_up(h, full)
        return {"logits": self.head(h)}

    def input_spec(self) -> list[dict]:
        return [{"name": "image", "shape": ["N", self.total_in_channels, *self.input_hw], "dtype": "float32"}]

    def output_spec(self) -> list[dict]:
        return [{"name": "logits", "shape": ["N", self.num_classes, *self.input_hw], "dtype": "float32"}]

    def example_inputs(self, batch: int = 1, *, kind: str = "random", seed: int = 0) -> tuple[torch.Tensor, ...]:
        """``kind="random"``: standard-normal image channels; ``"realistic"``: a smooth synthetic radiograph-like
        image windowed to [0, 1] and normalised with mean 0.5 / std 0.25. Coordinate channels are exact either way."""
        img = example_image(batch, self.in_channels, self.input_hw, kind, seed)
        if self.coord_channels:
            img = with_coords(img)
        return (img.contiguous(),)

    def manifest_fields(self, *, window: dict, antialias: bool = True, threshold: float = 0.0, min_area: int = 0,
                        fill_holes: bool = True) -> dict:
        """Task-specific manifest entry (schema ``$defs/bones``) for this model.

        Args:
            window: ``{"percentiles": [lo, hi], "mean": m, "std": s}`` used in training (ramh_rt.ops.preprocess).
            antialias: whether the preprocess low-pass filters before downscaling.
            threshold: logit threshold of the multilabel postprocess (0.0 = probability 0.5).
            min_area: smallest kept component, in model-input pixels.
            fill_holes: whether the postprocess fills holes in each bone mask.
        """
        keep = {"*": "largest"}
        keep.update({b.name: "all" for b in anatomy.BONE_CLASSES if b.multi_instance})
        names = list(anatomy.BONE_NAMES) if self.num_classes == anatomy.NUM_BONE_CLASSES else \
            [f"class{i}" for i in range(self.num_classes)]
        return {
            "task": self.task,
            "classes": names,
            "preprocess": {"input_hw": list(self.input_hw), "window": dict(window),
                           "coord_channels": self.coord_channels, "antialias": bool(antialias)},
            "postprocess": {"mode": "multilabel", "threshold": float(threshold), "keep": keep,
                            "min_area": int(min_area), "fill_holes": bool(fill_holes)},
        }
