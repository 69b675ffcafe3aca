"""The web page (app.py): its API in-process, and the page itself in headless Chromium (Debian's package)."""
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

import cv2
import numpy as np
import pytest

import app
from conftest import CHROMIUM, needs_browser
from test_cli import two_face_clip
from test_detect import DEMO, ROOT


def jpeg(bgr):
    return cv2.imencode(".jpg", bgr)[1].tobytes()


def test_photo_gives_detect_pys_entry_and_an_annotated_jpeg(client):
    r = client.post("/api/detect", files={"file": ("astronaut.png", DEMO.read_bytes())}, data={"pose": "true"})
    assert r.status_code == 200
    entry = r.json()["entry"]
    assert (entry["image"], entry["width"], entry["height"], len(entry["faces"])) == ("astronaut.png", 512, 512, 1)
    assert set(entry["faces"][0]) == {"box", "score", "keypoints", "pose"} and len(entry["faces"][0]["keypoints"]) == 68
    assert r.json()["annotated"].startswith("data:image/jpeg;base64,")


def test_bad_uploads_get_one_line(client):
    for name, data, status, message in [
            ("notes.jpg", b"hello, not a picture", 400, "notes.jpg: not an image OpenCV can read"),
            ("empty.png", b"", 400, "empty.png: empty file (0 bytes)"),
            ("huge.jpg", b"\xff\xd8" + bytes(app.MAX_UPLOAD), 413, "huge.jpg: larger than 20 MB")]:
        r = client.post("/api/detect", files={"file": (name, data)})
        assert (r.status_code, r.json()["error"][:len(message)]) == (status, message)
    r = client.post("/api/detect", files={"file": ("a.png", DEMO.read_bytes())}, data={"overlay": "cape"})
    assert r.status_code == 400 and "one of sunglasses, moustache, hat" in r.json()["error"]


def test_camera_sessions_of_two_tabs_do_not_mix(client):
    faces, blank = two_face_clip(3, covered=()), np.full((360, 640, 3), 90, np.uint8)
    for i in range(3):
        a = client.post("/api/track", files={"frame": ("f.jpg", jpeg(faces[i]))}, data={"session": "tab-a-0001"})
        b = client.post("/api/track", files={"frame": ("f.jpg", jpeg(blank))}, data={"session": "tab-b-0001"})
        assert sorted(f["id"] for f in a.json()["faces"]) == [0, 1] and b.json()["faces"] == []
    r = client.post("/api/track", files={"frame": ("f.jpg", b"junk")}, data={"session": "tab-a-0001"})
    assert r.status_code == 400 and r.json()["error"].startswith("camera frame: not an image")


# ---------------------------------------------------------------- in a real browser

@pytest.fixture(scope="module")
def server():
    """python app.py on a free port, as a user starts it: its address."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "app.py", "--port", str(port)], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1)
            break
        except OSError:
            assert proc.poll() is None, proc.stdout.read()
            time.sleep(0.3)
    yield url
    proc.terminate()
    proc.wait(timeout=30)


def y4m(path, frames, fps=10):
    """A clip Chromium's fake camera can play (YUV4MPEG2, 4:2:0)."""
    h, w = frames[0].shape[:2]
    with open(path, "wb") as f:
        f.write(f"YUV4MPEG2 W{w} H{h} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for frame in frames:
            f.write(b"FRAME\n" + cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_I420).tobytes())
    return path


@pytest.fixture(scope="module")
def chromium():
    """Launches Debian's Chromium (Playwright drives it; it downloads no browser of its own)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        yield lambda *args: p.chromium.launch(executable_path=CHROMIUM, args=list(args))


@pytest.fixture(scope="module")
def browser(chromium, tmp_path_factory):
    """Chromium whose camera, allowed without asking, plays a clip of two faces."""
    clip = y4m(tmp_path_factory.mktemp("cam") / "clip.y4m", [cv2.resize(f, (640, 480)) for f in two_face_clip(20, ())])
    b = chromium("--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
                 f"--use-file-for-fake-video-capture={clip}")
    yield b
    b.close()


@needs_browser
def test_upload_the_demo_photo_and_download_its_json(server, browser, tmp_path):
    page = browser.new_page(viewport={"width": 1100, "height": 900}, accept_downloads=True)
    page.goto(server)
    page.set_input_files("#file", str(DEMO))
    page.wait_for_selector("#faces", timeout=60_000)
    assert page.inner_text("#message") == "1 face found in astronaut.png."
    assert page.locator("#faces tr").count() == 2  # the header and one face
    with page.expect_download() as info:
        page.click("#download")
    entries = json.loads(open(info.value.path()).read())
    assert len(entries) == 1 and len(entries[0]["faces"]) == 1 and len(entries[0]["faces"][0]["keypoints"]) == 68
    if os.environ.get("FKP_APP_SCREENSHOT"):  # README's picture: FKP_APP_SCREENSHOT=images/app.png pytest ...
        page.check("#pose")
        page.wait_for_function("document.querySelector('#message').textContent.startsWith('1 face')")
        page.screenshot(path=os.environ["FKP_APP_SCREENSHOT"], full_page=True)


@needs_browser
def test_a_text_file_named_jpg_gets_a_clear_message(server, browser, tmp_path):
    (tmp_path / "notes.jpg").write_text("hello, not a picture")
    page = browser.new_page()
    page.goto(server)
    page.set_input_files("#file", str(tmp_path / "notes.jpg"))
    page.wait_for_selector("#message.error")
    assert page.inner_text("#message") == ("Error: notes.jpg: not an image OpenCV can read (corrupt, truncated or "
                                           "another format)")


@needs_browser
def test_webcam_frames_come_back_with_faces_and_68_points(server, browser):
    page = browser.new_page()
    page.goto(server)
    page.click("#tabCamera")
    replies = []
    page.on("response", lambda r: "/api/track" in r.url and replies.append(r))
    page.click("#camStart")
    page.wait_for_function("document.querySelector('#camFaces').textContent === '2'", timeout=60_000)
    t0, n0 = time.time(), len(replies)
    page.wait_for_timeout(5000)
    fps = (len(replies) - n0) / (time.time() - t0)
    shown = float(page.inner_text("#fps"))
    print(f"webcam view: {fps:.1f} frames a second measured, {shown} shown on the page")
    faces = replies[-1].json()["faces"]
    assert len(faces) == 2 and all(len(f["keypoints"]) == 68 for f in faces)
    assert sorted(f["id"] for f in faces) == [0, 1] and shown > 0
    page.click("#camStop")


@needs_browser
def test_a_refused_camera_gets_a_clear_message(server, chromium):
    b = chromium("--use-fake-device-for-media-stream")  # no permission prompt to say yes: headless Chromium refuses
    page = b.new_page()
    page.goto(server)
    page.click("#tabCamera")
    page.click("#camStart")
    page.wait_for_selector("#camMessage.error", timeout=30_000)
    assert page.inner_text("#camMessage").startswith("The camera was refused")
    b.close()
