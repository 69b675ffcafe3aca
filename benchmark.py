"""Speed benchmarks. Video: a synthetic clip made from the embedded demo photo, a face moved along a known path.
Photos: face detector candidates, and the whole pipeline against dlib's over the same files.

    python benchmark.py            # fps of detect-every-frame vs tracking, keypoint jitter with/without smoothing,
                                   # writing H.264, and detect() on a photo with a face and on one without
    python benchmark.py --photos ../shared/300w --photo-split validation --detectors   # detector candidates
    python benchmark.py --photos ../shared/300w --photo-split test --pipeline          # detect.py vs dlib, wall time
    python benchmark.py --hog-thresholds     # HOG's recall on the validation faces against its threshold
    python benchmark.py --photos ../shared/300w --train-dlib dlib_ours.dat   # dlib's method on our training faces
    python benchmark.py --photos ../shared/300w/lfpw_train --batch    # detect.py's batch runs: photos a second

Prints measured figures; nothing here is a test threshold.
"""
import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

import crops
import data_load as dl
import detectors
from detect import DEFAULT_WEIGHTS, IMAGE_EXTS, FaceKeypointDetector, plural
from models import cpu
from video import VideoOut

DEMO = "images/astronaut.png"


def synthetic_clip(n=150, size=(640, 480), face_px=160, seed=0, period=150):
    """(BGR frames, per-frame offset of the face): the demo photo's face region pasted along a smooth figure-of-eight
    path that takes period frames (5 s at 30 fps; inf: the face held still), with a little sensor noise so that
    every frame differs as in a real video."""
    rgb = dl.read_image(DEMO)
    face = cv2.cvtColor(rgb[20:260, 120:330], cv2.COLOR_RGB2BGR)  # the astronaut's head and shoulders
    face = cv2.resize(face, (face_px, round(face_px * face.shape[0] / face.shape[1])))
    w, h = size
    rng = np.random.default_rng(seed)
    frames, offsets = [], []
    for i in range(n):
        t = 2 * np.pi * i / period
        x = int(round((w - face.shape[1]) / 2 + 0.25 * w * np.sin(t)))
        y = int(round((h - face.shape[0]) / 2 + 0.1 * h * np.sin(2 * t)))
        frame = np.full((h, w, 3), 90, np.uint8)
        frame[y:y + face.shape[0], x:x + face.shape[1]] = face
        frame = np.clip(frame + rng.normal(0, 3, frame.shape), 0, 255).astype(np.uint8)
        frames.append(frame)
        offsets.append((x, y))
    return frames, np.float32(offsets)


def jitter_and_lag(points, offsets, fps=30.0):
    """points: frames x 68 x 2 (NaN where no face). The face only moves rigidly, so keypoints minus the known offset
    should stand still. Jitter: the mean size of their frame-to-frame second difference (pixels; noise, not the
    slow drift a filter's lag causes). Lag: the delay (ms, whole frames) that best aligns the keypoints' centre with
    the true path, and the mean distance (pixels) between the two after that."""
    ok = ~np.isnan(points).any(axis=(1, 2))
    resid = points - offsets[:, None, :]
    second = np.linalg.norm(resid[2:] - 2 * resid[1:-1] + resid[:-2], axis=-1).mean(-1)
    jitter = float(np.mean(second[ok[2:] & ok[1:-1] & ok[:-2]]))
    centre = points.mean(1)
    errs = []
    for d in range(0, 8):
        a, b = centre[d:], offsets[:len(offsets) - d]
        m = ok[d:]
        errs.append(np.linalg.norm((a[m] - a[m].mean(0)) - (b[m] - b[m].mean(0)), axis=-1).mean())
    d = int(np.argmin(errs))
    return jitter, 1000.0 * d / fps, float(errs[0])


def track_points(fkd, frames, **kw):
    pts = []
    for _, faces in fkd.track(frames, **kw):
        pts.append(faces[0].keypoints if faces else np.full((68, 2), np.nan, np.float32))
    return np.stack(pts)


def fps(fn, frames):
    t0 = time.perf_counter()
    fn(frames)
    return len(frames) / (time.perf_counter() - t0)


