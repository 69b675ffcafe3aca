"""Train the closer look (models.ZoomNet) behind a trained HeatmapNet, which stays as it is.

    python zoom.py --first saved_models/heatmapnet.pt --out logs/zoom/heatmapnet.pt    # the shipped pair
    python zoom.py --first ... --out logs/zoom/heatmapnet.pt --resume                  # go on after a stop

Each training face is cut as the HeatmapNet's crop at `--scale` times its pixels, augmented as train.py augments
(crops.FaceCrop); the HeatmapNet reads that crop shrunk to its own size, and ZoomNet learns to move those points to
the labels, each source's labels taken into the HeatmapNet's own labelling (the offsets stored in its weights).
Validation faces as train.py's. Every epoch writes OUT.ckpt (resume with --resume); OUT is the HeatmapNet's
weights file with the ZoomNet in it, which detect.py runs behind the HeatmapNet.
"""
import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path
from types import SimpleNamespace

if __name__ == "__main__":  # Ctrl-C while the libraries load: a quiet exit with status 130, not a traceback
    signal.signal(signal.SIGINT, lambda *_: sys.exit(130))
import numpy as np  # noqa: E402
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from tqdm import tqdm

import data_load as dl
from models import WeightsError, ZoomNet, load_checkpoint, load_model
from train import (RECIPES, Conventions, Stop, TrainError, WingLoss, atomic_save, data_folders, datasets, lr_at,
                   quiet_worker, run_cli, use_bf16)

SETTINGS = ("first", "epochs", "batch_size", "lr", "weight_decay", "scale", "patch", "width", "points", "noise",
            "subset", "seed")
# The points ZoomNet looks at again: its time grows with their number, and the jaw's, on the face's outline, gain least.
POINTS = {"all": tuple(range(dl.N_POINTS)), "inner": tuple(range(17, dl.N_POINTS))}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=dl.HelpFormatter)
    p.add_argument("--first", default="saved_models/heatmapnet.pt", help="the trained HeatmapNet's weights")
    p.add_argument("--out", required=True, help="weights file: the HeatmapNet's with the ZoomNet added")
    p.add_argument("--data", help="course data folder (default: $FKP_DATA_DIR or ./data)")
    p.add_argument("--photos", help="300-W photo folder (default: $FKP_300W_DIR or ./data/300w)")
    p.add_argument("--turned", metavar="DIR", help="faces at every pose (default: $FKP_AFLW_DIR or ./data/aflw2000)")
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--scale", type=int, default=2, help="the patches' pixels per pixel of the first crop")
    p.add_argument("--patch", type=int, default=24, help="patch side, in its own pixels")
    p.add_argument("--width", type=int, default=8, help="channels of ZoomNet's first layer")
    p.add_argument("--points", choices=list(POINTS), default="inner",
                   help="which points it looks at again: all 68, or the inner 51 (the jaw's pass through)")
    p.add_argument("--noise", type=float, default=0.75,
                   help="sd of a random shift added to each first-stage point in training, first-crop pixels")
    p.add_argument("--subset", type=int, help="only the first N training and validation images of each source")
    p.add_argument("--bf16", choices=["auto", "on", "off"], default="auto", help="bfloat16 autocast (train.py's)")
    p.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1), help="data loading processes")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-steps", type=int, help="stop after this many steps in all (for tests)")
    p.add_argument("--resume", action="store_true", help="continue from OUT.ckpt with its own settings")
    p.add_argument("--force", action="store_true", help="overwrite an existing OUT")
    args = p.parse_args(argv)
    if args.epochs < 1:
        p.error(f"--epochs {args.epochs}: nothing to train; give at least 1")
    if args.patch < 4 or args.patch % 4:
        p.error(f"--patch {args.patch}: a multiple of 4 (ZoomNet halves it twice)")
    if args.scale < 1 or args.width < 1 or not args.noise >= 0:  # NaN fails the last
        p.error("--scale and --width are 1 or more, --noise 0 or more")
    args.out = Path(args.out)
    return args


def first_points(first, fine, scale):
    """The HeatmapNet's normalized points on the fine crops shrunk to its own size (scale x scale averaging, as
    cv2.INTER_AREA shrinks by a whole factor in detect.py)."""
    with torch.no_grad():
        return first(F.avg_pool2d(fine, scale)).float()


