"""Measure a keypoint model on the labelled test images, and optionally dlib's 68-point predictor beside it.

    python evaluate.py --split unseen --protocol pipeline --compare dlib
    python evaluate.py --split all --protocol dataset --weights saved_models/net.pt --json net.json
    python evaluate.py --photos ../shared/300w --photo-split test --compare dlib   # real photos, 300-W layout
    python evaluate.py --photos ../shared/aflw2000 --compare dlib   # turned faces, per yaw band (its yaw.json)
    python evaluate.py --photos ../shared/300w --compare dlib --dlib-model dlib_ours.dat   # benchmark.py --train-dlib's
    python evaluate.py --box-stats --detector hog   # where a face detector puts its box around the 68 points

NME: mean point-to-point error / inter-ocular distance (outer eye corners, points 36 and 45), in %; on a folder with
a yaw.json (faces up to profile), / sqrt(width x height) of the true points' box, reported per yaw band.
fail_10: % of faces with NME > 10%. auc_10: area under the cumulative error distribution up to 10%, in [0, 1].
Pipeline protocol: a face the detector misses counts as a failure (NME infinite) in fail_10 and auc_10, and is left
out of the mean NME, which is over the faces found.
"""
import argparse
import json
import signal
import sys
import time
import warnings
from pathlib import Path

if __name__ == "__main__":  # Ctrl-C while the libraries load: a quiet exit with status 130, not a traceback
    signal.signal(signal.SIGINT, lambda *_: sys.exit(130))
import cv2  # noqa: E402
import numpy as np
import torch

import data_load as dl
from detect import DEFAULT_WEIGHTS, FaceKeypointDetector, plural
from detectors import DETECTORS, contains, iou
from models import WeightsError, cpu

YAW_BANDS = ("yaw 0-30", "yaw 30-60", "yaw 60-90")
SPLITS = {"unseen": lambda n: dl.is_unseen(n), "seen": lambda n: not dl.is_unseen(n), "all": lambda n: True}


class EvalError(ValueError):
    pass


# ---------------------------------------------------------------- metrics

def normalizer(gt, norm="iod"):
    """Each face's length that errors are divided by: the inter-ocular distance (outer eye corners, 36 and 45), or
    'box': sqrt(width x height) of the true points' bounding box, the usual measure on faces turned up to profile,
    whose eye distance shrinks to nothing."""
    if norm == "box":
        return np.sqrt(np.prod(gt.max(1) - gt.min(1), axis=-1))
    return np.linalg.norm(gt[:, 36] - gt[:, 45], axis=-1)


def nme(pred, gt, norm="iod"):
    """Per-face NME in % (N), pred and gt N x 68 x 2; NaN predictions (missed faces) give inf."""
    err = np.linalg.norm(pred - gt, axis=-1).mean(-1) / normalizer(gt, norm) * 100
    return np.where(np.isnan(err), np.inf, err)


def metrics(pred, gt, norm="iod"):
    e = nme(pred, gt, norm)
    found = np.isfinite(e)
    thresholds = np.linspace(0, 10, 1001)
    ced = (e[None, :] <= thresholds[:, None]).mean(1)
    unit = normalizer(gt, norm)
    regions = {name: float(np.nanmean(np.linalg.norm(pred[:, idx] - gt[:, idx], axis=-1).mean(-1)[found]
                                      / unit[found]) * 100) if found.any() else float("nan")
               for name, idx in dl.REGIONS.items()}
    # Mean signed offset (x, y) of each region, % of the normalizer: a labelling convention shows here.
    d = (pred - gt)[found] / unit[found, None, None] * 100
    offsets = {name: [float(v) for v in d[:, idx].mean((0, 1))] if found.any() else [float("nan")] * 2
               for name, idx in dl.REGIONS.items()}
    return {"n": len(e), "found": int(found.sum()), "nme": float(e[found].mean()) if found.any() else float("nan"),
            "median": float(np.median(e[found])) if found.any() else float("nan"),
            "fail_10": float((e > 10).mean() * 100), "auc_10": float(np.trapezoid(ced, thresholds) / 10),
            "regions": regions, "offsets": offsets, "errors": e}


def plot_ced(curves, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4))
    for label, e in curves.items():
        t = np.linspace(0, 10, 201)
        ax.plot(t, [(e <= x).mean() for x in t], label=label)
    ax.set(xlabel="NME (%)", ylabel="fraction of faces", xlim=(0, 10), ylim=(0, 1), title="Cumulative error")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# ---------------------------------------------------------------- predictors