def candidates():
    """name -> fn(rgb) -> list of (x, y, w, h): the face detectors compared for the pipeline's default."""
    import dlib
    hog = FaceKeypointDetector(detector="hog")
    haar = FaceKeypointDetector(detector="haar")
    profile = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_profileface.xml")

    def haar_profile(rgb):  # the frontal cascade as the pipeline runs it, and the profile cascade both ways
        boxes = list(haar.find_faces(rgb)[0])
        s = haar.face_detector.scale(rgb.shape)
        gray = cv2.resize(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), None, fx=s, fy=s)
        for flip in (False, True):
            g = np.ascontiguousarray(gray[:, ::-1]) if flip else gray
            for x, y, w, h in profile.detectMultiScale(g, 1.1, 3, minSize=(24, 24)):
                boxes.append(np.float32([g.shape[1] - x - w if flip else x, y, w, h]) / s)
        return boxes

    def one_model(model, threshold):  # one of BlazeFace's models alone, its overlaps suppressed
        def fn(rgb):
            boxes, scores = model.look(rgb, 0, 0, threshold)
            return list(boxes[detectors.nms(boxes, scores)])
        return fn

    blaze = {name: detectors.Blaze(**options) for name, options in
             {"blaze (BlazeFace both models, default)": {}, "blaze, full-range threshold 0.5": {"threshold": 0.5},
              "blaze, --min-size 40 (tiles)": {"min_size": 40}}.items()}
    out = {name: (lambda b: lambda rgb: list(b.find(rgb)[0]))(b) for name, b in blaze.items()}
    b = blaze["blaze (BlazeFace both models, default)"]
    out |= {"BlazeFace full range alone, 0.3": one_model(b.full, b.threshold),
            "BlazeFace short range alone, 0.5": one_model(b.short, b.short_threshold)}
    out |= {"haar (the course's cascade)": lambda rgb: list(haar.find_faces(rgb)[0]),
           "haar + profile cascades": haar_profile,
           "hog (dlib HOG, threshold -0.4)": lambda rgb: list(hog.find_faces(rgb)[0]),
           "dlib HOG, upsample 1": lambda rgb: [(r.left(), r.top(), r.width(), r.height())
                                                for r in hog.face_detector.hog(rgb, 1)]}
    try:
        import face_recognition_models
        cnn = dlib.cnn_face_detection_model_v1(face_recognition_models.cnn_face_detector_model_location())
        # Timed only: at seconds a photo on this CPU it is out of the running, and its count would take many minutes.
        out["dlib CNN (mmod), upsample 0"] = lambda rgb: [(d.rect.left(), d.rect.top(), d.rect.width(),
                                                           d.rect.height()) for d in cnn(rgb, 0)]
    except ImportError:
        print("dlib CNN: not measured (pip install -r requirements-dlib.txt)")
    return out


def compare_detectors(folder, split):
    """Faces found (a box holding the labelled face's centre; per yaw band where the folder has a yaw.json), boxes in
    all, and time per 640x480 frame and per 1024-pixel photo (of the 300-W photos), for each candidate."""
    from evaluate import pick, yaw_bands
    paths, kps = dl.read_photos(folder, split)
    bands = yaw_bands(folder, paths) or [""] * len(paths)
    images = {p: dl.read_image(p) for p in dict.fromkeys(paths)}
    frame = synthetic_clip(1)[0][0][:, :, ::-1]
    # A photo of the folder 1024 pixels on its longer side; in a folder without one, the demo photo at that size.
    photo = next((im for im in images.values() if max(im.shape[:2]) == 1024), None)
    if photo is None:
        photo = cv2.resize(dl.read_image(DEMO), (1024, 1024))
    print(f"{folder} {split} split: {len(paths)} faces in {len(images)} files; 2 threads ({cpu()})")
    for name, fn in candidates().items():
        ms = [fastest(fn, im) for im in (frame, photo)]
        if "CNN" in name:
            counts = "found   -/-    boxes    -"
        else:
            boxes = {p: fn(im) for p, im in images.items()}
            hit = [pick(boxes[p], k) is not None for p, k in zip(paths, kps)]
            counts = f"found {sum(hit):3d}/{len(paths)}  boxes {sum(map(len, boxes.values())):4d}"
            counts += "".join(f"  {band} {sum(h for h, b in zip(hit, bands) if b == band)}/{bands.count(band)}"
                              for band in sorted(set(bands) - {""}))
        print(f"{name:38s} {counts}  640x480 frame {ms[0]:6.1f} ms  1024-pixel photo {ms[1]:6.1f} ms")


def fastest(fn, *args, calls=5):
    """The fastest of calls calls of fn(*args), in ms, after two that set it up (the detectors' networks take a few
    calls to reach their speed)."""
    for _ in range(2):
        fn(*args)
    return min(timed(fn, *args) for _ in range(calls))


