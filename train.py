"""Train a keypoint model.

    python train.py --model Net                                        # the course network and recipe
    python train.py --model HeatmapNet --width 24 --blocks 2 2 3 --out logs/t/heatmapnet.pt  # a wide teacher
    python train.py --model HeatmapNet --teacher logs/t/heatmapnet.pt --epochs 150  # the shipped model: distilled
    torchrun --nproc_per_node 2 train.py --model HeatmapNet ...        # several processes / GPUs (DDP)

Trains on the training images of the seen people, less a validation split made by person (data_load.is_validation);
the unseen people and the test set are for measuring only. Every epoch writes, atomically, the full training state
to OUT.ckpt (resume with --resume) and the weights to OUT, and those of the epoch with the lowest validation NME so far
to OUT with _best (the last epoch is not always the best); a loss plot goes to OUT with _loss.png. When the run
ends, OUT also gets the model quantized to int8 ONNX (models.quantize), which detect.py runs on a CPU.
"""
import argparse
import json
import math
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
import torch.distributed as dist
from torch.utils.data import DataLoader
from tqdm import tqdm

import crops
import data_load as dl
import detect
from models import MODELS, WeightsError, WithConfidence, checkpoint, load_checkpoint, load_model, quantize

# What each model trains with unless told otherwise. Net keeps the course's choices. HeatmapNet's 100 epochs took 56
# minutes in bf16 on a 2-core CPU that has it; in float32 on one without, about 4.3 hours; the shipped model's wide
# teacher (100 epochs) and its distillation from it (150), 96 and 142 minutes in bf16 (model card).
RECIPES = {
    "Net": dict(epochs=50, batch_size=64, lr=1e-4, weight_decay=0.0, loss="smoothl1", beta=1.0, schedule="constant",
                heatmap_loss=0.0, photos_weight=0),
    "HeatmapNet": dict(epochs=100, batch_size=32, lr=2e-3, weight_decay=1e-4, loss="wing", beta=0.02,
                       schedule="cosine", heatmap_loss=0.0, photos_weight=3, input_size=160, width=16,
                       blocks=(1, 2, 2), margin=0.2, occlude=0.3, turned_weight=1),
}


MIN_CONFIDENCE_FRACTION = 0.58
# What a run keeps from its start to its end: the checkpoint stores them, --resume takes them from it.
SETTINGS = ("model", "epochs", "batch_size", "lr", "weight_decay", "loss", "beta", "schedule", "heatmap_loss",
            "input_size", "width", "blocks", "margin", "occlude", "photos_weight", "turned_weight", "subset",
            "all_people", "seed", "teacher", "distill")
# Past this yaw the jaw labels of faces at every pose (AFLW2000-3D) mark the jaw on the 3D head, behind the cheek, not
# the outline that 300-W's annotators follow: their loss leaves those 17 points out.
TURNED_JAW_YAW = 45


class TrainError(RuntimeError):
    pass


class Stop(detect.Stop):
    """detect.Stop, read between training steps; with several processes (DDP), every one stops at the same step."""

    def check(self, distributed=False):
        stop = torch.tensor(float(self.signal is not None))
        if distributed:  # or the others would wait for it forever
            dist.all_reduce(stop, dist.ReduceOp.MAX)
        if stop.item():
            raise KeyboardInterrupt


