"""Find faces and their 68 keypoints in photos, folders, videos or a webcam.

    python detect.py photo.jpg --out annotated/            # draw boxes and points
    python detect.py photo.jpg --flip --refine --out a/     # more accurate, about 4 ms more a face
    python detect.py photos/ --recursive --json faces.json  # one JSON entry per image
    python detect.py clip.mp4 --out annotated/ --filter sunglasses
    python detect.py --camera 0

Python:
    from detect import FaceKeypointDetector
    fkd = FaceKeypointDetector()             # loads the model and the face detector once
    for face in fkd.detect("photo.jpg"):     # or an RGB/BGR/gray/RGBA/16-bit numpy array
        face.box, face.keypoints, face.score, face.pose
"""
import argparse
import fcntl
import itertools
import json
import numbers
import os
import re
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

# FFmpeg inside OpenCV prints its own complaints about a broken video (`moov atom not found`) to the terminal; the
# video's one error line says it instead. Read when OpenCV first opens a video.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
if __name__ == "__main__":  # Ctrl-C while the libraries load: a quiet exit with status 130, not a traceback
    signal.signal(signal.SIGINT, lambda *_: sys.exit(130))
import cv2  # noqa: E402
import numpy as np
import torch

import crops
import data_load as dl
from detectors import DETECTORS, Hog, nms
from models import WeightsError, WithConfidence, check_device, load_model, onnx_bytes, onnx_runner, zoom_onnx_bytes
from pose import draw_pose, head_pose
from video import Tracker, VideoOut, read_frames

