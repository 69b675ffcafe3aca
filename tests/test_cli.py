"""The command line and API under real use: nothing lost, nothing silent (issue 12)."""
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

import data_load as dl
import detect
import evaluate
import train
import video
from test_detect import DEMO, ROOT, run_cli


@pytest.fixture(scope="module")
def fkd():
    return detect.FaceKeypointDetector()


def write_video(path, frames, fps=30):
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, frames[0].shape[1::-1])
    for f in frames:
        w.write(f)
    w.release()
    return path


def two_face_clip(n=20, covered=range(5, 8)):
    """Two astronauts side by side, 640 x 360, the right one covered by a grey card in the covered frames."""
    face = cv2.resize(cv2.imread(str(DEMO))[10:290, 100:350], (200, 224))
    rng = np.random.default_rng(0)
    frames = []
    for i in range(n):
        frame = np.full((360, 640, 3), 90, np.uint8)
        frame[60:284, 60:260] = face
        frame[60:284, 380:580] = face
        if i in covered:
            frame[40:300, 360:600] = 128
        frames.append(np.clip(frame + rng.normal(0, 2, frame.shape), 0, 255).astype(np.uint8))
    return frames


def interrupt_when(cmd, ready, timeout=120):
    """Run detect.py, send Ctrl-C (SIGINT) once ready() holds, and return the finished process."""
    proc = subprocess.Popen([sys.executable, "detect.py", *map(str, cmd)], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    t0 = time.time()
    while not ready() and proc.poll() is None and time.time() - t0 < timeout:
        time.sleep(0.05)
    assert proc.poll() is None, "finished before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    return proc.returncode, out, err


# ---------------------------------------------------------------- 2. Ctrl-C keeps what was finished

@pytest.mark.parametrize("suffix", [".json", ".jsonl"])
def test_ctrl_c_keeps_the_finished_images(tmp_path, suffix):
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(40):
        (photos / f"p{i:02d}.png").write_bytes(DEMO.read_bytes())
    out, results = tmp_path / "out", tmp_path / f"faces{suffix}"
    code, stdout, stderr = interrupt_when([photos, "--out", out, "--json", results],
                                          lambda: len(list(out.glob("*.png"))) >= 3)
    assert code == 130 and "Traceback" not in stderr, stderr
    line = next(l for l in stderr.splitlines() if l.startswith("interrupted"))
    assert f"of 40 files; {results} holds what was finished" in line
    text = results.read_text()
    entries = json.loads(text) if suffix == ".json" else [json.loads(l) for l in text.splitlines()]
    done = int(line.split()[2])
    assert 3 <= len(entries) == done < 40
    assert all(len(e["faces"]) == 1 for e in entries)
    assert not list(tmp_path.glob(".*.tmp"))


def test_ctrl_c_in_a_video_keeps_its_frames_and_a_playable_copy(tmp_path):
    import av

    video = write_video(tmp_path / "clip.mp4", two_face_clip(300, covered=()))
    results = tmp_path / "frames.jsonl"
    code, _, stderr = interrupt_when([video, "--json", results, "--out", tmp_path / "out"],
                                     lambda: results.exists() and results.read_text().count("\n") >= 5)
    assert code == 130 and "interrupted after 0 of 1 file;" in stderr and "Traceback" not in stderr, stderr
    frames = [json.loads(l) for l in results.read_text().splitlines()]
    assert 5 <= len(frames) < 300 and [f["frame"] for f in frames] == list(range(len(frames)))
    with av.open(str(tmp_path / "out" / "clip_keypoints.mp4")) as c:  # closed properly: it plays
        assert c.streams.video[0].codec_context.name == "h264" and sum(1 for _ in c.decode(video=0)) > 0


# ---------------------------------------------------------------- 3. a video that cannot be written fails

def test_a_video_whose_copy_cannot_be_written_is_an_error(tmp_path):
    video = write_video(tmp_path / "clip.mp4", two_face_clip(3, covered=()))
    (tmp_path / "out" / "clip_keypoints.mp4").mkdir(parents=True)  # a folder in the way
    r = run_cli(video, "--out", tmp_path / "out", "--force")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert f"{tmp_path / 'out' / 'clip_keypoints.mp4'}: cannot write the annotated video" in r.stderr
    assert "0 of 1 file," in r.stdout


def test_a_video_of_odd_size_is_written_as_h264(tmp_path):
    import av

    out = video.VideoOut(tmp_path / "odd.mp4", 25, (361, 641, 3))
    for _ in range(3):
        out.write(np.full((361, 641, 3), 128, np.uint8))
    out.close()
    with av.open(str(tmp_path / "odd.mp4")) as c:
        frames = [f.to_ndarray(format="bgr24") for f in c.decode(video=0)]
    assert len(frames) == 3 and frames[0].shape == (360, 640, 3) and abs(int(frames[0].mean()) - 128) <= 6


# ---------------------------------------------------------------- 4. nothing overwritten without --force

def test_annotated_copies_are_never_overwritten_without_force(tmp_path):
    photo = tmp_path / "photo.png"
    photo.write_bytes(DEMO.read_bytes())
    out = tmp_path / "ow"
    assert run_cli(photo, "--out", out).returncode == 0
    first = (out / "photo_keypoints.png").read_bytes()
    r = run_cli(photo, "--out", out, "--filter", "hat")
    assert r.returncode == 0 and f"annotated: {out / 'photo_keypoints_1.png'}" in r.stdout
    assert (out / "photo_keypoints.png").read_bytes() == first
    assert run_cli(photo, "--out", out, "--force").returncode == 0
    assert sorted(p.name for p in out.iterdir()) == ["photo_keypoints.png", "photo_keypoints_1.png"]


def test_a_folder_annotated_into_itself_never_reads_its_own_copies(tmp_path):
    same = tmp_path / "same"
    same.mkdir()
    (same / "photo.png").write_bytes(DEMO.read_bytes())
    for _ in range(2):
        r = run_cli(same, "--out", same, "--json", tmp_path / "f.json", "--force")
        assert r.returncode == 0 and r.stdout.startswith("1 of 1 file, 1 face"), r.stdout
    assert [Path(e["image"]).name for e in json.loads((tmp_path / "f.json").read_text())] == ["photo.png"]
    assert sorted(p.name for p in same.iterdir()) == ["photo.png", "photo_keypoints.png"]


# ---------------------------------------------------------------- 5. tracking keeps faces and their ids

def test_tracking_keeps_both_faces_and_their_ids_through_an_occlusion(fkd):
    frames = two_face_clip(20, covered=range(5, 8))
    out = [faces for _, faces in fkd.track(frames, redetect_every=10)]
    left_right = [sorted(faces, key=lambda f: f.box[0]) for faces in out]
    assert [len(f) for f in out] == [2] * 5 + [1] * 3 + [2] * 12
    ids = {(i, int(f.keypoints[:, 0].mean() > 320)): f.id for i, faces in enumerate(left_right) for f in faces}
    assert {v for (i, side), v in ids.items() if side == 0} == {ids[0, 0]}  # the left face: one id throughout
    assert {v for (i, side), v in ids.items() if side == 1} == {ids[0, 1]}  # the right one gets its id back
    assert ids[0, 0] != ids[0, 1]


def test_tracking_picks_up_a_face_that_walks_in(fkd):
    frames = two_face_clip(12, covered=range(0, 3))  # the right face appears at frame 3, between detections
    counts = [len(faces) for _, faces in fkd.track(frames, redetect_every=10)]
    assert counts[:3] == [1, 1, 1] and counts[10:] == [2, 2]


def test_track_takes_rgb_frames_and_fps(fkd):
    frames = [cv2.cvtColor(f, cv2.COLOR_BGR2RGB) for f in two_face_clip(3, covered=())]
    out = list(fkd.track(frames, channels="rgb", fps=25))
    assert all(len(faces) == 2 for _, faces in out)
    assert [f.to_json()["id"] for f in out[2][1]] == [f.id for f in out[0][1]]


def test_video_json_has_ids_and_image_sizes(tmp_path):
    video = write_video(tmp_path / "clip.m4v", two_face_clip(4, covered=()))  # .m4v is a video too
    r = run_cli(video, "--json", tmp_path / "v.json")
    assert r.returncode == 0, r.stderr
    entries = json.loads((tmp_path / "v.json").read_text())
    assert [(e["width"], e["height"], sorted(f["id"] for f in e["faces"])) for e in entries] == [(640, 360, [0, 1])] * 4


# ---------------------------------------------------------------- 7. no tracebacks, no raw library text

def test_a_missing_gpu_is_one_line(monkeypatch):
    monkeypatch.setattr(detect.torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="PyTorch sees no CUDA GPU"):
        detect.FaceKeypointDetector(device="cuda")
    with pytest.raises(ValueError, match="not a device name"):
        detect.FaceKeypointDetector(device="gpu0")


@pytest.mark.skipif(detect.torch.cuda.is_available(), reason="this machine has a GPU")
def test_cli_device_cuda_without_a_gpu():
    r = run_cli(DEMO, "--device", "cuda")
    assert r.returncode == 1 and r.stderr.strip() == "error: device 'cuda': PyTorch sees no CUDA GPU on this " \
                                                      "machine (try cpu)"


def test_an_unknown_labelling_or_runtime_is_one_line():
    r = run_cli(DEMO, "--labelling", "ibug")
    assert r.returncode == 1 and r.stderr.strip().endswith(
        "heatmapnet.pt: knows the labelling(s) 300w, course, turned, not 'ibug'")
    assert "invalid choice: 'fp16'" in run_cli(DEMO, "--runtime", "fp16").stderr


def test_an_empty_array_is_a_data_error(fkd):
    with pytest.raises(dl.DataError, match="empty image"):
        fkd.detect(np.zeros((0, 0, 3), np.uint8))


def test_an_image_over_opencvs_pixel_limit_is_one_line(tmp_path):
    cv2.imwrite(str(tmp_path / "big.png"), np.zeros((200, 300, 3), np.uint8))
    env = {**__import__("os").environ, "OPENCV_IO_MAX_IMAGE_PIXELS": "10000"}  # as a 1.2-gigapixel PNG is to 2^30
    r = subprocess.run([sys.executable, "detect.py", str(tmp_path / "big.png")], cwd=ROOT, capture_output=True,
                       text=True, env=env)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert f"error: {tmp_path / 'big.png'}: too large to decode (over 10000 pixels" in r.stderr


def test_gifs_are_images_in_folders_too(tmp_path):
    from PIL import Image
    Image.open(DEMO).convert("RGB").save(tmp_path / "anim.gif")
    r = run_cli(tmp_path, "--json", tmp_path / "g.json")
    assert r.returncode == 0 and r.stdout.startswith("1 of 1 file, 1 face"), r.stdout + r.stderr


def test_a_truncated_video_is_one_line_without_ffmpegs_chatter(tmp_path):
    whole = write_video(tmp_path / "whole.mp4", two_face_clip(10, covered=()))
    (tmp_path / "cut.mp4").write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    r = run_cli(tmp_path / "cut.mp4")
    assert r.returncode == 1 and r.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'cut.mp4'}: cannot open as a video (corrupt, truncated or an unknown format)"]