def quiet_worker(_):
    """Data loading processes leave Ctrl-C to the training process (which stops between steps, then ends them)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def take_settings(args, state, path):
    """--resume goes on with the settings the run started with; a flag that says otherwise is refused."""
    # A run started before --loss, --blocks, --margin, --occlude or --turned-weight existed trained without them (the
    # crop's margin: 0.3), whatever the recipe says now.
    for k, v in {"loss": "smoothl1", "blocks": (1, 1, 1), "margin": 0.3, "occlude": 0.0, "turned_weight": 0,
                 **state.get("settings", {})}.items():
        if k in args.given and getattr(args, k) != v:
            raise TrainError(f"{path}: the run was started with {k.replace('_', ' ')} {v}, not {getattr(args, k)}; "
                             f"--resume goes on with the run's own settings (leave out --{k.replace('_', '-')})")
        setattr(args, k, v)


def datasets(model, data, photos=None, photos_weight=0, subset=None, all_people=False, occlude=0.0, turned=None,
             turned_weight=0, region=(4.0, 128)):
    """(training set, {source: validation set}, number of sources). Course frames split by person, the unseen
    people left out unless all_people; with photos (a 300-W folder) and photos_weight > 0, also its training photos,
    each seen photos_weight times an epoch, and its validation photos (split by photo id; test photos never); with
    turned (a folder of faces at every pose with its yaw.json) and turned_weight > 0, its training photos too, a
    source of their own, the jaw left out of the loss past TURNED_JAW_YAW (measured by evaluate.py, per yaw band).
    model: what the crops are made for (its input_size, in_channels, margin); region: dl.FaceSamples's."""
    csv, root = dl.split_paths(data, "training")
    names, kps = dl.read_keypoints_csv(csv, root)
    keep = [i for i, n in enumerate(names) if all_people or not dl.is_unseen(n)]
    train = [i for i in keep if not dl.is_validation(names[i])][:subset]
    val = [i for i in keep if dl.is_validation(names[i])][:subset]
    if isinstance(model, MODELS["Net"]):
        return (dl.FacialKeypointsDataset(csv, root, dl.data_transform, [names[i] for i in train]),
                {"course": dl.FacialKeypointsDataset(csv, root, dl.eval_transform, [names[i] for i in val])}, 1)
    train_tf = crops.FaceCrop(model.input_size, model.in_channels, augment=True, occlude=occlude, margin=model.margin)
    val_tf = crops.FaceCrop(model.input_size, model.in_channels, margin=model.margin)
    with_photos = photos is not None and photos_weight > 0

    def faces(paths, keypoints, transform, source, weights=None):  # held in memory: an epoch then reads no files
        return dl.FaceSamples([dl.read_image(p) for p in paths], keypoints, transform, source, weights, region)

    # With photos, theirs is the labelling the model learns (300-W's, the one users expect); the course's is learned
    # beside it (Conventions).
    course = int(with_photos)
    train_set = faces([root / names[i] for i in train], kps[train], train_tf, course)
    vals = {"course": faces([root / names[i] for i in val], kps[val], val_tf, course)}
    if with_photos:
        paths, k = dl.read_photos(photos, "train")
        photo_train = faces(paths[:subset], k[:subset], train_tf, 0)
        train_set = torch.utils.data.ConcatDataset([train_set] + [photo_train] * photos_weight)
        paths, k = dl.read_photos(photos, "validation")
        vals["300w"] = faces(paths[:subset], k[:subset], val_tf, 0)
    sources = len(vals)
    if turned is not None and turned_weight > 0:
        paths, k = dl.read_photos(turned, "train")
        paths, k = paths[:subset], k[:subset]
        yaws = dl.read_yaws(turned, paths)
        if yaws is None:
            raise dl.DataError(f"{turned}: no yaw.json (faces at every pose need their yaw)")
        weights = np.ones((len(paths), dl.N_POINTS), np.float32)
        weights[np.abs(yaws) > TURNED_JAW_YAW, :17] = 0
        train_set = torch.utils.data.ConcatDataset(
            [train_set] + [faces(paths, k, train_tf, sources, weights)] * turned_weight)
        sources += 1
    return train_set, vals, sources


class Conventions(torch.nn.Module):
    """Where each further source's annotators put the points, relative to the first source's: per point, an offset
    along the face's eye line (point 36 to 45) and across it, in eye distances, learned with the network. The course
    labels sit a few percent of the eye distance away from 300-W's, differently per point: without this, the network
    would learn a blend of the two. Added to the network's points for the loss, mirrored with the sample; the network
    itself learns the first source's labelling."""

    def __init__(self, n_sources):
        super().__init__()
        self.offsets = torch.nn.Parameter(torch.zeros(n_sources - 1, dl.N_POINTS, 2))
        self.register_buffer("perm", torch.from_numpy(dl.FLIP_PERM), persistent=False)

    def forward(self, source, mirrored, target):
        """(N,) source numbers, (N,) mirrored flags, N x 136 normalized labels -> N x 136 offsets to add."""
        t = target.view(-1, dl.N_POINTS, 2)
        ab = torch.cat([torch.zeros_like(self.offsets[:1]), self.offsets])[source]         # N x 68 x 2
        # In a mirrored crop each point is its twin's, and "along the eye line" points the other way.
        ab = torch.where(mirrored[:, None, None], ab[:, self.perm] * ab.new_tensor([-1.0, 1.0]), ab)
        along = t[:, 45] - t[:, 36]
        across = torch.stack([-along[:, 1], along[:, 0]], -1)                               # y down: below the eyes
        return (ab[..., :1] * along[:, None] + ab[..., 1:] * across[:, None]).flatten(1)


