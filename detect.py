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
import io
import json
import math
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

import data_load as dl
from models import WeightsError, WithConfidence, load_model

DEFAULT_WEIGHTS = Path(__file__).parent / "saved_models" / "heatmapnet.pt"
CASCADES = Path(cv2.data.haarcascades)
IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
VIDEO_EXTS = {".mp4", ".avi", ".mov", ".mkv", ".webm"}
# The face detector sees the image scaled to at most this many pixels a side (bounded memory and time for huge
# photos), and scaled up where a small face needs it to fill the detector's smallest window (DETECTORS).
DETECT_MAX_SIDE = 1600
# The face detectors: dlib's HOG detector (five HOG filters: frontal, turned left and right, tilted left and right)
# and the course's frontal Haar cascade. window: the smallest face each finds, in pixels of the image it scans;
# min_size: the smallest face looked for by default. HOG's threshold (dlib's default is 0) is the highest that finds
# every validation face of both sources (`python benchmark.py --hog-thresholds`): the keypoint model's confidence
# floor then drops the boxes that hold no face.
DETECTORS = {"hog": {"window": 80, "min_size": 40, "threshold": -0.4}, "haar": {"window": 24, "min_size": 12}}

# A generic 3D face (mm; x right, y down, z away from the camera) at six keypoints, for the head pose.
POSE_POINTS = [30, 8, 36, 45, 48, 54]
POSE_MODEL = np.float64([[0, 0, 0], [0, 330, 65], [-225, -170, 135], [225, -170, 135],
                         [-150, 150, 125], [150, 150, 125]])


@dataclass
class Face:
    box: np.ndarray        # x, y, w, h in image pixels
    keypoints: np.ndarray  # 68 x 2 (x, y) in image pixels
    score: float           # the face detector's confidence (HOG: SVM margin; Haar: level weight); tracked faces keep it
    pose: np.ndarray       # yaw, pitch, roll in degrees

    def to_json(self):
        return {"box": [round(float(v), 1) for v in self.box], "score": round(float(self.score), 3),
                "keypoints": [[round(float(x), 2), round(float(y), 2)] for x, y in self.keypoints],
                "pose": [round(float(v), 1) for v in self.pose]}


def head_pose(keypoints, image_shape):
    """(yaw, pitch, roll) in degrees from six keypoints and a generic 3D face, with a pinhole camera of focal
    length = image width."""
    h, w = image_shape[:2]
    camera = np.float64([[w, 0, w / 2], [0, w, h / 2], [0, 0, 1]])
    ok, rvec, _ = cv2.solvePnP(POSE_MODEL, keypoints[POSE_POINTS].astype(np.float64), camera, None,
                               flags=cv2.SOLVEPNP_EPNP)
    if not ok:
        return np.full(3, np.nan, np.float32)
    pitch, yaw, roll = cv2.RQDecomp3x3(cv2.Rodrigues(rvec)[0])[0]
    return np.float32([yaw, pitch, roll])


def intersection(a, b):
    """Area shared by two (x, y, w, h) boxes."""
    x, y, w, h = a
    X, Y, W, H = b
    return max(0, min(x + w, X + W) - max(x, X)) * max(0, min(y + h, Y + H) - max(y, Y))


def iou(a, b):
    inter = intersection(a, b)
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def nms(boxes, scores, threshold=0.3):
    """Indices of the boxes kept by non-maximum suppression (a box mostly inside a kept one goes too)."""
    keep = []
    for i in np.argsort(scores)[::-1]:
        if all(iou(boxes[i], boxes[j]) <= threshold
               and intersection(boxes[i], boxes[j]) <= 0.7 * min(boxes[i][2] * boxes[i][3], boxes[j][2] * boxes[j][3])
               for j in keep):
            keep.append(i)
    return keep


