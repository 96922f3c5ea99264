"""Copy training runs' weights without their optimiser state, for the PyTorch-eager baseline on a device machine
(a call carries at most 64 MiB). Usage: python tools/slim_checkpoints.py RUNS_DIR OUT_DIR
RUNS_DIR holds bones/, joints/, global/ (each with last.pt); OUT_DIR gets the same layout with last.pt holding
only ``model_config`` and ``model`` (what ramh_train.engine.load_trained reads)."""
from __future__ import annotations

import sys
from pathlib import Path

import torch


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    src, dst = Path(argv[0]), Path(argv[1])
    for name in ("bones", "joints", "global"):
        ckpt = src / name / "last.pt"
        if not ckpt.is_file():
            print(f"{ckpt}: missing", file=sys.stderr)
            return 1
        state = torch.load(ckpt, map_location="cpu", weights_only=False)
        (dst / name).mkdir(parents=True, exist_ok=True)
        tmp = dst / name / "last.pt.tmp"
        torch.save({"model_config": state["model_config"], "model": state["model"]}, tmp)
        tmp.replace(dst / name / "last.pt")  # atomic: a half-written checkpoint never has the final name
        print(f"{dst / name / 'last.pt'}: {(dst / name / 'last.pt').stat().st_size / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
