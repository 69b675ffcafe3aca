import re

import numpy as np
import pytest

import crops
import data_load as dl
from conftest import DATA, PHOTOS, face_shape, needs_data, needs_photos, write_csv


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
        out = crops.FaceCrop(96, augment=True)({"image": image, "keypoints": kp})
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
    in_crop = np.stack([crops.apply_affine(crops.crop_matrix(r, 96), p) for r, p in zip(rects, pts)])
    assert np.allclose(crops.from_crop(in_crop, rects, 96), pts, atol=1e-4)


def test_flip_permutation_is_an_involution_and_mirrors_points():
    assert sorted(dl.FLIP_PERM) == list(range(68))
    assert (dl.FLIP_PERM[dl.FLIP_PERM] == np.arange(68)).all()
    kp = np.random.default_rng(0).uniform(0, 99, (2, 68, 2)).astype(np.float32)
    m = crops.mirror_keypoints(kp, 100)
    assert np.allclose(crops.mirror_keypoints(m, 100), kp)
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


# ---------------------------------------------------------------- 300-W photos

def write_pts(path, kp, header="version: 1\nn_points:  68\n{\n"):
    path.write_text(header + "\n".join(f"{x} {y}" for x, y in kp) + "\n}\n")
    return path


def photo_folder(tmp_path, names, kp=None):
    """A 300-W layout folder: NAME.jpg (a small gray image) and NAME.pts for each name."""
    import cv2
    kp = face_shape() if kp is None else kp
    for name in names:
        cv2.imwrite(str(tmp_path / f"{name}.jpg"), np.full((240, 220, 3), 90, np.uint8))
        write_pts(tmp_path / f"{name}.pts", kp)
    return tmp_path


def test_pts_files_are_read_and_checked_before_use(tmp_path):
    kp = face_shape()
    assert np.allclose(dl.read_pts(write_pts(tmp_path / "a_1.pts", kp)), kp, atol=1e-4)
    bad = {"no_braces": ("version: 1\nn_points: 68\n", "not a .pts file (no n_points line or no braces"),
           "five": ("version: 1\nn_points: 5\n{\n", "5 points, expected 68")}
    for name, (header, message) in bad.items():
        with pytest.raises(dl.DataError, match=re.escape(f"{name}.pts: {message}")):
            dl.read_pts(write_pts(tmp_path / f"{name}.pts", kp, header))
    nan = kp.copy()
    nan[7, 1] = np.nan
    for name, points in {"nan": nan, "short": kp[:60]}.items():
        with pytest.raises(dl.DataError, match=f"{name}.pts: keypoints missing, NaN or not numbers"):
            dl.read_pts(write_pts(tmp_path / f"{name}.pts", points))
    (tmp_path / "words.pts").write_text("version: 1\nn_points: 68\n{\n" + "a b\n" * 68 + "}\n")
    with pytest.raises(dl.DataError, match="words.pts: keypoints missing, NaN or not numbers"):
        dl.read_pts(tmp_path / "words.pts")


def test_a_pts_file_without_its_image_is_an_error(tmp_path):
    photo_folder(tmp_path, ["111_1"])
    (tmp_path / "111_1.jpg").unlink()
    with pytest.raises(dl.DataError, match=r"111_1.pts: no image beside it \(expected 111_1.jpg or .png\)"):
        dl.read_photos(tmp_path)
    with pytest.raises(dl.DataError, match="no such folder"):
        dl.read_photos(tmp_path / "nowhere")


def test_photo_splits_follow_the_photo_id_and_never_split_a_photo(tmp_path):
    import hashlib
    ids = [str(1000 + i) for i in range(60)]
    # AFW-style: one photo, one file per annotated face; the split must keep its faces together.
    names = [f"{i}_{k}" for i in ids for k in (1, 2)]
    photo_folder(tmp_path, names)
    found = {s: dl.read_photos(tmp_path, s)[0] for s in ("test", "validation", "train")}
    assert sum(len(v) for v in found.values()) == len(names)
    by_split = {s: {dl.photo_id(p.name) for p in v} for s, v in found.items()}
    assert not (by_split["test"] & by_split["validation"] or by_split["test"] & by_split["train"]
                or by_split["validation"] & by_split["train"])
    assert by_split["test"] == {i for i in ids if hashlib.sha1(i.encode()).digest()[0] < 0x26}
    assert all(len([p for p in found[s] if dl.photo_id(p.name) == i]) == 2 for s in found for i in by_split[s])