def pick(boxes, gt):
    """The detection whose box holds the ground-truth centre (the largest such), or None: where a detector puts its
    box (box_stats), not which face a predictor found (nearest)."""
    c = (gt.min(0) + gt.max(0)) / 2
    hits = [i for i, b in enumerate(boxes) if contains(b, c)]
    return max(hits, key=lambda i: boxes[i][2]) if hits else None


def nearest(points, gt, norm="iod"):
    """The one rule that matches every predictor's faces to a true face: the index of the prediction (each 68 x 2)
    whose points lie nearest the true ones (mean point distance), if that is within one normalizer (the
    inter-ocular distance, or the box's size for norm 'box'); else None. A box that merely holds the face's centre
    can be another, larger face's."""
    if not len(points):
        return None
    d = [float(np.linalg.norm(p - gt, axis=-1).mean()) for p in points]
    i = int(np.argmin(d))
    return i if d[i] <= normalizer(gt[None], norm)[0] else None


def detector(args):
    """The pipeline as --weights, --runtime, --flip, --refine, --no-zoom, --min-confidence and --labelling set it."""
    fkd = FaceKeypointDetector(args.weights or DEFAULT_WEIGHTS, detector=args.detector, runtime=args.runtime,
                               flip=args.flip, refine=args.refine, min_confidence=args.min_confidence,
                               labelling=args.labelling, zoom=not args.no_zoom)
    if not args.labelling and not args.photos and "course" in fkd.model.labellings:
        fkd.labelling = "course"  # measured against the course's labels: in their convention
    return fkd


class OurModel:
    def __init__(self, fkd, weights):
        self.fkd = fkd
        self.model = fkd.model
        default = next(iter(self.model.labellings), None)
        how = ", ".join([fkd.detector, fkd.runtime] + [o for o in ("flip", "refine", "zoom") if getattr(fkd, o)]
                        + [f"{fkd.labelling} labels"] * (fkd.labelling != default))
        self.name = f"{type(self.model).__name__} ({Path(weights).name}, {how})"
        self.boxes = 0  # faces reported in all, the labelled one and any other

    def pipeline(self, rgb, gt, norm):
        """The whole pipeline as a user gets it (detector, confidence filter, model): the face picked, or None."""
        faces = self.fkd.detect(rgb, channels="rgb")
        self.boxes += len(faces)
        i = nearest([f.keypoints for f in faces], gt, norm)
        return (None, None) if i is None else (faces[i].keypoints, faces[i].box)

    def dataset(self, rgb):
        """The whole image, deterministically: Net sees the centre square that its course eval transform
        (Rescale(250), CenterCrop(224)) keeps; a model trained on padded face crops sees the whole image."""
        h, w = rgb.shape[:2]
        if type(self.model).__name__ == "Net":
            side = min(h, w) * 224 / 250
            x0, y0 = round((w - side) / 2), round((h - side) / 2)
            rect = (x0, y0, x0 + round(side), y0 + round(side))
        else:
            rect = (0, 0, w, h)
        return self.fkd.keypoints_in_rects(rgb, [rect])[0][0]

    def crop_predict(self, rgb, box):
        return self.fkd.keypoints(rgb, box[None])[0][0]


class Dlib:
    name = "dlib HOG + 68-point predictor"
    boxes = 0

    def __init__(self, model=None):
        """model: a shape predictor file of dlib's (benchmark.py --train-dlib writes one) instead of the 68-point
        predictor that face_recognition_models ships."""
        import dlib
        self.dlib = dlib
        self.detector = dlib.get_frontal_face_detector()
        if model:
            self.name = f"dlib HOG + {Path(model).name}"
        else:
            try:
                with warnings.catch_warnings():  # it imports pkg_resources, which warns that it is deprecated
                    warnings.simplefilter("ignore")
                    import face_recognition_models
            except ImportError as e:
                raise EvalError("--compare dlib needs the optional packages: pip install -r requirements-dlib.txt "
                                f"({e})")
            model = face_recognition_models.pose_predictor_model_location()
        if not Path(model).is_file():
            raise EvalError(f"{model}: no such file (a dlib shape predictor)")
        try:
            self.predictor = dlib.shape_predictor(str(model))
        except RuntimeError as e:
            raise EvalError(f"{model}: not a dlib shape predictor ({str(e).strip().splitlines()[0]})")

    def pipeline(self, rgb, gt, norm):
        """dlib as its documentation shows it: every rectangle of its detector (upsampled once) straight into its
        predictor, on the RGB image."""
        rects = self.detector(rgb, 1)
        self.boxes += len(rects)
        points = [self.points(rgb, r) for r in rects]
        i = nearest(points, gt, norm)
        if i is None:
            return None, None
        r = rects[i]
        return points[i], np.float32([r.left(), r.top(), r.width(), r.height()])

    def points(self, rgb, rect):
        return np.float32([(p.x, p.y) for p in self.predictor(rgb, rect).parts()])

    def crop_predict(self, rgb, box):
        x, y, w, h = (int(v) for v in box)  # dlib's width is right - left + 1
        return self.points(rgb, self.dlib.rectangle(x, y, x + w - 1, y + h - 1))


