"""Hostile input and two runs at once (issue 27): one line, never a traceback; nothing lost; a page that cannot be
stalled. The load on the page is bounded to a few seconds."""
import concurrent.futures
import fcntl
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import cv2
import numpy as np
import pytest
from PIL import Image

import app
import detect
from test_app import jpeg
from test_detect import DEMO, ROOT, run_cli


def big_png(side=20000):
    """A PNG of side x side black pixels: a few hundred kilobytes of file, side * side pixels to decode."""
    buf = io.BytesIO()
    Image.new("L", (side, side)).save(buf, "PNG")
    return buf.getvalue()


# ---------------------------------------------------------------- the command line

def test_an_unreadable_input_is_one_line_and_the_batch_keeps_its_json(tmp_path):
    photo = tmp_path / "photo.png"
    photo.write_bytes(DEMO.read_bytes())
    r = run_cli(photo, "/proc/self/mem", photo, "--json", tmp_path / "out.json")  # a read error, even for root
    assert r.returncode == 1 and "Traceback" not in r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith("error: /proc/self/mem: cannot read it (")
    entries = json.loads((tmp_path / "out.json").read_text())
    assert [len(e["faces"]) for e in entries] == [1, 1]


@pytest.mark.parametrize("suffix", [".json", ".jsonl", ".JSONL"])
def test_a_json_file_another_run_is_writing_is_refused(tmp_path, suffix):
    target = tmp_path / f"faces{suffix}"
    with open(target, "a") as other:  # the lock a run holds on its --json for as long as it runs
        fcntl.flock(other, fcntl.LOCK_EX)
        r = run_cli(DEMO, "--json", target, "--force")
    assert r.returncode == 1 and r.stderr.strip() == (f"error: {target}: another run is writing it; wait for that "
                                                      "run to end or give another --json")
    assert target.read_text() == ""
    assert run_cli(DEMO, "--json", target).returncode == 0  # the empty file the lock left holds nothing to lose
    text = target.read_text()
    lines = json.loads(text) if suffix == ".json" else [json.loads(line) for line in text.splitlines()]
    assert len(lines) == 1 and len(lines[0]["faces"]) == 1


def test_a_json_file_written_after_the_check_is_not_replaced(tmp_path):
    """A run that ended between this run's check of its --json and its start: its file is kept."""
    target = tmp_path / "faces.json"
    target.write_text("[]")
    with pytest.raises(detect.dl.DataError, match="exists; use --force"):
        detect.Results(target)
    assert target.read_text() == "[]"
    results = detect.Results(target, force=True)
    results.add({"image": "a"})
    results.close()
    assert json.loads(target.read_text()) == [{"image": "a"}]


def test_two_runs_annotating_into_one_folder_never_take_the_same_name(tmp_path):
    names = [detect.out_path(tmp_path, "photo.jpg", set()) for _ in range(3)]  # three runs, each its own `taken`
    assert [n.name for n in names] == ["photo_keypoints.jpg", "photo_keypoints_1.jpg", "photo_keypoints_2.jpg"]
    assert all(n.exists() for n in names)


def test_a_very_thin_image_has_no_face_and_no_opencv_error(tmp_path):
    fkd = detect.FaceKeypointDetector()
    for shape in [(1, 20000, 3), (20000, 1, 3), (3, 2, 3)]:
        assert fkd.detect(np.zeros(shape, np.uint8)) == []
    thin = tmp_path / "thin.png"
    cv2.imwrite(str(thin), np.zeros((1, 20000, 3), np.uint8))
    r = run_cli(thin, "--detector", "haar", "--json", tmp_path / "t.json")
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert json.loads((tmp_path / "t.json").read_text())[0]["faces"] == []


@pytest.mark.parametrize("option, value", [("--min-size", "-5"), ("--min-size", "nan"), ("--min-size", "inf"),
                                           ("--min-size", "1e9"), ("--scale-factor", "1.0"),
                                           ("--hog-threshold", "nan"), ("--min-confidence", "nan"),
                                           ("--min-neighbors", "-1")])
def test_a_setting_that_cannot_work_is_refused_before_any_work(tmp_path, option, value):
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as e:
        detect.main([str(DEMO), option, value, "--out", str(out), "--json", str(tmp_path / "f.json")])
    assert str(e.value.code).startswith(f"error: {option} ") and "must be from" in str(e.value.code)
    assert not out.exists() and not (tmp_path / "f.json").exists()


