"""Train the view classifier (:mod:`ramh_rt.view`): field of view / not a hand, rotation and apparent chirality.

    ramh-train view data   --out DIR --seed S --n N [--workers 2]      (resumable: one shard per 10 seeds)
    ramh-train view train  --data DIR --val DIR --run RUN [--steps N] [--seed K] [--threads 2]   (resumes RUN/last.pt)
    ramh-train view export --run RUN --val DIR --bundle BUNDLE          (view.npz + the manifest's view section)

Data: for every seed, phantom films of :mod:`ramh_train.phantoms.variants` (whole hands, wrist, finger and partial
crops, two-hand films, markers, collimation, and the chest, long-bone and photograph negatives) go through the
runtime's own silhouette survey (:func:`ramh_rt.understand.survey`); each hand box it finds is cut and letterboxed by
the runtime's :func:`ramh_rt.view.view_input`, so training sees exactly what the SDK will feed the network. A box is
labelled with the ground truth of the hand it overlaps (IoU >= 0.3; boxes that overlap none are dropped), a negative's
boxes are ``not_a_hand`` (films the survey already rejects, blank and noise among them, need no classifier).

Training: a small CNN (a 2x2 average pooling of the 128 x 128 view, four stride-2 3x3 conv blocks with batch norm,
16-32-64-96 channels, a 128-unit layer and
one linear head of 5 + 4 + 2 logits) under heavy augmentation: a random quarter turn and left-right flip (labels
turned along), gamma, contrast and brightness, Gaussian noise, blur, scale and shift; cross-entropy on the field of
view (classes balanced by sampling), and on rotation and chirality for hand boxes only. Batch norm is folded into the
convolutions at export; the runtime runs the result in NumPy.
"""
from __future__ import annotations

import json
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from ramh_rt.view import CHIRALITY, INPUT_HW, ROTATIONS, VIEW_CLASSES, WINDOW_PERCENTILES

#: Kinds drawn for every seed; ``two_hands`` every third seed and ``photo`` every second (they are the slow ones).
DATA_KINDS = ("hand", "wrist", "fingers", "partial", "markers", "collimated", "composite", "chest", "long_bone")
#: The phantom looks the seeds cycle through (seed modulo their number): the default adult phantoms, children's hands
#: (open growth plates, separate epiphyses), and adult hands in the real-calibrated appearance, with the default and
#: with the RA2-fitted proportions. A classifier that saw one look only judged the others by it.
LOOKS = {
    "default": {},
    "juvenile": {"juvenile_fraction": 1.0, "appearance": "real-calibrated"},
    "real-calibrated": {"appearance": "real-calibrated"},
    "real-calibrated-ra2": {"appearance": "real-calibrated", "shape": "ra2-fitted"},
}
SHARD_SEEDS = 10
INPUT_POOL = 2
CHANNELS = (16, 32, 64, 96)
HIDDEN = 128
_HAND_FOV = {"hand": 0, "wrist": 1, "fingers": 2, "partial": 3}


def _iou(a, b) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def look_config(seed: int):
    """``(name, PhantomConfig)`` of the look seed ``seed`` is drawn in (:data:`LOOKS`, by seed modulo their number)."""
    import dataclasses

    from .datasets.synthetic import phantom_config
    from .phantoms import APPEARANCES

    name = list(LOOKS)[seed % len(LOOKS)]
    spec = dict(LOOKS[name])
    appearance = spec.pop("appearance", None)
    config = phantom_config(spec)
    if appearance is not None:
        config = dataclasses.replace(config, profiles=APPEARANCES[appearance])
    return name, config