def labellings(offset, conventions, names):
    """{labelling: 68 x 2 offsets from the network's points to its labels, along and across each face's eye line, in
    eye distances} for detect.py, for the sources' names in their order: the first, which the network learns, moved
    by the offset measured on validation; each other by the offsets Conventions learned."""
    first = {names[0]: torch.tensor([offset, 0.0]).repeat(dl.N_POINTS, 1)}
    return first | {name: conventions.offsets[i].detach().cpu() for i, name in enumerate(names[1:])}


def int8_model(net, val_sets):
    """The finished model as int8 ONNX bytes in a uint8 tensor (models.quantize), calibrated on 128 crops spread
    over the validation faces of every source: what detect.py runs on a CPU."""
    val_set = torch.utils.data.ConcatDataset(list(val_sets.values()))
    pick = np.linspace(0, len(val_set) - 1, min(len(val_set), 128)).round().astype(int)
    crops = np.stack([val_set[i]["image"].numpy() for i in pick])
    return torch.frombuffer(bytearray(quantize(net.cpu().eval(), crops)), dtype=torch.uint8)


def atomic_save(obj, path):
    """Write to a temporary file beside path, then rename: a crash or a full disk never leaves a half-written file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise TrainError(f"{path}: cannot write ({e.strerror or e}); the previous file is untouched") from None


def plot_losses(history, path, loss="smoothl1"):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    epochs = [h["epoch"] for h in history]
    ax.plot(epochs, [h["train_loss"] for h in history], label="training")
    ax.plot(epochs, [h["val_loss"] for h in history], label="validation (unseen by training)")
    ax.set(xlabel="epoch", ylabel={"smoothl1": "SmoothL1", "wing": "Wing"}[loss] + " loss", yscale="log",
           title=Path(path).stem)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


class WingLoss(torch.nn.Module):
    """Feng et al., "Wing loss for robust facial landmark localisation" (CVPR 2018): log-shaped for errors under w, so
    that small and medium errors keep a strong pull where L1 pulls them no harder than the outliers; L1 beyond w. w and
    eps are the paper's 10 and 2 pixels of the model's input, in the normalized coordinates the model outputs."""

    def __init__(self, input_size, w=10.0, eps=2.0):
        super().__init__()
        unit = 50 * input_size / 224  # pixels per normalized unit (data_load.normalize_keypoints)
        self.w, self.eps = w / unit, eps / unit
        self.c = self.w - self.w * math.log1p(self.w / self.eps)  # joins the two pieces at w

    def forward(self, pred, target, weights=None):
        """weights: N x 68, how much each point counts (0: left out); the mean is over what counts."""
        x = (pred - target).abs()
        loss = torch.where(x < self.w, self.w * torch.log1p(x / self.eps), x - self.c)
        if weights is None:
            return loss.mean()
        w = weights.repeat_interleave(2, dim=1)  # x and y of each point
        return (loss * w).sum() / w.sum().clamp_min(1)


def mirrored_mean(model, x):
    """A trained model's normalized points for a batch of crops, averaged with those of the crops mirrored: targets
    for distillation (--teacher), as detect.py's --flip averages them."""
    n, size = len(x), x.shape[-1]
    out = model(torch.cat([x, x.flip(-1)])).view(2 * n, dl.N_POINTS, 2)
    s = size / 224  # mirrored pixel x is size - 1 - x; in data_load.normalize_keypoints's units:
    mirror = out[n:, dl.FLIP_PERM] * out.new_tensor([-1.0, 1.0]) + out.new_tensor([(size - 1 - 200 * s) / (50 * s), 0])
    return ((out[:n] + mirror) / 2).flatten(1)


