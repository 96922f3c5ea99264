"""``ramh-train``: build caches, train the three models, export a bundle, evaluate it end to end.

    ramh-train cache    --data DIR --split train --out CACHE
    ramh-train bones    --cache CACHE [--val CACHE] --run RUN [--steps N] ...
    ramh-train joints   --cache CACHE [--val CACHE] --run RUN ...
    ramh-train joints-refit --run RUN --cache CACHE --val CACHE --out RUN2   (score heads on frozen features)
    ramh-train global   --cache CACHE [--val CACHE] --run RUN ...
    ramh-train export   --bones RUN --joints RUN [--global RUN] --cache CACHE --bundle OUT [--fp16]
    ramh-train evaluate --bundle OUT --data DIR [--split test] [--out FILE]
    ramh-train quantize --bundle OUT --images PATH... --out OUT_INT8   (INT8 Q/DQ copy for TensorRT's INT8 path)
    ramh-train card     --bundle OUT   (MODEL_CARD.md from the manifest; export writes it too)
    ramh-train qc-stats --bundle OUT --train phantoms:SEED:N|DIR --heldout phantoms:SEED:N|DIR   (manifest qc section)
    ramh-train view data|train|export ...   (the view classifier: field of view / not a hand; ramh_train.view)

Training resumes from RUN/last.pt when it exists; ``torchrun --nproc_per_node=K -m ramh_train.cli bones ...`` trains
with DistributedDataParallel on K GPUs (or processes). Exit codes: 0 ok, 1 failure, 2 usage error.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _train_args(p: argparse.ArgumentParser, steps: int, batch: int, lr: float) -> None:
    p.add_argument("--cache", required=True, help="training cache (ramh-train cache)")
    p.add_argument("--val", help="validation cache, evaluated every --eval-every steps and at the end")
    p.add_argument("--run", required=True, help="run directory (checkpoints, log.jsonl); resumes when it exists")
    p.add_argument("--steps", type=int, default=steps)
    p.add_argument("--batch-size", type=int, default=batch)
    p.add_argument("--lr", type=float, default=lr)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--warmup-steps", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    p.add_argument("--amp", default="auto", choices=["auto", "off", "bf16", "fp16"])
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--channels-last", default="auto", choices=["auto", "on", "off"],
                   help="NHWC activations (auto: on the CPU, where oneDNN runs these models about 2x faster)")
    p.add_argument("--stop-at", type=int, default=0, metavar="STEP",
                   help="checkpoint and stop after STEP (the schedule still runs to --steps; rerun to continue)")
    p.add_argument("--checkpoint-every", type=int, default=100)
    p.add_argument("--eval-every", type=int, default=0)


def _cfg(args):
    from .engine import TrainConfig

    return TrainConfig(run_dir=args.run, steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                       weight_decay=args.weight_decay, warmup_steps=args.warmup_steps, seed=args.seed,
                       checkpoint_every=args.checkpoint_every, amp=args.amp, device=args.device,
                       threads=args.threads, channels_last=args.channels_last, stop_at=args.stop_at,
                       extra={"eval_every": args.eval_every})


def _finish(run: str, summary: dict) -> int:
    out = {k: v for k, v in summary.items() if k != "history"}
    Path(run, "summary.json").write_text(json.dumps(out, indent=2, default=str))
    print(json.dumps(out.get("eval", {}), indent=2, default=str))
    return 0


def cmd_cache(args) -> int:
    from .cache import CacheSpec, build_cache

    spec = CacheSpec(input_hw=tuple(args.input_hw), roi_size=args.roi_size)
    build_cache(args.data, args.split, args.out, spec, workers=args.workers, limit=args.limit)
    print(f"cache written to {args.out}")
    return 0


def cmd_bones(args) -> int:
    from .train import train_bones

    _, summary = train_bones(args.cache, args.val, _cfg(args), widths=tuple(args.widths),
                             crop_hw=tuple(args.crop) if args.crop else None)
    return _finish(args.run, summary)


def cmd_joints(args) -> int:
    from .train import train_joints

    _, summary = train_joints(args.cache, args.val, _cfg(args), widths=tuple(args.widths),
                              positive_weight=args.positive_weight)
    return _finish(args.run, summary)


def cmd_joints_refit(args) -> int:
    from .train import refit_joint_heads

    report = refit_joint_heads(args.run, args.cache, args.val, args.out, epochs=args.epochs, lr=args.lr,
                               seed=args.seed, threads=args.threads, max_items=args.max_items,
                               flips=args.flips)
    for kind in ("be", "jsn"):
        r = report[kind]
        print(f"{kind}: validation QWK {r['val_qwk']:.4f} (epoch {r['best_epoch']})")
    e = report["erosion"]
    print(f"erosion: threshold {e['threshold']:g} (validation pooled Dice {e['dsc']:.4f})")
    print(f"refitted run written to {args.out}")
    return 0


def cmd_global(args) -> int:
    from .train import train_global

    _, summary = train_global(args.cache, args.val, _cfg(args), pool=args.pool, density_weight=args.density_weight,
                              widths=tuple(args.widths))
    return _finish(args.run, summary)


def cmd_export(args) -> int:
    import tempfile

    import torch

    from .cache import Cache
    from .deploy import BoneGraph, GlobalGraph, JointGraph
    from .engine import load_trained
    from .export import export_onnx, write_bundle
    from .model_card import write_model_card
    from .models import from_config

    spec = Cache(args.cache).spec
    window = {"percentiles": list(spec.percentiles), "mean": spec.mean, "std": spec.std}
    runs = {"bones": args.bones, "joints": args.joints, "global": getattr(args, "global_")}
    graphs = {}
    erosion_threshold = args.erosion_threshold
    for role, run in runs.items():
        if not run:
            continue
        model, state = load_trained(run, from_config)
        if role == "global":
            from .train import global_input_pool

            try:
                pool = global_input_pool(model, spec.input_hw)
            except ValueError as e:
                print(f"ramh-train export: {e}", file=sys.stderr)
                return 2
            graphs[role] = GlobalGraph(model, pool=pool).eval()
        else:
            graphs[role] = {"bones": BoneGraph, "joints": JointGraph}[role](model).eval()
        if role == "joints" and erosion_threshold is None:
            # chosen on the validation crops by joints-refit; 0.5 for a run that has none
            erosion_threshold = float(state.get("erosion_threshold", 0.5))
            print(f"erosion threshold {erosion_threshold:g} (from {run})")
    if "bones" not in graphs or "joints" not in graphs:
        print("ramh-train export: --bones and --joints are required", file=sys.stderr)
        return 2
    fields = {
        "bones": dict(window=window, antialias=spec.antialias, threshold=0.0, min_area=args.min_area,
                      fill_holes=True),
        "joints": dict(percentiles=tuple(spec.percentiles), roi_scale=1.0, erosion_threshold=erosion_threshold),
        "global": dict(window=window, antialias=spec.antialias),
    }
    metrics = json.loads(Path(args.metrics).read_text()) if args.metrics else {}
    with tempfile.TemporaryDirectory() as tmp:
        entries = {}
        for role, g in graphs.items():
            path = Path(tmp) / f"{role}.onnx"
            with torch.no_grad():
                report = export_onnx(g, g.example_inputs(1, kind="realistic"), path, fp16=args.fp16)
            entry = {"onnx": str(path), **report["manifest"], **g.manifest_fields(**fields[role])}
            if role == "joints":
                entry["roi"]["size"] = [spec.roi_size, spec.roi_size]
                entry["roi"]["window"] = window
                entry["min_lesion_px"] = args.min_lesion_px
            entries[role] = entry
            print(f"{role}: {report['parameters']:,} parameters, {report['bytes'] / 1e6:.1f} MB, parity "
                  f"{json.dumps(report['parity'], default=str)[:160]}")
        manifest = {
            "bundle_id": args.bundle_id, "version": args.version,
            "description": args.description,
            "clinical_use": "NOT clinically validated: trained on synthetic phantom radiographs only; for software "
                            "integration, testing and benchmarking, not for diagnosis or treatment decisions.",
            "training_data": {"kind": "synthetic-phantoms", "description": args.training_data,
                              "commands": args.command or []},
            "metrics": metrics,
        }
        out = write_bundle(args.bundle, entries, manifest, overwrite=args.overwrite)
    card = write_model_card(out)
    print(f"bundle written to {out} (model card {card.name})")
    return 0


def cmd_card(args) -> int:
    from .model_card import write_model_card

    card = write_model_card(args.bundle, args.out)
    print(f"model card written to {card}")
    return 0


def cmd_quantize(args) -> int:
    from .quantize import image_paths, quantize_bundle

    paths = image_paths(args.images)
    if args.limit:
        paths = paths[: args.limit]
    if not paths:
        raise ValueError(f"no radiographs found in {', '.join(args.images)}")
    report = quantize_bundle(args.bundle, paths, args.out, roles=args.models.split(","), method=args.method,
                             op_types=args.op_types.split(","), bundle_id=args.bundle_id, overwrite=args.overwrite,
                             progress=True)
    if args.report:
        from ramh_rt.fs import write_atomic

        write_atomic(Path(args.report), json.dumps(report, indent=2, default=str))
    from .model_card import write_model_card

    card = write_model_card(report["bundle"])
    print(f"INT8 bundle written to {report['bundle']} (model card {card.name}); evaluate it with "
          f"ramh-train evaluate --bundle {args.out}")
    return 0


def cmd_evaluate(args) -> int:
    from .evaluate import evaluate_bundle

    report = evaluate_bundle(args.bundle, args.data, args.split, limit=args.limit, backend=args.backend)
    text = json.dumps(report, indent=2, default=str)
    if args.out:
        from ramh_rt.fs import write_atomic

        write_atomic(Path(args.out), text)
    r = report
    print(f"bones: mean DSC (28 bones) {r['bones']['mean_dsc_28_bones']:.4f}, found {r['bones']['bones_found_mean']:.1f}")
    print(f"erosion: DSC {r['erosion']['dsc']['mean']:.4f}")
    for kind in ("be", "jsn"):
        if r[kind]:
            print(f"{kind}: QWK {r[kind]['overall']['qwk']:.4f}, MAE {r[kind]['overall']['mae']:.3f}")
    for k, v in r["totals"].items():
        print(f"total ({k}): PCC {v['pcc']:.4f}, RMSE {v['rmse']:.2f}")
    print(f"ROI: mean IoU {r['roi']['mean_iou']:.3f}, share >= 0.5 {r['roi']['share_iou_ge_0.5']:.3f}")
    print(f"latency p50 {r['latency_ms']['p50']:.0f} ms")
    return 0


def cmd_qc_stats(args) -> int:
    from .qc_stats import run

    run(args.bundle, args.train, args.heldout, quantile=args.quantile, level=args.level, records_out=args.records)
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="ramh-train", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("cache", help="turn a dataset split into model-ready arrays (resumable)")
    p.add_argument("--data", required=True)
    p.add_argument("--split", required=True, choices=["train", "val", "test"])
    p.add_argument("--out", required=True)
    p.add_argument("--input-hw", type=int, nargs=2, default=(640, 512), metavar=("H", "W"))
    p.add_argument("--roi-size", type=int, default=224)
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--limit", type=int, default=None, help="first N images only")
    p.set_defaults(func=cmd_cache)

    p = sub.add_parser("bones", help="train the 30-class bone segmentation model")
    _train_args(p, steps=3000, batch=8, lr=2e-3)
    p.add_argument("--widths", type=int, nargs="+", default=[16, 32, 64, 128, 256])
    p.add_argument("--crop", type=int, nargs=2, default=[320, 256], metavar=("H", "W"),
                   help="random training crops of the model input (coordinates stay global); 0 0 = whole input")
    p.set_defaults(func=cmd_bones)

    p = sub.add_parser("joints", help="train the joint model (erosion mask + BE/JSN ordinal scores)")
    _train_args(p, steps=3000, batch=32, lr=2e-3)
    p.add_argument("--widths", type=int, nargs=5, default=[16, 24, 32, 64, 96])
    p.add_argument("--positive-weight", type=float, default=4.0,
                   help="sampling weight of diseased joints (erosion or a score > 0) relative to healthy ones")
    p.set_defaults(func=cmd_joints)

    p = sub.add_parser("joints-refit", help="refit the joint model's BE/JSN heads on its frozen features "
                                            "(model selection by validation QWK)")
    p.add_argument("--run", required=True, help="trained joints run")
    p.add_argument("--cache", required=True, help="training cache")
    p.add_argument("--val", required=True, help="validation cache (epoch selection by QWK)")
    p.add_argument("--out", required=True, help="output run directory (exportable with --joints)")
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--max-items", type=int, default=None, help="first N training items only (quick checks)")
    p.add_argument("--flips", action="store_true", help="also the mirror image of every training crop")
    p.set_defaults(func=cmd_joints_refit)

    p = sub.add_parser("global", help="train the whole-image SvdH regressor")
    _train_args(p, steps=1500, batch=16, lr=2e-3)
    p.add_argument("--widths", type=int, nargs=5, default=[16, 32, 64, 128, 160])
    p.add_argument("--pool", type=int, default=2,
                   help="average-pool the bone-model input by this factor (1: the model sees it at full size)")
    p.add_argument("--density-weight", type=float, default=0.0,
                   help="weight of the CAM density loss (where each joint's points lie; 0: totals only)")
    p.set_defaults(func=cmd_global)

    p = sub.add_parser("export", help="export trained runs to an ONNX model bundle")
    p.add_argument("--bones", required=True)
    p.add_argument("--joints", required=True)
    p.add_argument("--global", dest="global_")
    p.add_argument("--cache", required=True, help="the training cache (its spec goes into the manifest)")
    p.add_argument("--bundle", required=True, help="output bundle directory")
    p.add_argument("--bundle-id", default="ramh-default")
    p.add_argument("--version", default="0.1.0")
    p.add_argument("--description", default="ramh_rt demo bundle")
    p.add_argument("--training-data", default="synthetic phantom hands (ramh-data phantoms)")
    p.add_argument("--command", action="append", help="a command that made the bundle (repeatable)")
    p.add_argument("--metrics", help="JSON file with evaluation metrics to record")
    p.add_argument("--fp16", action="store_true")
    p.add_argument("--min-area", type=int, default=4)
    p.add_argument("--min-lesion-px", type=int, default=4)
    p.add_argument("--erosion-threshold", type=float, default=None,
                   help="erosion probability threshold (default: the one joints-refit chose on validation, else 0.5)")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("card", help="(re)write a bundle's MODEL_CARD.md from its manifest and metrics")
    p.add_argument("--bundle", required=True, help="bundle directory")
    p.add_argument("--out", help="where to write the card (default BUNDLE/MODEL_CARD.md)")
    p.set_defaults(func=cmd_card)

    p = sub.add_parser("evaluate", help="evaluate a bundle end to end (RAM-H1200 protocol)")
    p.add_argument("--bundle", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--split", default="test")
    p.add_argument("--limit", type=int)
    p.add_argument("--backend", default="onnxruntime-cpu")
    p.add_argument("--out", help="write the full report as JSON")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("quantize", help="write an INT8 Q/DQ copy of a bundle (TensorRT's strongly typed INT8 path), "
                                        "calibrated on radiographs")
    p.add_argument("--bundle", required=True, help="the fp32 bundle")
    p.add_argument("--images", required=True, nargs="+", help="calibration radiographs: files and/or directories")
    p.add_argument("--out", required=True, help="the INT8 bundle directory to write")
    p.add_argument("--limit", type=int, help="use at most this many calibration images")
    p.add_argument("--models", default="bones,joints,global", help="comma-separated roles to quantize")
    p.add_argument("--method", default="percentile", choices=["percentile", "minmax", "entropy"])
    p.add_argument("--op-types", default="Conv", help="comma-separated ONNX op types to quantize (default Conv)")
    p.add_argument("--bundle-id", help="the new bundle's id (default <id>-int8)")
    p.add_argument("--report", help="write the quantization report (agreement with fp32) as JSON")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=cmd_quantize)

    p = sub.add_parser("qc-stats", help="fit the bundle's quality-control statistics (training domain, uncertainty "
                                        "calibration) and write them into its manifest")
    p.add_argument("--bundle", required=True, help="bundle directory (its manifest.json is updated in place)")
    p.add_argument("--train", required=True, help="training-domain images: phantoms:SEED:N or a directory")
    p.add_argument("--heldout", required=True,
                   help="held-out images of the same domain: phantoms:SEED:N (also calibrates the uncertainty) or a "
                        "directory (domain threshold only)")
    p.add_argument("--quantile", type=float, default=0.99, help="domain threshold: this quantile of the held-out "
                                                                "distances")
    p.add_argument("--level", type=float, default=0.9, help="nominal coverage of the total's interval")
    p.add_argument("--records", help="also write the per-image records (features, probabilities) as JSON here")
    p.set_defaults(func=cmd_qc_stats)

    from .view import add_parser as add_view_parser

    add_view_parser(sub)
    return ap


def main(argv: list[str] | None = None) -> int:
    ap = build_parser()
    args = ap.parse_args(argv)
    if getattr(args, "crop", None) == [0, 0]:
        args.crop = None
    if getattr(args, "steps", 1) < 1:
        ap.error("--steps must be at least 1")
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted (the run resumes from its last checkpoint)", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError, RuntimeError) as e:
        print(f"ramh-train {args.cmd}: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

