import os
import shutil

import numpy as np
import pytest

import data_load as dl

# FKP_NO_SKIP=1 (CI) runs the tests that need the data or the browser even without them: they fail, not skip.
REQUIRE = os.environ.get("FKP_NO_SKIP") == "1"
DATA = dl.data_dir()
HAS_DATA = (DATA / "test_frames_keypoints.csv").exists()
needs_data = pytest.mark.skipif(not HAS_DATA and not REQUIRE,
                                reason=f"course data not found in {DATA}: set FKP_DATA_DIR")
PHOTOS = dl.photos_dir()
needs_photos = pytest.mark.skipif(not (PHOTOS / "test_photos.txt").exists() and not REQUIRE,
                                  reason=f"300-W photos not found in {PHOTOS}: set FKP_300W_DIR")
CHROMIUM = os.environ.get("FKP_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
needs_browser = pytest.mark.skipif(not os.path.exists(CHROMIUM) and not REQUIRE,
                                   reason="no Chromium for the browser tests: make chromium (Debian's package)")


@pytest.fixture(scope="session")
def client():
    """The web page's API in-process, its detector loaded once."""
    from fastapi.testclient import TestClient
    import app
    import detect
    return TestClient(app.create_app(detect.FaceKeypointDetector()))


@pytest.fixture(scope="session")
def test_rows():
    """(names, keypoints) of the course test CSV."""
    return dl.read_keypoints_csv(*dl.split_paths(DATA, "test"))


def write_csv(path, rows, header=None):
    """A course-format CSV: header ',0,1,...,135' then name + numbers per row."""
    header = header or "," + ",".join(str(i) for i in range(136))
    path.write_text(header + "\n" + "\n".join(",".join(str(v) for v in r) for r in rows) + "\n")
    return path


def face_shape(scale=1.0, offset=(0.0, 0.0)):
    """A synthetic frontal face in the 68-point scheme, about 140 x 110 pixels."""
    t = np.pi - np.arange(17) * np.pi / 16
    jaw = np.stack([100 + 70 * np.cos(t), 100 + 80 * np.sin(t)], -1)
    brows = [(x, 70) for x in np.linspace(45, 90, 5)] + [(x, 70) for x in np.linspace(110, 155, 5)]
    nose = [(100, y) for y in (80, 93, 106, 120)] + [(x, 128) for x in np.linspace(85, 115, 5)]
    eye = np.float32([(-15, 0), (-7, -5), (7, -5), (15, 0), (7, 5), (-7, 5)])
    eyes = np.concatenate([eye + (65, 90), eye + (135, 90)])
    a = np.pi + np.arange(12) * 2 * np.pi / 12
    outer = np.stack([100 + 25 * np.cos(a), 150 + 12 * np.sin(a)], -1)
    a = np.pi + np.arange(8) * 2 * np.pi / 8
    inner = np.stack([100 + 18 * np.cos(a), 150 + 6 * np.sin(a)], -1)
    kp = np.concatenate([jaw, brows, nose, eyes, outer, inner]).astype(np.float32)
    return kp * scale + np.float32(offset)