DEFAULT_WEIGHTS = Path(__file__).parent / "saved_models" / "heatmapnet.pt"
IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif"}
VIDEO_EXTS = {".mp4", ".m4v", ".avi", ".mov", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp"}
# HOG and Haar find faces tilted up to about 30 degrees in the picture. Where HOG finds none in a photo, detect() looks
# again with the photo turned this many degrees either way, for faces tilted further (the model is trained up to 45).
TILT_SCAN = 35

@dataclass
class Face:
    box: np.ndarray        # x, y, w, h in image pixels
    keypoints: np.ndarray  # 68 x 2 (x, y) in image pixels
    score: float           # the face detector's confidence (HOG: SVM margin; Haar: level weight); tracked faces keep it
    pose: np.ndarray       # yaw, pitch, roll in degrees (pose.py says which way each turns)
    id: int | None = None  # in a track: the same face has the same id in every frame

    def to_json(self):
        return {"box": [round(float(v), 1) for v in self.box], "score": round(float(self.score), 3),
                "keypoints": [[round(float(x), 2), round(float(y), 2)] for x, y in self.keypoints],
                "pose": [round(float(v), 1) for v in self.pose]} | ({} if self.id is None else {"id": self.id})


# What each setting may be (None: its default): a value outside these cannot work, and is refused before any work.
SETTINGS = {"min_size": ("the smallest face in pixels", 1, 1e5), "hog_threshold": ("HOG's score threshold", -10, 10),
            "scale_factor": ("the Haar cascade's step between scales", 1.001, 4),
            "min_neighbors": ("the Haar cascade's overlapping hits", 0, 1000),
            "min_confidence": ("the confidence floor", 0, 1)}


def check_settings(**values):
    """A ValueError naming the option and what it may be, for a value that cannot work (NaN, inf, out of range)."""
    for key, v in values.items():
        what, lo, hi = SETTINGS[key]
        if v is not None and not (isinstance(v, numbers.Real) and lo <= v <= hi):  # NaN fails both comparisons
            raise ValueError(f"--{key.replace('_', '-')} {v}: {what} must be from {lo:g} to {hi:g}")


class FaceKeypointDetector:
    """Loads the keypoint model and the face detector once; .detect(image) -> list of Face.

    detector: a name in detectors.DETECTORS: 'blaze' (MediaPipe's BlazeFace, the default), 'hog' (dlib's HOG
    detector) or 'haar' (the course's frontal Haar cascade); min_size: the smallest face looked for, in pixels, and
    hog_threshold HOG's score threshold (each detector's class has the defaults);
    scale_factor and min_neighbors: the Haar cascade's. min_confidence: the keypoint model's floor below which a box
    holds no face (default: the one stored in the weights).

    runtime: 'int8' (ONNX Runtime on the int8 model that train.py stores in the weights; the default on a CPU when
    the weights have one), 'onnx' (ONNX Runtime, float; the CPU default otherwise) or 'torch' (the default on a GPU).
    flip: also run each crop mirrored and average the two. refine: a second pass on the crop that the first pass's
    points give, the crop the model was trained on. Each costs a second model run per face and lowers the error
    (docs/benchmarks.md has the figures): worth it for photos, where the face detector takes far longer than the model.
    labelling: whose convention the points follow, one of the weights' labellings ('300w', the default of weights
    trained with photos, or 'course', the course data's annotators). zoom: run the closer look (models.ZoomNet)
    behind the model when the weights hold one: each point read again at twice the pixels, on faces whose crop has
    at least zoom_from times the model's input pixels across (default: the weights')."""

    def __init__(self, weights=DEFAULT_WEIGHTS, device="cpu", detector="blaze", min_size=None, hog_threshold=None,
                 scale_factor=1.1, min_neighbors=3, min_confidence=None, runtime=None, flip=False, refine=False,
                 labelling=None, zoom=True, zoom_from=None):
        check_settings(min_size=min_size, hog_threshold=hog_threshold, scale_factor=scale_factor,
                       min_neighbors=min_neighbors, min_confidence=min_confidence)
        self.device = check_device(device)
        self.model = load_model(weights, self.device)
        self.min_confidence = self.model.min_confidence if min_confidence is None else min_confidence
        int8 = self.model.int8_onnx
        runtime = runtime or ("torch" if self.device.type != "cpu" else "int8" if int8 else "onnx")
        if runtime == "int8" and not int8:
            raise WeightsError(f"{weights}: holds no int8 model (train.py adds one when a run finishes)")
        if runtime not in ("int8", "onnx", "torch"):
            raise ValueError(f"runtime must be 'int8', 'onnx' or 'torch', not {runtime!r}")
        self.runtime = runtime
        self.run = self.run_torch if runtime == "torch" else onnx_runner(int8 if runtime == "int8" else
                                                                          onnx_bytes(self.model))
        self.zoom = self.model.zoom if zoom else None
        self.zoom_from = self.model.zoom_from if zoom_from is None else zoom_from
        if self.zoom is not None:
            self.run_zoom = self.run_zoom_torch if runtime == "torch" else onnx_runner(zoom_onnx_bytes(self.zoom))
        if detector not in DETECTORS:
            raise ValueError(f"detector must be one of {', '.join(DETECTORS)}, not {detector!r}")
        self.detector = detector
        options = {"hog": {"threshold": hog_threshold},
                   "haar": {"scale_factor": scale_factor, "min_neighbors": min_neighbors}}.get(detector, {})
        self.face_detector = DETECTORS[detector](min_size, **options)
        self.flip, self.refine = flip, refine
        known = self.model.labellings
        if labelling is not None and labelling not in known:
            raise ValueError(f"{weights}: knows the labelling(s) {', '.join(known) or '(none)'}, not {labelling!r}")
        self.labelling = labelling or next(iter(known), None)

    # ------------------------------------------------------------ the two stages

    def find_faces(self, rgb):
        """Face boxes (N x 4, x y w h, in the detector's convention) and scores."""
        return self.face_detector.find(rgb)

    def find_tilted_faces(self, rgb):
        """find_faces on the image turned TILT_SCAN degrees either way: boxes (upright, of the same size, around the
        faces' centres) and scores, in the image's own pixels."""
        h, w = rgb.shape[:2]
        found = []
        for angle in (TILT_SCAN, -TILT_SCAN):
            M = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
            c, s = abs(M[0, 0]), abs(M[0, 1])
            W, H = int(w * c + h * s), int(w * s + h * c)  # the whole turned image, corners included
            M[:, 2] += (W - w) / 2, (H - h) / 2
            boxes, scores = self.find_faces(cv2.warpAffine(rgb, M, (W, H)))
            back = cv2.invertAffineTransform(M)
            for (x, y, bw, bh), score in zip(boxes, scores):
                cx, cy = back @ (x + bw / 2, y + bh / 2, 1)
                found.append(((cx - bw / 2, cy - bh / 2, bw, bh), score))
        if not found:
            return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
        boxes, scores = np.float32([b for b, _ in found]), np.float32([s for _, s in found])
        keep = nms(boxes, scores)
        return boxes[keep], scores[keep]

    def keypoints(self, rgb, boxes):
        """(68 keypoints, N x 68 x 2 in image pixels; confidence, N) for each face box, all boxes in one batch."""
        margin = self.model.margin
        return self.keypoints_in_rects(rgb, [crops.crop_rect(crops.model_box(b, self.detector), rgb.shape, margin)
                                             for b in boxes])

    def keypoints_in_rects(self, rgb, rects):
        """(keypoints, confidence) for each crop rectangle (x0, y0, x1, y1), with a second pass when refine.
        The confidence is the first pass's: the floor in the weights was measured on crops from boxes."""
        kps, conf = self.one_pass(rgb, rects)
        if self.refine and len(kps):
            margin = self.model.margin
            kps = self.one_pass(rgb, [crops.crop_rect(crops.box_from_keypoints(k), rgb.shape, margin) for k in kps])[0]
        return kps, conf

    def one_pass(self, rgb, rects):
        """(keypoints, confidence) for each crop rectangle: cut out, resized, predicted (with its mirror when flip)."""
        if len(rects) == 0:
            return np.zeros((0, dl.N_POINTS, 2), np.float32), np.zeros(0, np.float32)
        size, channels, n = self.model.input_size, self.model.in_channels, len(rects)
        big = self.zoom_faces(rects)
        batch, cut = np.empty((n, channels, size, size), np.float32), []
        for i, rect in enumerate(rects):
            if i in big:  # cut once at the closer look's pixels; the model's crop is that shrunk, as zoom.py trains
                cut.append(crops.cut_crop(rgb, rect, size * self.zoom.scale, gray=True))
                crop = cv2.resize(cut[-1], (size, size), interpolation=cv2.INTER_AREA)
            else:
                crop = crops.cut_crop(rgb, rect, size, gray=channels == 1)
            batch[i] = crop.reshape(size, size, channels).transpose(2, 0, 1)
        if self.flip:
            batch = np.concatenate([batch, batch[..., ::-1]])
        out, conf = self.run(batch * np.float32(1 / 255))
        if big:
            out = self.zoom_in(np.float32(cut)[:, None], sorted(big), n, out)
        pts = dl.keypoints_to_pixels(out, size)
        if self.flip:
            pts = (pts[:n] + crops.mirror_keypoints(pts[n:], size)) / 2
        if self.labelling:  # the labels' convention, per point along and across the eye line
            along = pts[:, 45:46] - pts[:, 36:37]
            across = np.concatenate([-along[..., 1:], along[..., :1]], -1)  # y down: below the eyes
            ab = self.model.labellings[self.labelling]
            pts = pts + ab[:, :1] * along + ab[:, 1:] * across
        return crops.from_crop(pts, rects, size), conf[:n]

    def zoom_faces(self, rects):
        """Which crops the closer look reads again: those with at least zoom_from times the model's input pixels
        across (on smaller ones it would read an enlarged copy of what the model saw)."""
        if not self.zoom:
            return set()
        return {i for i, (x0, _, x1, _) in enumerate(rects) if x1 - x0 >= self.zoom_from * self.model.input_size}

    def zoom_in(self, cut, big, n, out):
        """The model's normalized points (out: n crops, then their mirrors when flip) moved by the closer look, for
        the crops big (their fine crops: cut, N x 1 x S x S)."""
        big = np.array(big)
        if self.flip:
            cut, big = np.concatenate([cut, cut[..., ::-1]]), np.concatenate([big, big + n])
        out = out.copy()
        out[big] = self.run_zoom(cut * np.float32(1 / 255), out[big])[0]
        return out

    def run_torch(self, batch):
        with torch.inference_mode():
            out, conf = WithConfidence(self.model)(torch.from_numpy(batch).to(self.device))
            return out.cpu().numpy(), conf.cpu().numpy()

    def run_zoom_torch(self, fine, points):
        with torch.inference_mode():
            return [self.zoom(*(torch.from_numpy(np.ascontiguousarray(a)).to(self.device) for a in (fine, points)))
                    .cpu().numpy()]

    # ------------------------------------------------------------ public API

    def detect(self, image, channels="bgr"):
        """image: a path, or a numpy array (channels: 'bgr' as OpenCV reads, or 'rgb'); gray, RGBA, 16-bit welcome."""
        rgb = self.as_rgb(image, channels)
        sure = self.face_detector.sure
        faces = self.faces(rgb, *self.find_faces(rgb), sure=sure)
        if not faces and self.face_detector.turn_scan:  # none upright: perhaps a face tilted further than it looks
            faces = self.faces(rgb, *self.find_tilted_faces(rgb), sure=sure)
        return faces

    def faces(self, rgb, boxes, scores, ids=None, sure=float("inf")):
        """Keypoints for each box; a box whose crop the model finds no face in is dropped, unless the detector scored
        it at sure or more."""
        kps, conf = self.keypoints(rgb, boxes)
        ids = [None] * len(kps) if ids is None else ids
        return [Face(np.float32(b), k, float(s), head_pose(k, rgb.shape), i)
                for b, k, s, c, i in zip(boxes, kps, scores, conf, ids) if c >= self.min_confidence or s >= sure]

    @staticmethod
    def as_rgb(image, channels="bgr"):
        if isinstance(image, (str, Path)):
            return dl.read_image(image)
        if channels not in ("bgr", "rgb"):
            raise ValueError(f"channels must be 'bgr' or 'rgb', not {channels!r}")
        return dl.to_rgb8(image, "array", bgr=channels == "bgr")

    def track(self, frames, channels="bgr", fps=30.0, **tracking):
        """(frame, faces) for each frame of a sequence of numpy images (channels as in detect), each face with an id
        that stays the same from frame to frame; tracking: Tracker's options."""
        tracker = Tracker(self, **tracking)
        for i, frame in enumerate(frames):
            yield frame, tracker.update(self.as_rgb(frame, channels), i / fps)


# ---------------------------------------------------------------- drawing

def draw(bgr, faces, pose_axes=False, filter_name=None):
    """A copy of a BGR image with boxes and keypoints drawn, or with a filter (a name in filters.OVERLAYS or an RGBA
    PNG's path) on every face; and pose axes on either when pose_axes."""
    if filter_name:
        import filters
        out = filters.apply(bgr, faces, filter_name)
    else:
        out = bgr.copy()
    for f in faces:
        thick = max(1, round(max(out.shape[:2]) / 500))
        if not filter_name:
            x, y, w, h = (int(round(v)) for v in f.box)
            cv2.rectangle(out, (x, y), (x + w, y + h), (255, 128, 0), thick)
            # Dots a fiftieth of the face wide at most, so that the 68 stay apart on a small face.
            r = int(np.clip(f.box[2] / 50, 1, thick + 1))
            for px, py in f.keypoints:
                cv2.circle(out, (int(round(px)), int(round(py))), r, (0, 255, 0), -1, cv2.LINE_AA)
        if pose_axes:
            draw_pose(out, f, thick)
    return out


# ---------------------------------------------------------------- command line

# The name of an annotated copy, SRC_keypoints.EXT or SRC_keypoints_N.EXT, or of an aligned face, SRC_faceI.png or
# SRC_faceI_N.png: a folder walk skips these in --out.
OUTPUT_NAME = re.compile(r"_(keypoints|face\d+)(_\d+)?$")


def photo_entry(path, rgb, faces):
    """A photo's entry in the --json file: its path as given, its size, its faces."""
    return {"image": path, "width": rgb.shape[1], "height": rgb.shape[0], "faces": [f.to_json() for f in faces]}


def unforeseen(path, e):
    """The one line for an error no message foresees: the file, the exception's type and its last line (OpenCV's
    messages end with the point)."""
    return f"{path}: {type(e).__name__}: {(str(e).strip().splitlines() or [''])[-1]}"


def plural(n, word):
    return f"{n} {word}" + ("" if n == 1 else "es" if word.endswith(("s", "x")) else "s")


def expand_inputs(inputs, recursive=False, out_dir=None):
    """Paths as given -> (image and video files, errors). A folder gives its images and videos, less this program's
    annotated copies in out_dir (so that `detect.py photos/ --out photos/` never reads its own output)."""
    files, errors = [], []
    out_dir = Path(out_dir).resolve() if out_dir else None
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = sorted(f for f in (p.rglob("*") if recursive else p.iterdir())
                           if f.is_file() and f.suffix.lower() in IMAGE_EXTS | VIDEO_EXTS
                           and not (f.parent.resolve() == out_dir and OUTPUT_NAME.search(f.stem)))
            if not found:
                errors.append(f"{item}: folder holds no images or videos" + ("" if recursive else " (try --recursive)"))
            files += [str(f) for f in found]
        elif p.exists():
            files.append(item)
        else:
            errors.append(f"{item}: no such file or folder")
    return files, errors


def out_path(out_dir, src, taken, force=False, suffix=None, tag="keypoints"):
    """The annotated copy of src in out_dir: SRC_keypoints.EXT (SRC_TAG.EXT), or SRC_keypoints_1.EXT, _2... where that
    name is an input, an output of this run, or (unless force) a file already there: nothing the user has is
    overwritten. The name is claimed by creating the file, atomically, so that two runs writing into one folder never
    take the same."""
    src = Path(src)
    for n in itertools.count():
        target = Path(out_dir) / f"{src.stem}_{tag}{f'_{n}' if n else ''}{suffix or src.suffix}"
        if target.resolve() not in taken and (force or claim(target)):
            taken.add(target.resolve())
            return target


def claim(path):
    """Create path if no file is there (True), atomically; False where one is."""
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        return True
    except FileExistsError:
        return False


class Results:
    """What --json gets: FILE.json a JSON list, written whole (atomically) when the run ends or is interrupted;
    FILE.jsonl one JSON line per image or video frame, written as each is done (for long videos). The file is held
    locked for the whole run: a second run writing it is refused, never mixed in or silently replacing it. resume: a
    FILE.jsonl is kept and added to (batch.finished reads what it holds)."""

    def __init__(self, path, force=False, resume=False):
        self.path, self.entries, self.file = (Path(path) if path else None), [], None
        self.lines = bool(self.path) and self.path.suffix.lower() == ".jsonl"
        if not self.path:
            return
        self.file = self.path.open("a")  # created if need be, never emptied before the lock is ours
        try:
            fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.file.close()
            raise dl.DataError(f"{path}: another run is writing it; wait for that run to end or give another "
                               "--json") from None
        if self.file.tell() and not (force or resume):  # written by a run that ended after this one's check_outputs
            self.file.close()
            raise dl.DataError(f"{path}: exists; use --force to overwrite it")
        if self.lines and not resume:
            self.file.truncate(0)

    def add(self, entry):
        if self.file and self.lines:
            self.file.write(json.dumps(entry) + "\n")
            self.file.flush()
        elif self.file:
            self.entries.append(entry)

    def close(self):
        if self.file and not self.lines:
            tmp = self.path.with_name(f".{self.path.name}.tmp{os.getpid()}")
            tmp.write_text(json.dumps(self.entries, indent=1))
            tmp.replace(self.path)
        if self.file:
            self.file.close()  # the lock goes with it


class Stop:
    """Ctrl-C (SIGINT) and SIGTERM (a scheduler, a kill) only raise a flag, which a long run reads at its safe points
    (between files and video frames, between training steps) with check(): it never stops half-way through writing
    a file. A second Ctrl-C stops at once."""

    def __init__(self):
        self.signal = None

    def __call__(self, signum, frame):
        if self.signal is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signal = signum

    def install(self):
        signal.signal(signal.SIGINT, self)
        signal.signal(signal.SIGTERM, self)
        return self

    def check(self):
        if self.signal is not None:
            raise KeyboardInterrupt


def run_camera(fkd, index, args):
    cap = cv2.VideoCapture(index)
    if not cap.isOpened():
        sys.exit(f"error: camera {index}: no camera found (or it is in use)")
    try:
        for frame, faces in fkd.track(read_frames(cap), smooth=not args.no_smooth):
            cv2.imshow("facial keypoints (q quits)", draw(frame, faces, args.pose, args.filter))
            if cv2.waitKey(1) & 0xFF == ord("q"):
                break
    except cv2.error:
        sys.exit("error: no display to show the camera on (OpenCV headless build or no screen)")
    except KeyboardInterrupt:  # Ctrl-C in the terminal: as good a way to stop as q
        return 130
    finally:
        cap.release()
    return 0


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=dl.HelpFormatter)
    p.add_argument("inputs", nargs="*", help="images, folders or videos")
    p.add_argument("--json", metavar="FILE", help="write the faces found to FILE: FILE.json a JSON list when the "
                                                  "run ends, FILE.jsonl a JSON line per image or frame as it goes")
    p.add_argument("--out", metavar="DIR", help="folder for annotated copies (SRC_keypoints.EXT; videos as .mp4)")
    p.add_argument("--filter", metavar="NAME[=PNG]",
                   help="draw an overlay instead of boxes and points: sunglasses, moustache or hat; NAME=PNG puts "
                        "an RGBA PNG of yours where NAME goes (filters.py)")
    p.add_argument("--pose", action="store_true", help="draw head pose axes (also with --filter)")
    p.add_argument("--weights", help="keypoint model weights (default: saved_models/heatmapnet.pt)")
    p.add_argument("--detector", choices=list(DETECTORS), default="blaze",
                   help="face detector: MediaPipe's BlazeFace (fast, turned faces up to profile), dlib's HOG "
                        "detector or the course's Haar cascade (detectors.py)")
    p.add_argument("--min-size", type=float, metavar="PX",
                   help="smallest face to look for, in pixels (default: 40 for hog, 12 for haar; blaze: one pass "
                        "finds faces down to a twelfth of the image's longer side, a smaller PX adds tiles)")
    p.add_argument("--hog-threshold", type=float,
                   help=f"HOG detector's score threshold: lower finds more faces and more false boxes "
                        f"(default: {Hog.default_threshold})")
    p.add_argument("--scale-factor", type=float, default=1.1, help="Haar cascade's step between scales")
    p.add_argument("--min-neighbors", type=int, default=3, help="Haar cascade's overlapping hits to keep a box")
    p.add_argument("--min-confidence", type=float,
                   help="keypoint model's confidence floor below which a box holds no face (default: the weights')")
    p.add_argument("--device", default="cpu", help="where the model runs: cpu, cuda, cuda:1, mps")
    p.add_argument("--recursive", action="store_true", help="also look in the folders' subfolders")
    p.add_argument("--camera", type=int, metavar="N", help="live webcam N in a window (needs a display)")
    p.add_argument("--no-smooth", action="store_true", help="no keypoint smoothing on videos and the camera")
    p.add_argument("--flip", action="store_true", help="also run each face mirrored (more accurate, slower)")
    p.add_argument("--refine", action="store_true",
                   help="a second pass on the crop the first pass's points give (more accurate, slower)")
    p.add_argument("--no-zoom", action="store_true",
                   help="leave out the closer look at each point (faster on large faces, less accurate)")
    p.add_argument("--runtime", choices=["int8", "onnx", "torch"], help="how the model runs (default on a CPU: "
                   "int8 ONNX; onnx, the float model, is more accurate and slower)")
    p.add_argument("--labelling", metavar="NAME", help="whose convention the points follow: 300w (the shipped "
                   "model's default, as most tools), course (the course data's annotators) or turned (AFLW2000-3D's)")
    p.add_argument("--force", action="store_true",
                   help="overwrite an existing --json file and annotated copies (without it they get new names)")
    b = p.add_argument_group("batches of photos (batch.py, docs/batch.md)")
    b.add_argument("--list", metavar="FILE", help="also the photos FILE names, one path a line, read as the run goes")
    b.add_argument("--workers", type=int, metavar="N",
                   help="N processes, each loading the models once (default: the cores over --threads)")
    b.add_argument("--threads", type=int, metavar="T",
                   help="threads a process (default: 1, or the cores over --workers)")
    b.add_argument("--resume", action="store_true",
                   help="with --json FILE.jsonl: skip the photos FILE holds and add the others to it")
    b.add_argument("--align", type=int, metavar="SIZE", help="with --out: each face cut out upright and scaled by "
                   "its eyes and mouth (FFHQ's alignment), SIZE x SIZE, as NAME_faceI.png, instead of annotated copies")
    b.add_argument("--ray", nargs="?", const="local", metavar="ADDRESS",
                   help="run on Ray Data: a local Ray instance, or the cluster at ADDRESS (auto: the one `ray start` "
                        "began on this machine)")
    args = p.parse_args(argv)
    if not args.inputs and args.camera is None and not args.list:
        p.error("give images, folders or videos, --list FILE, or --camera N")
    return args


