import re

import numpy as np
import pytest

import data_load as dl
from conftest import DATA, face_shape, needs_data, write_csv


def blob_image(h, w, points, radius=3):
    """A black RGB image with a white disc at each point."""
    import cv2
    img = np.zeros((h, w, 3), np.uint8)
    for x, y in points:
        cv2.circle(img, (int(round(x)), int(round(y))), radius, (255, 255, 255), -1)
    return img


def centroid(gray):
    g = gray.astype(np.float64)
    g = np.where(g > (g.max() + np.median(g)) / 2, g, 0)
    ys, xs = np.mgrid[:g.shape[0], :g.shape[1]]
    return np.array([(xs * g).sum() / g.sum(), (ys * g).sum() / g.sum()])


def test_point_stays_on_its_pixel_through_the_course_transforms():
    kp = np.tile(np.float32([[230, 90]]), (68, 1))
    sample = {"image": blob_image(300, 400, kp[:1], radius=6), "keypoints": kp}
    np.random.seed(3)
    for t in (dl.Rescale(250), dl.RandomCrop(224)):
        sample = t(sample)
        assert np.abs(centroid(sample["image"][:, :, 0]) - sample["keypoints"][0]).max() < 1.0
    out = dl.ToTensor()(dl.Normalize()(sample))
    assert out["image"].shape == (1, 224, 224) and out["image"].max() <= 1.0
    back = dl.keypoints_to_pixels(out["keypoints"].numpy())
    np.testing.assert_allclose(back, sample["keypoints"], atol=1e-4)


def test_rescale_int_keeps_aspect_and_tuple_is_exact():
    s = {"image": np.zeros((100, 200, 3), np.uint8), "keypoints": np.float32([[200, 100]] * 68)}
    out = dl.Rescale(50)(s)
    assert out["image"].shape == (50, 100, 3) and tuple(out["keypoints"][0]) == (100, 50)
    out = dl.Rescale((30, 40))(s)
    assert out["image"].shape == (30, 40, 3) and np.allclose(out["keypoints"][0], (40, 30))


def test_augmented_face_crop_moves_points_with_pixels_and_swaps_left_right():
    kp = face_shape(1.0, (40, 30))
    image = blob_image(260, 240, kp[36:37], radius=4)
    flips = set()
    for seed in range(12):
        np.random.seed(seed)
        out = dl.FaceCrop(96, augment=True)({"image": image, "keypoints": kp})
        pts = dl.keypoints_to_pixels(out["keypoints"].numpy(), 96)
        c = centroid(out["image"][0].numpy())
        d36, d45 = np.linalg.norm(c - pts[36]), np.linalg.norm(c - pts[45])
        assert min(d36, d45) < 1.0, (seed, d36, d45)
        assert pts[36, 0] < pts[45, 0]  # after a flip point 36 is still the eye corner on the image's left
        flips.add(d45 < d36)
    assert flips == {True, False}


def test_from_crop_undoes_crop_matrix_for_several_crops():
    rects = [(10, 20, 110, 120), (0, 5, 64, 37)]  # the second clipped at an image border: not square
    pts = np.float32([[[0, 0], [99.5, 3], [50, 50]], [[1, 2], [63, 31], [-0.5, -0.5]]])
    in_crop = np.stack([dl.apply_affine(dl.crop_matrix(r, 96), p) for r, p in zip(rects, pts)])
    assert np.allclose(dl.from_crop(in_crop, rects, 96), pts, atol=1e-4)


def test_flip_permutation_is_an_involution_and_mirrors_points():
    assert sorted(dl.FLIP_PERM) == list(range(68))
    assert (dl.FLIP_PERM[dl.FLIP_PERM] == np.arange(68)).all()
    kp = np.random.default_rng(0).uniform(0, 99, (2, 68, 2)).astype(np.float32)
    m = dl.mirror_keypoints(kp, 100)
    assert np.allclose(dl.mirror_keypoints(m, 100), kp)
    assert np.allclose(m[:, 45, 0], 99 - kp[:, 36, 0])  # the left eye's outer corner lands on the right's


def test_csv_rows_are_parsed(tmp_path):
    (tmp_path / "a_00.jpg").write_bytes(b"")
    csv = write_csv(tmp_path / "k.csv", [["a_00.jpg"] + list(range(136))])
    names, kps = dl.read_keypoints_csv(csv, tmp_path)
    assert names == ["a_00.jpg"] and kps.shape == (1, 68, 2) and tuple(kps[0, 1]) == (2, 3)