def timed(fn, *args):
    t0 = time.perf_counter()
    fn(*args)
    return (time.perf_counter() - t0) * 1000


def hog_thresholds(data, photos, thresholds=(0.0, -0.1, -0.2, -0.3, -0.4, -0.5)):
    """HOG's faces found and boxes on the validation faces of both sources (course people, 300-W photos), as the
    pipeline scans them, against the detector's threshold."""
    from evaluate import pick
    csv, root = dl.split_paths(data, "training")
    names, kps = dl.read_keypoints_csv(csv, root)
    sets = {"course validation": [(root / n, k) for n, k in zip(names, kps) if dl.is_validation(n)],
            "300-W validation": list(zip(*dl.read_photos(photos, "validation")))}
    # One scan at the lowest threshold: a higher one keeps exactly the boxes scoring above it (a box suppressed by a
    # stronger neighbour is suppressed at every threshold that keeps it).
    fkd = FaceKeypointDetector(hog_threshold=min(thresholds))
    for name, samples in sets.items():
        found, boxes = np.zeros(len(thresholds), int), np.zeros(len(thresholds), int)
        for path, gt in samples:
            found_boxes, scores = fkd.find_faces(dl.read_image(path))
            for i, t in enumerate(thresholds):
                kept = found_boxes[scores >= t]
                found[i] += pick(kept, gt) is not None
                boxes[i] += len(kept)
        for i, t in enumerate(thresholds):
            print(f"{name}: threshold {t:+.1f}  found {found[i]}/{len(samples)}  boxes {boxes[i]}")


DLIB_PIPELINE = """
import sys, dlib, face_recognition_models, data_load as dl
detector = dlib.get_frontal_face_detector()
predictor = dlib.shape_predictor(face_recognition_models.pose_predictor_model_location())
for path in sys.argv[1:]:
    rgb = dl.read_image(path)
    shapes = [predictor(rgb, r) for r in detector(rgb, 1)]
"""


def compare_pipelines(folder, split, rounds=2):
    """Wall time of one `detect.py FILES --json` run against dlib's HOG (upsample 1) + 68-point predictor over the
    same files, each a fresh process (loading included), taking turns."""
    paths = [str(p) for p in dl.read_photos(folder, split)[0]]
    with tempfile.TemporaryDirectory() as tmp:
        runs = {"detect.py (shipped defaults)": [sys.executable, "detect.py", *paths, "--json", f"{tmp}/out.json",
                                                 "--force"],
                "dlib HOG (upsample 1) + predictor": [sys.executable, "-W", "ignore", "-c", DLIB_PIPELINE, *paths]}
        times = {k: [] for k in runs}
        for _ in range(rounds):
            for name, cmd in runs.items():
                t0 = time.perf_counter()
                subprocess.run(cmd, check=True, capture_output=True)
                times[name].append(time.perf_counter() - t0)
    print(f"{len(paths)} files of {folder} ({split} split), whole pipeline, one process each, taking turns ({cpu()}):")
    for name, t in times.items():
        print(f"  {name:36s} " + ", ".join(f"{x:.1f} s" for x in t))


def batch_speed(folder, n=300):
    """Photos a second of detect.py's batch runs (batch.py) over the first n photos under folder: one process of one
    thread, two of one thread, and the defaults (the cores shared out), each a fresh run: over the whole run (loading
    the models included) and from the first photo written to the last (detect.py's own figure)."""
    photos = sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in IMAGE_EXTS)[:n]
    if not photos:
        sys.exit(f"error: {folder}: no photos")
    runs = {"--workers 1 --threads 1": ["--workers", "1", "--threads", "1"],
            "--workers 2 --threads 1": ["--workers", "2", "--threads", "1"],
            f"defaults (--workers {len(os.sched_getaffinity(0))} --threads 1)": []}
    print(f"{len(photos)} photos of {folder}, detect.py --list, a fresh process a run ({cpu()}):")
    with tempfile.TemporaryDirectory() as tmp:
        paths = Path(tmp) / "paths.txt"
        paths.write_text("".join(f"{p}\n" for p in photos))
        for name, extra in runs.items():
            t0 = time.perf_counter()
            r = subprocess.run([sys.executable, "detect.py", "--list", paths, *extra, "--json", f"{tmp}/out.jsonl",
                                "--force"], capture_output=True, text=True)
            wall = time.perf_counter() - t0
            after = re.search(r"([\d.]+) photos/s after the first", r.stdout)
            print(f"  {name:36s} {len(photos) / wall:6.2f} photos/s ({wall:.1f} s with loading), "
                  f"{after.group(1) if after else '?'} after the first photo" + ("" if r.returncode == 0 else
                                                                                   f"; exit status {r.returncode}"))