def _seed_views(seed: int) -> list[dict]:
    """Views of one seed's films: ``{"x": uint8 HxW, "fov", "rot", "mirrored", "side", "kind"}`` dicts."""
    from ramh_rt import understand
    from ramh_rt.errors import NotAHandError
    from ramh_rt.view import view_input

    from .phantoms.variants import make_variant

    kinds = list(DATA_KINDS) + (["two_hands"] if seed % 3 == 0 else []) + (["photo"] if seed % 2 == 0 else [])
    cache: dict = {}
    out = []
    _, config = look_config(seed)
    for kind in kinds:
        v = make_variant(kind, seed, config, masks=False, cache=cache)
        try:
            regions = understand.survey(v.image).hands
        except NotAHandError:
            continue
        for r in regions:
            box = r.hand_box or r.box
            x = np.clip(np.rint(view_input(v.image, box) * 255.0), 0, 255).astype(np.uint8)
            if not v.hands:
                out.append({"x": x, "fov": 4, "rot": 0, "mirrored": False, "side": "L", "kind": kind})
                continue
            best = max(v.hands, key=lambda t: _iou(box, t.box))
            if _iou(box, best.box) < 0.3:
                continue
            out.append({"x": x, "fov": _HAND_FOV[best.field_of_view], "rot": best.rotation_deg,
                        "mirrored": best.mirrored, "side": best.side, "kind": kind})
    return out


def _write_shard(out: Path, start: int, n: int) -> str:
    path = out / f"shard_{start}.npz"
    if path.exists():
        return f"{path.name}: exists, kept"
    views = []
    for s in range(start, start + n):
        views.extend(_seed_views(s))
    # Apparent chirality of the upright hand: the side drawn, or the other when the film is mirrored.
    chir = [int((v["side"] == "R") != v["mirrored"]) for v in views]
    tmp = out / f".shard_{start}.tmp.npz"
    np.savez_compressed(tmp, x=np.stack([v["x"] for v in views]), fov=np.array([v["fov"] for v in views], np.int64),
                        rot=np.array([ROTATIONS.index(v["rot"]) for v in views], np.int64),
                        chir=np.array(chir, np.int64), kind=np.array([v["kind"] for v in views]),
                        seeds=np.array([start, start + n - 1], np.int64))
    os.replace(tmp, path)  # atomic: a shard that exists is complete
    return f"{path.name}: {len(views)} views"


def build_data(out: str | os.PathLike, seed: int, n: int, workers: int = 1, log=print) -> Path:
    """Write the view data set of seeds ``seed .. seed+n-1`` into ``out`` (resumable: finished shards are kept).

    Returns the folder. Raises ValueError for ``n < 1``, a seed out of ``[0, 2**63)``, or a folder built with
    other settings (its ``data.json``: resuming it with another seed, n or input would mix two data sets, and its
    shards, named by their first seed, would be kept as if complete).
    """
    if n < 1 or seed < 0 or seed + n >= 2**63:
        raise ValueError(f"need n >= 1 and seeds in [0, 2**63), got seed {seed}, n {n}")
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    from .datasets.fileio import atomic_write_json

    record = {"seed": seed, "n": n, "kinds": list(DATA_KINDS) + ["two_hands", "photo"], "input_hw": list(INPUT_HW),
              "window_percentiles": list(WINDOW_PERCENTILES), "looks": LOOKS}
    if (root / "data.json").exists():
        import json

        old = json.loads((root / "data.json").read_text())
        if old != record:
            raise ValueError(f"{root} holds view data built with other settings ({old}); this call asks for "
                             f"{record}: use another folder")
    atomic_write_json(root / "data.json", record, indent=1)
    starts = [(s, min(SHARD_SEEDS, seed + n - s)) for s in range(seed, seed + n, SHARD_SEEDS)]
    if workers <= 1:
        for s, k in starts:
            log(_write_shard(root, s, k))
    else:
        with ProcessPoolExecutor(workers) as ex:
            for msg in ex.map(_write_shard, [root] * len(starts), *zip(*starts)):
                log(msg)
    return root


def load_data(folder: str | os.PathLike) -> dict[str, np.ndarray]:
    """All shards of a data folder concatenated: ``x`` (N x H x W uint8), ``fov``, ``rot``, ``chir``, ``kind``, and
    ``seeds``, the inclusive seed ranges the shards hold (``[[first, last], ...]``).

    Raises FileNotFoundError when the folder holds no shard."""
    shards = sorted(Path(folder).glob("shard_*.npz"))
    if not shards:
        raise FileNotFoundError(f"{folder}: no view data shards (run `ramh-train view data` first)")
    parts = [dict(np.load(p)) for p in shards]
    out = {k: np.concatenate([p[k] for p in parts]) for k in ("x", "fov", "rot", "chir", "kind")}
    out["seeds"] = _merge_ranges([tuple(int(v) for v in p["seeds"]) for p in parts])
    return out


