from pathlib import Path

import cv2
import numpy as np
import pytest

import detect
import pose

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "images" / "astronaut.png"


def projected(R, centre=(320, 240), shape=(480, 640), distance=600):
    """The mean 3D face turned by R, distance mm in front of a camera of focal length = image width, seen at centre."""
    h, w = shape
    t = np.array([(centre[0] - w / 2) / w, (centre[1] - h / 2) / w, 1.0]) * distance
    p = pose.face_3d() @ R.T + t
    return np.float32(p[:, :2] / p[:, 2:] * w + [w / 2, h / 2])


@pytest.mark.parametrize("angles", [(0, 0, 0), (30, 0, 0), (-30, 0, 0), (0, 20, 0), (0, -20, 0), (0, 0, 25),
                                    (20, -10, 15)])
def test_pose_of_a_projected_face_is_its_turn(angles):
    est = pose.head_pose(projected(pose.rotation(*angles)), (480, 640))
    assert np.abs(est - angles).max() < 0.5, est


def test_the_nose_shows_the_signs():
    rotation = pose.rotation
    right, up, clockwise = projected(rotation(yaw=20)), projected(rotation(pitch=20)), projected(rotation(roll=20))
    front = projected(rotation())
    assert right[30, 0] > front[30, 0] + 5          # yaw > 0: the nose moves to the image's right
    assert up[30, 1] < front[30, 1] - 5              # pitch > 0: the nose moves up
    assert clockwise[8, 0] < front[8, 0] - 5         # roll > 0: the chin swings to the left, the top to the right


def test_a_face_off_centre_looking_at_the_camera_has_no_yaw_or_pitch():
    # Seen at the image's corner, a face turned to look at the camera: 0 yaw and pitch, as the same face at the centre.
    t = np.array([(600 - 320) / 640, (420 - 240) / 640, 1.0])
    look = pose._towards(t)
    est = pose.head_pose(projected(look, centre=(600, 420)), (480, 640))
    assert np.abs(est).max() < 0.5, est


def test_mean_face_is_symmetric_and_upright():
    f = pose.face_3d()
    mirrored = f[detect.dl.FLIP_PERM] * [-1, 1, 1]
    assert np.abs(mirrored - f).max() < 0.5
    assert f[30, 2] < f[[36, 45], 2].min() - 20 and f[8, 1] > f[27, 1] + 80  # nose in front, chin below
    assert abs(np.linalg.norm(f[45] - f[36]) - pose.EYE_WIDTH_MM) < 1e-3


def test_mean_face_from_projections_recovers_the_shape():
    rng = np.random.default_rng(0)
    angles = rng.uniform([-40, -20, -20], [40, 20, 20], (40, 3))
    angles = np.concatenate([angles, angles * [1, -1, 1]])  # faces seen from above as often as from below
    kps = np.stack([projected(pose.rotation(*a), distance=5000) for a in angles])  # nearly orthographic views
    assert np.abs(pose.mean_face_3d(kps) - pose.face_3d()).max() < 1  # mm


def test_astronaut_looks_at_the_camera_and_turning_the_photo_only_rolls():
    fkd = detect.FaceKeypointDetector()
    rgb = cv2.cvtColor(cv2.imread(str(DEMO)), cv2.COLOR_BGR2RGB)
    h, w = rgb.shape[:2]
    (front,) = fkd.detect(rgb, channels="rgb")
    assert abs(front.pose[0]) < 10 and abs(front.pose[1]) < 10
    for r in (10, 20, 30):
        turned = cv2.warpAffine(rgb, cv2.getRotationMatrix2D((w / 2, h / 2), r, 1), (w, h))  # r > 0: anticlockwise
        (face,) = fkd.detect(turned, channels="rgb")
        assert abs(face.pose[2] - front.pose[2] + r) < 3, (r, face.pose)
        assert np.abs(face.pose[:2] - front.pose[:2]).max() < 5, (r, face.pose)