# ---------------------------------------------------------------- the run

def run(predictors, images, gts, protocol, norm="iod"):
    """Every predictor over the images, taking turns image by image (so a drifting machine slows all alike):
    per predictor (predictions N x 68 x 2, NaN for a face not found; the boxes; seconds in all)."""
    preds, boxes, seconds = [[] for _ in predictors], [[] for _ in predictors], [0.0 for _ in predictors]
    for rgb, gt in zip(images, gts):
        for k, pr in enumerate(predictors):
            t0 = time.perf_counter()
            p, b = pr.pipeline(rgb, gt, norm) if protocol == "pipeline" else (pr.dataset(rgb), None)
            seconds[k] += time.perf_counter() - t0
            preds[k].append(np.full((68, 2), np.nan, np.float32) if p is None else p)
            boxes[k].append(b)
    return [(np.stack(p), b, t) for p, b, t in zip(preds, boxes, seconds)]


def speeds(jobs, repeats=3):
    """Median ms of fn(*args) over its calls, for each (fn, calls) in jobs: crop -> 68 points at batch 1, one face at
    a time. The jobs take turns call by call, so that a shared machine whose speed drifts during the run slows every
    predictor alike."""
    times = [[] for _ in jobs]
    for _ in range(repeats):
        for i in range(max((len(calls) for _, calls in jobs), default=0)):
            for (fn, calls), t in zip(jobs, times):
                if i < len(calls):
                    t0 = time.perf_counter()
                    fn(*calls[i])
                    t.append(time.perf_counter() - t0)
    return [float(np.median(t) * 1000) if t else float("nan") for t in times]


def throughput(model, batch=64, reps=5):
    """Faces per second through the model alone at batch 64."""
    x = torch.rand(batch, model.in_channels, model.input_size, model.input_size)
    with torch.inference_mode():
        model(x)
        t0 = time.perf_counter()
        for _ in range(reps):
            model(x)
    return batch * reps / (time.perf_counter() - t0)


