"""What the view classifier costs: ``analyze()`` on a plain upright hand with the default bundle against the same
bundle without its ``view`` section (the geometric decision alone), interleaved in one process.

    python benchmarks/view_cost.py [--rounds 20] [--image PATH]

Each round analyses the image once with each Analyzer, in alternating order, so a drift of the machine's speed
affects both alike; the p50 of each and their ratio are printed and written to
``benchmarks/results/view_cost_cpu.json``. Issue 12 allows the input-understanding stage at most +15 % of the CPU
p50 of a plain hand.
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import write_results  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--image", help="the plain hand (default: the bundled sample)")
    args = ap.parse_args(argv)
    import ramh_rt
    from ramh_rt import io
    from ramh_rt.bundle import Bundle
    from ramh_rt.cli import sample_image_path

    image = io.load_image(args.image or sample_image_path())
    with tempfile.TemporaryDirectory() as tmp:
        no_view = Path(tmp) / "no-view"
        shutil.copytree(Bundle.load().path, no_view)
        manifest = json.loads((no_view / "manifest.json").read_text())
        if "view" not in manifest:
            print("the default bundle has no view classifier: nothing to compare", file=sys.stderr)
            return 1
        manifest.pop("view")
        (no_view / "manifest.json").write_text(json.dumps(manifest))
        analyzers = {"with_view": ramh_rt.Analyzer(backend="onnxruntime-cpu"),
                     "without_view": ramh_rt.Analyzer(str(no_view), backend="onnxruntime-cpu")}
        times: dict[str, list[float]] = {k: [] for k in analyzers}
        understand: dict[str, list[float]] = {k: [] for k in analyzers}
        for a in analyzers.values():  # warm-up
            a.analyze(image)
        for r in range(args.rounds):
            order = list(analyzers) if r % 2 == 0 else list(reversed(analyzers))
            for name in order:
                t0 = time.perf_counter()
                res = analyzers[name].analyze(image)
                times[name].append((time.perf_counter() - t0) * 1e3)
                understand[name].append(res.meta.timings_ms.get("understand", float("nan")))
    p50 = {k: statistics.median(v) for k, v in times.items()}
    u50 = {k: statistics.median(v) for k, v in understand.items()}
    ratio = p50["with_view"] / p50["without_view"]
    print(f"analyze() p50: with the view classifier {p50['with_view']:.1f} ms, without {p50['without_view']:.1f} ms "
          f"(ratio {ratio:.3f}); understand stage p50 {u50['with_view']:.1f} vs {u50['without_view']:.1f} ms")
    write_results("view_cost_cpu", [{"rounds": args.rounds, "image": str(args.image or "sample"),
                                     "p50_ms": p50, "understand_p50_ms": u50, "ratio": ratio,
                                     "runs_ms": times}])
    return 0


if __name__ == "__main__":
    sys.exit(main())