def to_first(y, size, scale):
    """Normalized points of the fine crop (size x scale pixels) -> the same points, normalized for the first crop."""
    px = dl.keypoints_to_pixels(y, size * scale)
    return dl.normalize_keypoints((px + 0.5) / scale - 0.5, size).flatten(1)


def nme(p, t):
    """Per face: mean point error over the distance of the outer eye corners (train.evaluate_loss's)."""
    p, t = p.view(-1, dl.N_POINTS, 2), t.view(-1, dl.N_POINTS, 2)
    return (p - t).norm(dim=-1).mean(-1) / (t[:, 45] - t[:, 36]).norm(dim=-1)


def validate(first, zoom, loaders, conventions, scale):
    """{source: (NME % of the HeatmapNet alone, NME % with ZoomNet)}, each source in its own labelling."""
    zoom.eval()
    out = {}
    with torch.no_grad():
        for name, loader in loaders.items():
            a, b = [], []
            for batch in loader:
                x = batch["image"]
                y = to_first(batch["keypoints"].flatten(1), first.input_size, scale)
                p1 = first_points(first, x, scale)
                shift = conventions(batch["source"], batch["mirrored"], y)
                a.append(nme(p1 + shift, y))
                b.append(nme(zoom(x, p1) + shift, y))
            out[name] = (100 * torch.cat(a).mean().item(), 100 * torch.cat(b).mean().item())
    return out


def load_state(args):
    """(settings, state) to start from: a new run's, or OUT.ckpt's with --resume (refused where none or finished)."""
    ckpt_path = args.out.with_suffix(".ckpt")
    if not args.resume:
        if not args.force and any(f.exists() for f in (args.out, ckpt_path)):
            raise TrainError(f"{args.out}: exists; use --resume to continue it, --force to overwrite it, or --out")
        return {k: getattr(args, k) for k in SETTINGS}, None
    state = load_checkpoint(ckpt_path)
    if "zoom" not in state:
        raise WeightsError(f"{ckpt_path}: holds no ZoomNet run")
    settings = {"points": "all", **state["zoom"]["settings"]}  # runs from before --points looked at all 68
    if state["epoch"] >= settings["epochs"]:
        raise TrainError(f"{ckpt_path}: the run is finished ({state['epoch']} of {settings['epochs']} epochs); "
                         "nothing to resume")
    return settings, state


def train_epoch(s, first, zoom, loader, opt, conventions, amp, epoch, stop, max_steps, steps_done):
    """One epoch; (mean loss, steps done in all)."""
    loss_fn = WingLoss(first.input_size)
    unit = 50 * first.input_size / 224  # first-crop pixels per normalized unit
    zoom.train()
    total, n = 0.0, 0
    for step, batch in enumerate(tqdm(loader, desc=f"epoch {epoch + 1}/{s.epochs}", leave=False)):
        stop.check()
        for g in opt.param_groups:
            g["lr"] = lr_at(epoch, step, len(loader), s)
        x = batch["image"]
        y = to_first(batch["keypoints"].flatten(1), first.input_size, s.scale)
        with amp:
            p1 = first_points(first, x, s.scale)
        target = y - conventions(batch["source"], batch["mirrored"], y)
        with amp:
            out = zoom(x, p1 + torch.randn_like(p1) * (s.noise / unit))
        loss = loss_fn(out.float(), target, batch["weights"])
        if not torch.isfinite(loss):
            raise TrainError(f"epoch {epoch + 1} step {step}: loss is {loss.item()}; stopped before writing NaN "
                             "weights")
        opt.zero_grad()
        loss.backward()
        opt.step()
        total, n, steps_done = total + loss.item() * len(x), n + len(x), steps_done + 1
        if max_steps and steps_done >= max_steps:
            break
    return total / max(n, 1), steps_done