def _merge_ranges(ranges: list[tuple[int, int]]) -> list[list[int]]:
    """Inclusive seed ranges of the shards, merged where they touch: ``[[first, last], ...]``."""
    out: list[list[int]] = []
    for a, b in sorted(ranges):
        if out and a <= out[-1][1] + 1:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return out


# ---- model ------------------------------------------------------------------------------------------------------------

def build_model():
    """The torch twin of :func:`ramh_rt.view.forward` (with batch norm, folded at export)."""
    import torch.nn as nn

    layers, c = [nn.AvgPool2d(INPUT_POOL)] if INPUT_POOL > 1 else [], 1
    for co in CHANNELS:
        layers += [nn.Conv2d(c, co, 3, 2, 1, bias=False), nn.BatchNorm2d(co), nn.ReLU(inplace=True)]
        c = co
    side = INPUT_HW[0] // INPUT_POOL // 2 ** len(CHANNELS)
    n_out = len(VIEW_CLASSES) + len(ROTATIONS) + len(CHIRALITY)
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(c * side * side, HIDDEN), nn.ReLU(inplace=True),
                         nn.Dropout(0.3), nn.Linear(HIDDEN, n_out))


def _augment(x: np.ndarray, rot: int, chir: int, rng: np.random.Generator) -> tuple[np.ndarray, int, int]:
    """One augmented view (float32 0..1) with its rotation class and chirality turned along."""
    import cv2

    img = x.astype(np.float32) / 255.0
    if rng.random() < 0.5:  # flip left-right: rotation r -> 360 - r, the apparent side changes
        img = img[:, ::-1]
        rot = (4 - rot) % 4
        chir = 1 - chir
    k = int(rng.integers(4))  # k counter-clockwise quarter turns: the clockwise rotation falls by k * 90
    img = np.rot90(img, k)
    rot = (rot - k) % 4
    h, w = img.shape
    s = float(rng.uniform(0.8, 1.15))
    ang = float(rng.uniform(-12, 12))
    M = cv2.getRotationMatrix2D((w / 2 + rng.uniform(-8, 8), h / 2 + rng.uniform(-8, 8)), ang, s)
    img = cv2.warpAffine(np.ascontiguousarray(img), M, (w, h), flags=cv2.INTER_LINEAR, borderValue=0.0)
    if rng.random() < 0.3:
        img = cv2.GaussianBlur(img, (0, 0), float(rng.uniform(0.5, 1.5)))
    img = np.clip(img, 0.0, 1.0) ** float(np.exp(rng.normal(0.0, 0.35)))  # gamma
    img = img * float(rng.uniform(0.7, 1.2)) + float(rng.uniform(-0.1, 0.1))  # contrast, brightness
    img = img + rng.normal(0.0, float(rng.uniform(0.0, 0.06)), img.shape)
    if rng.random() < 0.2:
        img = 1.0 - img  # inverted display (bone dark): seen on some exports
    return np.clip(img, 0.0, 1.0).astype(np.float32), rot, chir


def _batch(data, idx, rng, augment=True):
    import torch

    xs, rots, chirs = [], [], []
    for i in idx:
        if augment:
            x, r, c = _augment(data["x"][i], int(data["rot"][i]), int(data["chir"][i]), rng)
        else:
            x, r, c = data["x"][i].astype(np.float32) / 255.0, int(data["rot"][i]), int(data["chir"][i])
        xs.append(x)
        rots.append(r)
        chirs.append(c)
    return (torch.from_numpy(np.stack(xs)[:, None]), torch.from_numpy(data["fov"][idx]),
            torch.tensor(rots), torch.tensor(chirs))