def train_dlib(folder, out, **options):
    """dlib's own method (Kazemi and Sullivan's ensemble of regression trees, dlib's default trainer options; options
    sets any of dlib.shape_predictor_training_options' fields instead) trained on the faces this project's model
    learns from: the training split of a 300-W folder. Not mirrored: the annotators place points a little off the
    mirror-symmetric place, and dlib's trees, unlike our model (train.py's labellings), cannot learn that back (with
    mirrors: 4.77% on the validation faces against 4.62%). A face's box is the one dlib's detector (upsampled once)
    puts on it, the box its predictor gets at run time; a face the detector misses gets the box it would have put
    there (crops.box_from_keypoints). Written to out. With `evaluate.py --compare dlib --dlib-model out`: both
    methods on faces neither saw."""
    import dlib
    from tqdm import tqdm
    paths, kps = dl.read_photos(folder, "train")
    detect = dlib.get_frontal_face_detector()
    t0 = time.perf_counter()
    images, shapes, boxed = [], [], 0
    for path, gt in zip(tqdm(paths, desc="dlib's detector", unit="photo"), kps):
        rgb = dl.read_image(path)
        expected = crops.box_from_keypoints(gt, "hog")
        rects = [(r.left(), r.top(), r.width(), r.height()) for r in detect(rgb, 1)]
        box = max(rects, key=lambda r: detectors.iou(r, expected), default=None)
        found = box is not None and detectors.iou(box, expected) >= 0.3
        boxed += found
        x, y, w, h = box if found else expected
        x0, y0 = max(0, int(x - w)), max(0, int(y - h))  # a crop around the face: the photos would not fit in memory
        images.append(np.ascontiguousarray(rgb[y0:int(y + 2 * h), x0:int(x + 2 * w)]))
        rect = dlib.rectangle(*(int(round(v)) for v in (x - x0, y - y0, x - x0 + w - 1, y - y0 + h - 1)))
        shapes.append([dlib.full_object_detection(rect, [dlib.point(*map(int, np.round(p))) for p in gt - [x0, y0]])])
    print(f"{len(paths)} training faces of {folder}, {boxed} boxed by dlib's detector, the others where it would have "
          f"boxed them ({time.perf_counter() - t0:.0f} s)")
    opts = dlib.shape_predictor_training_options()
    opts.num_threads = os.cpu_count()
    for k, v in options.items():
        setattr(opts, k, v)
    t0 = time.perf_counter()
    predictor = dlib.train_shape_predictor(images, shapes, opts)
    predictor.save(f"{out}.partial")  # renamed when whole: an interrupted run leaves no half-written file
    os.replace(f"{out}.partial", out)
    print(f"trained in {(time.perf_counter() - t0) / 60:.1f} min ({cpu()}): {out}")