def test_evaluate_wild_without_labels_is_one_line(tmp_path):
    r = subprocess.run([sys.executable, "evaluate.py", "--wild", str(tmp_path)], cwd=ROOT, capture_output=True,
                       text=True)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert f"error: {tmp_path / 'boxes.json'}: no such file (--wild needs the labelled boxes" in r.stderr


def test_dlib_comparison_imports_without_warnings():
    pytest.importorskip("face_recognition_models", reason="optional: make dlib")
    r = subprocess.run([sys.executable, "-W", "default", "-c", "import evaluate; evaluate.Dlib()"], cwd=ROOT,
                       capture_output=True, text=True)
    assert r.returncode == 0 and r.stderr == "", r.stderr


# ---------------------------------------------------------------- 8. help that helps

@pytest.mark.parametrize("script", ["detect.py", "train.py", "evaluate.py", "benchmark.py"])
def test_every_option_has_help(script, monkeypatch, capsys):
    module = {"detect.py": detect, "train.py": train, "evaluate.py": evaluate,
              "benchmark.py": __import__("benchmark")}[script]
    seen = []
    real = __import__("argparse").ArgumentParser.parse_args

    def spy(parser, *a, **k):
        seen.append(parser)
        raise SystemExit(0)
    monkeypatch.setattr(__import__("argparse").ArgumentParser, "parse_args", spy)
    with pytest.raises(SystemExit):
        (module.parse_args if hasattr(module, "parse_args") else module.main)([])
    monkeypatch.setattr(__import__("argparse").ArgumentParser, "parse_args", real)
    (parser,) = seen
    missing = [a.dest for a in parser._actions if not a.help]
    assert missing == []
    assert parser.formatter_class is dl.HelpFormatter


