"""Face crops, the pipeline's view of a face: where each face detector puts its box around the 68 points (measured on
the training faces), the padded crop the keypoint model sees (detect.py), and the augmented crops it trains on
(FaceCrop, train.py)."""
import math

import cv2
import numpy as np

from data_load import FLIP_PERM, DataError, ToTensor, normalize_keypoints

# Where the course Haar cascade puts its box relative to the keypoints, measured on the 3431 training images where
# it finds the face: box centre = centre of the keypoints' extent + (dx, dy) * extent, box side = s * extent
# (extent: the larger side of the keypoints' bounding box). Its spread (sd of the centre, in box widths, x and y;
# sd of log side) is what training jitters by, so the model is used to the detector's boxes.
HAAR_FROM_KEYPOINTS = {"dx": 0.0, "dy": -0.18, "s": 1.145, "sd_shift": (0.09, 0.045), "sd_scale": 0.10}
# dlib's HOG detector runs five filters (looking ahead, left, right; ahead and tilted either way), and each places
# its box differently around the face: a turned face's box sits a tenth of its width to one side. Measured per
# filter the same way, on the training faces of both sources (`python evaluate.py --box-stats --detector hog`: 3440
# of 3478 found, the number per filter below). detect.py moves every box to where the first filter puts it
# (first_kind), so that one mapping makes the crop: on the 300-W validation photos this took the previous model from
# NME 4.33% to 4.26% and the faces found from 113 to 114 (docs/benchmarks.md).
HOG_FILTERS = ({"dx": 0.005, "dy": -0.073, "s": 0.986, "sd_shift": (0.067, 0.043), "sd_scale": 0.093},   # 1907 faces
               {"dx": -0.132, "dy": -0.136, "s": 1.059, "sd_shift": (0.063, 0.042), "sd_scale": 0.092},  # 709
               {"dx": 0.118, "dy": -0.141, "s": 1.059, "sd_shift": (0.056, 0.041), "sd_scale": 0.091},   # 674
               {"dx": 0.049, "dy": -0.065, "s": 0.98, "sd_shift": (0.071, 0.058), "sd_scale": 0.146},    # 90
               {"dx": -0.064, "dy": -0.059, "s": 0.996, "sd_shift": (0.068, 0.047), "sd_scale": 0.085})  # 60
# BlazeFace's two models, measured the same way (`python evaluate.py --box-stats --detector blaze`, on the training
# faces of both sources, LFPW's included) at the thresholds Blaze runs them with: the full-range model's box (4045 of
# the 4071 faces, at 0.3; its spread is within the jitter training crops get), then the short-range model's (3968, at
# 0.5; measured at 0.3 until 2026-12-06, its box was 3% larger and the turned validation faces' points further off).
BLAZE_MODELS = ({"dx": -0.014, "dy": -0.119, "s": 1.103, "sd_shift": (0.084, 0.045), "sd_scale": 0.083},
                {"dx": -0.004, "dy": -0.061, "s": 1.065, "sd_shift": (0.037, 0.05), "sd_scale": 0.09})
# The box each detector the pipeline can use gives, per filter or model (its `kind`), the first of them the one
# every box is moved to (first_kind) before the crop. The model's crops are made from Haar-like boxes, so every
# detector's box is then mapped to one (model_box).
DETECTOR_KINDS = {"haar": (HAAR_FROM_KEYPOINTS,), "hog": HOG_FILTERS, "blaze": BLAZE_MODELS}
DETECTOR_BOXES = {name: kinds[0] for name, kinds in DETECTOR_KINDS.items()}


def box_from_keypoints(kp, detector="haar"):
    """The (x, y, w, h) face box that detector would give for these 68 points; 'haar' (the default) is the box
    training crops, tracking and refinement are made from."""
    lo, hi = kp.min(axis=0), kp.max(axis=0)
    return _box_at((lo + hi) / 2, float(max(hi - lo)), DETECTOR_BOXES[detector])


def model_box(box, detector):
    """A box of detector -> the Haar-like box the model's crop is made from (the same face)."""
    if detector == "haar":
        return np.float32(box)
    return _box_at(*_face_in(box, DETECTOR_BOXES[detector]), HAAR_FROM_KEYPOINTS)


def first_kind(box, detector, kind):
    """A box of detector's filter or model kind (dlib's detector index; BlazeFace's model) -> the box its first one
    puts around the same face."""
    kinds = DETECTOR_KINDS[detector]
    return _box_at(*_face_in(box, kinds[kind]), kinds[0])