@pytest.mark.parametrize("rows,header,message", [
    ([["a_00.jpg"] + list(range(135))], "," + ",".join(map(str, range(135))), "found 135 numbers"),
    ([["a_00.jpg"] + list(range(135)) + ["nan"]], None, "row 2 (a_00.jpg): keypoints missing, NaN"),
    ([["a_00.jpg"] + list(range(135)), ["b_00.jpg"] + ["x"] + list(range(135))], None, "row 3 (b_00.jpg)"),
    ([], None, "empty CSV"),
])
def test_bad_csv_names_file_and_row(tmp_path, rows, header, message):
    if rows and len(rows[0]) == 136 and header is None:
        rows[0] = rows[0] + [0]  # a complete row, so the bad one is the second
    csv = write_csv(tmp_path / "k.csv", rows, header)
    with pytest.raises(dl.DataError, match=re.escape(message)) as e:
        dl.read_keypoints_csv(csv)
    assert str(csv) in str(e.value)


def test_missing_csv_and_missing_image(tmp_path):
    with pytest.raises(dl.DataError, match="no such file"):
        dl.read_keypoints_csv(tmp_path / "nope.csv")
    csv = write_csv(tmp_path / "k.csv", [["gone_00.jpg"] + list(range(136))])
    with pytest.raises(dl.DataError, match="row 2 names gone_00.jpg, which is not in"):
        dl.FacialKeypointsDataset(csv, tmp_path)
    (tmp_path / "blank.csv").write_text("")
    with pytest.raises(dl.DataError, match="empty CSV"):
        dl.read_keypoints_csv(tmp_path / "blank.csv")


def test_read_image_errors(tmp_path):
    import cv2
    (tmp_path / "text.jpg").write_text("not an image")
    (tmp_path / "zero.png").write_bytes(b"")
    ok, jpg = cv2.imencode(".jpg", np.full((64, 64, 3), 128, np.uint8))
    (tmp_path / "cut.jpg").write_bytes(jpg.tobytes()[: len(jpg) // 2])
    for name, msg in [("text.jpg", "not an image"), ("zero.png", "empty file"), ("cut.jpg", "truncated JPEG"),
                      ("missing.jpg", "no such file")]:
        with pytest.raises(dl.DataError, match=msg) as e:
            dl.read_image(tmp_path / name)
        assert name in str(e.value)


def test_any_pixel_format_becomes_rgb8():
    gray16 = np.full((4, 5), 65535, np.uint16)
    rgba = np.zeros((4, 5, 4), np.uint8)
    rgba[..., 2] = 200  # red in BGRA
    assert dl.to_rgb8(gray16).shape == (4, 5, 3) and dl.to_rgb8(gray16).max() == 255
    assert tuple(dl.to_rgb8(rgba)[0, 0]) == (200, 0, 0)
    assert tuple(dl.to_rgb8(rgba[..., [2, 1, 0, 3]], bgr=False)[0, 0]) == (200, 0, 0)


@needs_data
def test_unseen_people_rule_matches_the_list(test_rows):
    names, _ = dl.read_keypoints_csv(*dl.split_paths(DATA, "training"))
    listed = set((DATA / "unseen_people.txt").read_text().split())
    assert {dl.person(n) for n in names if dl.is_unseen(n)} == listed and len(listed) == 70
    unseen, seen = dl.split_people(test_rows[0])
    assert (len(unseen), len(seen)) == (153, 617)
    val = {dl.person(n) for n in names if dl.is_validation(n)}
    train = {dl.person(n) for n in names if not dl.is_validation(n) and not dl.is_unseen(n)}
    assert val and not (val & train) and not (val & listed)


@needs_data
def test_dataset_returns_rgb_images_and_keypoints():
    ds = dl.FacialKeypointsDataset(*dl.split_paths(DATA, "test"))
    s = ds[0]  # the test images are RGBA PNGs: alpha dropped
    assert s["image"].ndim == 3 and s["image"].shape[2] == 3 and s["keypoints"].shape == (68, 2)
    t = dl.FacialKeypointsDataset(*dl.split_paths(DATA, "test"), transform=dl.data_transform)[0]
    assert t["image"].shape == (1, 224, 224) and t["keypoints"].shape == (68, 2)