# ---------------------------------------------------------------- 9. output people can use

def test_filter_keeps_the_pose_axes_and_takes_a_png_of_yours(tmp_path, fkd):
    (face,) = fkd.detect(DEMO)
    bgr = cv2.imread(str(DEMO))
    plain = detect.draw(bgr, [face], filter_name="sunglasses")
    with_pose = detect.draw(bgr, [face], pose_axes=True, filter_name="sunglasses")
    red = (with_pose[:, :, 2] > 200) & (with_pose[:, :, :2].max(-1) < 60)  # the x axis is drawn in pure red
    assert red.sum() > 20 and not ((plain[:, :, 2] > 200) & (plain[:, :, :2].max(-1) < 60))[red].all()
    png = np.zeros((50, 200, 4), np.uint8)
    png[10:40, 20:180] = (255, 0, 255, 255)  # a magenta bar: anchors a quarter in from each side of the bar
    cv2.imwrite(str(tmp_path / "bar.png"), png)
    out = detect.draw(bgr, [face], filter_name=f"sunglasses={tmp_path / 'bar.png'}")
    magenta = np.argwhere((out[:, :, 0] > 240) & (out[:, :, 2] > 240) & (out[:, :, 1] < 20))
    eyes = (face.keypoints[36:42].mean(0) + face.keypoints[42:48].mean(0)) / 2
    assert len(magenta) and np.abs(magenta.mean(0)[::-1] - eyes).max() < 3


