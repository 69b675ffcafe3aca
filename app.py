"""A page to try the detector in a web browser: a photo (uploaded, or an example) annotated, or the live webcam.

    python app.py                          # serves http://127.0.0.1:8000 (this machine only)
    python app.py --host 0.0.0.0 --port 8080

FastAPI serves one HTML page (web/index.html) and a small JSON API; the model is loaded once, when the server
starts. Every browser tab's camera has a tracker of its own, and one image at a time is decoded and goes through the
model, so that memory holds one photo's pixels at a time.
"""
import argparse
import asyncio
import base64
import io
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path

MAX_PIXELS = 40_000_000  # a photo's pixels: 40 megapixels, what the largest phone photos have
if __name__ == "__main__":
    signal.signal(signal.SIGINT, lambda *_: sys.exit(130))  # Ctrl-C while the libraries load: quiet, status 130
    # The server's OpenCV checks an image's header against the same limit before decoding, for a format Pillow
    # cannot read (read when cv2 is imported; not set on import, where it would reach the importer's other work).
    os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(MAX_PIXELS))
import cv2  # noqa: E402
from fastapi import FastAPI, File, Form, HTTPException, UploadFile  # noqa: E402
from fastapi.responses import FileResponse, JSONResponse  # noqa: E402
from uvicorn.protocols.http.h11_impl import H11Protocol  # noqa: E402

import data_load as dl  # noqa: E402
from detect import DEFAULT_WEIGHTS, FaceKeypointDetector, draw  # noqa: E402
from video import Tracker  # noqa: E402
from filters import OVERLAYS  # noqa: E402
from models import WeightsError  # noqa: E402

ROOT = Path(__file__).parent
PAGE = ROOT / "web" / "index.html"
EXAMPLES = {p.name: p for p in [ROOT / "images" / "astronaut.png"]}
MAX_UPLOAD = 20 * 2 ** 20  # bytes: a photo, not a video
MAX_BODY = MAX_UPLOAD + 2 ** 20  # a request's body, the form around the photo included: refused while it arrives
TIMEOUT = 10.0             # seconds a client may take to send a request's head, or the next part of its body
CAMERA_SESSIONS = 16       # cameras followed at once
CAMERA_IDLE = 10.0         # seconds without a frame after which a camera's tracker is dropped
CONNECTIONS = 64           # open at once; beyond, uvicorn answers 503


class StrictH11(H11Protocol):
    """uvicorn's HTTP/1.1 protocol, which waits for a request's head without end: here a connection that has not
    sent a whole request head TIMEOUT seconds after opening, or after its last response, is closed, so that stalled
    clients cannot hold connections open."""

    def connection_made(self, transport):
        super().connection_made(transport)
        self.heads = 0
        self.wait_for_head()

    def on_response_complete(self):
        super().on_response_complete()
        self.wait_for_head()

    def wait_for_head(self):
        self.heads += 1
        self.loop.call_later(TIMEOUT, self.drop_if_waiting, self.heads)

    def drop_if_waiting(self, heads):
        waiting = self.cycle is None or self.cycle.response_complete
        if heads == self.heads and waiting and not self.transport.is_closing():
            self.transport.close()


class BodyTimeout:
    """ASGI middleware: a request whose body stops arriving for TIMEOUT seconds is answered 408."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        done = False

        async def receive_in_time():
            nonlocal done
            if done:  # the body is in: what follows (a disconnect) may take as long as it takes
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), TIMEOUT)
            except TimeoutError:
                raise HTTPException(408, f"the request's body stopped arriving for {TIMEOUT:g} s") from None
            done = message["type"] != "http.request" or not message.get("more_body", False)
            return message

        await self.app(scope, receive_in_time if scope["type"] == "http" else receive, send)


def check_pixels(data, name):
    """A DataError for an image over MAX_PIXELS, read from its header alone, before anything is decoded."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as im:
            w, h = im.size
    except Image.DecompressionBombError:  # over Pillow's own, far higher, limit
        w = h = None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        return  # not a format Pillow knows: OpenCV's decode, under the same limit, says what it is
    if w is None or w * h > MAX_PIXELS:
        size = "" if w is None else f" ({w} x {h})"
        raise dl.DataError(f"{name}: more pixels{size} than the page takes ({MAX_PIXELS // 10 ** 6} megapixels); "
                           "scale it down, or use detect.py")


def decode(data, name):
    check_pixels(data, name)
    return dl.decode_image(data, name)


