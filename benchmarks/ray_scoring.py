"""Ray scoring benchmark: ramh_rt.distributed.score against the serial Analyzer on the same images.

    python benchmarks/ray_scoring.py [--n 16] [--seed 70000] [--cpus 2] [--out benchmarks/results]

Writes ``--n`` phantom radiographs (default generator settings, 1400-2900 px a side) as PNG files, then times, on the
same files:
* the serial :class:`ramh_rt.Analyzer` (ONNX Runtime CPU) with 1 intra-op thread (what one Ray CPU worker gets),
  before and after the Ray runs (to see the machine's drift), and with the default thread count;
* :func:`ramh_rt.distributed.score` on a local Ray cluster of ``--cpus`` CPUs with 1 and with 2 workers (1 CPU each),
  each into a fresh output folder: wall time of the call (actor start-up and model loading, scheduling, per-image
  JSON, Parquet write and merge included; Ray's own start-up excluded and reported apart);
* Ray alone: 48 missing files through 1 worker (each an error row at once), i.e. Ray's cost per row and per run
  without the models.

Reported: images/s of each, the per-image overhead Ray adds (1-worker Ray wall per image minus the 1-thread serial
wall per image), the fixed cost of a run (wall minus the actors' per-image work) and Ray's cost per row. Results go
to ``benchmarks/results/ray_scoring_cpu.json`` with the machine description and load averages (a shared machine's
load moves these figures: read them with it).
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
    ap.add_argument("--n", type=int, default=16)
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

    def serial(run: str, threads: int | None) -> dict:
        opts = {"intra_op_threads": threads} if threads else {}
        az = ramh_rt.Analyzer(backend="onnxruntime-cpu", keep_image=False, **opts)
        az.analyze(paths[0])  # warm-up: first-call allocations
        t0 = time.perf_counter()
        n = sum(1 for a in az.iter_batch([str(p) for p in paths]) if a)
        wall = time.perf_counter() - t0
        rec = {"run": run, "workers": 1, "threads": threads or "default", "images": n, "wall_s": wall,
               "images_per_s": n / wall, "wall_ms_per_image": wall / n * 1e3, "load_average": os.getloadavg()[0]}
        print(rec, flush=True)
        return rec

    def on_ray(run: str, inputs, workers: int) -> dict:
        out = work / run
        rep = distributed.score(inputs, out, num_workers=workers, backend="onnxruntime-cpu", batch_size=4,
                                progress=False)
        rows = distributed.read_scores(out).to_pylist()
        busy = sum(r["wall_ms"] for r in rows) / 1e3 / workers  # the actors' per-image work, per worker
        rec = {"run": run, "workers": workers, "threads": 1, "images": rep.scored, "failed": rep.failed,
               "wall_s": rep.wall_s, "images_per_s": rep.images_per_s, "wall_ms_per_image": rep.wall_s / rep.scored
               * 1e3, "median_in_actor_ms_per_image": statistics.median(r["wall_ms"] for r in rows),
               "fixed_cost_s": rep.wall_s - busy, "load_average": os.getloadavg()[0]}
        print(rec, flush=True)
        return rec

    records.append(serial("serial_1_thread", 1))
    records.append(serial("serial_default_threads", None))
    pkg_root = str(Path(ramh_rt.__file__).resolve().parents[1])
    t0 = time.perf_counter()
    ray.init(num_cpus=args.cpus, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": pkg_root}})
    ray_start = time.perf_counter() - t0
    try:
        records.append(on_ray("ray_1_worker", img_dir, 1))
        records.append(on_ray("ray_2_workers", img_dir, 2))
        # Ray's own cost per row, without the models: images that fail at once (missing files) become error rows.
        records.append(on_ray("ray_1_worker_error_rows_only", [str(work / f"missing_{i}.png") for i in range(48)], 1))
    finally:
        ray.shutdown()
    records.append(serial("serial_1_thread_again", 1))  # the machine's drift during the run
    by = {r["run"]: r for r in records}
    s1 = (by["serial_1_thread"]["wall_ms_per_image"] + by["serial_1_thread_again"]["wall_ms_per_image"]) / 2
    e = by["ray_1_worker_error_rows_only"]
    summary = {"images": args.n, "cpus": args.cpus, "load_average_at_start": list(load), "ray_init_s": ray_start,
               "serial_1_thread_ms_per_image_mean_of_two": s1,
               "per_image_overhead_ms_ray_1_worker_vs_serial_1_thread": by["ray_1_worker"]["wall_ms_per_image"] - s1,
               "in_actor_ms_per_image_minus_serial": by["ray_1_worker"]["median_in_actor_ms_per_image"] - s1,
               "ray_ms_per_error_row_after_start": (e["wall_s"] - e["fixed_cost_s"]) / e["images"] * 1e3,
               "ray_fixed_cost_s_per_run_error_rows": e["fixed_cost_s"],
               "speedup_2_vs_1_workers": by["ray_2_workers"]["images_per_s"] / by["ray_1_worker"]["images_per_s"],
               "command": f"python benchmarks/ray_scoring.py --n {args.n} --seed {args.seed} --cpus {args.cpus}"}
    path = write_results("ray_scoring_cpu", [{"summary": summary, "runs": records}], Path(args.out))
    print(f"Ray adds {summary['per_image_overhead_ms_ray_1_worker_vs_serial_1_thread']:.0f} ms per image (1 worker "
          f"vs serial, 1 thread each; start-up included), {summary['ray_fixed_cost_s_per_run_error_rows']:.1f} s "
          f"fixed per run; wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