def parse_args(argv=None):
    """(the parser, for its errors; the options)."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=dl.HelpFormatter)
    p.add_argument("--weights", help="keypoint model weights (default: saved_models/heatmapnet.pt)")
    p.add_argument("--frames", type=int, default=150, help="frames of the synthetic clip for the video figures")
    p.add_argument("--detector", choices=list(detectors.DETECTORS), default="blaze",
                   help="face detector for the video and photo figures")
    p.add_argument("--photos", metavar="DIR", help="a folder in the 300-W layout, for --detectors and --pipeline")
    p.add_argument("--photo-split", choices=list(dl.PHOTO_SPLITS), default="validation",
                   help="which of --photos' faces (split by photo id)")
    p.add_argument("--detectors", action="store_true", help="compare face detector candidates on --photos")
    p.add_argument("--pipeline", action="store_true", help="time detect.py against dlib over --photos' files")
    p.add_argument("--hog-thresholds", action="store_true",
                   help="HOG's recall on the validation faces against its threshold (--data, --photos)")
    p.add_argument("--data", help="course data folder (default: $FKP_DATA_DIR or ./data)")
    p.add_argument("--batch", action="store_true", help="photos a second of detect.py's batch runs (--workers, "
                   "--threads) over --photos' photos, any folder of them")
    p.add_argument("--batch-photos", type=int, default=300, metavar="N", help="photos for --batch")
    p.add_argument("--train-dlib", metavar="FILE", help="train dlib's shape predictor (its method, its default "
                   "options) on --photos' training faces, ours, into FILE: for evaluate.py --dlib-model")
    return p, p.parse_args(argv)


def main(argv=None):
    p, args = parse_args(argv)
    cv2.setNumThreads(2)
    import torch
    torch.set_num_threads(2)
    if args.train_dlib:
        if Path(args.train_dlib).exists():
            sys.exit(f"error: {args.train_dlib} exists: remove it or name another file")
        if not Path(args.train_dlib).parent.is_dir():
            sys.exit(f"error: {args.train_dlib}: no such folder {Path(args.train_dlib).parent}")
        # dlib's trainer runs to its end before Python sees a Ctrl-C: let Ctrl-C end the process at once instead.
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        try:
            return train_dlib(dl.photos_dir(args.photos), args.train_dlib)
        except dl.DataError as e:
            sys.exit(f"error: {e}")
    if args.batch:
        if not args.photos:
            p.error("--batch needs --photos DIR")
        return batch_speed(args.photos, args.batch_photos)
    if args.hog_thresholds:
        return hog_thresholds(dl.data_dir(args.data), dl.photos_dir(args.photos))
    if args.detectors or args.pipeline:
        if not args.photos:
            p.error("--detectors and --pipeline need --photos DIR")
        if args.detectors:
            compare_detectors(args.photos, args.photo_split)
        if args.pipeline:
            compare_pipelines(args.photos, args.photo_split)
        return
    video_figures(FaceKeypointDetector(args.weights or DEFAULT_WEIGHTS, detector=args.detector), args)


def video_figures(fkd, args):
    """Speed, jitter and lag on the synthetic clip; what writing the video and the detector's second look cost."""
    frames, offsets = synthetic_clip(args.frames)
    fkd.detect(frames[0])  # warm-up
    every = fps(lambda fr: [fkd.detect(f) for f in fr], frames)
    tracking = fps(lambda fr: list(fkd.track(fr, smooth=True)), frames)
    print(f"{args.detector}, 640x480, one face, {len(frames)} frames, 2 threads ({cpu()}): "
          f"detect every frame {every:.1f} fps, "
          f"tracking (the detector every {plural(fkd.face_detector.redetect_every, 'frame')}) {tracking:.1f} fps")
    for smooth in (False, True):
        j, lag, off_path = jitter_and_lag(track_points(fkd, frames, smooth=smooth), offsets)
        print(f"smoothing {'on ' if smooth else 'off'}: jitter {j:.2f} px/frame, lag {lag:.0f} ms, "
              f"off the true path by {off_path:.2f} px")
    # The 1-euro filter lets a moving face through and steadies a still one: the same clip, the face held still.
    still, still_offsets = synthetic_clip(args.frames, period=float("inf"))
    j = [jitter_and_lag(track_points(fkd, still, smooth=smooth), still_offsets)[0] for smooth in (False, True)]
    print(f"the face held still: jitter {j[0]:.2f} px/frame with smoothing off, {j[1]:.2f} on")
    # What writing the annotated copy costs: H.264 (PyAV's libx264), which browsers play, against OpenCV's mp4v.
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        out = VideoOut(f"{tmp}/a.mp4", 30, frames[0].shape)
        for f in frames:
            out.write(f)
        out.close()
        h264 = (time.perf_counter() - t0) * 1000 / len(frames)
        t0 = time.perf_counter()
        out = cv2.VideoWriter(f"{tmp}/b.mp4", cv2.VideoWriter_fourcc(*"mp4v"), 30, frames[0].shape[1::-1])
        for f in frames:
            out.write(f)
        out.release()
        mp4v = (time.perf_counter() - t0) * 1000 / len(frames)
    print(f"writing the annotated video: H.264 {h264:.1f} ms a frame, OpenCV's mp4v {mp4v:.1f} ms a frame")
    # detect() looks again with the picture turned where it finds no face upright: what that costs.
    for name, image in [("the demo photo", dl.read_image(DEMO)),
                        ("a 640x480 frame without faces", np.full((480, 640, 3), 90, np.uint8))]:
        ms = fastest(fkd.detect, image, "rgb")
        print(f"detect() on {name}: {len(fkd.detect(image, 'rgb'))} face(s), {ms:.0f} ms (fastest of 5)")


if __name__ == "__main__":
    main()
