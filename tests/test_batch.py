"""Batches of photos (issue 44): --list, --workers, --resume after a kill, a worker killed, --align, Ray, the error
lines. Small photos, few of them: the file runs in about a minute and a half on 2 cores."""
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

import batch
import data_load as dl
import detect
from conftest import REQUIRE
from test_detect import DEMO, ROOT, run_cli

N = 16  # photos of the runs that are killed: enough that a kill lands mid-run
needs_ray = pytest.mark.skipif(importlib.util.find_spec("ray") is None and not REQUIRE,
                               reason="Ray is not installed: make cluster (requirements-cluster.txt)")


@pytest.fixture(scope="module")
def fkd():
    return detect.FaceKeypointDetector()


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """N copies of the demo photo at 256 x 256, and a --list of them."""
    folder = tmp_path_factory.mktemp("photos")
    small = cv2.resize(cv2.imread(str(DEMO)), (256, 256), interpolation=cv2.INTER_AREA)
    paths = [folder / f"p{i:02d}.png" for i in range(N)]
    for p in paths:
        cv2.imwrite(str(p), small)
    write_list(folder / "all.txt", paths)
    return paths


@pytest.fixture(scope="module")
def reference(photos, tmp_path_factory):
    """An uninterrupted run over the photos in one process: {image: entry}."""
    out = tmp_path_factory.mktemp("reference") / "faces.jsonl"
    r = run_cli("--list", photos[0].parent / "all.txt", "--workers", "1", "--json", out)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    entries = read_jsonl(out)
    assert [e["image"] for e in entries] == [str(p) for p in photos]
    return {e["image"]: e for e in entries}


def write_list(path, lines):
    path.write_text("".join(f"{line}\n" for line in lines))
    return path


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def assert_same(entries, reference, tol):
    """Every photo of reference exactly once, with the same faces and points within tol pixels."""
    assert sorted(e["image"] for e in entries) == sorted(reference)
    for e in entries:
        ref = reference[e["image"]]["faces"]
        assert len(e["faces"]) == len(ref) == 1
        for a, b in zip(e["faces"], ref):
            assert np.abs(np.float32(a["keypoints"]) - np.float32(b["keypoints"])).max() <= tol


def start(*args):
    return subprocess.Popen([sys.executable, "detect.py", *map(str, args)], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_for_lines(proc, path, n, timeout=120):
    t0 = time.time()
    while proc.poll() is None and time.time() - t0 < timeout:
        if path.exists() and path.read_text().count("\n") >= n:
            return
        time.sleep(0.02)
    raise AssertionError(f"the run ended or stalled before {n} lines: {proc.communicate()[1]}")


# ---------------------------------------------------------------- --list and the error lines

def test_a_list_is_read_in_order_and_its_bad_lines_are_one_line_each(photos, reference, tmp_path):
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"\0" * 100)
    lines = [photos[0], "", "   ", tmp_path / "missing.jpg", "/proc/self/mem", clip, photos[1]]
    r = run_cli(photos[2], "--list", write_list(tmp_path / "paths.txt", lines), "--json", tmp_path / "f.jsonl",
                "--workers", "1")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert errors[0] == f"error: {tmp_path / 'missing.jpg'}: no such file"
    assert errors[1].startswith("error: /proc/self/mem: cannot read it (")
    assert errors[2].startswith(f"error: {clip}: a video; batch runs take photos") and len(errors) == 3
    assert r.stdout.startswith("3 of 6 photos, 3 faces,") and r.stdout.rstrip().endswith("3 errors")
    entries = read_jsonl(tmp_path / "f.jsonl")
    assert [e["image"] for e in entries] == [str(photos[i]) for i in (2, 0, 1)]
    assert_same(entries, {k: v for k, v in reference.items() if k in {e["image"] for e in entries}}, 1e-3)


@pytest.mark.parametrize("argv, line", [
    (["--list", "{tmp}/none.txt"], "{tmp}/none.txt: no such file (--list: one photo's path a line)"),
    (["--list", "{tmp}"], "{tmp}: cannot read it (Is a directory)"),
    (["x.png", "--resume", "--json", "{tmp}/f.json"], "--resume goes on with a --json FILE.jsonl"),
    (["x.png", "--resume"], "--resume goes on with a --json FILE.jsonl"),
    (["x.png", "--resume", "--force", "--json", "{tmp}/f.jsonl"], "--resume keeps the --json file's lines"),
    (["x.png", "--align", "256"], "--align writes the face crops into --out DIR"),
    (["x.png", "--workers", "0"], "--workers 0: must be from 1 to 4096"),
    (["x.png", "--align", "4", "--out", "{tmp}"], "--align 4: must be from 16 to 8192"),
])
def test_batch_options_that_cannot_work_are_one_line_before_any_work(tmp_path, argv, line):
    with pytest.raises(SystemExit) as e:
        detect.main([a.format(tmp=tmp_path) for a in argv])
    assert str(e.value.code).startswith("error: " + line.format(tmp=tmp_path)), e.value.code


# ---------------------------------------------------------------- --workers, --resume, a dead worker

def test_two_workers_give_what_one_gives_in_the_same_order(photos, reference, tmp_path):
    r = run_cli("--list", photos[0].parent / "all.txt", "--workers", "2", "--threads", "1", "--json",
                tmp_path / "f.jsonl")
    assert r.returncode == 0 and r.stdout.startswith(f"{N} of {N} photos, {N} faces"), r.stderr
    entries = read_jsonl(tmp_path / "f.jsonl")
    assert [e["image"] for e in entries] == list(reference)  # input order
    assert_same(entries, reference, 0.01)