def train(args, stop=None):
    stop = stop or Stop()
    settings, state = load_state(args)
    s = SimpleNamespace(**settings, schedule="cosine")
    first_ckpt = load_checkpoint(s.first)
    first = load_model(s.first, expected="HeatmapNet")
    if first.in_channels != 1:
        raise TrainError(f"{s.first}: ZoomNet reads gray crops; this HeatmapNet reads {first.in_channels} channels")
    torch.manual_seed(s.seed)
    zoom = ZoomNet(first.input_size, s.scale, s.patch, s.width, POINTS[s.points])
    crop_for = SimpleNamespace(input_size=first.input_size * s.scale, in_channels=1, margin=first.margin)
    # The faces, their weights and occlusion as the HeatmapNet's own run had them (its labellings are those sources').
    recipe = {k: first_ckpt.get("settings", RECIPES["HeatmapNet"])[k] for k in ("photos_weight", "turned_weight",
                                                                             "occlude")}
    photos, turned = data_folders(SimpleNamespace(photos=args.photos, turned=args.turned, **recipe), print)
    train_set, val_sets, sources = datasets(
        crop_for, dl.data_dir(args.data), photos, recipe["photos_weight"], s.subset, occlude=recipe["occlude"],
        turned=turned, turned_weight=recipe["turned_weight"], region=(2.5, 128 * s.scale))
    # The sources' numbers as train.datasets gives them; their offsets from the HeatmapNet's own labelling.
    names = (["300w", "course"] if "300w" in val_sets else ["course"]) + ["turned"] * (sources > len(val_sets))
    conventions = Conventions(max(sources, 2)).requires_grad_(False)
    for i, name in enumerate(names[1:]):
        conventions.offsets.data[i] = torch.as_tensor(first.labellings[name])
    opt = torch.optim.AdamW(zoom.parameters(), lr=s.lr, weight_decay=s.weight_decay)
    history, start = [], 0
    if state:
        zoom.load_state_dict(state["zoom"]["state_dict"])
        opt.load_state_dict(state["optimizer"])
        history, start = state["zoom"]["history"], state["epoch"]
        print(f"resuming {args.out.with_suffix('.ckpt')} after epoch {start} of {s.epochs}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    print(f"ZoomNet: {sum(p.numel() for p in zoom.parameters()):,} parameters; {len(train_set)} training faces an "
          f"epoch / validation " + ", ".join(f"{len(v)} {k}" for k, v in val_sets.items()), flush=True)
    amp = torch.autocast("cpu", dtype=torch.bfloat16, enabled=use_bf16(args.bf16, torch.device("cpu")))
    val_loaders = {k: DataLoader(v, batch_size=64, num_workers=args.workers, worker_init_fn=quiet_worker)
                   for k, v in val_sets.items()}
    steps_done = 0
    for epoch in range(start, s.epochs):
        gen = torch.Generator().manual_seed(s.seed * 1000 + epoch)  # a resumed run repeats an uninterrupted one
        np.random.seed(s.seed * 1000 + epoch)
        torch.manual_seed(s.seed * 1000 + epoch)
        loader = DataLoader(train_set, batch_size=s.batch_size, shuffle=True, generator=gen, drop_last=True,
                            num_workers=args.workers, worker_init_fn=quiet_worker)
        t0 = time.time()
        loss, steps_done = train_epoch(s, first, zoom, loader, opt, conventions, amp, epoch, stop, args.max_steps,
                                       steps_done)
        val = validate(first, zoom, val_loaders, conventions, s.scale)
        history.append({"epoch": epoch + 1, "train_loss": loss, **{f"val_nme_{k}": v[1] for k, v in val.items()},
                        **{f"first_nme_{k}": v[0] for k, v in val.items()}, "seconds": time.time() - t0})
        print(json.dumps(history[-1]), flush=True)
        zoom_state = {"config": {k: getattr(zoom, k) for k in ("input_size", "scale", "patch", "width", "points")},
                      "state_dict": zoom.state_dict(), "history": history, "settings": settings}
        atomic_save({**first_ckpt, "zoom": zoom_state}, args.out)
        atomic_save({**first_ckpt, "zoom": zoom_state, "optimizer": opt.state_dict(), "epoch": epoch + 1},
                    args.out.with_suffix(".ckpt"))
        stop.check()
        if args.max_steps and steps_done >= args.max_steps:
            break
    return zoom, history


def main(argv=None):
    run_cli(train, parse_args(argv))


if __name__ == "__main__":
    main()
