"""Faces through a video: followed from frame to frame (Tracker, with a One Euro filter on the points), the frames
read (read_frames) and an annotated copy written (VideoOut). detect.py's command line and app.py's camera use them."""
import math
from fractions import Fraction

import numpy as np

import crops
import data_load as dl
from detectors import contains


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


class Tracker:
    """Faces followed from frame to frame: .update(rgb, t) -> faces, each with an id that stays the same.

    Between detections each face's crop comes from its keypoints in the previous frame. The face detector runs on the
    first frame, every redetect_every frames (default: the detector's own, 1 where it is cheap enough for every
    frame), and on every frame for redetect_every frames after a face is lost (covered, turned away, gone), so new
    faces are picked up; a face found again within forget_after seconds of losing it gets its id back. Keypoints are
    smoothed with a One Euro filter when smooth."""

    def __init__(self, fkd, redetect_every=None, smooth=True, forget_after=2.0):
        self.fkd, self.smooth, self.forget_after = fkd, smooth, forget_after
        self.redetect_every = redetect_every or fkd.face_detector.redetect_every
        self.tracked, self.filters, self.lost, self.next_id, self.frame, self.lost_at = [], {}, {}, 0, -1, None
        self.shape = None

    def update(self, rgb, t):
        """The faces in this RGB frame, taken t seconds into the sequence."""
        fkd, self.frame = self.fkd, self.frame + 1
        if self.shape not in (None, rgb.shape[:2]):  # a camera that changed its size: the faces are looked for afresh
            self.tracked, self.lost, self.lost_at = [], {}, self.frame
        self.shape = rgb.shape[:2]
        followed = fkd.faces(rgb, [crops.box_from_keypoints(f.keypoints, fkd.detector) for f in self.tracked],
                             [f.score for f in self.tracked], ids=[f.id for f in self.tracked])
        # A face that left the frame, or stopped looking like one, is lost.
        followed = [f for f in followed if inside(f.keypoints, rgb.shape)]
        gone = {f.id for f in self.tracked} - {f.id for f in followed}
        self.lost.update({f.id: (f, t) for f in self.tracked if f.id in gone})
        if gone:
            self.lost_at = self.frame
        if self.frame % self.redetect_every == 0 or (self.lost_at is not None
                                                      and self.frame - self.lost_at < self.redetect_every):
            boxes, scores = fkd.find_faces(rgb)
            # A box around a followed face's centre is that face: keep following it (no jump in its points).
            fresh = [j for j, b in enumerate(boxes) if not any(contains(b, f.keypoints.mean(0)) for f in followed)]
            ids = []
            for j in fresh:
                back = next((k for k, (f, _) in self.lost.items() if contains(boxes[j], f.keypoints.mean(0))), None)
                if back is None:
                    back, self.next_id = self.next_id, self.next_id + 1
                self.lost.pop(back, None)
                ids.append(back)
            followed += fkd.faces(rgb, boxes[fresh], scores[fresh], ids=ids, sure=fkd.face_detector.sure)
        self.lost = {k: v for k, v in self.lost.items() if t - v[1] <= self.forget_after}
        self.filters = {f.id: self.filters.get(f.id) or OneEuroFilter() for f in followed}
        if self.smooth:
            for f in followed:
                f.keypoints = self.filters[f.id](f.keypoints, t)
        self.tracked = followed
        return followed


def inside(kp, shape):
    h, w = shape[:2]
    centre = kp.mean(0)
    return 0 <= centre[0] < w and 0 <= centre[1] < h


class VideoOut:
    """An annotated video as H.264 in MP4, which web browsers play (OpenCV's own mp4v they do not), encoded by the
    FFmpeg that PyAV ships; x264's fastest preset, which costs a frame about what mp4v does (`python benchmark.py`).
    H.264's 4:2:0 colour needs even sides: an odd last row or column is left out."""

    def __init__(self, path, fps, shape):
        import av

        self.av, self.path = av, path
        try:
            self.container = av.open(str(path), "w", format="mp4")
            self.stream = self.container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001),
                                                    options={"preset": "ultrafast"})
        except (OSError, av.FFmpegError) as e:
            raise dl.DataError(f"{path}: cannot write the annotated video ({getattr(e, 'strerror', None) or e})") \
                from None
        self.stream.height, self.stream.width = shape[0] // 2 * 2, shape[1] // 2 * 2
        self.stream.pix_fmt = "yuv420p"

    def write(self, bgr):
        frame = None if bgr is None else self.av.VideoFrame.from_ndarray(
            np.ascontiguousarray(bgr[:self.stream.height, :self.stream.width]), format="bgr24")
        try:
            self.container.mux(self.stream.encode(frame))
        except (OSError, self.av.FFmpegError) as e:
            raise dl.DataError(f"{self.path}: cannot write the annotated video ({e})") from None

    def close(self):
        self.write(None)  # flush the encoder
        self.container.close()


def read_frames(cap):
    """The frames of an opened cv2.VideoCapture until it runs out."""
    while True:
        ok, frame = cap.read()
        if not ok:
            return
        yield frame