def lr_at(epoch, step, steps, args):
    if args.schedule == "constant":
        return args.lr
    t = (epoch + step / steps) / args.epochs
    warm = min(1.0, (epoch * steps + step + 1) / (2 * steps))  # two warm-up epochs
    return args.lr * warm * 0.5 * (1 + math.cos(math.pi * t))


def evaluate_loss(model, loader, loss_fn, device, conventions=None):
    """(loss, NME %, confidences, mean offset along the eye line) on a validation loader: the offset from the
    predicted points to the labels, along each face's line from point 36 to point 45, in eye distances. The points
    are in each source's labelling when conventions are given."""
    model.eval()
    total, n, nmes, confs, along = 0.0, 0, [], [], []
    with torch.no_grad():
        for batch in loader:
            x, y = batch["image"].to(device), batch["keypoints"].to(device).flatten(1)
            out, conf = WithConfidence(model)(x)
            if conventions is not None:
                out = out + conventions(batch["source"].to(device), batch["mirrored"].to(device), y)
            confs.append(conf.cpu())
            total += loss_fn(out, y).item() * len(x)
            n += len(x)
            p, t = out.view(-1, 68, 2), y.view(-1, 68, 2)
            eye = t[:, 45] - t[:, 36]
            iod = eye.norm(dim=-1)
            nmes.append(((p - t).norm(dim=-1).mean(-1) / iod).cpu())
            along.append((((t - p) * eye[:, None]).sum(-1).mean(-1) / iod ** 2).cpu())
    return total / max(n, 1), 100 * torch.cat(nmes).mean().item(), torch.cat(confs), torch.cat(along).mean().item()


def validate(model, val_loaders, loss_fn, device, conventions=None):
    """{'val_loss', 'val_nme'} over all validation faces, 'val_nme_<source>' per source; their median confidence;
    and the offset along the eye line (evaluate_loss) of the source whose labelling the network learns."""
    per = {s: evaluate_loss(model, loader, loss_fn, device, conventions) for s, loader in val_loaders.items()}
    counts = {s: len(loader.dataset) for s, loader in val_loaders.items()}
    n = max(sum(counts.values()), 1)
    out = {"val_loss": sum(per[s][0] * counts[s] for s in per) / n,
           "val_nme": sum(per[s][1] * counts[s] for s in per) / n}
    if len(per) > 1:
        out.update({f"val_nme_{s}": per[s][1] for s in per})
    # The labels sit right of the mirror-symmetric place (the annotators' habit), which mirror augmentation cannot
    # teach: detect.py moves every point by this offset, measured on the photos when there are some.
    offset = per["300w" if "300w" in per else "course"][3] if per else 0.0
    return out, torch.cat([c for _, _, c, _ in per.values()]).median().item(), offset


def use_bf16(setting, device):
    """Whether --bf16 SETTING means bfloat16 autocast on device."""
    if setting != "auto":
        return setting == "on"
    # torch.cpu's checks are private but the only ones that tell native bf16 from the emulated kind
    return device.type == "cuda" or torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()