def _loss(logits, fov, rot, chir):
    import torch.nn.functional as F

    nf, nr = len(VIEW_CLASSES), len(ROTATIONS)
    loss = F.cross_entropy(logits[:, :nf], fov)
    hand = fov != VIEW_CLASSES.index("not_a_hand")
    if hand.any():
        loss = loss + F.cross_entropy(logits[hand, nf:nf + nr], rot[hand]) + \
            0.5 * F.cross_entropy(logits[hand, nf + nr:], chir[hand])
    return loss


def evaluate_model(model, data) -> dict:
    """Accuracies on un-augmented views, each also turned by the three other quarter turns and flipped (8 per view):
    ``fov_accuracy``, per-class recall, ``rotation_accuracy`` and ``chirality_accuracy`` (hand views)."""
    import torch

    model.eval()
    rng = np.random.default_rng(0)
    n = len(data["fov"])
    fov_ok = np.zeros(VIEW_CLASSES.__len__())
    fov_n = np.zeros_like(fov_ok)
    rot_ok = chir_ok = hands = 0
    nf, nr = len(VIEW_CLASSES), len(ROTATIONS)
    with torch.no_grad():
        for flip in (False, True):
            for k in range(4):
                xs, rots, chirs = [], [], []
                for i in range(n):
                    img, r, c = data["x"][i].astype(np.float32) / 255.0, int(data["rot"][i]), int(data["chir"][i])
                    if flip:
                        img, r, c = img[:, ::-1], (4 - r) % 4, 1 - c
                    xs.append(np.ascontiguousarray(np.rot90(img, k)))
                    rots.append((r - k) % 4)
                    chirs.append(c)
                logits = torch.cat([model(torch.from_numpy(np.stack(xs[j:j + 256])[:, None]))
                                    for j in range(0, n, 256)]).numpy()
                pf = logits[:, :nf].argmax(1)
                for c in range(nf):
                    m = data["fov"] == c
                    fov_n[c] += m.sum()
                    fov_ok[c] += (pf[m] == c).sum()
                hand = data["fov"] != nf - 1
                rot_ok += (logits[hand, nf:nf + nr].argmax(1) == np.array(rots)[hand]).sum()
                chir_ok += (logits[hand, nf + nr:].argmax(1) == np.array(chirs)[hand]).sum()
                hands += hand.sum()
    del rng
    model.train()
    return {"views": int(n), "fov_accuracy": float(fov_ok.sum() / max(fov_n.sum(), 1)),
            "fov_recall": {c: float(fov_ok[i] / max(fov_n[i], 1)) for i, c in enumerate(VIEW_CLASSES)},
            "rotation_accuracy": float(rot_ok / max(hands, 1)), "chirality_accuracy": float(chir_ok / max(hands, 1))}


