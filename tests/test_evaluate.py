import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import evaluate
from conftest import DATA, face_shape, needs_data, write_csv

ROOT = Path(__file__).resolve().parents[1]


def test_metrics_on_an_exact_small_case():
    gt = np.stack([face_shape(), face_shape(2.0)])  # inter-ocular distances 100 and 200 pixels
    pred = gt + np.float32([3, 4])                  # every point 5 pixels off
    m = evaluate.metrics(pred, gt)
    assert m["nme"] == pytest.approx((5.0 + 2.5) / 2)
    assert m["fail_10"] == 0 and m["found"] == 2
    assert m["regions"]["eyes"] == pytest.approx(3.75)
    # AUC@10 of errors 5% and 2.5%: the CED is 0, then 1/2 from 2.5%, then 1 from 5%.
    assert m["auc_10"] == pytest.approx((0.5 * 2.5 + 1.0 * 5.0) / 10, abs=1e-3)


def test_a_missed_face_counts_as_a_failure_not_in_the_mean():
    gt = np.stack([face_shape(), face_shape()])
    pred = gt.copy()
    pred[1] = np.nan
    m = evaluate.metrics(pred, gt)
    assert (m["found"], m["nme"], m["fail_10"]) == (1, 0.0, 50.0)


def test_predictors_are_also_compared_on_the_faces_each_of_them_found(capsys):
    errors = {"ours": np.float32([2, 4, 6, 8]), "theirs": np.float32([1, np.inf, 3, np.inf])}
    evaluate.print_common(errors, ["a", "a", "b", "b"])
    head, ours, theirs = capsys.readouterr().out.splitlines()
    assert head.endswith("all 2 faces, a 1 face, b 1 face")
    assert ours.split()[-3:] == ["4.00", "2.00", "6.00"] and theirs.split()[-3:] == ["2.00", "1.00", "3.00"]


def run(*args):
    return subprocess.run([sys.executable, "evaluate.py", *map(str, args)], cwd=ROOT, capture_output=True, text=True)


def test_csv_with_too_few_points_is_a_clear_error(tmp_path):
    (tmp_path / "test").mkdir()
    write_csv(tmp_path / "test_frames_keypoints.csv", [["a_00.jpg"] + list(range(100))],
              "," + ",".join(map(str, range(100))))
    r = run("--data", tmp_path)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.strip().endswith("found 100 numbers")
    assert str(tmp_path / "test_frames_keypoints.csv") in r.stderr


def test_empty_set_is_a_clear_error(tmp_path):
    (tmp_path / "test").mkdir()
    (tmp_path / "test_frames_keypoints.csv").write_text("," + ",".join(map(str, range(136))) + "\n")
    r = run("--data", tmp_path)
    assert r.returncode == 1 and "empty CSV" in r.stderr and "Traceback" not in r.stderr


@needs_data
def test_json_file_of_a_real_run(tmp_path):
    r = run("--data", DATA, "--split", "unseen", "--protocol", "pipeline", "--json", tmp_path / "f.json")
    assert r.returncode == 0, r.stderr
    out = json.loads((tmp_path / "f.json").read_text())
    assert {"split", "protocol", "n", "found", "nme", "fail_10", "auc_10", "ms_per_face"} <= set(out)
    assert (out["split"], out["protocol"], out["n"]) == ("unseen", "pipeline", 153)


def test_signed_offsets_show_a_shift_per_region():
    gt = np.stack([face_shape(), face_shape(2.0)])  # inter-ocular distances 100 and 200 pixels
    pred = gt.copy()
    pred[:, 27:36] += np.float32([0, 4])             # the nose 4 pixels low: 4% and 2% of the eye distance
    m = evaluate.metrics(pred, gt)
    assert m["offsets"]["nose"] == pytest.approx([0.0, 3.0])
    assert m["offsets"]["eyes"] == pytest.approx([0.0, 0.0])


def test_a_300w_folder_is_measured_per_source(tmp_path):
    import cv2

    from test_data import write_pts
    demo = cv2.imread(str(ROOT / "images" / "astronaut.png"))
    # A rough 68-point face on the astronaut (no labels exist for it): the figures are not the point here.
    kp = face_shape(0.75, (120, 60))
    for folder, photo in [("afw", "5_1"), ("helen_train", "10_1")]:
        (tmp_path / folder).mkdir()
        cv2.imwrite(str(tmp_path / folder / f"{photo}.jpg"), demo)
        write_pts(tmp_path / folder / f"{photo}.pts", kp)
    r = run("--photos", tmp_path, "--photo-split", "all", "--json", tmp_path / "f.json")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert any(l.strip().startswith("afw") for l in lines) and any(l.strip().startswith("helen_train") for l in lines)
    assert "mean signed offset" in r.stdout
    out = json.loads((tmp_path / "f.json").read_text())
    assert (out["split"], out["n"], out["found"]) == ("all", 2, 2)


def test_each_true_face_gets_the_prediction_nearest_its_points():
    """Two overlapping faces: a large one whose box also holds the small one's centre. The small face is matched to
    the prediction on it, not to the larger box around it; a prediction over an eye distance away matches nothing."""
    small, large = face_shape(0.5, (150, 150)), face_shape(2.0, (0, 0))
    small_box, large_box = (150, 150, 100, 110), (0, 0, 400, 440)
    preds = [large + 1, small + 2]
    assert evaluate.contains(large_box, (small.min(0) + small.max(0)) / 2)      # the old rule's trap
    assert evaluate.pick([large_box, small_box], small) == 0
    assert evaluate.nearest(preds, small) == 1 and evaluate.nearest(preds, large) == 0
    iod = np.linalg.norm(small[36] - small[45])                                  # 35 pixels
    assert evaluate.nearest([small + np.float32([iod - 1, 0])], small) == 0
    assert evaluate.nearest([small + np.float32([iod + 1, 0])], small) is None
    assert evaluate.nearest([], small) is None