def _face_in(box, d):
    """(centre, extent) of the 68 points' bounding box that a box of convention d holds."""
    x, y, w, h = box
    extent = (w + h) / 2 / d["s"]
    return np.float32([x + w / 2 - d["dx"] * extent, y + h / 2 - d["dy"] * extent]), extent


def _box_at(centre, extent, d):
    c = centre + np.float32([d["dx"], d["dy"]]) * extent
    side = d["s"] * extent
    return np.float32([c[0] - side / 2, c[1] - side / 2, side, side])


def crop_rect(box, image_shape, margin):
    """Integer (x0, y0, x1, y1) of box padded by margin x its width on every side (the course pipeline's crop). It
    may reach past the image's edges: the crop is then black there (cut_crop), never squeezed."""
    x, y, w, h = box
    pad = margin * w
    H, W = image_shape[:2]
    x0, y0, x1, y1 = (int(round(v)) for v in (x - pad, y - pad, x + w + pad, y + h + pad))
    if min(x1, W) - max(x0, 0) < 2 or min(y1, H) - max(y0, 0) < 2 or x1 - x0 < 2 or y1 - y0 < 2:
        raise DataError(f"face box {np.round(box, 1).tolist()} lies outside the {W}x{H} image")
    return x0, y0, x1, y1


def cut_crop(image, rect, size, gray=False):
    """The size x size crop of rect (black where it leaves the image), as warpAffine with crop_matrix makes it in
    training: bilinear, or area averaging for a crop over twice the size, against aliasing. gray: of an RGB image,
    made gray before resizing (a third of the pixels to average; the same crop as gray after, to a level)."""
    x0, y0, x1, y1 = rect
    H, W = image.shape[:2]
    roi = image[max(0, y0):min(H, y1), max(0, x0):min(W, x1)]
    if gray:
        roi = cv2.cvtColor(roi, cv2.COLOR_RGB2GRAY)
    if (x0, y0, x1, y1) != (max(0, x0), max(0, y0), min(W, x1), min(H, y1)):
        roi = cv2.copyMakeBorder(roi, max(0, -y0), max(0, y1 - H), max(0, -x0), max(0, x1 - W),
                                 cv2.BORDER_CONSTANT, value=0)
    k = min(x1 - x0, y1 - y0) // size
    if k < 2:
        return cv2.resize(roi, (size, size), interpolation=cv2.INTER_LINEAR)
    # Area averaging by a whole factor is OpenCV's fast path: bilinear to k x size first, then average k x k blocks
    # (a third to a half of the time of averaging by any factor on gray crops of 260 to 1100 pixels, the crop the same
    # to 0.3 gray levels on average; a throwaway timing).
    roi = cv2.resize(roi, (k * size, k * size), interpolation=cv2.INTER_LINEAR)
    return cv2.resize(roi, (size, size), interpolation=cv2.INTER_AREA)


def crop_matrix(rect, size):
    """The 2x3 affine that maps image pixels to pixels of the size x size resized crop of rect (pixel centres
    aligned as cv2.resize aligns them, so warpAffine with it and cutting + resizing give the same crop)."""
    x0, y0, x1, y1 = rect
    sx, sy = size / (x1 - x0), size / (y1 - y0)
    return np.float32([[sx, 0, (0.5 - x0) * sx - 0.5], [0, sy, (0.5 - y0) * sy - 0.5]])


def from_crop(pts, rects, size):
    """Points in the size x size crops of rects (N x K x 2, one crop each) -> image pixels: the inverse of
    crop_matrix, for all crops at once."""
    r = np.float32(rects)
    return (pts + 0.5) * ((r[:, 2:] - r[:, :2]) / size)[:, None] + r[:, None, :2] - 0.5


def mirror_keypoints(kp, size):
    """Points of a size x size crop (... x 68 x 2) -> the same points in the crop mirrored left to right: x flips and
    each left point becomes its right twin."""
    return kp[..., FLIP_PERM, :] * np.float32([-1, 1]) + np.float32([size - 1, 0])


def apply_affine(M, pts):
    return pts @ M[:, :2].T + M[:, 2]


