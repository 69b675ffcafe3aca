"""Head pose from the 68 keypoints: a mean 3D face in the iBUG scheme, fitted to the points with solvePnP.

    python pose.py --photos ../shared/300w     # remake saved_models/face3d.txt from annotated photos

Axes (the camera's, OpenCV's): x to the image's right, y down, z away from the camera. A face looking straight at
the camera has pose (0, 0, 0). yaw > 0: the face turns towards the image's right (the person's left); pitch > 0: it
looks up; roll > 0: it tilts clockwise in the picture (its top towards the image's right).

The mean 3D face is learned from 2D annotations alone (Tomasi-Kanade factorization: many faces seen from many
angles, each mirrored too so that the shape is symmetric), so it follows the annotators' convention point by point.
"""
import argparse
import functools
import sys
from pathlib import Path

import cv2
import numpy as np

import crops
import data_load as dl

FACE_3D_FILE = Path(__file__).parent / "saved_models" / "face3d.txt"
EYE_WIDTH_MM = 90  # outer eye corner to outer eye corner on an adult face: the 3D face's scale


def mean_face_3d(keypoints):
    """N x 68 x 2 annotated faces -> 68 x 3 mean face (mm; x to its left eye, y down, z away from the viewer), by
    affine factorization (Tomasi and Kanade 1992) with the metric upgrade of Morita and Kanade (1997)."""
    kp = np.concatenate([keypoints, crops.mirror_keypoints(keypoints, 0)]).astype(np.float64)
    kp -= kp.mean(1, keepdims=True)
    kp /= np.sqrt((kp ** 2).sum((1, 2), keepdims=True))  # every face weighs the same
    W = kp.transpose(0, 2, 1).reshape(-1, dl.N_POINTS)    # 2N x 68: each face's x row, then its y row
    U, s, Vt = np.linalg.svd(W, full_matrices=False)
    M, S = U[:, :3] * np.sqrt(s[:3]), np.sqrt(s[:3])[:, None] * Vt[:3]
    # Each face's two rows of M are a scaled orthographic camera: orthogonal, of equal length, once M -> M Q.
    # With L = Q Q^T (symmetric, 6 unknowns): m1 L m1 - m2 L m2 = 0 and m1 L m2 = 0, up to scale.
    iu = np.triu_indices(3)

    def row(a, b):
        outer = a[:, :, None] * b[:, None, :]
        outer = outer + outer.transpose(0, 2, 1)
        return np.where(iu[0] == iu[1], 0.5, 1.0) * outer[:, iu[0], iu[1]]

    m1, m2 = M[0::2], M[1::2]
    A = np.concatenate([row(m1, m1) - row(m2, m2), row(m1, m2)])
    L = np.zeros((3, 3))
    L[iu] = np.linalg.svd(A)[2][-1]
    L = L + L.T - np.diag(np.diag(L))
    L *= np.sign(np.trace(L))
    face = np.linalg.solve(np.linalg.cholesky(L), S).T   # 68 x 3, in a frame still turned by some rotation
    # Turn it upright: x from the face's right to its left (the image's left to right), y from brows to chin.
    x = (face[16] - face[0]) + (face[45] - face[36]) + (face[54] - face[48])
    y = face[8] - face[17:27].mean(0)
    x /= np.linalg.norm(x)
    y -= x * (x @ y)
    y /= np.linalg.norm(y)
    face = (face - face.mean(0)) @ np.stack([x, y, np.cross(x, y)]).T
    if face[30, 2] > face[[36, 45], 2].mean():  # factorization leaves depth's sign open: the nose is nearest
        face[:, 2] *= -1
    # The pitch of the mean 2D face (as the photos show faces) is 0: turn about x until its projection has it.
    mean2d = kp.mean(0)
    best = min(np.radians(np.arange(-30, 30.1, 0.25)), key=lambda a: _pitch_error(face, mean2d, a))
    c, s_ = np.cos(best), np.sin(best)
    face = face @ np.array([[1, 0, 0], [0, c, -s_], [0, s_, c]]).T
    return face * EYE_WIDTH_MM / np.linalg.norm(face[45] - face[36])