def train(data_dir, run_dir, val_dir=None, steps: int = 3000, batch_size: int = 64, lr: float = 2e-3,
          seed: int = 0, threads: int = 2, checkpoint_every: int = 200, log=print) -> dict:
    """Train (or resume from ``run_dir/last.pt``) and return the summary (also written to ``run_dir/summary.json``).

    Classes are balanced by sampling (each batch draws the field-of-view classes equally). AdamW with a cosine
    schedule. Raises FileNotFoundError when the data folder holds no shard.
    """
    import torch

    torch.set_num_threads(max(1, threads))
    run = Path(run_dir)
    run.mkdir(parents=True, exist_ok=True)
    data = load_data(data_dir)
    torch.manual_seed(seed)
    model = build_model()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.05)
    step = 0
    rng = np.random.default_rng(seed)
    if (run / "last.pt").exists():
        ck = torch.load(run / "last.pt", weights_only=False)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        sched.load_state_dict(ck["sched"])
        step = ck["step"]
        rng = np.random.default_rng([seed, step])  # a resumed run draws a fresh, recorded stream
        log(f"resumed at step {step}")
    by_class = [np.flatnonzero(data["fov"] == c) for c in range(len(VIEW_CLASSES))]
    by_class = [b for b in by_class if b.size]
    t0 = time.perf_counter()
    losses = []
    model.train()
    while step < steps:
        cls = rng.integers(len(by_class), size=batch_size)
        idx = np.array([by_class[c][rng.integers(by_class[c].size)] for c in cls])
        x, fov, rot, chir = _batch(data, idx, rng)
        loss = _loss(model(x), fov, rot, chir)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        step += 1
        losses.append(float(loss.detach()))
        if step % 50 == 0:
            log(f"step {step}/{steps} loss {np.mean(losses[-50:]):.3f} ({time.perf_counter() - t0:.0f} s)")
        if step % checkpoint_every == 0 or step == steps:
            tmp = run / "last.pt.tmp"
            torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                        "step": step, "seed": seed}, tmp)
            os.replace(tmp, run / "last.pt")
    summary = {"steps": steps, "batch_size": batch_size, "lr": lr, "seed": seed, "train_views": int(len(data["fov"])),
               "train_data": str(data_dir), "train_seeds": data["seeds"],
               "final_loss": float(np.mean(losses[-50:])) if losses else None}
    if val_dir is not None:
        val = load_data(val_dir)  # read once for the metrics and the seeds
        summary["val"] = evaluate_model(model, val)
        summary["val_data"] = str(val_dir)
        summary["val_seeds"] = val["seeds"]
    from .datasets.fileio import atomic_write_json

    atomic_write_json(run / "summary.json", summary, indent=2)
    return summary


def fold(model) -> dict[str, np.ndarray]:
    """The NumPy parameters of :func:`ramh_rt.view.forward`, batch norm folded into the convolutions."""
    import torch.nn as nn

    params, i = {"input_pool": np.array(INPUT_POOL, np.float32)}, 0
    mods = list(model)
    for j, m in enumerate(mods):
        if isinstance(m, nn.Conv2d):
            bn = mods[j + 1]
            g = (bn.weight / (bn.running_var + bn.eps).sqrt()).detach().numpy()
            params[f"conv{i}.w"] = (m.weight.detach().numpy() * g[:, None, None, None]).astype(np.float32)
            params[f"conv{i}.b"] = (bn.bias.detach().numpy() - bn.running_mean.numpy() * g).astype(np.float32)
            i += 1
    lins = [m for m in mods if isinstance(m, nn.Linear)]
    for name, m in zip(("fc1", "head"), lins):
        params[f"{name}.w"] = m.weight.detach().numpy().astype(np.float32)
        params[f"{name}.b"] = m.bias.detach().numpy().astype(np.float32)
    return params


def export(run_dir, bundle_dir, val_dir=None, training: dict | None = None, log=print) -> dict:
    """Write ``view.npz`` into the bundle and its ``view`` section into the manifest (atomically); return the section.

    The NumPy network is checked against the torch model on the validation views (max logit difference) before
    anything is written. Raises FileNotFoundError (no run / bundle), RuntimeError (the folded network disagrees).
    """
    import io

    import torch

    from ramh_rt.bundle import sha256_file
    from ramh_rt.view import ViewModel, forward

    from .datasets.fileio import atomic_write_bytes, atomic_write_json

    run, bundle = Path(run_dir), Path(bundle_dir)
    ck = torch.load(run / "last.pt", weights_only=False)
    model = build_model()
    model.load_state_dict(ck["model"])
    model.eval()
    params = fold(model)
    probe = load_data(val_dir)["x"][:16].astype(np.float32) / 255.0 if val_dir else \
        np.random.default_rng(0).random((4, *INPUT_HW), np.float32)
    with torch.no_grad():
        ref = model(torch.from_numpy(probe[:, None])).numpy()
    got = np.stack([forward(params, p) for p in probe])
    diff = float(np.abs(ref - got).max())
    if diff > 1e-3:
        raise RuntimeError(f"the folded NumPy view network differs from the torch model by {diff:.2e} in a logit")
    buf = io.BytesIO()
    np.savez(buf, **params)
    atomic_write_bytes(bundle / "view.npz", buf.getvalue())
    summary = json.loads((run / "summary.json").read_text()) if (run / "summary.json").exists() else {}
    val = load_data(val_dir) if val_dir else None
    metrics = evaluate_model(model, val) if val is not None else summary.get("val")
    section = {"file": "view.npz", "sha256": sha256_file(bundle / "view.npz"), "input_hw": list(INPUT_HW),
               "window_percentiles": list(WINDOW_PERCENTILES), "classes": list(VIEW_CLASSES),
               "rotations": list(ROTATIONS), "chirality": list(CHIRALITY),
               "architecture": {"input_pool": INPUT_POOL, "conv_channels": list(CHANNELS), "hidden": HIDDEN,
                                "parameters": int(sum(v.size for k, v in params.items() if k != "input_pool"))},
               "training": {**(training or {}), **{k: summary[k] for k in ("steps", "batch_size", "lr", "seed",
                                                                          "train_views", "train_seeds")
                                                   if k in summary},
                            **({"val_seeds": val["seeds"], "val_views": int(len(val["fov"]))} if val else {})},
               "metrics": metrics or {}, "export_max_logit_diff": diff}
    ViewModel.from_file(bundle / "view.npz", section)  # what was written loads and runs, before the manifest names it
    manifest_path = bundle / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["view"] = section
    atomic_write_json(manifest_path, manifest, indent=2)
    log(f"wrote {bundle / 'view.npz'} ({section['architecture']['parameters']} parameters; max logit diff {diff:.1e})")
    return section


