import numpy as np
import pytest

import filters
from conftest import face_shape


class F:
    def __init__(self, kp):
        self.keypoints = kp


@pytest.mark.parametrize("name", list(filters.OVERLAYS))
def test_transparent_overlay_pixels_leave_the_photo_untouched(name):
    photo = np.random.default_rng(0).integers(0, 256, (300, 300, 3), np.uint8)
    before = photo.copy()
    kp = face_shape(1.0, (50, 80))
    out = filters.apply(photo, [F(kp)], name)
    assert np.array_equal(photo, before)  # apply draws on a copy
    rgba, anchors = filters.OVERLAYS[name]()
    changed = (out != photo).any(-1)
    assert changed.sum() > 200  # the overlay shows
    # Same placement with a fully transparent overlay: not a single pixel changes.
    clear = rgba.copy()
    clear[..., 3] = 0
    untouched = filters.overlay(photo.copy(), clear, anchors, filters.targets(name, kp))
    assert np.array_equal(untouched, photo)


def test_overlay_follows_the_tilt_of_the_face():
    kp = face_shape(1.0, (50, 80))
    c = kp.mean(0)
    t = np.radians(30)
    R = np.float32([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    tilted = (kp - c) @ R.T + c
    rgba, anchors = filters.OVERLAYS["sunglasses"]()
    photo = np.zeros((300, 300, 3), np.uint8)
    out = filters.overlay(photo.copy(), np.dstack([np.full(rgba.shape[:2] + (3,), 255, np.uint8), rgba[..., 3]]),
                          anchors, filters.targets("sunglasses", tilted))
    ys, xs = np.nonzero(out[..., 0])
    _, vecs = np.linalg.eigh(np.cov(np.stack([xs, ys]).astype(float)))
    main_axis = vecs[:, -1] * np.sign(vecs[0, -1])
    assert np.degrees(np.arctan2(main_axis[1], main_axis[0])) == pytest.approx(30, abs=2)