class OneEuroFilter:
    """The 1-euro filter (Casiez et al. 2012): smooths jitter when still, follows fast moves with little lag."""

    def __init__(self, min_cutoff=1.0, beta=0.5, d_cutoff=1.0):
        self.min_cutoff, self.beta, self.d_cutoff = min_cutoff, beta, d_cutoff
        self.x = self.dx = self.t = None

    @staticmethod
    def _alpha(cutoff, dt):
        r = 2 * math.pi * cutoff * dt
        return r / (r + 1)

    def __call__(self, x, t):
        if self.x is None:
            self.x, self.dx, self.t = x, np.zeros_like(x), t
            return x
        dt = max(t - self.t, 1e-6)
        dx = (x - self.x) / dt
        self.dx = self.dx + self._alpha(self.d_cutoff, dt) * (dx - self.dx)
        cutoff = self.min_cutoff + self.beta * np.abs(self.dx)
        self.x = self.x + self._alpha(cutoff, dt) * (x - self.x)
        self.t = t
        return self.x


def onnx_bytes(model):
    """The model, with its confidence output, as an ONNX file in memory (any batch size)."""
    buf = io.BytesIO()
    x = torch.zeros(1, model.in_channels, model.input_size, model.input_size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript-based exporter is deprecated, and needs no onnxscript
        faces = {0: "faces"}
        torch.onnx.export(WithConfidence(model).eval(), x, buf, dynamo=False, input_names=["x"],
                          output_names=["y", "c"], dynamic_axes={"x": faces, "y": faces, "c": faces})
    return buf.getvalue()


def quantize(model, crops):
    """The model as int8 ONNX, its activation ranges measured on crops (N x C x S x S float32 face crops, as the
    model sees them). On this project's 2-core CPU (with VNNI) it runs 1.4x faster per face than the float model,
    with the same unseen-people NME (README.md)."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Crops(CalibrationDataReader):
        def __init__(self):
            self.it = iter(crops)

        def get_next(self):
            x = next(self.it, None)
            return None if x is None else {"x": x[None]}

    with tempfile.TemporaryDirectory() as tmp:
        src, pre, dst = Path(tmp, "float.onnx"), Path(tmp, "pre.onnx"), Path(tmp, "int8.onnx")
        src.write_bytes(onnx_bytes(model))
        # Shapes and graph optimizations first: without them the int8 model runs slower than the float one.
        quant_pre_process(src, pre, skip_symbolic_shape=True)
        quantize_static(pre, dst, Crops(), quant_format=QuantFormat.QDQ, per_channel=True,
                        op_types_to_quantize=["Conv", "Add", "Relu"],
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
        return dst.read_bytes()


def onnx_runner(onnx_model):
    """A session of ONNX Runtime: on a CPU, one small face at a time, several times faster than eager PyTorch,
    whose per-layer overhead dominates at that size. batch -> (keypoints, conf)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    session = ort.InferenceSession(onnx_model, options, providers=["CPUExecutionProvider"])
    return lambda batch: session.run(None, {"x": batch})


class FaceKeypointDetector:
    """Loads the keypoint model and the face detector once; .detect(image) -> list of Face.

    detector: 'hog' (dlib's HOG detector, the default) or 'haar' (the course's frontal Haar cascade); min_size: the
    smallest face looked for, in pixels, and hog_threshold HOG's score threshold (DETECTORS has the defaults).

    runtime: 'int8' (ONNX Runtime on the int8 model that train.py stores in the weights; the default on a CPU when
    the weights have one), 'onnx' (ONNX Runtime, float; the CPU default otherwise) or 'torch' (the default on a GPU).
    flip: also run each crop mirrored and average the two. refine: a second pass on the crop that the first pass's
    points give, the crop the model was trained on. Each costs a second model run per face and lowers the error
    (README.md has the figures): worth it for photos, where the face detector takes far longer than the model."""

    def __init__(self, weights=DEFAULT_WEIGHTS, device="cpu", detector="hog", min_size=None, hog_threshold=None,
                 scale_factor=1.1, min_neighbors=3, runtime=None, flip=False, refine=False):
        self.model = load_model(weights, device)
        self.device = torch.device(device)
        int8 = self.model.int8_onnx
        runtime = runtime or ("torch" if self.device.type != "cpu" else "int8" if int8 else "onnx")
        if runtime == "int8" and not int8:
            raise WeightsError(f"{weights}: holds no int8 model (train.py adds one when a run finishes)")
        if runtime not in ("int8", "onnx", "torch"):
            raise ValueError(f"runtime must be 'int8', 'onnx' or 'torch', not {runtime!r}")
        self.runtime = runtime
        self.run = self.run_torch if runtime == "torch" else onnx_runner(int8 if runtime == "int8" else
                                                                          onnx_bytes(self.model))
        if detector not in DETECTORS:
            raise ValueError(f"detector must be one of {', '.join(DETECTORS)}, not {detector!r}")
        self.detector = detector
        if detector == "hog":
            import dlib
            self.hog = dlib.get_frontal_face_detector()
        else:
            self.cascade = cv2.CascadeClassifier(str(CASCADES / "haarcascade_frontalface_default.xml"))
        self.min_size = min_size or DETECTORS[detector]["min_size"]
        self.hog_threshold = DETECTORS["hog"]["threshold"] if hog_threshold is None else hog_threshold
        self.scale_factor, self.min_neighbors = scale_factor, min_neighbors
        self.flip, self.refine = flip, refine

    # ------------------------------------------------------------ the two stages

    def find_faces(self, rgb):
        """Face boxes (N x 4, x y w h, in the detector's own convention) and scores, found on a copy scaled so that
        a face of min_size pixels fills the detector's smallest window, at most DETECT_MAX_SIDE pixels a side."""
        scale = self.scan_scale(rgb.shape)
        image = rgb if self.detector == "hog" else cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        if scale != 1:
            image = cv2.resize(image, None, fx=scale, fy=scale,
                               interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        if self.detector == "hog":
            rects, scores, _ = self.hog.run(image, 0, self.hog_threshold)
            boxes = [(r.left(), r.top(), r.width(), r.height()) for r in rects]
        else:
            boxes, _, scores = self.cascade.detectMultiScale3(
                image, self.scale_factor, self.min_neighbors, minSize=(DETECTORS["haar"]["window"],) * 2,
                outputRejectLevels=True)
        if len(boxes) == 0:
            return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
        boxes, scores = np.float32(boxes) / scale, np.float32(scores).ravel()
        keep = nms(boxes, scores)
        return boxes[keep], scores[keep]

    def scan_scale(self, shape):
        return min(DETECTORS[self.detector]["window"] / self.min_size, DETECT_MAX_SIDE / max(shape[:2]))

    def keypoints(self, rgb, boxes):
        """(68 keypoints, N x 68 x 2 in image pixels; confidence, N) for each face box, all boxes in one batch."""
        return self.keypoints_in_rects(rgb, [dl.crop_rect(dl.model_box(b, self.detector), rgb.shape) for b in boxes])

    def keypoints_in_rects(self, rgb, rects):
        """(keypoints, confidence) for each crop rectangle (x0, y0, x1, y1), with a second pass when refine.
        The confidence is the first pass's: the floor in the weights was measured on crops from boxes."""
        kps, conf = self.one_pass(rgb, rects)
        if self.refine and len(kps):
            kps = self.one_pass(rgb, [dl.crop_rect(dl.box_from_keypoints(k), rgb.shape) for k in kps])[0]
        return kps, conf

    def one_pass(self, rgb, rects):
        """(keypoints, confidence) for each crop rectangle: cut out, resized, predicted (with its mirror when flip)."""
        if len(rects) == 0:
            return np.zeros((0, dl.N_POINTS, 2), np.float32), np.zeros(0, np.float32)
        size, channels = self.model.input_size, self.model.in_channels
        batch = np.empty((len(rects), channels, size, size), np.float32)
        for i, rect in enumerate(rects):
            crop = dl.cut_crop(rgb, rect, size)
            if channels == 1:  # gray after cutting and resizing, as in training (data_load.to_input)
                crop = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY)
            batch[i] = crop.reshape(size, size, channels).transpose(2, 0, 1)
        n = len(rects)
        if self.flip:
            batch = np.concatenate([batch, batch[..., ::-1]])
        out, conf = self.run(batch * np.float32(1 / 255))
        pts = dl.keypoints_to_pixels(out, size)
        if self.flip:
            pts = (pts[:n] + dl.mirror_keypoints(pts[n:], size)) / 2
        return dl.from_crop(pts, rects, size), conf[:n]

    def run_torch(self, batch):
        with torch.inference_mode():
            out, conf = WithConfidence(self.model)(torch.from_numpy(batch).to(self.device))
            return out.cpu().numpy(), conf.cpu().numpy()

    # ------------------------------------------------------------ public API

    def detect(self, image, channels="bgr"):
        """image: a path, or a numpy array (channels: 'bgr' as OpenCV reads, or 'rgb'); gray, RGBA, 16-bit welcome."""
        rgb = self.as_rgb(image, channels)
        boxes, scores = self.find_faces(rgb)
        return self.faces(rgb, boxes, scores)

    def faces(self, rgb, boxes, scores):
        """Keypoints for each box; a box whose crop the model finds no face in is dropped."""
        kps, conf = self.keypoints(rgb, boxes)
        return [Face(b, k, float(s), head_pose(k, rgb.shape))
                for b, k, s, c in zip(boxes, kps, scores, conf) if c >= self.model.min_confidence]

    @staticmethod
    def as_rgb(image, channels="bgr"):
        if isinstance(image, (str, Path)):
            return dl.read_image(image)
        if channels not in ("bgr", "rgb"):
            raise ValueError(f"channels must be 'bgr' or 'rgb', not {channels!r}")
        return dl.to_rgb8(image, "array", bgr=channels == "bgr")

    def track(self, frames, redetect_every=10, smooth=True, fps=30.0):
        """(frame, faces) for each frame of a sequence of BGR frames: the face detector runs on the first frame, every
        redetect_every frames and whenever a face is lost; in between each face's crop comes from its keypoints
        in the previous frame. Keypoints are smoothed with a One Euro filter when smooth."""
        tracked, filters = [], []
        for i, frame in enumerate(frames):
            rgb = self.as_rgb(frame)
            if len(tracked) == 0 or i % redetect_every == 0:
                boxes, scores = self.find_faces(rgb)
                # Keep the filters of faces that are still where they were, so a re-detection is not a jump.
                prev = [dl.box_from_keypoints(f.keypoints, self.detector) for f in tracked]
                matched = [_best_match(b, prev) for b in boxes]
                filters = [filters[m] if m is not None else OneEuroFilter() for m in matched]
            else:
                boxes = np.float32([dl.box_from_keypoints(f.keypoints, self.detector) for f in tracked])
                scores = np.float32([f.score for f in tracked])
            faces = self.faces(rgb, boxes, scores)
            # A face that left the frame, or stopped looking like one, is dropped; the next frame re-detects.
            keep = [j for j, f in enumerate(faces) if _inside(f.keypoints, rgb.shape)]
            faces, filters = [faces[j] for j in keep], [filters[j] for j in keep]
            if smooth:
                for f, flt in zip(faces, filters):
                    f.keypoints = flt(f.keypoints, i / fps)
            tracked = faces
            yield frame, faces


def _inside(kp, shape):
    h, w = shape[:2]
    centre = kp.mean(0)
    return 0 <= centre[0] < w and 0 <= centre[1] < h


def contains(box, point):
    x, y, w, h = box
    return x <= point[0] <= x + w and y <= point[1] <= y + h


def _best_match(box, boxes):
    """Index of the box in boxes whose centre lies inside box, or None."""
    return next((j for j, b in enumerate(boxes) if contains(box, (b[0] + b[2] / 2, b[1] + b[3] / 2))), None)


# ---------------------------------------------------------------- drawing

def draw(bgr, faces, pose_axes=False, filter_name=None):
    """A copy of a BGR image with boxes and keypoints (and pose axes) drawn, or with a filter on every face."""
    if filter_name:
        import filters
        return filters.apply(bgr, faces, filter_name)
    out = bgr.copy()
    thick = max(1, round(max(out.shape[:2]) / 500))
    for f in faces:
        x, y, w, h = (int(round(v)) for v in f.box)
        cv2.rectangle(out, (x, y), (x + w, y + h), (255, 128, 0), thick)
        for px, py in f.keypoints:
            cv2.circle(out, (int(round(px)), int(round(py))), thick + 1, (0, 255, 0), -1, cv2.LINE_AA)
        if pose_axes:
            draw_pose(out, f, thick)
    return out


def draw_pose(out, face, thick=1):
    """The head's axes from the nose tip: x (red) to the right, y (green) down, z (blue) out of the face."""
    yaw, pitch, roll = np.radians(face.pose)
    c, s = np.cos([pitch, yaw, roll]), np.sin([pitch, yaw, roll])
    Rx = np.array([[1, 0, 0], [0, c[0], -s[0]], [0, s[0], c[0]]])
    Ry = np.array([[c[1], 0, s[1]], [0, 1, 0], [-s[1], 0, c[1]]])
    Rz = np.array([[c[2], -s[2], 0], [s[2], c[2], 0], [0, 0, 1]])
    R = Rx @ Ry @ Rz  # the order cv2.RQDecomp3x3 splits a rotation into
    length, origin = face.box[2] / 2, face.keypoints[30]
    for axis, color in zip(np.eye(3) * [1, 1, -1], [(0, 0, 255), (0, 255, 0), (255, 0, 0)]):
        end = origin + (R @ axis)[:2] * length
        cv2.line(out, tuple(int(v) for v in origin), tuple(int(v) for v in end), color, thick + 1, cv2.LINE_AA)


# ---------------------------------------------------------------- command line

def expand_inputs(inputs, recursive=False):
    """Paths as given -> (image and video files, errors). A folder gives its images and videos."""
    files, errors = [], []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = sorted(f for f in (p.rglob("*") if recursive else p.iterdir())
                           if f.is_file() and f.suffix.lower() in IMAGE_EXTS | VIDEO_EXTS)
            if not found:
                errors.append(f"{item}: folder holds no images or videos" + ("" if recursive else " (try --recursive)"))
            files += [str(f) for f in found]
        elif p.exists():
            files.append(item)
        else:
            errors.append(f"{item}: no such file or folder")
    return files, errors


def out_path(out_dir, src, inputs_used, suffix=None):
    """An output file name in out_dir that never overwrites an input or an earlier output of this run."""
    src = Path(src)
    target = Path(out_dir) / f"{src.stem}_keypoints{suffix or src.suffix}"
    n = 1
    while target.resolve() in inputs_used:
        target = Path(out_dir) / f"{src.stem}_keypoints_{n}{suffix or src.suffix}"
        n += 1
    inputs_used.add(target.resolve())
    return target


def read_frames(cap):
    """The frames of an opened cv2.VideoCapture until it runs out."""
    while True:
        ok, frame = cap.read()
        if not ok:
            return
        yield frame


def run_camera(fkd, index, filter_name):
    cap = cv2.VideoCapture(index)
    if not cap.isOpened():
        sys.exit(f"error: camera {index}: no camera found (or it is in use)")
    try:
        for frame, faces in fkd.track(read_frames(cap)):
            cv2.imshow("facial keypoints (q quits)", draw(frame, faces, True, filter_name))
            if cv2.waitKey(1) & 0xFF == ord("q"):
                break
    except cv2.error:
        sys.exit("error: no display to show the camera on (OpenCV headless build or no screen)")
    finally:
        cap.release()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="*", help="images, folders or videos")
    p.add_argument("--json", help="write the faces found to this JSON file")
    p.add_argument("--out", help="folder for annotated copies")
    p.add_argument("--filter", choices=["sunglasses", "moustache", "hat"])
    p.add_argument("--pose", action="store_true", help="draw head pose axes")
    p.add_argument("--weights", default=DEFAULT_WEIGHTS)
    p.add_argument("--detector", choices=list(DETECTORS), default="hog",
                   help="face detector: dlib's HOG detector (default; turned and tilted faces) or the course's "
                        "Haar cascade")
    p.add_argument("--min-size", type=float, metavar="PX",
                   help="smallest face to look for, in pixels (default: 40 for hog, 12 for haar)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--recursive", action="store_true")
    p.add_argument("--camera", type=int, metavar="N", help="live webcam N")
    p.add_argument("--no-smooth", action="store_true", help="no keypoint smoothing on videos")
    p.add_argument("--flip", action="store_true", help="also run each face mirrored (more accurate, slower)")
    p.add_argument("--refine", action="store_true",
                   help="a second pass on the crop the first pass's points give (more accurate, slower)")
    p.add_argument("--force", action="store_true", help="overwrite an existing --json file")
    args = p.parse_args(argv)
    if not args.inputs and args.camera is None:
        p.error("give images, folders or videos, or --camera N")
    if args.json:  # checked before the work, so that a long run never ends unable to write what it found
        target = Path(args.json)
        if target.is_dir():
            sys.exit(f"error: {args.json}: is a folder; give the JSON file's name")
        if target.exists() and not args.force:
            sys.exit(f"error: {args.json}: exists; use --force to overwrite it")
        if not target.parent.is_dir():
            sys.exit(f"error: {args.json}: no such folder {target.parent}")
    try:
        fkd = FaceKeypointDetector(args.weights, args.device, detector=args.detector, min_size=args.min_size,
                                   flip=args.flip, refine=args.refine)
    except WeightsError as e:
        sys.exit(f"error: {e}")
    if args.camera is not None:
        return run_camera(fkd, args.camera, args.filter)

    from tqdm import tqdm

    files, errors = expand_inputs(args.inputs, args.recursive)
    for e in errors:
        print(f"error: {e}", file=sys.stderr)
    used = {Path(f).resolve() for f in files}
    if args.out:
        try:
            Path(args.out).mkdir(parents=True, exist_ok=True)
        except OSError as e:
            sys.exit(f"error: {args.out}: cannot create the output folder ({e.strerror})")
    results, n_faces, n_failed, t0 = [], 0, 0, time.time()
    for f in tqdm(files, desc="images", unit="file", disable=len(files) < 2):
        try:
            if Path(f).suffix.lower() in VIDEO_EXTS:
                n_faces += run_video(fkd, f, args, results, used)
            else:
                rgb = fkd.as_rgb(f)
                faces = fkd.detect(rgb, channels="rgb")
                results.append({"image": f, "faces": [face.to_json() for face in faces]})
                n_faces += len(faces)
                if args.out:
                    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
                    target = out_path(args.out, f, used)
                    if not cv2.imwrite(str(target), draw(bgr, faces, args.pose, args.filter)):
                        raise dl.DataError(f"{target}: cannot write the annotated copy")
        except (dl.DataError, cv2.error) as e:
            n_failed += 1
            tqdm.write(f"error: {e}", file=sys.stderr)  # a line of its own, under the progress bar
    if args.json:
        tmp = Path(args.json).with_name(f".{Path(args.json).name}.tmp")
        tmp.write_text(json.dumps(results, indent=1))
        tmp.replace(args.json)
    n_errors = len(errors) + n_failed
    print(f"{len(files) - n_failed} of {len(files)} files, {n_faces} faces, {time.time() - t0:.1f} s"
          + (f", {n_errors} errors" if n_errors else ""))
    return 1 if n_errors else 0


def run_video(fkd, path, args, results, used):
    """Track faces through a video; one JSON entry per frame; an annotated copy as .mp4 in --out."""
    from tqdm import tqdm

    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise dl.DataError(f"{path}: cannot open as a video")
    fps, total = cap.get(cv2.CAP_PROP_FPS) or 30.0, int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or None
    writer, n_faces, i = None, 0, -1
    try:
        for i, (frame, faces) in enumerate(tqdm(fkd.track(read_frames(cap), smooth=not args.no_smooth, fps=fps),
                                                total=total, desc=Path(path).name, unit="frame", leave=False)):
            results.append({"image": path, "frame": i, "faces": [f.to_json() for f in faces]})
            n_faces += len(faces)
            if args.out:
                if writer is None:
                    writer = cv2.VideoWriter(str(out_path(args.out, path, used, ".mp4")),
                                             cv2.VideoWriter_fourcc(*"mp4v"), fps, frame.shape[1::-1])
                writer.write(draw(frame, faces, args.pose, args.filter))
    finally:
        cap.release()
        if writer is not None:
            writer.release()
    if i < 0:
        raise dl.DataError(f"{path}: no frame could be read")
    return n_faces


if __name__ == "__main__":
    sys.exit(main())
