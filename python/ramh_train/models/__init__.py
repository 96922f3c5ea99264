"""The three exportable models of a ramh_rt bundle: bone segmentation, joint scoring and whole-image SvdH."""
from __future__ import annotations

from .blocks import ExportableModel, count_parameters, fold_batchnorm
from .bones import BoneSegNet, coord_channels, with_coords
from .global_model import GlobalNet
from .joints import JointNet, area_one_hot, score_masks

ARCHITECTURES: dict[str, type[ExportableModel]] = {"BoneSegNet": BoneSegNet, "JointNet": JointNet,
                                                   "GlobalNet": GlobalNet}


def from_config(config: dict) -> ExportableModel:
    """Rebuild a model from its :attr:`ExportableModel.config` (as stored in a checkpoint).

    Raises:
        ValueError: ``config`` has no known ``"arch"``.
    """
    arch = config.get("arch") if isinstance(config, dict) else None
    if arch not in ARCHITECTURES:
        raise ValueError(f"config['arch'] must be one of {sorted(ARCHITECTURES)}, got {arch!r}")
    kwargs = {k: (tuple(v) if isinstance(v, list) else v) for k, v in config.items() if k != "arch"}
    return ARCHITECTURES[arch](**kwargs)


__all__ = ["ARCHITECTURES", "BoneSegNet", "ExportableModel", "GlobalNet", "JointNet", "area_one_hot",
           "coord_channels", "count_parameters", "fold_batchnorm", "from_config", "score_masks", "with_coords"]
