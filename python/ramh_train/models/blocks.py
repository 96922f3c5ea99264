"""Building blocks shared by the ramh_train models, restricted to what exports cleanly to TensorRT.

Every block maps to ONNX ops that TensorRT 10 builds natively: Conv (BatchNorm is folded into it at export by
:func:`fold_batchnorm`), ConvTranspose, Relu, MaxPool, Add/Mul, Concat, GlobalAveragePool/ReduceMean, Gemm. No block
reads a tensor's shape at run time, so an exported graph holds no Shape/Gather arithmetic and no control flow.
"""
from __future__ import annotations

import copy
from typing import Iterable

import torch
from torch import nn


def conv_bn_relu(cin: int, cout: int, *, kernel: int = 3, stride: int = 1, dilation: int = 1,
                 relu: bool = True) -> nn.Sequential:
    """Conv2d (no bias, 'same' padding for odd kernels) -> BatchNorm2d -> ReLU (optional).

    Spatial size: ``ceil(H / stride) x ceil(W / stride)`` for inputs whose sides are multiples of ``stride``.
    """
    layers: list[nn.Module] = [
        nn.Conv2d(cin, cout, kernel, stride=stride, padding=dilation * (kernel // 2), dilation=dilation, bias=False),
        nn.BatchNorm2d(cout),
    ]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class DoubleConv(nn.Sequential):
    """Two 3x3 conv-BN-ReLU layers (the U-Net unit); ``dilation`` applies to the second one (wider context)."""

    def __init__(self, cin: int, cout: int, *, stride: int = 1, dilation: int = 1):
        super().__init__(conv_bn_relu(cin, cout, stride=stride), conv_bn_relu(cout, cout, dilation=dilation))


class ResidualBlock(nn.Module):
    """ResNet basic block: two 3x3 conv-BN layers plus a shortcut (1x1 conv-BN where the shape changes), then ReLU."""

    def __init__(self, cin: int, cout: int, *, stride: int = 1, dilation: int = 1):
        super().__init__()
        self.body = nn.Sequential(conv_bn_relu(cin, cout, stride=stride),
                                  conv_bn_relu(cout, cout, dilation=dilation, relu=False))
        self.shortcut = (nn.Identity() if stride == 1 and cin == cout
                         else conv_bn_relu(cin, cout, kernel=1, stride=stride, relu=False))
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + self.shortcut(x))


class UpBlock(nn.Module):
    """Decoder step of a U-Net: 2x2 stride-2 transposed conv, concatenation with the skip, :class:`DoubleConv`."""

    def __init__(self, cin: int, cskip: int, cout: int):
        super().__init__()
        self.up = nn.ConvTranspose2d(cin, cout, kernel_size=2, stride=2)
        self.conv = DoubleConv(cout + cskip, cout)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cat([self.up(x), skip], dim=1))


class FiLM(nn.Module):
    """Feature-wise linear modulation ``x * (1 + gamma(c)) + beta(c)`` by a conditioning vector ``c`` [N, cond_dim].

    Both projections start at zero, so a freshly built FiLM is the identity and conditioning is learnt gradually.
    Two separate Linear layers (rather than one split in two) keep the exported graph free of Split/Slice ops.
    """

    def __init__(self, cond_dim: int, channels: int):
        super().__init__()
        self.gamma = nn.Linear(cond_dim, channels)
        self.beta = nn.Linear(cond_dim, channels)
        for lin in (self.gamma, self.beta):
            nn.init.zeros_(lin.weight)
            nn.init.zeros_(lin.bias)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        g = self.gamma(cond).unsqueeze(-1).unsqueeze(-1)
        b = self.beta(cond).unsqueeze(-1).unsqueeze(-1)
        return x * (1.0 + g) + b


def count_parameters(model: nn.Module, *, trainable_only: bool = False) -> int:
    """Number of parameters (elements) of ``model`` (BatchNorm running statistics are buffers, not counted)."""
    return int(sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only))


def tracing() -> bool:
    """True while torch.jit / ONNX export traces the model: Python-side input checks are skipped then, because
    they would be frozen into the graph as constants (or emit TracerWarnings) instead of checking anything."""
    return torch.jit.is_tracing() or torch.jit.is_scripting() or torch.onnx.is_in_onnx_export()


