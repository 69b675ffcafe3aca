"""Video benchmark on a synthetic clip made from the embedded demo photo: a face moved along a known path.

    python benchmark.py            # fps of detect-every-frame vs tracking, and keypoint jitter with/without smoothing

Prints measured figures; nothing here is a test threshold.
"""
import argparse
import time

import cv2
import numpy as np

import data_load as dl
from detect import DEFAULT_WEIGHTS, FaceKeypointDetector

DEMO = "images/astronaut.png"


def synthetic_clip(n=150, size=(640, 480), face_px=160, seed=0, period=150):
    """(BGR frames, per-frame offset of the face): the demo photo's face region pasted along a smooth figure-of-eight
    path that takes period frames (5 s at 30 fps), with a little sensor noise so that every frame differs as in a
    real video."""
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


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", default=DEFAULT_WEIGHTS)
    p.add_argument("--frames", type=int, default=150)
    args = p.parse_args(argv)
    cv2.setNumThreads(2)
    import torch
    torch.set_num_threads(2)
    fkd = FaceKeypointDetector(args.weights)
    frames, offsets = synthetic_clip(args.frames)
    fkd.detect(frames[0])  # warm-up
    every = fps(lambda fr: [fkd.detect(f) for f in fr], frames)
    tracking = fps(lambda fr: list(fkd.track(fr, smooth=True)), frames)
    print(f"640x480, one face, {len(frames)} frames, 2 threads: detect every frame {every:.1f} fps, "
          f"tracking (re-detect every 10 frames) {tracking:.1f} fps")
    for smooth in (False, True):
        j, lag, off_path = jitter_and_lag(track_points(fkd, frames, smooth=smooth), offsets)
        print(f"smoothing {'on ' if smooth else 'off'}: jitter {j:.2f} px/frame, lag {lag:.0f} ms, "
              f"off the true path by {off_path:.2f} px")


if __name__ == "__main__":
    main()