def _pitch_error(face, mean2d, angle):
    c, s = np.cos(angle), np.sin(angle)
    p = (face @ np.array([[1, 0, 0], [0, c, -s], [0, s, c]]).T)[:, :2]
    p = p - p.mean(0)
    p /= np.sqrt((p ** 2).sum())
    return ((p - mean2d) ** 2).sum()


@functools.cache
def face_3d():
    return np.loadtxt(FACE_3D_FILE, dtype=np.float64).reshape(dl.N_POINTS, 3)


def head_pose(keypoints, image_shape):
    """(yaw, pitch, roll) in degrees (module docstring), from all 68 keypoints and the mean 3D face, with a pinhole
    camera of focal length = image width at the image's centre."""
    h, w = image_shape[:2]
    camera = np.float64([[w, 0, w / 2], [0, w, h / 2], [0, 0, 1]])
    pts = np.ascontiguousarray(keypoints, np.float64)
    ok, rvec, tvec = cv2.solvePnP(face_3d(), pts, camera, None, flags=cv2.SOLVEPNP_EPNP)
    if ok:  # EPnP's answer refined by Levenberg-Marquardt on the reprojection error
        ok, rvec, tvec = cv2.solvePnP(face_3d(), pts, camera, None, rvec, tvec, True, cv2.SOLVEPNP_ITERATIVE)
    if not ok:
        return np.full(3, np.nan, np.float32)
    # The head's rotation seen along the line of sight to it, so that a face off the image's centre that looks
    # at the camera still has yaw and pitch 0.
    R = _towards(tvec.ravel()).T @ cv2.Rodrigues(rvec)[0]
    pitch, yaw, roll = cv2.RQDecomp3x3(R)[0]  # R = Rz(roll) Ry(yaw) Rx(pitch), in OpenCV's camera axes
    return np.float32([-yaw, -pitch, roll])


def rotation(yaw=0.0, pitch=0.0, roll=0.0):
    """The head's rotation (3 x 3, camera axes) for a pose in degrees: what head_pose decomposes, inverted."""
    a, b, c = np.radians([-pitch, -yaw, roll])
    Rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    Ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    Rz = np.array([[np.cos(c), -np.sin(c), 0], [np.sin(c), np.cos(c), 0], [0, 0, 1]])
    return Rz @ Ry @ Rx


def _towards(t):
    """The rotation that takes the camera's z axis to the direction t."""
    z = t / np.linalg.norm(t)
    x = np.cross([0.0, 1.0, 0.0], z)
    x /= np.linalg.norm(x)
    return np.stack([x, np.cross(z, x), z], 1)


def draw_pose(out, face, thick=1):
    """The head's axes from the nose tip: x (red) to the face's left, y (green) down, z (blue) out of the face."""
    R = rotation(*face.pose)
    length, origin = face.box[2] / 2, face.keypoints[30]
    for axis, color in zip(np.eye(3) * [1, 1, -1], [(0, 0, 255), (0, 255, 0), (255, 0, 0)]):
        end = origin + (R @ axis)[:2] * length
        cv2.line(out, tuple(int(v) for v in origin), tuple(int(v) for v in end), color, thick + 1, cv2.LINE_AA)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=dl.HelpFormatter)
    p.add_argument("--photos", help="300-W folder to learn the 3D face from: its training and validation photos "
                                    "(default: $FKP_300W_DIR or ./data/300w)")
    p.add_argument("--out", default=FACE_3D_FILE, help="where to write the 68 x 3 face")
    args = p.parse_args(argv)
    try:
        kps = np.concatenate([dl.read_photos(dl.photos_dir(args.photos), split)[1]
                              for split in ("train", "validation")])
    except dl.DataError as e:
        sys.exit(f"error: {e}")
    face = mean_face_3d(kps)
    np.savetxt(args.out, face, fmt="%7.2f", header=f"mean 3D face (mm; x, y, z) of the 68 iBUG points, from "
               f"{len(kps)} annotated faces by `python pose.py`")
    print(f"{args.out}: the mean 3D face of {len(kps)} faces")


if __name__ == "__main__":
    sys.exit(main())
