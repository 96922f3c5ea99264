"""Ray scoring benchmark: ramh_rt.distributed.score against the serial Analyzer on the same images.

    python benchmarks/ray_scoring.py [--n 24] [--seed 70000] [--cpus 2] [--out benchmarks/results]

Writes ``--n`` phantom radiographs (default generator settings, 1400-2900 px a side) as PNG files, then times, on the
same files:
* the serial :class:`ramh_rt.Analyzer` (ONNX Runtime CPU) with 1 intra-op thread (what one Ray CPU worker gets)
  and with the default thread count;
* :func:`ramh_rt.distributed.score` on a local Ray cluster of ``--cpus`` CPUs with 1 and with 2 workers (1 CPU each),
  each into a fresh output folder: wall time of the call (actor start-up, scheduling, per-image JSON, Parquet write
  and merge included; Ray's own start-up excluded and reported apart).

Reported: images/s of each, the per-image overhead Ray adds (1-worker Ray wall per image minus the 1-thread serial
wall per image) and the fixed cost of a run (wall minus the actors' per-image work). Results go to
``benchmarks/results/ray_scoring_cpu.json`` with the machine description and the load average at the start.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import RESULTS_DIR, write_results  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=24)
    ap.add_argument("--seed", type=int, default=70000)
    ap.add_argument("--cpus", type=int, default=2)
    ap.add_argument("--out", default=str(RESULTS_DIR))
    args = ap.parse_args(argv)

    import ray
    from PIL import Image

    import ramh_rt
    from ramh_rt import distributed
    from ramh_train.phantoms import generate

    load = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="ramh_ray_bench_"))
    img_dir = work / "images"
    img_dir.mkdir()
    paths = []
    for seed in range(args.seed, args.seed + args.n):
        s = generate(seed)
        p = img_dir / f"{s.stem}.png"
        Image.fromarray(s.image).save(p)
        paths.append(p)
    print(f"{args.n} images written to {img_dir}", flush=True)

    records = []
    serial = {}
    for threads in (1, None):
        opts = {"intra_op_threads": threads} if threads else {}
        az = ramh_rt.Analyzer(backend="onnxruntime-cpu", keep_image=False, **opts)
        az.analyze(paths[0])  # warm-up: first-call allocations
        t0 = time.perf_counter()
        ms = [a.meta.timings_ms["total"] for a in az.iter_batch([str(p) for p in paths])]
        wall = time.perf_counter() - t0
        name = f"serial_{threads or 'default'}_threads"
        serial[name] = wall
        records.append({"run": name, "workers": 1, "images": args.n, "wall_s": wall, "images_per_s": args.n / wall,
                        "median_analysis_ms": statistics.median(ms)})
        print(records[-1], flush=True)
        del az

    pkg_root = str(Path(ramh_rt.__file__).resolve().parents[1])
    t0 = time.perf_counter()
    ray.init(num_cpus=args.cpus, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": pkg_root}})
    ray_start = time.perf_counter() - t0
    try:
        for workers in (1, 2):
            out = work / f"out_{workers}"
            rep = distributed.score(img_dir, out, num_workers=workers, backend="onnxruntime-cpu", batch_size=4,
                                    progress=False)
            rows = distributed.read_scores(out).to_pylist()
            ok = [r for r in rows if r["status"] == "ok"]
            busy = sum(r["wall_ms"] for r in rows) / 1e3 / workers
            records.append({"run": f"ray_{workers}_workers", "workers": workers, "images": rep.scored,
                            "failed": rep.failed, "wall_s": rep.wall_s, "images_per_s": rep.images_per_s,
                            "median_analysis_ms": statistics.median(r["analysis_ms"] for r in ok),
                            "median_row_wall_ms": statistics.median(r["wall_ms"] for r in ok),
                            "fixed_cost_s": rep.wall_s - busy, "ray_init_s": ray_start})
            print(records[-1], flush=True)
    finally:
        ray.shutdown()
    r1 = next(r for r in records if r["run"] == "ray_1_workers")
    overhead_ms = (r1["wall_s"] - serial["serial_1_threads"]) / args.n * 1e3
    summary = {"images": args.n, "cpus": args.cpus, "load_average_at_start": list(load),
               "per_image_overhead_ms_ray_1_worker_vs_serial_1_thread": overhead_ms,
               "speedup_2_vs_1_workers": next(r for r in records if r["run"] == "ray_2_workers")["images_per_s"]
               / r1["images_per_s"],
               "command": f"python benchmarks/ray_scoring.py --n {args.n} --seed {args.seed} --cpus {args.cpus}"}
    path = write_results("ray_scoring_cpu", [{"summary": summary, "runs": records}], Path(args.out))
    print(f"Ray adds {overhead_ms:.0f} ms per image (1 worker vs serial, 1 thread each); wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