def add_options(p):
    """The options, each with the default its model's recipe gives it."""
    def recipe(key):
        return "default: " + ", ".join(f"{r[key]} for {m}" for m, r in RECIPES.items() if key in r)

    p.add_argument("--model", choices=list(MODELS), help="the network to train (default: HeatmapNet)")
    p.add_argument("--data", help="course data folder (default: $FKP_DATA_DIR or ./data)")
    p.add_argument("--out", help="weights file; OUT.ckpt beside it holds the last epoch for --resume "
                                 "(default: saved_models/<model>.pt)")
    p.add_argument("--epochs", type=int, help=recipe("epochs"))
    p.add_argument("--batch-size", type=int, help=recipe("batch_size"))
    p.add_argument("--lr", type=float, help="learning rate, " + recipe("lr"))
    p.add_argument("--weight-decay", type=float, help="AdamW's weight decay (0: Adam), " + recipe("weight_decay"))
    p.add_argument("--loss", choices=["smoothl1", "wing"], help="the keypoints' loss, " + recipe("loss"))
    p.add_argument("--beta", type=float, help="SmoothL1Loss beta, " + recipe("beta"))
    p.add_argument("--schedule", choices=["constant", "cosine"],
                   help="learning rate schedule (cosine: two warm-up epochs, then down to 0), " + recipe("schedule"))
    p.add_argument("--heatmap-loss", type=float,
                   help="weight of HeatmapNet's heatmap regularizer (0: none), " + recipe("heatmap_loss"))
    p.add_argument("--input-size", type=int, help="HeatmapNet's input size in pixels, " + recipe("input_size"))
    p.add_argument("--width", type=int,
                   help="HeatmapNet's channels in its first layer (doubled at each halving), " + recipe("width"))
    p.add_argument("--blocks", type=int, nargs=3, metavar=("B4", "B8", "B16"),
                   help="HeatmapNet's residual blocks at 1/4, 1/8 and 1/16 of the input, " + recipe("blocks"))
    p.add_argument("--margin", type=float, help="HeatmapNet's crop: its face box padded by this share of the box's "
                   "width on every side, " + recipe("margin"))
    p.add_argument("--occlude", type=float, metavar="P",
                   help="share of training crops with a random patch over part of the face, " + recipe("occlude"))
    p.add_argument("--photos", help="300-W photo folder (NAME.jpg + NAME.pts) to train on beside the course frames "
                                    "(default: $FKP_300W_DIR or ./data/300w)")
    p.add_argument("--photos-weight", type=int,
                   help="times each training photo is seen per epoch (0: course frames alone), "
                        + recipe("photos_weight"))
    p.add_argument("--turned", metavar="DIR", help="faces at every head pose to train on too: a 300-W-layout folder "
                                                   "with its yaw.json (default: $FKP_AFLW_DIR or ./data/aflw2000)")
    p.add_argument("--turned-weight", type=int,
                   help="times each of --turned's training faces is seen per epoch (0: none), " + recipe("turned_weight"))
    p.add_argument("--teacher", metavar="WEIGHTS", nargs="+",
                   help="trained HeatmapNets of the same input size and margin: their points on each training crop, "
                        "averaged with those on the crop mirrored and over the teachers, become a second target")
    p.add_argument("--distill", type=float, help="weight of --teacher's target beside the labels' (default: 1 with "
                                                 "--teacher)")
    p.add_argument("--subset", type=int, help="use only the first N training and validation images of each source")
    p.add_argument("--all-people", action="store_true", help="also train on the unseen people's training images")
    p.add_argument("--bf16", choices=["auto", "on", "off"], default="auto",
                   help="bfloat16 autocast. auto: on a GPU, and on a CPU with native bf16 (avx512_bf16 or AMX); "
                        "off elsewhere, as emulated bf16 is slower than float32")
    p.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1), help="data loading processes")
    p.add_argument("--seed", type=int, help="seed of the weights' start and of every epoch's shuffle (default: 0)")
    p.add_argument("--max-steps", type=int, help="stop after this many steps in all (for tests)")
    p.add_argument("--resume", action="store_true", help="continue from OUT.ckpt, with the settings it was started with")
    p.add_argument("--force", action="store_true", help="overwrite an existing OUT")


def check_options(p, args):
    """Refuse settings that cannot work, or that the model does not have, before any work."""
    if args.distill is not None and not args.teacher:
        p.error("--distill weighs --teacher's target: give --teacher WEIGHTS")
    if args.epochs is not None and args.epochs < 1:
        p.error(f"--epochs {args.epochs}: nothing to train; give at least 1")
    for k in ("input_size", "width", "blocks", "margin", "occlude", "turned_weight", "teacher"):
        if getattr(args, k) is not None and args.model != "HeatmapNet":
            p.error(f"--{k.replace('_', '-')} is an option of HeatmapNet; {args.model} keeps the course's shape and "
                    "recipe")
    if args.occlude is not None and not 0 <= args.occlude <= 1:  # NaN fails it too
        p.error(f"--occlude {args.occlude}: a share of the crops, from 0 to 1")
    if args.margin is not None and not 0 <= args.margin <= 1:
        p.error(f"--margin {args.margin}: a share of the face box's width, from 0 to 1")
    if args.turned_weight is not None and args.turned_weight < 0:
        p.error(f"--turned-weight {args.turned_weight}: times a face is seen, 0 or more")
    if args.blocks is not None and min(args.blocks) < 0:
        p.error(f"--blocks {' '.join(map(str, args.blocks))}: numbers of residual blocks, 0 or more")
    if args.input_size is not None and (args.input_size <= 0 or args.input_size % 16):
        p.error(f"--input-size must be a positive multiple of 16 (HeatmapNet halves it 4 times), not {args.input_size}")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=dl.HelpFormatter)
    add_options(p)
    args = p.parse_args(argv)
    args.given = {k for k in SETTINGS if getattr(args, k) not in (None, False)}
    args.model, args.seed = args.model or "HeatmapNet", args.seed or 0
    check_options(p, args)
    args.distill = (1.0 if args.distill is None else args.distill) if args.teacher else 0.0
    for k, v in RECIPES[args.model].items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    if "blocks" in RECIPES[args.model]:
        args.blocks = tuple(args.blocks)  # as the checkpoint stores it, so that --resume compares like with like
    args.out = Path(args.out or f"saved_models/{args.model.lower()}.pt")
    return args