@pytest.mark.parametrize("script", ["detect.py", "app.py"])
def test_ctrl_c_while_the_libraries_load_is_quiet(script):
    proc = subprocess.Popen([sys.executable, script, str(DEMO)] if script == "detect.py" else [sys.executable, script],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(0.4)  # Python is up; torch and OpenCV are still loading
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err and "KeyboardInterrupt" not in err, err


def test_a_port_out_of_range_is_one_line():
    r = subprocess.run([sys.executable, "app.py", "--port", "70000"], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1].endswith("--port: 70000: a port is a number from 0 to 65535 (0: any "
                                                      "free one)")


# ---------------------------------------------------------------- the page, in-process

def test_the_page_decodes_no_image_over_its_pixel_limit(client):
    for name, data in [("big.png", big_png()), ("wide.png", big_png(7000))]:  # 400 and 49 megapixels
        r = client.post("/api/detect", files={"file": (name, data)})
        assert r.status_code == 400 and r.json()["error"].startswith(f"{name}: more pixels")
    assert "(7000 x 7000)" in r.json()["error"]
    thin = cv2.imencode(".png", np.zeros((1, 20000, 3), np.uint8))[1].tobytes()
    r = client.post("/api/detect", files={"file": ("thin.png", thin)})
    assert r.status_code == 200 and r.json()["entry"]["faces"] == []


def test_a_camera_that_sends_smaller_frames_keeps_going(client):
    frame = cv2.resize(cv2.imread(str(DEMO)), (640, 480))
    for f in [frame, frame[:240, :320], cv2.resize(frame, (320, 240)), frame]:
        r = client.post("/api/track", files={"frame": ("f.jpg", jpeg(f))}, data={"session": "shrinking-tab"})
        assert r.status_code == 200 and len(r.json()["faces"]) == 1, r.text


def test_forged_camera_sessions_never_evict_a_tab_that_is_sending(monkeypatch):
    from fastapi.testclient import TestClient
    client = TestClient(app.create_app(detect.FaceKeypointDetector()))  # no other test's cameras
    frame = jpeg(cv2.resize(cv2.imread(str(DEMO)), (320, 240)))
    post = lambda session: client.post("/api/track", files={"frame": ("f.jpg", frame)}, data={"session": session})
    assert post("the-real-tab").status_code == 200
    codes = [post(f"forged-{i:04d}").status_code for i in range(2 * app.CAMERA_SESSIONS)]
    assert codes.count(200) == app.CAMERA_SESSIONS - 1 and set(codes[app.CAMERA_SESSIONS - 1:]) == {503}
    r = post("the-real-tab")
    assert r.status_code == 200 and r.json()["faces"][0]["id"] == 0  # its own tracker: the same face, the same id
    monkeypatch.setattr(app, "CAMERA_IDLE", 0.0)  # the forged tabs fall idle: room for a new one
    time.sleep(0.01)
    assert post("a-new-tab-01").status_code == 200


# ---------------------------------------------------------------- the page, served

@pytest.fixture(scope="module")
def server():
    """python app.py --port 0 --timeout 1, as a user starts it: (its address, its process id)."""
    proc = subprocess.Popen([sys.executable, "app.py", "--port", "0", "--timeout", "1"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen = []
    while not (seen and seen[-1].startswith("serving http://")):
        seen.append(proc.stdout.readline())
        assert seen[-1], "".join(seen)  # it ended without serving
    port = int(seen[-1].split(":")[2].split()[0])
    assert port > 0
    yield port, proc.pid
    proc.terminate()
    proc.wait(timeout=30)


def raw(port, data, wait):
    """Send bytes on a fresh connection; all the server answers until it closes it (b'' when it closes at once), or
    None when it is still open after wait seconds."""
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(data)
        s.settimeout(wait)
        reply = b""
        try:
            while chunk := s.recv(4096):
                reply += chunk
        except TimeoutError:
            return None
        return reply


def test_stalled_connections_are_closed(server):
    port, _ = server
    t0 = time.time()
    assert raw(port, b"POST /api/detect HTTP/1.1\r\nHost: x\r\n", 5) == b""  # a head never finished
    assert time.time() - t0 < 3
    body = raw(port, b"POST /api/detect HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
                     b"Content-Length: 1000\r\n\r\n--b\r\n", 5)                # a body that stops
    assert body.startswith(b"HTTP/1.1 408") and b"stopped arriving" in body


def test_an_oversized_body_is_refused_as_it_arrives(server):
    port, _ = server
    t0 = time.time()
    reply = raw(port, b"POST /api/detect HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
                      b"Content-Length: 1000000000\r\n\r\n", 5)                  # 1 GB announced, none sent
    assert reply.startswith(b"HTTP/1.1 413") and time.time() - t0 < 3


def test_a_photo_is_answered_in_time_while_huge_pngs_arrive(server):
    port, pid = server

    def post(name, data):
        boundary = "hostile0boundary"
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n"
                f"Content-Type: application/octet-stream\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
        req = urllib.request.Request(f"http://127.0.0.1:{port}/api/detect", body,
                                     {"Content-Type": f"multipart/form-data; boundary={boundary}"})
        t0 = time.time()
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.status, time.time() - t0
        except urllib.error.HTTPError as e:
            return e.code, time.time() - t0

    png, photo = big_png(), DEMO.read_bytes()
    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        huge = [pool.submit(post, f"huge{i}.png", png) for i in range(4)]
        photos = [pool.submit(post, f"photo{i}.png", photo) for i in range(4)]
        results = [f.result() for f in photos]
        assert [f.result()[0] for f in huge] == [400] * 4
    assert all(status == 200 for status, _ in results) and max(t for _, t in results) < 3, results
    peak_kb = int(next(line for line in open(f"/proc/{pid}/status") if line.startswith("VmHWM")).split()[1])
    assert peak_kb < 2 * 2 ** 20, f"server peaked at {peak_kb / 2 ** 20:.2f} GB"


def test_port_0_serves_on_the_port_it_prints(server):
    port, _ = server
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as r:
        assert r.status == 200 and b"Facial Keypoints" in r.read()


def test_the_page_is_not_hit_by_a_flood_of_connections(server):
    """More connections than the server takes at once: the extra ones are refused (503) or closed, and the page
    still answers once they are gone."""
    port, _ = server
    socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(app.CONNECTIONS + 8)]
    for s in socks:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")  # heads never finished
    time.sleep(1.5)  # past the server's --timeout 1
    for s in socks:
        s.close()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as r:
        assert r.status == 200
    assert os.path.exists(f"/proc/{server[1]}")