def test_a_run_killed_twice_and_resumed_does_every_photo_once(photos, reference, tmp_path):
    out, listed = tmp_path / "f.jsonl", photos[0].parent / "all.txt"
    proc = start("--list", listed, "--workers", "2", "--threads", "1", "--json", out)
    wait_for_lines(proc, out, 3)
    proc.kill()  # SIGKILL: no clean-up at all; its workers see their parent gone and end
    proc.communicate(timeout=30)
    done = out.read_text().count("\n")
    assert 3 <= done < N, "finished before it could be killed"
    with out.open("a") as f:  # what a kill in the middle of a long line leaves
        f.write('{"image": "' + str(photos[-1]))
    proc = start("--list", listed, "--workers", "2", "--threads", "1", "--json", out, "--resume")
    wait_for_lines(proc, out, done + 2)
    proc.kill()  # the resumed run killed in turn
    stderr = proc.communicate(timeout=30)[1]
    assert f"{out}: line {done + 1} was cut off (a killed run) and is dropped" in stderr
    done = out.read_text().count("\n")
    assert done < N, "finished before it could be killed"
    r = run_cli("--list", listed, "--workers", "2", "--threads", "1", "--json", out, "--resume")
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert f"{out}: {done} photos done before, skipped" in r.stderr
    assert r.stdout.startswith(f"{N - done} of {N - done} photos")
    assert_same(read_jsonl(out), reference, 0.5)  # every photo once, the points of one uninterrupted run


def test_a_worker_killed_is_reported_and_its_photos_redone(photos, reference, tmp_path):
    out = tmp_path / "f.jsonl"
    proc = start("--list", photos[0].parent / "all.txt", "--workers", "2", "--threads", "1", "--json", out)
    wait_for_lines(proc, out, 2)
    def children(pid):
        return Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    server = [c for c in children(proc.pid) if b"forkserver" in Path(f"/proc/{c}/cmdline").read_bytes()]
    workers = [int(c) for c in children(server[0])]  # the fork server's children
    os.kill(workers[0], signal.SIGKILL)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0 and "Traceback" not in stderr, stderr
    assert "a worker process died (killed, or out of memory): a fresh pool redoes the" in stderr
    assert stdout.startswith(f"{N} of {N} photos, {N} faces")
    assert_same(read_jsonl(out), reference, 0.01)


# ---------------------------------------------------------------- --align

def eyes(fkd, rgb):
    """The centres of the two eyes (means of points 36-41 and 42-47) of the one face found in rgb."""
    (face,) = fkd.detect(rgb, channels="rgb")
    return np.float32([face.keypoints[36:42].mean(0), face.keypoints[42:48].mean(0)])


def test_aligned_crops_of_a_photo_and_of_it_turned_and_halved_put_the_eyes_in_one_place(fkd):
    rgb = dl.read_image(DEMO)
    M = cv2.getRotationMatrix2D((256, 256), 20, 0.5)
    M[:, 2] -= 128  # the photo's centre at the 256 x 256 copy's
    found = []
    for image in (rgb, cv2.warpAffine(rgb, M, (256, 256))):
        (face,) = fkd.detect(image, channels="rgb")
        crop, transform = batch.align(image, face.keypoints, 256)
        assert crop.shape == (256, 256, 3)
        on_crop = eyes(fkd, crop)  # found again by the detector, on the crop
        moved = cv2.transform(np.float32([face.keypoints[36:42].mean(0), face.keypoints[42:48].mean(0)])[None],
                              transform)[0]
        assert np.abs(on_crop - moved).max() < 3  # the transform is the crop's
        found.append(on_crop)
    assert np.abs(found[0] - found[1]).max() < 3, found


def test_align_writes_the_crops_and_names_them_with_their_transforms(photos, tmp_path):
    out = tmp_path / "crops"
    r = run_cli(photos[0], photos[1], "--align", "128", "--out", out, "--json", tmp_path / "f.json")
    assert r.returncode == 0, r.stderr
    entries = json.loads((tmp_path / "f.json").read_text())
    crops = [f["crop"] for e in entries for f in e["faces"]]
    assert crops == [str(out / "p00_face0.png"), str(out / "p01_face0.png")]
    assert cv2.imread(crops[0]).shape == (128, 128, 3)
    assert np.float32(entries[0]["faces"][0]["transform"]).shape == (2, 3)
    run_cli(photos[0], "--align", "128", "--out", out)  # a second run: new names, nothing overwritten
    assert sorted(p.name for p in out.iterdir()) == ["p00_face0.png", "p00_face0_1.png", "p01_face0.png"]


# ---------------------------------------------------------------- Ray

@needs_ray
def test_ray_on_a_local_instance_gives_the_same_photos_faces_and_points(photos, reference, tmp_path):
    r = subprocess.run([sys.executable, "detect.py", *map(str, photos[:4]), "--ray", "--workers", "2", "--threads",
                        "1", "--json", tmp_path / "f.jsonl"], cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert_same(read_jsonl(tmp_path / "f.jsonl"), {str(p): reference[str(p)] for p in photos[:4]}, 0.01)
