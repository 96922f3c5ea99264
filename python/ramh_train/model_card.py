"""MODEL_CARD.md of a bundle, written from its manifest: what the models are, how they were made, what they measure.

The numbers come from the manifest's ``metrics`` (the report of ``ramh-train evaluate`` on a held-out split), so a
card can never disagree with the bundle it describes. ``ramh-train card --bundle DIR`` (re)writes it.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from ramh_rt.fs import write_atomic

#: the acceptance targets of the default bundle (issue "Training, evaluation and ONNX export"), on held-out phantoms
TARGETS = {
    "bone mean DSC (28 bones)": (("bones", "mean_dsc_28_bones"), 0.95),
    "erosion DSC (per image, mean)": (("erosion", "dsc", "mean"), 0.60),
    "BE QWK (all joints)": (("be", "overall", "qwk"), 0.80),
    "JSN QWK (all joints)": (("jsn", "overall", "qwk"), 0.80),
    "SvdH hand total PCC (sum of joint scores)": (("totals", "svdh", "pcc"), 0.95),
}


def _get(d: Any, path: tuple[str, ...]) -> float | None:
    for k in path:
        if not isinstance(d, dict) or k not in d or d[k] is None:
            return None
        d = d[k]
    return float(d) if isinstance(d, (int, float)) else None


def _fmt(v: float | None, digits: int = 3) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def render(manifest: dict, sizes: dict[str, int]) -> str:
    """The card's Markdown for a bundle ``manifest`` (dict) and its files' sizes in bytes (``{file: bytes}``)."""
    m = manifest.get("metrics") or {}
    td = manifest.get("training_data") or {}
    lines = [
        f"# Model card: `{manifest.get('bundle_id')}` {manifest.get('version')}",
        "",
        "> **Not clinically validated.** " + str(manifest.get("clinical_use", "")),
        "",
        str(manifest.get("description", "")),
        "",
        "## Models",
        "",
        "| role | task | file | parameters | size | precision | inputs -> outputs |",
        "| --- | --- | --- | ---: | ---: | --- | --- |",
    ]
    for role, entry in manifest.get("models", {}).items():
        ins = ", ".join(f"{t['name']} {'x'.join(str(s) for s in t['shape'])}" for t in entry.get("inputs", []))
        outs = ", ".join(t["name"] for t in entry.get("outputs", []))
        size = sizes.get(entry.get("file", ""), 0)
        params = entry.get("parameters")
        lines.append(f"| {role} | {entry.get('task', '')} | `{entry.get('file')}` | "
                     f"{params:,} | {size / 1e6:.2f} MB | {entry.get('precision', 'fp32')} | {ins} -> {outs} |"
                     if isinstance(params, int) else
                     f"| {role} | {entry.get('task', '')} | `{entry.get('file')}` | ? | {size / 1e6:.2f} MB | "
                     f"{entry.get('precision', 'fp32')} | {ins} -> {outs} |")
    lines += ["", f"Total size of the bundle: {sum(sizes.values()) / 1e6:.1f} MB. Anatomy version "
              f"{manifest.get('anatomy_version')}; created {manifest.get('created')}.", ""]
    lines += ["## Training data", "", f"Kind: **{td.get('kind', 'unknown')}** — {td.get('description', '')}", ""]
    if td.get("commands"):
        lines += ["Made by:", "", "```bash", *td["commands"], "```", ""]
    lines += ["## Evaluation", ""]
    if not m:
        lines += ["No evaluation is recorded in this bundle's manifest.", ""]
    else:
        lines += [f"End to end through `ramh_rt.Analyzer` (backend `{m.get('backend')}`) on the `{m.get('split')}` "
                  f"split of a phantom set generated with a seed never used in training: {m.get('images')} hands. "
                  "Protocol of RAM-H1200 (docs in `ramh_train.evaluate`).", "",
                  "| metric | value | target | met |", "| --- | ---: | ---: | --- |"]
        for name, (path, target) in TARGETS.items():
            v = _get(m, path)
            lines.append(f"| {name} | {_fmt(v)} | >= {target} | {'yes' if v is not None and v >= target else 'NO'} |")
        extra = [
            ("bone mean NSD (2 px), per image", ("bones", "image", "nsd", "mean")),
            ("bone mean MSD (px), per image", ("bones", "image", "msd", "mean")),
            ("bones found per hand (of 28)", ("bones", "bones_found_mean")),
            ("erosion NSD", ("erosion", "nsd", "mean")), ("erosion recall", ("erosion", "recall", "mean")),
            ("erosion precision", ("erosion", "precision", "mean")),
            ("BE MAE", ("be", "overall", "mae")), ("BE W1-ACC", ("be", "overall", "w1_acc")),
            ("BE binary sensitivity (0 vs >0)", ("be", "overall", "binary_sensitivity")),
            ("JSN MAE", ("jsn", "overall", "mae")), ("JSN W1-ACC", ("jsn", "overall", "w1_acc")),
            ("JSN binary sensitivity (0 vs >0)", ("jsn", "overall", "binary_sensitivity")),
            ("SvdH total RMSE (points, sum of joint scores)", ("totals", "svdh", "rmse")),
            ("expected SvdH (from probabilities) PCC", ("totals", "expected_svdh", "pcc")),
            ("whole-image regressor PCC", ("totals", "global_svdh", "pcc")),
            ("whole-image regressor RMSE (points)", ("totals", "global_svdh", "rmse")),
            ("ROI mean IoU with the joint boxes", ("roi", "mean_iou")),
            ("ROI share with IoU >= 0.5", ("roi", "share_iou_ge_0.5")),
            ("analyze() latency p50 (ms, this evaluation's machine)", ("latency_ms", "p50")),
        ]
        lines += ["", "| further metric | value |", "| --- | ---: |"]
        lines += [f"| {name} | {_fmt(_get(m, path))} |" for name, path in extra]
        lines.append("")
    lines += _qc_section(manifest.get("qc"))
    lines += _view_section(manifest.get("view"), sizes)
    lines += [
        "## What these weights are not",
        "",
        "- Not trained or tested on a single real radiograph: the training and test hands are procedural phantoms "
        "(`ramh_train.phantoms`), whose anatomy, disease and acquisition are simplified. Real images differ in "
        "ways the phantoms do not model; expect far lower accuracy on them.",
        "- Not a medical device, not for diagnosis, treatment decisions or any clinical use.",
        "- Their purpose: to exercise and test the SDK end to end (the pipeline, the backends, the outputs) and to "
        "give throughput figures with realistic model sizes. Train on real annotated data (RAM-H1200 layout, "
        "`ramh-train`) for anything else.",
        "",
    ]
    return "\n".join(lines)


def _qc_section(qc: dict | None) -> list[str]:
    """The card's account of the bundle's quality-control statistics (``ramh-train qc-stats``), if it has them."""
    if not qc:
        return []
    lines = ["## Quality control statistics", ""]
    d = qc.get("domain")
    if d:
        tr, ho = d.get("train", {}), d.get("heldout", {})
        lines.append(f"- Training domain: {d.get('distance', 'mahalanobis')} distance over {len(d.get('features', []))} "
                     f"cheap features of the bone model's input and output, fitted on {tr.get('images', '?')} images "
                     f"({tr.get('images_from', '?')}); threshold {_fmt(d.get('threshold'))}, the "
                     f"{_fmt(d.get('threshold_quantile'), 2)} quantile of {ho.get('images', '?')} held-out images "
                     f"({ho.get('images_from', '?')}). Images farther away get the `out_of_domain` review reason.")
    u = qc.get("uncertainty")
    if u:
        lines.append(f"- Uncertainty: the expected absolute score errors scaled by {_fmt(u.get('be_scale'))} (BE) "
                     f"and {_fmt(u.get('jsn_scale'))} (JSN), the {_fmt(u.get('interval_level'), 2)} interval of the "
                     f"total widened by {_fmt(u.get('interval_scale'))}; calibrated on {u.get('heldout_hands', '?')} "
                     f"held-out phantoms ({u.get('images_from', '?')}), coverage {_fmt(u.get('heldout_coverage'), 2)}.")
    return lines + [""]


def _view_section(v: dict | None, sizes: dict[str, int]) -> list[str]:
    """The card's account of the bundle's view classifier (``ramh-train view export``), if it has one."""
    if not v:
        return []
    arch, tr, met = v.get("architecture", {}), v.get("training", {}), v.get("metrics", {})

    def seeds(key: str) -> str:
        return ", ".join(f"{a}..{b}" for a, b in tr.get(key) or []) or "?"
    lines = ["## View classifier (field of view, not a hand, rotation, chirality)", "",
             f"`{v.get('file')}` ({sizes.get(v.get('file', ''), 0) / 1e6:.2f} MB, {arch.get('parameters', '?')} "
             f"parameters, NumPy weights run by `ramh_rt.view` on every backend): a CNN of a "
             f"{arch.get('input_pool', 1)}x{arch.get('input_pool', 1)} average pooling, "
             f"{len(arch.get('conv_channels', []))} stride-2 3x3 convolutions ({arch.get('conv_channels')} channels, "
             f"batch norm folded) and a {arch.get('hidden')}-unit layer on a {v.get('input_hw')} letterboxed view of "
             f"each hand box, windowed to its {v.get('window_percentiles')} grey-level percentiles. Heads: field of "
             f"view {v.get('classes')}, rotation {v.get('rotations')} and apparent side {v.get('chirality')}. "
             "The input understanding fuses its probabilities with the silhouette and bone-layout evidence; alone "
             "it decides nothing.", "",
             f"Trained on phantom variants (`ramh_train.phantoms.variants`) of seeds {seeds('train_seeds')} "
             f"({tr.get('train_views', '?')} "
             f"hand boxes found by the runtime's own silhouette survey), {tr.get('steps', '?')} steps of "
             f"{tr.get('batch_size', '?')} (seed {tr.get('seed', '?')}, classes balanced by sampling) under heavy "
             "augmentation (quarter turns and flips with their labels, gamma, contrast, brightness, noise, blur, "
             f"scale, shift, inversion); validated on seeds {seeds('val_seeds')} ({tr.get('val_views', '?')} boxes). "
             "Real radiographs were never training input."]
    if met:
        rec = met.get("fov_recall", {})
        lines += ["", f"Held-out views ({met.get('views')} boxes, each in all 8 turns and flips): field-of-view "
                      f"accuracy {_fmt(met.get('fov_accuracy'))} (recall " +
                  ", ".join(f"{k} {_fmt(x)}" for k, x in rec.items()) +
                  f"), rotation accuracy {_fmt(met.get('rotation_accuracy'))}, apparent-side accuracy "
                  f"{_fmt(met.get('chirality_accuracy'))}."]
    lines += ["", ("Not validated for: real radiographs (never a training input; the reference films the README "
              "reports were looked at, not labelled for a validation), children's hands (the training phantoms are "
              "adult; juvenile phantoms were not in it), body parts other than the chest, long-bone and photograph "
              "negatives it was shown (feet, other joints, lateral or oblique hand views), and films in the "
              "real-calibrated phantom look. Which hand of a hand beside its own mirror image is the mirrored one "
              "is not told. Its probabilities are uncalibrated scores; the fusion thresholds of "
              "`ramh_rt.understand` were chosen on unseen-seed phantoms and the reference films, so those are no "
              "independent test of them.")]
    if tr.get("commands"):
        lines += ["", "Made by:", "", "```bash", *tr["commands"], "```"]
    return lines + [""]


def write_model_card(bundle_dir: str | os.PathLike, out: str | os.PathLike | None = None) -> Path:
    """Write ``MODEL_CARD.md`` beside a bundle directory's manifest (or to ``out``); returns the path.

    The card is not part of the manifest's checksums, so rewriting it leaves the bundle valid.
    """
    bundle_dir = Path(bundle_dir)
    manifest = json.loads((bundle_dir / "manifest.json").read_text())
    sizes = {p.name: p.stat().st_size for p in bundle_dir.iterdir() if p.suffix in (".onnx", ".npz")}
    path = Path(out) if out else bundle_dir / "MODEL_CARD.md"
    write_atomic(path, render(manifest, sizes))
    return path
