"""Kernel benchmarks: every core op against what a user would otherwise call, on realistic sizes.

    python benchmarks/kernels.py [--device cpu|cuda|all] [--only preprocess,roi,...] [--out benchmarks/results]

Each family lives in benchmarks/bench_<family>.py with ``run(device) -> list[dict]``; ratios are measured in the same
run. Results go to benchmarks/results/kernels_<device>.json with the machine description.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import RESULTS_DIR, machine, print_table, write_results  # noqa: E402

FAMILIES = ("preprocess", "postprocess", "roi", "quantify")



def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda", "all"))
    ap.add_argument("--only", default=",".join(FAMILIES), help="comma-separated families")
    ap.add_argument("--out", default=str(RESULTS_DIR))
    args = ap.parse_args(argv)
    import ramh_rt

    devices = ["cpu", "cuda"] if args.device == "all" else [args.device]
    if "cuda" in devices and not ramh_rt.cuda_available():
        print("CUDA requested but not available:", ramh_rt.build_info(), file=sys.stderr)
        return 2
    print("machine:", machine())
    for device in devices:
        records = []
        for fam in args.only.split(","):
            fam = fam.strip()
            if fam not in FAMILIES:
                ap.error(f"unknown family {fam!r}; known: {', '.join(FAMILIES)}")
            mod = importlib.import_module(f"bench_{fam}")
            print(f"\n## {fam} on {device}")
            recs = mod.run(device)
            print_table(recs)
            records += recs
        path = write_results(f"kernels_{device}", records, Path(args.out))
        print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