def check_outputs(args):
    """One line, before any work, for an output that cannot be written: a long run never ends unable to write."""
    if batched(args):
        import batch
        problem = batch.check(args)
        if problem:
            return problem
    if args.json:
        target = Path(args.json)
        if target.is_dir():
            return f"{args.json}: is a folder; give the JSON file's name"
        if target.exists() and target.stat().st_size and not (args.force or args.resume):  # empty: nothing to lose
            return f"{args.json}: exists; use --force to overwrite it"
        if not target.parent.is_dir():
            return f"{args.json}: no such folder {target.parent}"
    if args.out:
        try:
            Path(args.out).mkdir(parents=True, exist_ok=True)
        except OSError as e:
            return f"{args.out}: cannot create the output folder ({e.strerror})"
    if args.filter:
        import filters
        try:
            filters.load(args.filter)
        except ValueError as e:
            return str(e)
    return None


def batched(args):
    """Whether the run goes through batch.py: photos in worker processes, a list, resumed, aligned or on Ray."""
    return bool(args.list or args.resume or args.ray) or any(v is not None for v in (args.workers, args.threads,
                                                                                  args.align))


def main(argv=None):
    args = parse_args(argv)
    settings = {k: getattr(args, k) for k in SETTINGS}
    try:
        check_settings(**settings)  # before check_outputs makes any folder
    except ValueError as e:
        sys.exit(f"error: {e}")
    problem = check_outputs(args)
    if problem:
        sys.exit(f"error: {problem}")
    options = dict(weights=args.weights or DEFAULT_WEIGHTS, device=args.device, detector=args.detector,
                   flip=args.flip, refine=args.refine, runtime=args.runtime, labelling=args.labelling,
                   zoom=not args.no_zoom, **settings)
    if batched(args):
        import batch
        batch.plan(args)  # workers and threads, before the models load: ONNX Runtime takes its threads then
    try:
        fkd = FaceKeypointDetector(**options)  # in batch runs too: bad weights or options are one line here
    except (WeightsError, ValueError) as e:
        sys.exit(f"error: {e}")
    if args.camera is not None:
        return run_camera(fkd, args.camera, args)
    if batched(args):
        return batch.run(fkd, options, args)

    from tqdm import tqdm

    files, errors = expand_inputs(args.inputs, args.recursive, args.out)
    for e in errors:
        print(f"error: {e}", file=sys.stderr)
    taken = {Path(f).resolve() for f in files}
    try:
        results = Results(args.json, args.force)
    except OSError as e:
        sys.exit(f"error: {args.json}: cannot write ({e.strerror})")
    except dl.DataError as e:
        sys.exit(f"error: {e}")
    n_done, n_faces, n_failed, written, t0 = 0, 0, 0, [], time.time()
    stop = Stop().install()
    try:
        for f in tqdm(files, desc="images", unit="file", disable=len(files) < 2):
            stop.check()
            try:
                if Path(f).suffix.lower() in VIDEO_EXTS:
                    n_faces += run_video(fkd, f, args, results, taken, written, stop)
                else:
                    rgb = fkd.as_rgb(f)
                    faces = fkd.detect(rgb, channels="rgb")
                    if args.out:
                        target = out_path(args.out, f, taken, args.force)
                        annotated = draw(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), faces, args.pose, args.filter)
                        if not cv2.imwrite(str(target), annotated):
                            target.unlink(missing_ok=True)  # the empty file that claimed the name
                            raise dl.DataError(f"{target}: cannot write the annotated copy")
                        written.append(target)
                    results.add(photo_entry(f, rgb, faces))
                    n_faces += len(faces)
            except dl.DataError as e:
                n_failed += 1
                tqdm.write(f"error: {e}", file=sys.stderr)  # a line of its own, under the progress bar
            except Exception as e:  # whatever else one file meets, the batch goes on and its JSON keeps the rest
                n_failed += 1
                tqdm.write(f"error: {unforeseen(f, e)}", file=sys.stderr)
            n_done += 1
    except KeyboardInterrupt:
        results.close()
        print(f"interrupted after {n_done} of {plural(len(files), 'file')}"
              + (f"; {args.json} holds what was finished" if args.json else ""), file=sys.stderr)
        return 130
    results.close()
    n_errors = len(errors) + n_failed
    print(f"{len(files) - n_failed} of {plural(len(files), 'file')}, {plural(n_faces, 'face')}, "
          f"{time.time() - t0:.1f} s" + (f", {plural(n_errors, 'error')}" if n_errors else "")
          + (f"; annotated: {written[0]}" if len(written) == 1 else
             f"; {len(written)} annotated copies in {args.out}" if written else ""))
    return 1 if n_errors else 0


