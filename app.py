"""A page to try the detector in a web browser: a photo (uploaded, or an example) annotated, or the live webcam.

    python app.py                          # serves http://127.0.0.1:8000 (this machine only)
    python app.py --host 0.0.0.0 --port 8080

FastAPI serves one HTML page (web/index.html) and a small JSON API; the model is loaded once, when the server
starts. Every browser tab's camera has a tracker of its own, and one image at a time goes through the model.
"""
import argparse
import base64
import socket
import sys
import threading
import time
from collections import OrderedDict
from pathlib import Path

import cv2
from fastapi import FastAPI, File, Form, UploadFile
from fastapi.responses import FileResponse, JSONResponse

import data_load as dl
from detect import DEFAULT_WEIGHTS, FaceKeypointDetector, Tracker, draw
from filters import OVERLAYS
from models import WeightsError

ROOT = Path(__file__).parent
PAGE = ROOT / "web" / "index.html"
EXAMPLES = {p.name: p for p in [ROOT / "images" / "astronaut.png"]}
MAX_UPLOAD = 20 * 2 ** 20  # bytes: a photo, not a video
CAMERA_SESSIONS = 16       # trackers kept, the least recently used dropped first


def create_app(fkd):
    """The web app around a loaded FaceKeypointDetector."""
    app = FastAPI(title="Facial Keypoints", docs_url=None, redoc_url=None)
    lock = threading.Lock()  # the model and dlib's detector, one request at a time (requests run in threads)
    trackers = OrderedDict()  # camera session id -> (Tracker, time it started)

    def error(status, message):
        return JSONResponse({"error": message}, status_code=status)

    @app.get("/")
    def page():
        return FileResponse(PAGE)

    @app.get("/examples/{name}")
    def example(name: str):
        return FileResponse(EXAMPLES[name]) if name in EXAMPLES else error(404, f"{name}: no such example")

    @app.post("/api/detect")
    def detect_photo(file: UploadFile = File(...), flip: bool = Form(False), refine: bool = Form(False),
                     pose: bool = Form(False), overlay: str = Form("")):
        """A photo -> the entry detect.py's JSON would hold for it, and the annotated photo as a JPEG data URL."""
        name = Path(file.filename or "upload").name
        data = file.file.read(MAX_UPLOAD + 1)
        if len(data) > MAX_UPLOAD:
            return error(413, f"{name}: larger than {MAX_UPLOAD // 2 ** 20} MB")
        if overlay and overlay not in OVERLAYS:  # a built-in's name only: never a path on the server
            return error(400, f"overlay {overlay!r}: one of {', '.join(OVERLAYS)}")
        try:
            rgb = dl.decode_image(data, name)
        except dl.DataError as e:
            return error(400, str(e))
        with lock:
            fkd.flip, fkd.refine = flip, refine
            faces = fkd.detect(rgb, channels="rgb")
        annotated = draw(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), faces, pose, overlay or None)
        jpeg = cv2.imencode(".jpg", annotated, [cv2.IMWRITE_JPEG_QUALITY, 90])[1]
        return {"entry": {"image": name, "width": rgb.shape[1], "height": rgb.shape[0],
                          "faces": [f.to_json() for f in faces]},
                "annotated": "data:image/jpeg;base64," + base64.b64encode(jpeg.tobytes()).decode()}

    @app.post("/api/track")
    def track_frame(frame: UploadFile = File(...), session: str = Form(..., min_length=8, max_length=64)):
        """One camera frame (a JPEG) of the tab whose session id is given -> its faces, each with an id that stays
        the same from frame to frame."""
        t0 = time.perf_counter()
        try:
            rgb = dl.decode_image(frame.file.read(MAX_UPLOAD), "camera frame")
        except dl.DataError as e:
            return error(400, str(e))
        with lock:
            tracker, start = trackers.pop(session, None) or (Tracker(fkd), time.monotonic())
            trackers[session] = tracker, start
            while len(trackers) > CAMERA_SESSIONS:
                trackers.popitem(last=False)
            fkd.flip = fkd.refine = False
            faces = tracker.update(rgb, time.monotonic() - start)
        return {"width": rgb.shape[1], "height": rgb.shape[0], "ms": round((time.perf_counter() - t0) * 1000, 1),
                "faces": [f.to_json() for f in faces]}

    return app


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=dl.HelpFormatter)
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on; 0.0.0.0 lets other machines in (README: what that means)")
    p.add_argument("--port", type=int, default=8000, help="port to listen on")
    p.add_argument("--weights", help="keypoint model weights (default: saved_models/heatmapnet.pt)")
    args = p.parse_args(argv)
    import uvicorn

    try:  # a port in use or an address not of this machine: one line, before the model loads
        socket.create_server((args.host, args.port)).close()
    except OSError as e:
        sys.exit(f"error: {args.host}:{args.port}: cannot serve there ({e.strerror})")
    try:
        fkd = FaceKeypointDetector(args.weights or DEFAULT_WEIGHTS)
    except (WeightsError, ValueError) as e:
        sys.exit(f"error: {e}")
    print(f"serving http://{args.host}:{args.port} (Ctrl-C stops)", flush=True)
    uvicorn.run(create_app(fkd), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