def start_state(args):
    """The checkpoint to resume from (its settings taken), or None for a new run; refused where it cannot be."""
    ckpt_path = args.out.with_suffix(".ckpt")
    best_path = args.out.with_name(args.out.stem + "_best" + args.out.suffix)
    if not args.resume:
        if not args.force and any(f.exists() for f in (args.out, ckpt_path, best_path)):
            raise TrainError(f"{args.out}: exists; use --resume to continue it, --force to overwrite it, or --out")
        return None
    state = load_checkpoint(ckpt_path)
    take_settings(args, state, ckpt_path)
    if state["model"] != args.model:
        raise WeightsError(f"{ckpt_path}: holds a {state['model']}, expected a {args.model}")
    if state["epoch"] >= args.epochs:
        raise TrainError(f"{ckpt_path}: the run is finished ({state['epoch']} of {args.epochs} epochs); "
                         "nothing to resume")
    return state


def data_folders(args, say):
    """(300-W photo folder or None, faces-at-every-pose folder or None): a folder named but missing is an error,
    a default one missing a note (say) and a run without it."""
    photos = dl.photos_dir(args.photos)
    if args.photos_weight and not photos.is_dir():
        if args.photos:
            raise dl.DataError(f"{photos}: no such folder")
        say(f"note: no 300-W photos at {photos} (set FKP_300W_DIR or --photos): the course frames alone")
        photos = None
    turned = dl.turned_dir(args.turned) if args.turned_weight else None
    if turned is not None and not turned.is_dir():
        if args.turned:
            raise dl.DataError(f"{turned}: no such folder (faces at every pose: --turned DIR or $FKP_AFLW_DIR)")
        say(f"note: no faces at every pose at {turned} (set FKP_AFLW_DIR or --turned): trained without them")
        turned = None
    return photos, turned


def load_teachers(args, model, device):
    teachers = [load_model(w, expected="HeatmapNet") for w in args.teacher or []]
    for w, t in zip(args.teacher or [], teachers):
        if (t.input_size, t.margin) != (model.input_size, model.margin):
            raise TrainError(f"{w}: a {t.input_size} px teacher with margin {t.margin}; "
                             f"the model trained takes {model.input_size} px crops with margin {model.margin}")
        t.to(device, memory_format=torch.channels_last)
    return teachers


def step_loss(args, model, net, batch, device, loss_fn, conventions, teachers):
    """One batch's loss: the labels' (in each source's labelling), the heatmap regularizer's, the teachers'."""
    x = batch["image"].to(device, memory_format=torch.channels_last)
    y = batch["keypoints"].to(device).flatten(1)
    out, heat = model(x, with_heatmaps=True) if args.heatmap_loss else (model(x), None)
    out_net = out
    if conventions:
        out = out + conventions(batch["source"].to(device), batch["mirrored"].to(device), y)
    loss = loss_fn(out.float(), y, batch["weights"].to(device)) if "weights" in batch else loss_fn(out.float(), y)
    if args.heatmap_loss:
        loss = loss + args.heatmap_loss * net.heatmap_loss(heat.float(), y)
    if teachers:  # in the first source's labelling, as the network's own points
        with torch.no_grad():
            soft = torch.stack([mirrored_mean(t, x) for t in teachers]).mean(0)
        loss = loss + args.distill * loss_fn(out_net.float(), soft.float())
    return loss, len(x)