def wild(fkd, folder):
    """Face detection on labelled group photos (boxes.json: {file: [[left, top, width, height], ...]}):
    per photo (file, faces labelled, found at IoU >= 0.3, false boxes)."""
    labels_file = Path(folder) / "boxes.json"
    if not labels_file.is_file():
        raise EvalError(f"{labels_file}: no such file (--wild needs the labelled boxes: "
                        '{"photo.jpg": [[left, top, width, height], ...], ...})')
    try:
        labels = json.loads(labels_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise EvalError(f"{labels_file}: not JSON ({e})") from None
    missing = [name for name in labels if not (Path(folder) / name).is_file()]
    if missing:
        raise EvalError(f"{labels_file}: names {missing[0]}, which is not in {folder}")
    rows = []
    for name, truth in sorted(labels.items()):
        faces = fkd.detect(Path(folder) / name)
        matched = set()
        for f in faces:
            hit = next((j for j, t in enumerate(truth) if j not in matched and iou(f.box, t) >= 0.3), None)
            if hit is not None:
                matched.add(hit)
        rows.append((name, len(truth), len(matched), len(faces) - len(matched)))
    return rows


def box_stats(fkd, samples):
    """Where fkd's face detector puts its box relative to the 68 points, over the faces it finds among samples
    ((image path, keypoints) pairs), per filter or model of the detector (HOG's five, BlazeFace's two, Haar's one),
    each measured on every face it finds: {kind: (a crops.DETECTOR_KINDS-like entry, the number of faces)}."""
    rows = []
    for path, kp in samples:
        boxes, _, kinds = fkd.face_detector.detections(dl.read_image(path))
        lo, hi = kp.min(0), kp.max(0)
        extent, c = float(max(hi - lo)), (lo + hi) / 2
        for kind in np.unique(kinds):
            own = boxes[kinds == kind]
            i = pick(own, kp)
            if i is not None:
                x, y, w, h = own[i]
                rows.append((kind, (x + w / 2 - c[0]) / extent, (y + h / 2 - c[1]) / extent,
                             np.log((w + h) / 2 / extent)))
    r = np.float64(rows).reshape(-1, 4)
    out = {}
    for kind in map(int, np.unique(r[:, 0])):
        q = r[r[:, 0] == kind, 1:]
        s = float(np.exp(np.median(q[:, 2])))
        out[kind] = ({"dx": round(float(np.median(q[:, 0])), 3), "dy": round(float(np.median(q[:, 1])), 3),
                      "s": round(s, 3), "sd_shift": tuple(round(float(v), 3) for v in q[:, :2].std(0) / s),
                      "sd_scale": round(float(q[:, 2].std()), 3)}, len(q))
    return out


def load_photos(folder, split):
    """(names, images, keypoints, sources) of a 300-W folder's split."""
    paths, kps = dl.read_photos(folder, split)
    return [str(p) for p in paths], [dl.read_image(p) for p in paths], kps, [dl.source(p) for p in paths]


def yaw_bands(folder, names):
    """Each face's yaw band ('yaw 0-30', 'yaw 30-60', 'yaw 60-90') from the folder's yaw.json, or None for a folder
    without one."""
    yaws = dl.read_yaws(folder, names)
    return None if yaws is None else [YAW_BANDS[min(int(abs(y) // 30), 2)] for y in yaws]


def load_split(data, split):
    csv, root = dl.split_paths(data, "test")
    names, kps = dl.read_keypoints_csv(csv, root)
    keep = [i for i, n in enumerate(names) if SPLITS[split](n)]
    if not keep:
        raise EvalError(f"{csv}: no images in the {split} split")
    return [names[i] for i in keep], [dl.read_image(root / names[i]) for i in keep], kps[keep]


def print_row(name, m):
    print(f"{name:54s} {m['found']:>4d}/{m['n']:<4d} {m['nme']:6.2f} {m['median']:6.2f} {m['fail_10']:8.1f} "
          f"{m['auc_10']:7.3f} {m.get('ms_per_face', float('nan')):8.2f} {m.get('pipeline_s', float('nan')):7.1f} "
          f"{m['boxes'] if 'boxes' in m else '':>5}  "
          + " ".join(f"{m['regions'][r]:6.2f}" for r in dl.REGIONS))


def print_common(errors, sources):
    """Mean NME over the faces every predictor found, overall and per source or yaw band: the same faces on each
    side, where the found faces' means above are over different ones (a predictor that misses the hard faces gains)."""
    both = np.all([np.isfinite(e) for e in errors.values()], 0)
    groups = {"all": both} | {src: both & (np.array(sources) == src) for src in sorted(set(sources or []))}
    print("NME% on the faces every predictor found: "
          + ", ".join(f"{name} {plural(int(g.sum()), 'face')}" for name, g in groups.items()))
    for name, e in errors.items():
        print(f"{name:54s} " + " ".join(f"{e[g].mean() if g.any() else float('nan'):6.2f}" for g in groups.values()))


def print_box_stats(fkd, args):
    """--box-stats: the detector's box convention, measured on the training faces of both sources."""
    csv, root = dl.split_paths(dl.data_dir(args.data), "training")
    names, kps = dl.read_keypoints_csv(csv, root)
    samples = [(root / n, k) for n, k in zip(names, kps) if not dl.is_unseen(n) and not dl.is_validation(n)]
    if dl.photos_dir(args.photos).is_dir():
        samples += list(zip(*dl.read_photos(dl.photos_dir(args.photos), "train")))
    for kind, (stats, n) in box_stats(fkd, samples).items():
        print(f"{args.detector} filter {kind}: {stats}  ({n} of {len(samples)} training faces)")
    return 0


def print_sizes(errors, gts, sources):
    """NME by the face's size: in quartiles of the true eye-corner distance, overall and per source (each group's
    own quartiles), each predictor over the faces it found. A model that loses detail on large faces shows here."""
    iod = normalizer(gts)
    groups = {"all": np.arange(len(gts))} | {s: np.flatnonzero(np.array(sources) == s) for s in sorted(set(sources or []))}
    print("NME% by eye-corner distance quartile (pixels), the faces each predictor found:")
    for group, idx in groups.items():
        quarters = np.array_split(idx[np.argsort(iod[idx], kind="stable")], 4)  # by rank: ties split evenly
        print(f"  {group}: " + ", ".join(f"{iod[q].min():.0f}-{iod[q].max():.0f}" for q in quarters if len(q)))
        for name, e in errors.items():
            cells = [e[q][np.isfinite(e[q])] for q in quarters]
            print(f"  {name:52s} " + " ".join(f"{c.mean() if len(c) else float('nan'):6.2f}" for c in cells))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=dl.HelpFormatter)
    p.add_argument("--data", help="course data folder (default: $FKP_DATA_DIR or ./data)")
    p.add_argument("--split", choices=list(SPLITS), default="unseen",
                   help="course test images: unseen (the 70 people never trained on), seen, or all")
    p.add_argument("--photos", metavar="DIR", help="instead of the course data: a folder in the 300-W layout "
                                                   "(NAME.jpg + NAME.pts; $FKP_300W_DIR by default for --box-stats)")
    p.add_argument("--photo-split", choices=list(dl.PHOTO_SPLITS), default="test",
                   help="which of --photos' faces (split by photo id)")
    p.add_argument("--protocol", choices=["pipeline", "dataset"], default="pipeline",
                   help="pipeline: the face detector finds the face in the whole image; dataset: the image is the "
                        "crop (the course's own measure)")
    p.add_argument("--detector", choices=list(DETECTORS), default="blaze",
                   help="face detector (detectors.py): blaze, hog or haar")
    p.add_argument("--box-stats", action="store_true",
                   help="instead: where --detector puts its box around the 68 points, on the training faces")
    p.add_argument("--weights", help="keypoint model weights (default: saved_models/heatmapnet.pt)")
    p.add_argument("--runtime", choices=["int8", "onnx", "torch"],
                   help="how the model runs (default: int8 when the weights have it, else onnx)")
    p.add_argument("--flip", action="store_true", help="test-time flip: also run each face mirrored")
    p.add_argument("--refine", action="store_true", help="a second pass on the crop the first pass's points give")
    p.add_argument("--no-zoom", action="store_true", help="without the closer look (ZoomNet) the weights may hold")
    p.add_argument("--labelling", metavar="NAME", help="whose convention the points follow (default: the labels' "
                   "own: course on the course data when the weights know it, else the weights' first)")
    p.add_argument("--min-confidence", type=float, help="face confidence floor (default: the one in the weights)")
    p.add_argument("--compare", choices=["dlib"], help="also measure dlib's HOG detector and 68-point predictor")
    p.add_argument("--dlib-model", metavar="FILE", help="with --compare dlib: this dlib shape predictor instead of "
                   "the shipped 68-point one (benchmark.py --train-dlib trains one on our training faces)")
    p.add_argument("--threads", type=int, default=2, help="CPU threads for every predictor")
    p.add_argument("--ced", metavar="PNG", help="write the cumulative error plot to this PNG")
    p.add_argument("--json", metavar="FILE", help="also write the model's figures to FILE as one JSON object")
    p.add_argument("--wild", metavar="DIR",
                   help='instead: face detection on the photos in DIR, against DIR/boxes.json: '
                        '{"photo.jpg": [[left, top, width, height], ...], ...}')
    args = p.parse_args(argv)
    if args.dlib_model and not args.compare:
        p.error("--dlib-model needs --compare dlib")
    if args.compare and args.protocol == "dataset":
        p.error("--compare dlib needs --protocol pipeline (dlib has no whole-image mode)")
    return args


def print_wild(fkd, folder):
    """--wild: face detection on labelled group photos, a line a photo and one in all."""
    rows = wild(fkd, folder)
    for name, n, found, false in rows:
        print(f"{name:24s} {found:2d} of {plural(n, 'face'):8s}, {plural(false, 'false box')}")
    n, found, false = (sum(r[i] for r in rows) for i in (1, 2, 3))
    print(f"{len(rows)} photos: {found} of {plural(n, 'face')} found (IoU >= 0.3), {plural(false, 'false box')}")
    return 0


def load_faces(args):
    """(images, true points, sources or yaw bands or None, what they are in words, normalizer name)."""
    if not args.photos:
        names, images, gts = load_split(dl.data_dir(args.data), args.split)
        return images, gts, None, f"split {args.split} ({len(images)} images)", "iod"
    names, images, gts, sources = load_photos(args.photos, args.photo_split)
    what = f"{args.photos} {args.photo_split} split ({len(images)} faces)"
    bands = yaw_bands(args.photos, names)
    if bands:  # faces up to profile: per yaw band, normalized by the true points' box
        return (images, gts, bands, what + "; NME normalized by sqrt(width x height) of the true points' box, per "
                "yaw band", "box")
    return images, gts, sources, what, "iod"


def measure(predictors, images, gts, sources, protocol, norm):
    """(rows: [(name, figures)], curves: {name: per-face NME}) of every predictor, ms a face included."""
    rows, curves, jobs = [], {}, []
    for pr, (preds, boxes, seconds) in zip(predictors, run(predictors, images, gts, protocol, norm)):
        m = metrics(preds, gts, norm)
        m["pipeline_s"], m["boxes"] = seconds, pr.boxes
        if protocol == "pipeline":
            jobs.append((pr.crop_predict, [(im, b) for im, b in zip(images, boxes) if b is not None]))
        else:
            jobs.append((pr.dataset, [(im,) for im in images]))
        if isinstance(pr, OurModel):
            m["faces_per_s_batch64"] = throughput(pr.model)
        if sources:
            m["sources"] = {src: metrics(preds[idx], gts[idx], norm) for src in sorted(set(sources))
                            for idx in [np.flatnonzero(np.array(sources) == src)]}
            if norm == "box":
                m["band_mean"] = float(np.mean([b["nme"] for b in m["sources"].values()]))
        curves[pr.name] = m.pop("errors")
        rows.append((pr.name, m))
    for (_, m), ms in zip(rows, speeds(jobs)):
        m["ms_per_face"] = ms
    return rows, curves


def report(rows, curves, gts, sources, what, norm, args):
    """The figures as evaluate.py prints them, the CED plot and the JSON file."""
    print(f"{what}, protocol {args.protocol}, {args.threads} threads ({cpu()}); pipe s: detector and keypoints over "
          "all the images, the predictors taking turns image by image; boxes: faces reported in all")
    print(f"{'model':54s} {'found':>9s} {'NME%':>6s} {'median':>6s} {'fail@10':>8s} {'AUC@10':>7s} {'ms/face':>8s} "
          f"{'pipe s':>7s} {'boxes':>5s}  "
          + " ".join(f"{r:>6s}" for r in dl.REGIONS))
    for name, m in rows:
        print_row(name, m)
        for src, ms in m.get("sources", {}).items():
            print_row(f"  {src}", ms)
        if "band_mean" in m:
            print(f"{'  mean of the yaw bands':54s} {'':9s} {m['band_mean']:6.2f}")
    pipeline = args.protocol == "pipeline"
    if len(rows) > 1 and pipeline:
        print_common(curves, sources)
    if pipeline and norm == "iod" and len(gts) >= 4:
        print_sizes(curves, gts, sources)
    if pipeline and len(gts):
        print(f"mean signed offset (x, y) per region, % of the {'box size' if norm == 'box' else 'inter-ocular distance'}"
              " (+y: below the labels)")
        for name, m in rows:
            print(f"{name:54s} " + "  ".join(f"{r} {x:+5.1f} {y:+5.1f}" for r, (x, y) in m["offsets"].items()))
    if args.photos and args.compare and norm == "iod" and not args.dlib_model:
        print("note: dlib's 68-point predictor was trained on iBUG 300-W, whose training set is AFW and the HELEN and "
              "LFPW training sets: these photos are likely among its training faces")
    if args.ced:
        plot_ced(curves, args.ced)
    if args.json:
        m = {k: v for k, v in rows[0][1].items() if k != "sources"}
        Path(args.json).write_text(json.dumps({"split": args.photo_split if args.photos else args.split,
                                               "protocol": args.protocol, **m}, indent=1))


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    if args.json and not Path(args.json).parent.is_dir():
        sys.exit(f"error: {args.json}: no such folder {Path(args.json).parent}")
    try:
        fkd = detector(args)
        if args.wild:
            return print_wild(fkd, args.wild)
        if args.box_stats:
            return print_box_stats(fkd, args)
        images, gts, sources, what, norm = load_faces(args)
        predictors = [OurModel(fkd, args.weights or DEFAULT_WEIGHTS)] + ([Dlib(args.dlib_model)] if args.compare
                                                                         else [])
    except (WeightsError, ValueError, EvalError) as e:  # dl.DataError is a ValueError
        sys.exit(f"error: {e}")
    report(*measure(predictors, images, gts, sources, args.protocol, norm), gts, sources,
           what, norm, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