def add_parser(sub) -> None:
    """Register ``ramh-train view data|train|export`` on the ``ramh-train`` subparsers."""
    p = sub.add_parser("view", help="the view classifier (field of view / not a hand, rotation, chirality): data, "
                                    "train, export")
    act = p.add_subparsers(dest="view_cmd", required=True)
    d = act.add_parser("data", help="build view data from phantom variants (resumable, one shard per 10 seeds)")
    d.add_argument("--out", required=True)
    d.add_argument("--seed", type=int, required=True, help="first variant seed (keep far from the benchmarks')")
    d.add_argument("--n", type=int, required=True, help="number of seeds")
    d.add_argument("--workers", type=int, default=1)
    t = act.add_parser("train", help="train the classifier (resumes RUN/last.pt)")
    t.add_argument("--data", required=True)
    t.add_argument("--val", help="validation data folder (evaluated at the end)")
    t.add_argument("--run", required=True)
    t.add_argument("--steps", type=int, default=3000)
    t.add_argument("--batch-size", type=int, default=64)
    t.add_argument("--lr", type=float, default=2e-3)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--threads", type=int, default=2)
    e = act.add_parser("export", help="write view.npz and the manifest's view section into a bundle")
    e.add_argument("--run", required=True)
    e.add_argument("--bundle", required=True)
    e.add_argument("--val", help="validation data folder (metrics recorded in the manifest)")
    e.add_argument("--note", action="append", default=[], help="provenance line for the manifest (repeatable)")
    p.set_defaults(func=_cmd)


def _cmd(args) -> int:
    if args.view_cmd == "data":
        build_data(args.out, args.seed, args.n, workers=args.workers)
    elif args.view_cmd == "train":
        s = train(args.data, args.run, args.val, steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                  seed=args.seed, threads=args.threads)
        print(json.dumps(s.get("val", {}), indent=2))
    else:
        training = {"commands": args.note} if args.note else {}
        for key, folder in (("train_data", None), ("val_data", args.val)):
            if folder and Path(folder, "data.json").exists():
                training[key] = json.loads(Path(folder, "data.json").read_text())
        run_summary = Path(args.run, "summary.json")
        if run_summary.exists():
            tr = json.loads(run_summary.read_text()).get("train_data")
            if tr and Path(tr, "data.json").exists():
                training["train_data"] = json.loads(Path(tr, "data.json").read_text())
        export(args.run, args.bundle, args.val, training=training)
    return 0


__all__ = ["DATA_KINDS", "add_parser", "build_data", "build_model", "evaluate_model", "export", "fold", "load_data", "train"]