def run_video(fkd, path, args, results, taken, written, stop):
    """Track faces through a video; one JSON entry per frame; an annotated copy as .mp4 in --out."""
    from tqdm import tqdm

    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise dl.DataError(f"{path}: cannot open as a video (corrupt, truncated or an unknown format)")
    fps, total = cap.get(cv2.CAP_PROP_FPS) or 30.0, int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or None
    writer, n_faces, i = None, 0, -1
    try:
        for i, (frame, faces) in enumerate(tqdm(fkd.track(read_frames(cap), smooth=not args.no_smooth, fps=fps),
                                                total=total, desc=Path(path).name, unit="frame", leave=False)):
            stop.check()
            results.add({"image": path, "frame": i, "width": frame.shape[1], "height": frame.shape[0],
                         "faces": [f.to_json() for f in faces]})
            n_faces += len(faces)
            if args.out:
                if writer is None:
                    writer = VideoOut(out_path(args.out, path, taken, args.force, ".mp4"), fps, frame.shape)
                    written.append(writer.path)
                writer.write(draw(frame, faces, args.pose, args.filter))
    finally:
        cap.release()
        if writer is not None:
            writer.close()
    if i < 0:
        raise dl.DataError(f"{path}: no frame could be read")
    return n_faces


if __name__ == "__main__":
    sys.exit(main())