def train_epoch(run, epoch, stop):
    """One epoch over a fresh shuffle; (mean loss, whether --max-steps is reached)."""
    args, model, opt, distributed = run.args, run.model, run.opt, run.distributed
    # Every epoch is seeded from (seed, epoch) alone, so a resumed run repeats an uninterrupted one.
    gen = torch.Generator().manual_seed(args.seed * 1000 + epoch)
    np.random.seed(args.seed * 1000 + epoch)
    torch.manual_seed(args.seed * 1000 + epoch)
    sampler = torch.utils.data.DistributedSampler(run.train_set, seed=args.seed + epoch) if distributed else None
    loader = DataLoader(run.train_set, batch_size=args.batch_size, shuffle=sampler is None, sampler=sampler,
                        generator=gen, num_workers=args.workers, drop_last=len(run.train_set) > args.batch_size,
                        worker_init_fn=quiet_worker)
    model.train()
    total, n = 0.0, 0
    for step, batch in enumerate(tqdm(loader, desc=f"epoch {epoch + 1}/{args.epochs}", disable=not run.main_proc,
                                      leave=False)):
        stop.check(distributed)
        for g in opt.param_groups:
            g["lr"] = lr_at(epoch, step, len(loader), args)
        with run.amp:
            loss, size = step_loss(args, model, run.net, batch, run.device, run.loss_fn, run.conventions,
                                   run.teachers)
        if not torch.isfinite(loss):
            raise TrainError(f"epoch {epoch + 1} step {step}: loss is {loss.item()}; stopped before writing "
                             f"NaN weights (try a lower --lr); {run.ckpt_path} holds the last good epoch")
        opt.zero_grad()
        loss.backward()
        if distributed and run.conventions:  # outside DDP's model: average its gradient by hand
            dist.all_reduce(run.conventions.offsets.grad)
            run.conventions.offsets.grad /= dist.get_world_size()
        opt.step()
        total, n, run.steps_done = total + loss.item() * size, n + size, run.steps_done + 1
        if args.max_steps and run.steps_done >= args.max_steps:
            return total / max(n, 1), True
    return total / max(n, 1), False


def save_epoch(run, history, val_conf, offset, epoch):
    """The weights, the best epoch's weights, the checkpoint for --resume and the loss plot; the run's record."""
    args, net = run.args, run.net
    # A crop whose heatmaps peak at less than 58% of a typical validation face's is taken for no face
    # (the fraction that lost no 300-W validation face and left the fewest boxes, saved_models/README.md).
    meta = {"history": history, "args": {k: str(v) for k, v in vars(args).items()},
            "settings": {k: getattr(args, k) for k in SETTINGS},
            "min_confidence": MIN_CONFIDENCE_FRACTION * val_conf if args.model == "HeatmapNet" else 0.0,
            "labellings": labellings(offset if args.model == "HeatmapNet" else 0.0, run.conventions, run.names)}
    atomic_save(checkpoint(net, **meta), args.out)
    if history[-1]["val_nme"] <= min(h["val_nme"] for h in history):
        atomic_save(checkpoint(net, **meta), args.out.with_name(args.out.stem + "_best" + args.out.suffix))
    atomic_save(checkpoint(net, optimizer=run.opt.state_dict(), epoch=epoch + 1, **meta), run.ckpt_path)
    plot_losses(history, args.out.with_name(args.out.stem + "_loss.png"), args.loss)
    return meta