@needs_photos
def test_test_photo_rule_matches_the_list():
    paths, kps = dl.read_photos(PHOTOS, "test")
    listed = set((PHOTOS / "test_photos.txt").read_text().split())
    assert {f"{dl.source(p)}/{dl.photo_id(p.name)}" for p in paths} == listed
    assert len(paths) == 290 and kps.shape == (290, 68, 2)
    per_source = {s: sum(dl.source(p) == s for p in paths) for s in ("afw", "helen_train", "lfpw_train")}
    assert per_source == {"afw": 40, "helen_train": 122, "lfpw_train": 128}


def test_exif_orientation_is_honoured(tmp_path):
    """A photo stored sideways with an Orientation tag comes out as OpenCV shows it (IMREAD_COLOR turns it)."""
    import cv2
    from PIL import Image
    stored = np.zeros((60, 100, 3), np.uint8)
    stored[5:20, 10:30] = (255, 0, 0)  # a red patch near the top left, so every turn and flip differs
    for orientation in range(1, 9):
        exif = Image.Exif()
        exif[0x0112] = orientation
        path = tmp_path / f"o{orientation}.jpg"
        Image.fromarray(stored).save(path, exif=exif, quality=100, subsampling=0)
        shown = cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        got = dl.read_image(path)
        assert got.shape == shown.shape, orientation
        assert np.abs(got.astype(int) - shown).max() <= 2, orientation
        assert (got.shape[0] > got.shape[1]) == (orientation >= 5)


def test_crops_past_the_image_edge_are_black_not_squeezed():
    import cv2
    image = np.random.default_rng(0).integers(0, 255, (120, 100, 3)).astype(np.uint8)
    for rect in [(-30, -10, 70, 90), (40, 60, 140, 160), (10, 10, 90, 90)]:
        crop = crops.cut_crop(image, rect, 64)
        warped = cv2.warpAffine(image, crops.crop_matrix(rect, 64), (64, 64), flags=cv2.INTER_LINEAR)
        assert crop.shape == (64, 64, 3) and np.abs(crop.astype(int) - warped).max() <= 1
    assert crops.cut_crop(image, (-30, -10, 70, 90), 100)[:9].max() == 0  # above the image: black
    for rect in [(-30, -10, 70, 90), (5, 5, 100, 100)]:  # gray before resizing: the crop the model trained on
        for size in (64, 32):  # bilinear, and area averaging
            after = cv2.cvtColor(crops.cut_crop(image, rect, size), cv2.COLOR_RGB2GRAY).astype(int)
            assert np.abs(crops.cut_crop(image, rect, size, gray=True) - after).max() <= 1
    with pytest.raises(dl.DataError, match="lies outside the 100x120 image"):
        crops.crop_rect((200, 10, 50, 50), image.shape, 0.3)


def test_every_detector_box_maps_to_the_box_training_crops_from():
    kp = face_shape(1.3, (20, 40))
    for detector in crops.DETECTOR_BOXES:
        np.testing.assert_allclose(crops.model_box(crops.box_from_keypoints(kp, detector), detector),
                                   crops.box_from_keypoints(kp), atol=1e-3)
    lo, hi = kp.min(0), kp.max(0)
    extent = max(hi - lo)
    for detector, kinds in crops.DETECTOR_KINDS.items():  # where each filter or model puts its box: moved, scaled
        for kind, d in enumerate(kinds):
            side = d["s"] * extent
            x, y = (lo + hi) / 2 + np.float32([d["dx"], d["dy"]]) * extent - side / 2
            first = crops.first_kind(np.float32([x, y, side, side]), detector, kind)
            np.testing.assert_allclose(first, crops.box_from_keypoints(kp, detector), atol=1e-3)


def test_face_region_keeps_points_on_their_pixels():
    kp = face_shape(3.0, (50, 60))  # a face of about 420 pixels: scaled down to 128
    image = blob_image(700, 600, kp[30:31], radius=9)
    region, moved = dl.face_region(image, kp)
    assert max(moved.max(0) - moved.min(0)) == pytest.approx(128, abs=1)
    assert region.shape[0] == region.shape[1] == round(4 * 128)
    assert np.abs(centroid(region[:, :, 0]) - moved[30]).max() < 0.6


def test_occlusion_covers_part_of_the_face_and_keeps_its_points():
    kp = face_shape(1.0, (40, 30))
    image = np.full((260, 240, 3), 128, np.uint8)
    out = {}
    for occlude in (0.0, 1.0):
        np.random.seed(0)  # the same box, turn and mirror: the patch is drawn after them
        out[occlude] = crops.FaceCrop(96, augment=True, occlude=occlude)({"image": image, "keypoints": kp})
    np.testing.assert_array_equal(out[0.0]["keypoints"].numpy(), out[1.0]["keypoints"].numpy())
    plain, covered = (out[o]["image"][0].numpy() * 255 for o in (0.0, 1.0))
    assert (np.abs(covered - plain) > 30).mean() > 0.02  # a patch unlike the grey face