def check_tensor(x: torch.Tensor, name: str, *, ndim: int, dims: dict[int, int] | None = None,
                 multiple_of: dict[int, int] | None = None) -> None:
    """Validate a model input eagerly (no-op while tracing).

    Args:
        x: the tensor.
        name: argument name used in the error message.
        ndim: required number of dimensions.
        dims: ``{axis: size}`` that must match exactly.
        multiple_of: ``{axis: m}``: the size along ``axis`` must be a positive multiple of ``m``.

    Raises:
        TypeError: ``x`` is not a floating-point tensor.
        ValueError: a dimension is wrong (the message names ``name`` and the offending shape).
    """
    if tracing():
        return
    if not isinstance(x, torch.Tensor) or not torch.is_floating_point(x):
        raise TypeError(f"{name} must be a floating-point torch.Tensor, got "
                        f"{type(x).__name__}{'' if not isinstance(x, torch.Tensor) else ' of ' + str(x.dtype)}")
    if x.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {tuple(x.shape)}")
    if x.shape[0] < 1:
        raise ValueError(f"{name} has an empty batch: shape {tuple(x.shape)}")
    for axis, size in (dims or {}).items():
        if x.shape[axis] != size:
            raise ValueError(f"{name} must have size {size} along axis {axis}, got shape {tuple(x.shape)}")
    for axis, m in (multiple_of or {}).items():
        if x.shape[axis] < m or x.shape[axis] % m:
            raise ValueError(f"{name} size along axis {axis} must be a positive multiple of {m}, "
                             f"got shape {tuple(x.shape)}")


# ---------------------------------------------------------------------------------------------------------------------
# BatchNorm folding
# ---------------------------------------------------------------------------------------------------------------------

def _fold_into_conv(conv: nn.Conv2d | nn.ConvTranspose2d, bn: nn.BatchNorm2d) -> None:
    """Fold an eval-mode BatchNorm into the preceding convolution, in float64 to keep the fp32 result exact."""
    scale = bn.weight.detach().double() / torch.sqrt(bn.running_var.double() + bn.eps)
    shift = bn.bias.detach().double() - bn.running_mean.double() * scale
    w = conv.weight.detach().double()
    if isinstance(conv, nn.ConvTranspose2d):
        # weight layout [Cin, Cout/groups, kh, kw]: output channels on axis 1
        if conv.groups != 1:
            raise ValueError(f"cannot fold BatchNorm into a grouped ConvTranspose2d (groups={conv.groups})")
        w = w * scale.view(1, -1, 1, 1)
    else:
        w = w * scale.view(-1, 1, 1, 1)
    b = conv.bias.detach().double() if conv.bias is not None else torch.zeros_like(scale)
    b = b * scale + shift
    conv.weight = nn.Parameter(w.to(conv.weight.dtype))
    conv.bias = nn.Parameter(b.to(conv.weight.dtype))


