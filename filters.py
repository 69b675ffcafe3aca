"""Fun filters: overlays placed, scaled and rotated from the 68 keypoints of each face.

Each overlay is an RGBA picture drawn here in code (or any RGBA PNG of yours) with two anchor points; the anchors
are mapped onto two points of the face by a similarity transform (shift, scale, rotation with the face's tilt),
and the overlay is blended in through its alpha channel, so its transparent pixels leave the photo untouched.

    python detect.py photo.jpg --out out/ --filter sunglasses
    python detect.py photo.jpg --out out/ --filter sunglasses=my_glasses.png

A PNG of yours goes where the named overlay goes (NAME=PNG): its anchors sit at the same places of its opaque part's
bounding box as the built-in overlay's anchors sit in theirs (sunglasses: the lens centres, a quarter of the width
in from each side; moustache: its two ends; hat: the two ends of the brim, at the bottom). Draw it upright, facing
the camera, with a transparent background.
"""
import functools
from pathlib import Path

import cv2
import numpy as np


def sunglasses():
    """Two dark lenses and a bridge; anchors at the lens centres."""
    img = np.zeros((120, 360, 4), np.uint8)
    for cx in (90, 270):
        cv2.ellipse(img, (cx, 60), (78, 52), 0, 0, 360, (20, 20, 20, 235), -1, cv2.LINE_AA)
        cv2.ellipse(img, (cx, 60), (78, 52), 0, 0, 360, (0, 0, 0, 255), 6, cv2.LINE_AA)
        cv2.ellipse(img, (cx - 25, 40), (22, 10), -25, 0, 360, (200, 200, 200, 120), -1, cv2.LINE_AA)  # glint
    cv2.line(img, (168, 50), (192, 50), (0, 0, 0, 255), 8, cv2.LINE_AA)
    return img, np.float32([[90, 60], [270, 60]])


def moustache():
    """A curled moustache; anchors at its two ends."""
    img = np.zeros((90, 300, 4), np.uint8)
    for side in (-1, 1):
        pts = np.int32([[150, 30], [150 + side * 50, 22], [150 + side * 110, 40], [150 + side * 140, 20],
                        [150 + side * 130, 55], [150 + side * 80, 62], [150, 50]])
        cv2.fillPoly(img, [pts], (30, 35, 60, 255), cv2.LINE_AA)
    return img, np.float32([[40, 45], [260, 45]])


def hat():
    """A striped party hat with a pompom; anchors at the two ends of its brim."""
    img = np.zeros((300, 240, 4), np.uint8)
    cone = np.int32([[20, 285], [220, 285], [120, 30]])
    cv2.fillPoly(img, [cone], (40, 40, 220, 255), cv2.LINE_AA)
    stripes = np.zeros(img.shape[:2], np.uint8)
    for y in range(60, 285, 45):
        cv2.line(stripes, (0, y), (240, y + 30), 255, 14)
    mask = cv2.bitwise_and(stripes, cv2.fillPoly(np.zeros_like(stripes), [cone], 255))
    img[mask > 0] = (0, 220, 255, 255)
    cv2.circle(img, (120, 28), 24, (255, 255, 255, 255), -1, cv2.LINE_AA)
    return img, np.float32([[20, 285], [220, 285]])


OVERLAYS = {"sunglasses": sunglasses, "moustache": moustache, "hat": hat}


def targets(name, kp):
    """The two face points an overlay's anchors go to."""
    if name == "sunglasses":  # the two eye centres
        left, right = kp[36:42].mean(0), kp[42:48].mean(0)
        return np.float32([left, right])
    if name == "moustache":   # between the nose base and the upper lip, a little wider than the mouth
        left, right = (kp[48] * 2 + kp[31]) / 3, (kp[54] * 2 + kp[35]) / 3
        return np.float32([left + (left - right) * 0.15, right + (right - left) * 0.15])
    if name == "hat":         # brim above the brows, along the face's own up direction
        up = kp[27] - kp[8]
        up /= np.linalg.norm(up)
        lift = 0.6 * np.linalg.norm(kp[27] - kp[30])
        return np.float32([kp[17] + up * lift, kp[26] + up * lift]) + (kp[17] - kp[26]) * [[0.08], [-0.08]]
    raise ValueError(f"unknown filter {name!r}: choose from {', '.join(OVERLAYS)}")


def overlay(bgr, rgba, anchors, dest):
    """Blend an RGBA overlay into a BGR image in place, mapping its anchors onto dest (similarity transform)."""
    src = np.float32(anchors)
    d_src, d_dst = src[1] - src[0], dest[1] - dest[0]
    scale = np.linalg.norm(d_dst) / np.linalg.norm(d_src)
    angle = np.arctan2(d_dst[1], d_dst[0]) - np.arctan2(d_src[1], d_src[0])
    c, s = scale * np.cos(angle), scale * np.sin(angle)
    R = np.float32([[c, -s], [s, c]])
    M = np.hstack([R, (dest[0] - R @ src[0])[:, None]])
    h, w = bgr.shape[:2]
    warped = cv2.warpAffine(rgba, M, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                            borderValue=(0, 0, 0, 0))
    a = warped[:, :, 3:].astype(np.float32) / 255.0
    touched = a[:, :, 0] > 0  # only blend where the overlay shows: transparent pixels stay bit-exact
    blended = bgr[touched].astype(np.float32) * (1 - a[touched]) + warped[touched][:, :3] * a[touched]
    bgr[touched] = np.clip(np.round(blended), 0, 255).astype(np.uint8)
    return bgr


def opaque_box(rgba):
    """(x0, y0, x1, y1) around the pixels that show (alpha > 0)."""
    ys, xs = np.nonzero(rgba[:, :, 3])
    return np.float32([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])


@functools.cache
def load(spec):
    """'NAME' or 'NAME=PNG' -> (BGRA overlay, its two anchors, NAME); ValueError in one line for a bad spec or PNG."""
    name, _, png = spec.partition("=")
    if name not in OVERLAYS:
        raise ValueError(f"--filter {spec}: the overlay is one of {', '.join(OVERLAYS)} (or NAME=PNG)")
    rgba, anchors = OVERLAYS[name]()
    rgba = cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGRA)  # drawn with RGB colours above; the photo is BGR
    if not png:
        return rgba, anchors, name
    mine = cv2.imread(png, cv2.IMREAD_UNCHANGED) if Path(png).is_file() else None
    if mine is None:
        raise ValueError(f"{png}: " + ("not an image OpenCV can read" if Path(png).is_file() else "no such file"))
    if mine.ndim != 3 or mine.shape[2] != 4 or mine.dtype != np.uint8 or not mine[:, :, 3].any():
        raise ValueError(f"{png}: needs an 8-bit RGBA PNG with a transparent background and something opaque")
    box, own = opaque_box(mine), opaque_box(rgba)
    at = (anchors - own[:2]) / (own[2:] - own[:2])  # where the built-in's anchors sit in its box, as fractions
    return mine, box[:2] + at * (box[2:] - box[:2]), name


def apply(bgr, faces, spec):
    """A copy of a BGR image with an overlay (a name in OVERLAYS, or NAME=PNG) on every face (anything with
    .keypoints)."""
    rgba, anchors, name = load(spec)
    out = bgr.copy()
    for f in faces:
        overlay(out, rgba, anchors, targets(name, np.asarray(f.keypoints, np.float32)))
    return out