def setup(args):
    """Everything a run needs, as one namespace: the model (DDP-wrapped when distributed), data, optimizer, the
    sources' conventions, teachers, loss, and where it starts (state: the checkpoint resumed, or None)."""
    run = SimpleNamespace(args=args, distributed="RANK" in os.environ, steps_done=0)
    if run.distributed:
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    run.main_proc = (dist.get_rank() if run.distributed else 0) == 0
    run.device = torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if torch.cuda.is_available() else "cpu")
    run.ckpt_path = args.out.with_suffix(".ckpt")
    run.state = start_state(args)
    torch.manual_seed(args.seed)
    model = MODELS[args.model](**{k: getattr(args, k) for k in ("input_size", "width", "blocks", "margin")
                                  if k in RECIPES[args.model]})
    photos, turned = data_folders(args, print if run.main_proc else lambda _: None)
    run.train_set, run.val_sets, sources = datasets(model, dl.data_dir(args.data), photos, args.photos_weight,
                                                    args.subset, args.all_people, args.occlude, turned,
                                                    args.turned_weight)
    run.conventions = Conventions(sources) if sources > 1 else None
    run.teachers = load_teachers(args, model, run.device)
    # The sources' labellings in their numbers' order: the photos' first when there are some (train.datasets).
    run.names = (["300w", "course"] if "300w" in run.val_sets else ["course"]) + ["turned"] * (turned is not None)
    params = list(model.parameters()) + (list(run.conventions.parameters()) if run.conventions else [])
    run.opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=args.weight_decay) \
        if args.weight_decay else torch.optim.Adam(params, lr=args.lr)
    if run.state:
        model.load_state_dict(run.state["state_dict"])
        for i, name in enumerate(run.names[1:]):
            run.conventions.offsets.data[i] = run.state["labellings"][name]
        run.opt.load_state_dict(run.state["optimizer"])
    model.to(run.device, memory_format=torch.channels_last)  # 10-15% faster convolutions on a CPU
    if run.conventions:
        run.conventions.to(run.device)
    run.model = torch.nn.parallel.DistributedDataParallel(model) if run.distributed else model
    run.net = model
    run.loss_fn = WingLoss(model.input_size) if args.loss == "wing" else torch.nn.SmoothL1Loss(beta=args.beta)
    run.amp = torch.autocast(run.device.type, dtype=torch.bfloat16, enabled=use_bf16(args.bf16, run.device))
    return run


def train(args, stop=None):
    stop = stop or Stop()
    run = setup(args)
    net, history, start = run.net, [], 0
    if run.state:
        history, start = run.state["history"], run.state["epoch"]
        if run.main_proc:
            print(f"resuming {run.ckpt_path} after epoch {start} of {args.epochs}")
    if run.main_proc:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        print(f"{args.model}: {sum(p.numel() for p in net.parameters()):,} parameters; "
              f"{len(run.train_set)} training faces an epoch / validation "
              + ", ".join(f"{len(v)} {k}" for k, v in run.val_sets.items()) + f" on {run.device}")
    val_loaders = {k: DataLoader(v, batch_size=64, num_workers=args.workers, worker_init_fn=quiet_worker)
                   for k, v in run.val_sets.items()}
    meta = None
    for epoch in range(start, args.epochs):
        t0 = time.time()
        loss, done = train_epoch(run, epoch, stop)
        if run.distributed:  # DDP keeps the weights equal; BatchNorm's running statistics are each rank's own
            for b in net.buffers():
                dist.broadcast(b, 0)
        val, val_conf, offset = validate(net, val_loaders, run.loss_fn, run.device, run.conventions)
        history.append({"epoch": epoch + 1, "train_loss": loss, **val, "seconds": time.time() - t0})
        if run.main_proc:
            print(json.dumps(history[-1]), flush=True)
            meta = save_epoch(run, history, val_conf, offset, epoch)
        stop.check(run.distributed)
        if done:
            break
    if run.main_proc and meta and isinstance(net, MODELS["HeatmapNet"]) and sum(map(len, run.val_sets.values())):
        atomic_save(checkpoint(net, **meta, int8_onnx=int8_model(net, run.val_sets)), args.out)
    if run.distributed:
        dist.destroy_process_group()
    return net, history


def main(argv=None):
    run_cli(train, parse_args(argv))


def run_cli(train_fn, args):
    """train_fn(args, stop) for a command line: Ctrl-C and every foreseen error end it with one line (zoom.py too)."""
    stop = Stop().install()
    try:
        train_fn(args, stop)
    except KeyboardInterrupt:
        ckpt = args.out.with_suffix(".ckpt")
        sys.exit(f"interrupted: {ckpt} holds the last complete epoch; continue with --resume" if ckpt.exists()
                 else "interrupted before the first epoch ended: nothing was saved")
    except (TrainError, WeightsError, dl.DataError) as e:
        sys.exit(f"error: {e}")
    except OSError as e:
        sys.exit(f"error: {e.filename or args.out}: {e.strerror or e}")


if __name__ == "__main__":
    main()