def fold_batchnorm(model: nn.Module, *, inplace: bool = False) -> nn.Module:
    """Return ``model`` with every BatchNorm2d that directly follows a Conv2d/ConvTranspose2d inside an
    ``nn.Sequential`` folded into that convolution (the BN is replaced by Identity).

    The model is put in eval mode (folding uses the running statistics). A BatchNorm that cannot be folded
    (not preceded by a convolution in the same Sequential) raises ValueError, so an exported graph never carries
    a BatchNormalization node by accident.
    """
    if not inplace:
        model = copy.deepcopy(model)
    model.eval()
    for seq in [m for m in model.modules() if isinstance(m, nn.Sequential)]:
        names = list(seq._modules.keys())
        for prev, cur in zip(names, names[1:]):
            bn = seq._modules[cur]
            conv = seq._modules[prev]
            if isinstance(bn, nn.BatchNorm2d) and isinstance(conv, (nn.Conv2d, nn.ConvTranspose2d)):
                _fold_into_conv(conv, bn)
                seq._modules[cur] = nn.Identity()
    leftovers = [name for name, m in model.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if leftovers:
        raise ValueError(f"BatchNorm layers not preceded by a convolution cannot be folded: {leftovers}")
    return model


def prepare_for_export(model: nn.Module) -> nn.Module:
    """An eval-mode copy of ``model`` ready to trace: BatchNorms folded (:func:`fold_batchnorm`) and every module
    with a ``freeze()`` method (e.g. :class:`ramh_train.ordinal.OrdinalHead`) frozen to constants, so the graph
    holds no arithmetic on parameters. ``model`` itself is not modified."""
    out = fold_batchnorm(model)
    for m in out.modules():
        freeze = getattr(m, "freeze", None)
        if callable(freeze):
            freeze()
    return out


def init_weights(modules: Iterable[nn.Module]) -> None:
    """He initialisation for convolutions (ReLU networks), unit/zero for BatchNorm."""
    for m in modules:
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


# ---------------------------------------------------------------------------------------------------------------------
# Common interface of the exportable models
# ---------------------------------------------------------------------------------------------------------------------

class ExportableModel(nn.Module):
    """Interface shared by :class:`BoneSegNet`, :class:`JointNet` and :class:`GlobalNet`.

    * ``forward(*inputs) -> dict[str, Tensor]``: everything a training loop needs (the exported outputs and any
      training-only extras). It is ``body(*prepare(*inputs))``.
    * :meth:`prepare`: the part of the graph that must stay in fp32 even in an fp16 export (e.g. the window
      normalisation of raw 16-bit intensities, which overflow fp16); identity by default.
    * :attr:`input_names` / :attr:`output_names`: ONNX tensor names, in order; exported outputs are a subset of
      the forward dict's keys.
    * :meth:`input_spec` / :meth:`output_spec`: shapes with ``"N"`` for the batch, dtypes (manifest format).
    * :meth:`example_inputs`: random or realistic inputs of the export shape (parity checks, latency).
    * :attr:`config` + :func:`ramh_train.models.from_config`: rebuild the architecture from a checkpoint.
    * :meth:`manifest_fields`: the task-specific part of this model's bundle manifest entry.
    """

    task: str = ""
    input_names: tuple[str, ...] = ()
    output_names: tuple[str, ...] = ()

    def __init__(self) -> None:
        super().__init__()
        self.config: dict = {}

    def prepare(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return inputs

    def body(self, *inputs: torch.Tensor) -> dict[str, torch.Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError

    def check_inputs(self, *inputs: torch.Tensor) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, *inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        if len(inputs) != len(self.input_names):
            raise ValueError(f"{type(self).__name__} takes {len(self.input_names)} inputs "
                             f"({', '.join(self.input_names)}), got {len(inputs)}")
        self.check_inputs(*inputs)
        return self.body(*self.prepare(*inputs))

    def input_spec(self) -> list[dict]:  # pragma: no cover - abstract
        raise NotImplementedError

    def output_spec(self) -> list[dict]:  # pragma: no cover - abstract
        raise NotImplementedError

    def example_inputs(self, batch: int = 1, *, kind: str = "random", seed: int = 0) -> tuple[torch.Tensor, ...]:
        raise NotImplementedError  # pragma: no cover - abstract

    def manifest_fields(self, **kwargs) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError

    def num_parameters(self) -> int:
        return count_parameters(self)


def check_batch(batch: int) -> None:
    if not isinstance(batch, int) or batch < 1:
        raise ValueError(f"batch must be a positive int, got {batch!r}")


def check_kind(kind: str) -> None:
    if kind not in ("random", "realistic"):
        raise ValueError(f"kind must be 'random' or 'realistic', got {kind!r}")


def smooth_field(batch: int, h: int, w: int, generator: torch.Generator, *, cells: int = 8) -> torch.Tensor:
    """A smooth random image [batch, 1, h, w] in [0, 1]: bilinear upsampling of a coarse random grid, plus a few
    bright elongated 'bones' - stands in for a radiograph in parity checks (realistic value ranges and gradients)."""
    coarse = torch.rand(batch, 1, cells, cells, generator=generator)
    img = nn.functional.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False) * 0.4
    yy = torch.linspace(0, 1, h).view(1, h, 1)
    xx = torch.linspace(0, 1, w).view(1, 1, w)
    for _ in range(5):
        cx, cy, rx, ry = torch.rand(4, generator=generator)
        blob = ((xx - cx) / (0.03 + 0.1 * rx)) ** 2 + ((yy - cy) / (0.1 + 0.3 * ry)) ** 2
        img = img + 0.5 * (blob < 1.0).to(img.dtype).unsqueeze(0)
    return img.clamp(0.0, 1.0)


def example_image(batch: int, channels: int, hw: tuple[int, int], kind: str, seed: int) -> torch.Tensor:
    """An example image input [batch, channels, h, w] float32 for export and parity checks, deterministic in ``seed``:
    ``kind="random"``: standard normal; ``"realistic"``: :func:`smooth_field` (the same in every channel) normalised
    with mean 0.5 / std 0.25.

    Raises:
        ValueError: ``batch`` is not a positive int, or ``kind`` is neither ``"random"`` nor ``"realistic"``.
    """
    check_batch(batch)
    check_kind(kind)
    g = torch.Generator().manual_seed(seed)
    h, w = hw
    if kind == "random":
        return torch.randn(batch, channels, h, w, generator=g)
    return (smooth_field(batch, h, w, g).expand(-1, channels, -1, -1) - 0.5) / 0.25