def create_app(fkd):
    """The web app around a loaded FaceKeypointDetector."""
    app = FastAPI(title="Facial Keypoints", docs_url=None, redoc_url=None, max_body_size=MAX_BODY)
    app.add_middleware(BodyTimeout)
    lock = threading.Lock()  # decoding, the model and the face detector: one image at a time (requests run in threads)
    trackers = {}  # camera session id -> [Tracker, time it started, time of its last frame]

    def error(status, message):
        return JSONResponse({"error": message}, status_code=status)

    @app.exception_handler(HTTPException)
    def http_error(request, e):  # the page reads every refusal from "error"
        return error(e.status_code, str(e.detail))

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
            with lock:
                rgb = decode(data, name)
                fkd.flip, fkd.refine = flip, refine
                faces = fkd.detect(rgb, channels="rgb")
                annotated = draw(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), faces, pose, overlay or None)
                jpeg = cv2.imencode(".jpg", annotated, [cv2.IMWRITE_JPEG_QUALITY, 90])[1]
        except dl.DataError as e:
            return error(400, str(e))
        except cv2.error as e:  # a client's input never gets a 500
            return error(400, f"{name}: OpenCV cannot process it ({e.err})")
        return {"entry": {"image": name, "width": rgb.shape[1], "height": rgb.shape[0],
                          "faces": [f.to_json() for f in faces]},
                "annotated": "data:image/jpeg;base64," + base64.b64encode(jpeg.tobytes()).decode()}

    @app.post("/api/track")
    def track_frame(frame: UploadFile = File(...), session: str = Form(..., min_length=8, max_length=64)):
        """One camera frame (a JPEG) of the tab whose session id is given -> its faces, each with an id that stays
        the same from frame to frame. A camera that sends no frame for CAMERA_IDLE seconds loses its tracker; while
        CAMERA_SESSIONS cameras are followed, a new one is refused (503), never followed at another's expense."""
        t0 = time.perf_counter()
        data = frame.file.read(MAX_UPLOAD)
        try:
            with lock:
                rgb = decode(data, "camera frame")
                now = time.monotonic()
                for k in [k for k, (_, _, last) in trackers.items() if now - last > CAMERA_IDLE]:
                    del trackers[k]
                if session not in trackers and len(trackers) >= CAMERA_SESSIONS:
                    return error(503, f"the server follows {CAMERA_SESSIONS} cameras already; try again in "
                                      f"{CAMERA_IDLE:g} seconds")
                tracker, start, _ = trackers.get(session) or (Tracker(fkd), now, now)
                trackers[session] = [tracker, start, now]
                fkd.flip = fkd.refine = False
                faces = tracker.update(rgb, now - start)
        except dl.DataError as e:
            return error(400, str(e))
        except cv2.error as e:
            return error(400, f"camera frame: OpenCV cannot process it ({e.err})")
        return {"width": rgb.shape[1], "height": rgb.shape[0], "ms": round((time.perf_counter() - t0) * 1000, 1),
                "faces": [f.to_json() for f in faces]}

    return app


def port(text):
    """argparse's type for --port: 0 (any free port) to 65535."""
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"{text}: a port is a number from 0 to 65535 (0: any free one)")
    return int(text)


def main(argv=None):
    global TIMEOUT
    p = argparse.ArgumentParser(description=__doc__, formatter_class=dl.HelpFormatter)
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on; 0.0.0.0 lets other machines in (docs/app.md: what that means)")
    p.add_argument("--port", type=port, default=8000, help="port to listen on (0: any free one, printed)")
    p.add_argument("--weights", help="keypoint model weights (default: saved_models/heatmapnet.pt)")
    p.add_argument("--timeout", type=float, default=TIMEOUT,
                   help="seconds a client may take to send a request's head or the next part of its body")
    args = p.parse_args(argv)
    TIMEOUT = args.timeout
    import uvicorn

    try:  # a port in use or an address not of this machine: one line, before the model loads
        sock = socket.create_server((args.host, args.port))
    except OSError as e:
        sys.exit(f"error: {args.host}:{args.port}: cannot serve there ({e.strerror})")
    try:
        fkd = FaceKeypointDetector(args.weights or DEFAULT_WEIGHTS)
    except (WeightsError, ValueError) as e:
        sys.exit(f"error: {e}")
    print(f"serving http://{args.host}:{sock.getsockname()[1]} (Ctrl-C stops)", flush=True)
    config = uvicorn.Config(create_app(fkd), http=StrictH11, log_level="warning", limit_concurrency=CONNECTIONS,
                            timeout_keep_alive=5)
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