def test_faces_at_every_pose_are_normalized_by_their_box_and_banded_by_yaw(tmp_path):
    gt = face_shape()[None]
    lo, hi = gt[0].min(0), gt[0].max(0)
    side = np.sqrt(np.prod(hi - lo))
    assert evaluate.normalizer(gt, "box")[0] == pytest.approx(side)
    assert evaluate.nme(gt + np.float32([3, 4]), gt, "box")[0] == pytest.approx(500 / side)
    # within one box size of the truth: matched; the eye distance would have been the stricter rule
    assert evaluate.nearest([gt[0] + np.float32([side - 1, 0])], gt[0], "box") == 0
    names = [str(tmp_path / f"image{i}.jpg") for i in range(4)]
    (tmp_path / "yaw.json").write_text(json.dumps({f"image{i}": y for i, y in enumerate([10, -40, 75, -90])}))
    assert evaluate.yaw_bands(tmp_path, names) == ["yaw 0-30", "yaw 30-60", "yaw 60-90", "yaw 60-90"]
    assert evaluate.yaw_bands(tmp_path / "elsewhere", names) is None


def test_an_aflw_folder_is_measured_per_yaw_band(tmp_path):
    import cv2

    from test_data import write_pts
    demo = cv2.imread(str(ROOT / "images" / "astronaut.png"))
    kp = face_shape(0.75, (120, 60))
    for i in range(2):
        cv2.imwrite(str(tmp_path / f"image{i}.jpg"), demo)
        write_pts(tmp_path / f"image{i}.pts", kp)
    (tmp_path / "yaw.json").write_text(json.dumps({"image0": 5.0, "image1": 50.0}))
    r = run("--photos", tmp_path, "--photo-split", "all")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert "sqrt(width x height)" in lines[0]
    assert [l.split()[:2] for l in lines if l.strip().startswith("yaw")] == [["yaw", "0-30"], ["yaw", "30-60"]]
    assert any(l.strip().startswith("mean of the yaw bands") for l in lines)


def test_dlibs_method_trained_on_our_training_faces_is_measured_from_its_file(tmp_path, capsys):
    """benchmark.py --train-dlib: the training split's faces, boxed by dlib's detector (or, where it misses one, from
    the points), into a predictor file that evaluate.py --dlib-model measures beside ours."""
    import cv2
    import dlib

    import benchmark
    from test_data import write_pts
    demo = cv2.imread(str(ROOT / "images" / "astronaut.png"))
    kp = face_shape(0.7, (151, 36))  # a rough face where dlib's detector boxes the astronaut's
    for folder, photo, image in [("afw", "0_1", demo), ("helen_train", "1_1", np.full_like(demo, 90))]:
        (tmp_path / folder).mkdir()
        cv2.imwrite(str(tmp_path / folder / f"{photo}.png"), image)
        write_pts(tmp_path / folder / f"{photo}.pts", kp)
    out = tmp_path / "tiny.dat"
    benchmark.train_dlib(tmp_path, out, cascade_depth=1, num_trees_per_cascade_level=2, tree_depth=1,
                         oversampling_amount=1)
    said = capsys.readouterr().out
    assert "2 training faces" in said and "1 boxed by dlib's detector" in said
    shape = dlib.shape_predictor(str(out))(demo[..., ::-1].copy(), dlib.rectangle(175, 76, 265, 166))
    assert len(shape.parts()) == 68
    r = run("--photos", tmp_path, "--photo-split", "train", "--compare", "dlib", "--dlib-model", out)
    assert r.returncode == 0, r.stderr
    assert "dlib HOG + tiny.dat" in r.stdout

    before = out.read_bytes()
    r = subprocess.run([sys.executable, "benchmark.py", "--photos", tmp_path, "--train-dlib", out], cwd=ROOT,
                       capture_output=True, text=True)
    assert r.returncode == 1 and r.stderr.strip() == f"error: {out} exists: remove it or name another file"
    assert out.read_bytes() == before
    (tmp_path / "bad.dat").write_text("not a model")
    r = run("--photos", tmp_path, "--photo-split", "train", "--compare", "dlib", "--dlib-model", tmp_path / "bad.dat")
    assert r.returncode == 1 and "Traceback" not in r.stderr and "bad.dat: not a dlib shape predictor" in r.stderr
    assert run("--dlib-model", out).returncode == 2  # only beside --compare dlib


def test_nme_by_face_size_is_over_quarters_of_the_faces_by_eye_distance(capsys):
    gts = np.zeros((8, 68, 2), np.float32)
    gts[:, 45, 0] = [80, 10, 70, 20, 60, 30, 50, 40]  # eye-corner distances; faces 1 and 3 the smallest quarter
    errors = {"ours": np.array([8, 1, 7, 2, 6, 3, 5, np.inf])}  # the face at 40 missed: left out of its quarter
    evaluate.print_sizes(errors, gts, ["a", "b"] * 4)
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split(": ")[1] == "10-20, 30-40, 50-60, 70-80"
    assert lines[2].split()[1:] == ["1.50", "3.00", "5.50", "7.50"]
    assert lines[3] == "  a: 50-50, 60-60, 70-70, 80-80" and lines[4].split()[1:] == ["5.00", "6.00", "7.00", "8.00"]