def test_a_bad_overlay_png_is_refused_before_any_work(tmp_path):
    (tmp_path / "flat.png").write_bytes(cv2.imencode(".png", np.zeros((10, 10, 3), np.uint8))[1].tobytes())
    for spec, msg in [(f"hat={tmp_path / 'flat.png'}", "needs an 8-bit RGBA PNG"),
                      (f"hat={tmp_path / 'none.png'}", "no such file"), ("cape", "the overlay is one of")]:
        r = run_cli(DEMO, "--filter", spec)
        assert r.returncode == 1 and msg in r.stderr and "Traceback" not in r.stderr and r.stdout == "", r.stderr


def test_points_stay_apart_on_a_small_face(fkd):
    big = cv2.imread(str(DEMO))
    canvas = np.full((2000, 2000, 3), 90, np.uint8)  # a 2000-pixel photo with a 60-pixel face
    small = cv2.resize(big, None, fx=0.3, fy=0.3)
    canvas[900:900 + small.shape[0], 900:900 + small.shape[1]] = small
    face = detect.Face(np.float32([900, 900, 60, 60]), np.float32([[930, 930], [934, 930]] + [[0, 0]] * 66), 1.0,
                       np.zeros(3, np.float32))
    out = detect.draw(canvas, [face])
    assert out[930, 932, 1] != 255  # two points 4 pixels apart stay two dots


def test_counts_are_in_words():
    assert [detect.plural(n, w) for n, w in [(1, "face"), (2, "face"), (1, "false box"), (0, "false box")]] == \
        ["1 face", "2 faces", "1 false box", "0 false boxes"]