class FaceCrop:
    """Sample -> the crop the pipeline would give the model, as a tensor, with normalized keypoints.

    With augment=True the box is jittered like the detector's boxes and the crop is rotated (up to rotate degrees
    either way), scaled, shifted, mirrored (with the left/right point swap) in one affine warp, so keypoints move
    exactly with the pixels; then what real photos do to a face: fewer pixels, blur, light, noise, JPEG."""

    def __init__(self, size, channels=1, augment=False, rotate=45.0, occlude=0.0, margin=0.3):
        self.size, self.channels, self.augment, self.rotate = size, channels, augment, rotate
        self.occlude, self.margin = occlude, margin

    def __call__(self, sample):
        image, kp = sample["image"], sample["keypoints"]
        box = box_from_keypoints(kp)
        rng = np.random
        if self.augment:
            j = HAAR_FROM_KEYPOINTS
            box[:2] += rng.normal(0, j["sd_shift"]) * box[2]
            grow = math.exp(rng.normal(0, j["sd_scale"]))
            box = np.float32([box[0] + box[2] * (1 - grow) / 2, box[1] + box[3] * (1 - grow) / 2,
                              box[2] * grow, box[3] * grow])
        M = crop_matrix(crop_rect(box, image.shape, self.margin), self.size)
        if self.augment:
            c = self.size / 2
            # Most faces are near upright; one in three is turned anywhere up to the limit (tilted heads, photos).
            angle = rng.uniform(-self.rotate, self.rotate) if rng.rand() < 1 / 3 else rng.normal(0, 8)
            A = cv2.getRotationMatrix2D((c, c), angle, 1.0)
            M = (A @ np.vstack([M, [0, 0, 1]])).astype(np.float32)
        crop = cv2.warpAffine(image, M, (self.size, self.size), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_CONSTANT)
        kp = apply_affine(M, kp)
        mirrored = bool(self.augment and rng.rand() < 0.5)
        if mirrored:
            crop, kp = crop[:, ::-1], mirror_keypoints(kp, self.size)
        if self.augment:
            crop = self.photo_effects(crop, rng)
        return {**ToTensor()({"image": to_input(crop, self.channels), "keypoints": normalize_keypoints(kp, self.size)}),
                "mirrored": mirrored}

    def photo_effects(self, crop, rng):
        """What cameras, small faces and things in front of faces do to the pixels."""
        if self.occlude and rng.rand() < self.occlude:  # a hand, a microphone, hair: the points keep their labels
            h, w = (rng.uniform(0.15, 0.45, 2) * self.size).astype(int)
            y, x = rng.randint(self.size // 5, self.size * 4 // 5 - h // 2), rng.randint(0, self.size - w)
            patch = rng.uniform(0, 255, 3) + rng.normal(0, rng.uniform(0, 30), (h, w, 3))
            crop = crop.copy()
            crop[y:y + h, x:x + w] = np.clip(patch, 0, 255).astype(np.uint8)[: crop.shape[0] - y]
        if rng.rand() < 0.25:  # a small face: fewer pixels, scaled back up
            n = round(self.size * rng.uniform(0.25, 0.7))  # a size, not a factor: both resizes then align exactly
            small = cv2.resize(crop, (n, n), interpolation=cv2.INTER_AREA)
            crop = cv2.resize(small, (self.size, self.size), interpolation=cv2.INTER_LINEAR)
        if rng.rand() < 0.3:
            crop = cv2.GaussianBlur(crop, (0, 0), rng.uniform(0.3, 1.5))
        # Light: gamma, contrast and brightness as one lookup table on the 8-bit crop.
        levels = 255 * (np.arange(256, dtype=np.float32) / 255) ** math.exp(rng.normal(0, 0.25))
        crop = cv2.LUT(crop, np.clip(levels * rng.uniform(0.6, 1.4) + rng.uniform(-40, 40), 0, 255).astype(np.uint8))
        if rng.rand() < 0.3:  # JPEG artefacts, as in most photos
            quality = [cv2.IMWRITE_JPEG_QUALITY, int(rng.uniform(15, 75))]
            crop = cv2.imdecode(cv2.imencode(".jpg", np.ascontiguousarray(crop), quality)[1], cv2.IMREAD_UNCHANGED)
        if rng.rand() < 0.2:
            crop = crop + rng.normal(0, rng.uniform(2, 8), crop.shape).astype(np.float32)
        return crop


def to_input(crop_rgb, channels):
    """An RGB crop (uint8 or float, 0-255) -> the model's input array in [0, 1]: 1 channel gray or 3 channels RGB."""
    crop = np.clip(np.asarray(crop_rgb, np.float32), 0, 255)
    if channels == 1:
        crop = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY)
    return crop / 255.0
