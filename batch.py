"""Batches of photos for detect.py: every core, lists of millions of paths, resumable runs, aligned face crops.

    python detect.py photos/ --recursive --workers 4 --json faces.jsonl   # 4 processes, each its own models
    python detect.py --list paths.txt --json faces.jsonl                  # one path a line, read as the run goes
    python detect.py --list paths.txt --json faces.jsonl --resume         # after a kill: the photos not yet done
    python detect.py --list paths.txt --align 256 --out faces/ --json faces.jsonl  # FFHQ-aligned face crops
    python detect.py --list paths.txt --ray auto --json faces.jsonl       # on a Ray cluster (cluster.py)

The parent process writes every output (the JSON, crops, annotated copies); the workers only read photos and send
back the entry and the encoded images. Lines come in input order (on Ray: as they come). docs/batch.md has more.
"""
import itertools
import json
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

import data_load as dl
from detect import (VIDEO_EXTS, FaceKeypointDetector, Results, Stop, draw, expand_inputs, out_path, photo_entry,
                    plural, unforeseen)

AHEAD = 4  # photos handed out a worker ahead of the one written next: the workers never wait, memory stays bounded


@dataclass
class Outputs:
    """What a worker makes of each photo besides its JSON entry."""
    out: str | None = None    # --out: annotated copies, or with align the crops
    align: int | None = None  # --align SIZE
    pose: bool = False
    filter: str | None = None


# ---------------------------------------------------------------- the plan, before any work

def check(args):
    """One line for batch options that cannot work, before any work; None when they can."""
    for name, lo, hi in (("workers", 1, 4096), ("threads", 1, 4096), ("align", 16, 8192)):
        v = getattr(args, name)
        if v is not None and not lo <= v <= hi:
            return f"--{name} {v}: must be from {lo} to {hi}"
    if args.resume and not (args.json and Path(args.json).suffix.lower() == ".jsonl"):
        return "--resume goes on with a --json FILE.jsonl (a line a photo, written as it goes): give one"
    if args.resume and args.force:
        return "--resume keeps the --json file's lines and --force would overwrite them: give one of the two"
    if args.align and not args.out:
        return "--align writes the face crops into --out DIR: give one"
    if args.list:
        try:
            open(args.list, "rb").close()
        except FileNotFoundError:
            return f"{args.list}: no such file (--list: one photo's path a line)"
        except OSError as e:  # a folder, no permission
            return f"{args.list}: cannot read it ({e.strerror})"
    return None


def cores():
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def plan(args):
    """args.workers and args.threads as the run takes them (the cores, shared out), and this process's threads: the
    run's own when it does the photos itself (one worker), one when it only hands them out."""
    args.threads = args.threads or (max(1, cores() // args.workers) if args.workers else 1)
    if args.ray in (None, "local"):  # on a cluster its CPUs decide (cluster.py)
        args.workers = args.workers or max(1, cores() // args.threads)
    set_threads(args.threads if args.workers == 1 else 1)


def set_threads(n):
    import torch
    torch.set_num_threads(n)  # ONNX Runtime's sessions take torch's count (models.onnx_runner)
    cv2.setNumThreads(n)      # OpenCV's resizes; LiteRT's BlazeFace takes it as it loads (detectors.BlazeModel)


# ---------------------------------------------------------------- the photos to do

def read_list(path):
    """--list's paths, one a line, read as the run goes (millions of lines in bounded memory); blank lines skipped.
    Bytes that are not UTF-8 are kept as they are (surrogateescape), as the file system takes them."""
    with open(path, encoding="utf-8", errors="surrogateescape") as f:
        for line in f:
            if line.strip():
                yield line.strip()


def pending(files, list_path, done):
    """The photos to do, lazily: files, then list_path's lines, less those done (by a run being resumed)."""
    lines = read_list(list_path) if list_path else ()
    return (f for f in itertools.chain(files, lines) if f not in done)


def finished(results):
    """The "image" of every line of the --json FILE.jsonl being resumed (read with its lock held). A last line cut
    off by a killed run is dropped, and said so: its photo is done again. A bad line before the last is an error."""
    done, good = set(), 0
    with open(results.path, "rb") as f:
        for n, line in enumerate(f, 1):
            try:
                if not line.endswith(b"\n"):
                    raise ValueError("cut off")
                done.add(json.loads(line)["image"])
            except (ValueError, TypeError, KeyError):
                if f.read(1):
                    raise dl.DataError(f"{results.path}: line {n} is not a line of detect.py's JSON; not resuming "
                                       "it (give another --json)") from None
                results.file.truncate(good)
                print(f"{results.path}: line {n} was cut off (a killed run) and is dropped: its photo is done again",
                      file=sys.stderr)
                break
            good += len(line)
    return done


# ---------------------------------------------------------------- one photo, in a worker

def work(fkd, path, outputs):
    """One photo -> (its JSON entry, [(tag, encoded image)] for the parent to write, None), or (None, [], its error
    line): whatever one photo meets, the batch goes on."""
    try:
        if Path(path).suffix.lower() in VIDEO_EXTS:
            raise dl.DataError(f"{path}: a video; batch runs take photos (run videos without --workers, --list, "
                               "--resume, --align and --ray)")
        rgb = dl.read_image(path)
        faces = fkd.detect(rgb, channels="rgb")
        entry = photo_entry(path, rgb, faces)
        images = []
        if outputs.align:
            for i, (face, js) in enumerate(zip(faces, entry["faces"])):
                crop, M = align(rgb, face.keypoints, outputs.align)
                js["transform"] = [[round(float(v), 6) for v in row] for row in M]
                images.append((f"face{i}", encode(".png", cv2.cvtColor(crop, cv2.COLOR_RGB2BGR))))
        elif outputs.out:
            bgr = draw(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), faces, outputs.pose, outputs.filter)
            images.append(("keypoints", encode(Path(path).suffix, bgr)))
        return entry, images, None
    except dl.DataError as e:
        return None, [], str(e)
    except Exception as e:  # as detect.main: one line, the exception's type and last line
        return None, [], unforeseen(path, e)


def encode(suffix, bgr):
    """The image file's bytes, or None where OpenCV cannot write that format (the parent says so)."""
    try:
        ok, buf = cv2.imencode(suffix, bgr)
    except cv2.error:
        return None
    return buf.tobytes() if ok else None


def align(rgb, keypoints, size):
    """FFHQ's face alignment (Karras et al., recreate_aligned_images) from the 68 points: (the size x size crop, its
    2x3 transform image -> crop). The quad FFHQ cuts out is placed by the eyes and the mouth's corners; one
    cv2.warpAffine of its corners does what FFHQ's shrink, crop, pad and PIL QUAD transform do (mirrored padding,
    without FFHQ's blur of it)."""
    lm = np.float64(keypoints)
    eye_left, eye_right = lm[36:42].mean(0), lm[42:48].mean(0)
    eye_avg, eye_to_eye = (eye_left + eye_right) / 2, eye_right - eye_left
    eye_to_mouth = (lm[48] + lm[54]) / 2 - eye_avg
    x = eye_to_eye - np.flipud(eye_to_mouth) * [-1, 1]
    x *= max(np.hypot(*eye_to_eye) * 2.0, np.hypot(*eye_to_mouth) * 1.8) / np.hypot(*x)
    y = np.flipud(x) * [-1, 1]
    c = eye_avg + eye_to_mouth * 0.1
    quad = np.float32([c - x - y, c - x + y, c + x + y])  # top left, bottom left, bottom right
    # The quad's corners are the crop's outer edges, half a pixel beyond its corner pixels' centres.
    M = cv2.getAffineTransform(quad, np.float32([[0, 0], [0, size], [size, size]]) - 0.5)
    src, to_src = rgb, np.eye(3)
    shrink = int(np.floor(np.hypot(*x) * 2 / size * 0.5))
    if shrink > 1:  # as FFHQ: a face far larger than the crop is first scaled down by area, against aliasing
        h, w = rgb.shape[:2]
        src = cv2.resize(rgb, (max(1, round(w / shrink)), max(1, round(h / shrink))), interpolation=cv2.INTER_AREA)
        sx, sy = w / src.shape[1], h / src.shape[0]
        to_src = np.array([[sx, 0, (sx - 1) / 2], [0, sy, (sy - 1) / 2], [0, 0, 1]])  # its pixels -> the photo's
    crop = cv2.warpAffine(src, M @ to_src, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    return crop, M


# ---------------------------------------------------------------- the photos through worker processes

WORKER = {}  # in each worker process: its detector and what it makes


def start_worker(options, threads, outputs, parent):
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's: it stops handing out photos
    threading.Thread(target=watch_parent, args=(parent,), daemon=True).start()
    set_threads(threads)
    WORKER.update(fkd=FaceKeypointDetector(**options), outputs=outputs)


def watch_parent(parent):
    """A worker whose detect.py was killed ends too, instead of waiting on its queue for ever. Its own parent is the
    fork server, which waits for its workers to end: so it watches detect.py itself."""
    while not gone(parent):
        time.sleep(1)
    os._exit(1)


def gone(pid):
    """Whether process pid has ended: a zombie (killed, not yet reaped by its own parent) has."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] == b"Z"
    except FileNotFoundError:
        if os.path.isdir("/proc"):
            return True
    try:  # no /proc (not Linux): whether it exists
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def task(path):
    return work(WORKER["fkd"], path, WORKER["outputs"])


def pooled(paths, workers, threads, options, outputs, say):
    """(path, work's result) for each path, in input order, each photo done in one of workers processes, each with
    its own FaceKeypointDetector, loaded once. A worker that dies (killed, out of memory) breaks the pool: a fresh
    pool redoes the photos left unfinished, once; a photo unfinished again is named as failed (say: a line)."""
    # A fork of this process would copy its threads' locks (ONNX Runtime, OpenMP); a fork server that has imported
    # the libraries once starts each worker in a blink where a fresh interpreter spends seconds importing them.
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["batch"])
    start = lambda: ProcessPoolExecutor(workers, ctx, initializer=start_worker,  # noqa: E731
                                        initargs=(options, threads, outputs, os.getpid()))
    pool, window, paths = start(), deque(), iter(paths)

    def submit(path, tries):
        try:
            return path, tries, pool.submit(task, path)
        except BrokenProcessPool:  # broken before the loop saw it: redone with the others
            return path, tries, None

    def redo(entry):
        """A photo of a broken pool: kept where it was finished, handed to the fresh pool once, then failed."""
        path, tries, future = entry
        if done(future):
            return entry
        return submit(path, 1) if tries == 0 else (path, 1, failed(path))

    try:
        while True:
            while len(window) < AHEAD * workers and (path := next(paths, None)) is not None:
                window.append(submit(path, 0))
            if not window:
                return
            try:
                if window[0][2] is None:
                    raise BrokenProcessPool
                result = window[0][2].result()
            except BrokenProcessPool:
                pool.shutdown(wait=False, cancel_futures=True)
                pool, lost = start(), sum(not done(f) for _, _, f in window)
                window = deque(redo(entry) for entry in window)
                say(f"a worker process died (killed, or out of memory): a fresh pool redoes the "
                    f"{plural(lost, 'photo')} it left unfinished")
                continue
            yield window.popleft()[0], result
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def done(future):
    return future is not None and future.done() and not future.cancelled() and future.exception() is None


def failed(path):
    f = Future()
    f.set_result((None, [], f"{path}: its worker process died twice (killed, or out of memory); not done"))
    return f


# ---------------------------------------------------------------- the parent: results, files, progress

def save(path, entry, images, args, taken):
    """Write what a worker made of path into --out (names claimed as detect.out_path does; crops named in entry)."""
    faces = iter(entry["faces"])
    for tag, data in images:
        suffix = ".png" if tag != "keypoints" else None
        # Without --force, claiming the name is what keeps it from being overwritten: no set of names to keep.
        target = out_path(args.out, path, taken if args.force else set(), args.force, suffix, tag)
        try:
            if data is None:
                raise OSError(0, "OpenCV cannot write this format")
            target.write_bytes(data)
        except OSError as e:
            target.unlink(missing_ok=True)
            raise dl.DataError(f"{target}: cannot write the {'crop' if suffix else 'annotated copy'} "
                               f"({e.strerror})") from None
        if tag != "keypoints":
            next(faces)["crop"] = str(target)


def run(fkd, options, args):
    """detect.py's batch run (batch.plan has set args.workers and args.threads); the exit status."""
    from tqdm import tqdm

    try:
        results = Results(args.json, args.force, resume=args.resume)
        done_before = finished(results) if args.resume else set()
    except OSError as e:
        sys.exit(f"error: {args.json}: cannot write ({e.strerror})")
    except dl.DataError as e:
        sys.exit(f"error: {e}")
    files, errors = expand_inputs(args.inputs, args.recursive, args.out)
    for e in errors:
        print(f"error: {e}", file=sys.stderr)
    total = sum(1 for _ in pending(files, args.list, done_before))  # a first pass, for the time left
    if done_before:
        print(f"{args.json}: {plural(len(done_before), 'photo')} done before, skipped", file=sys.stderr)
    outputs = Outputs(args.out, args.align, args.pose, args.filter)
    paths, say = pending(files, args.list, done_before), lambda line: tqdm.write(line, file=sys.stderr)
    if args.ray:
        import cluster
        stream = cluster.results(paths, options, args.workers, args.threads, outputs, args.ray)
    elif min(args.workers, total) <= 1:
        stream = ((p, work(fkd, p, outputs)) for p in paths)
    else:
        stream = pooled(paths, min(args.workers, total), args.threads, options, outputs, say)
    n_done, n_faces, n_failed, t0, first = 0, 0, 0, time.time(), None
    stop, taken = Stop().install(), {Path(f).resolve() for f in files}  # --force never overwrites an input
    bar = tqdm(total=total, unit="photo", disable=total < 2, smoothing=0.05)
    try:
        for path, (entry, images, error) in stream:
            if error is None:
                try:
                    save(path, entry, images, args, taken)
                    results.add(entry)  # the line after the files it names
                    n_faces += len(entry["faces"])
                except dl.DataError as e:
                    error = str(e)
            if error:
                n_failed += 1
                say(f"error: {error}")
            n_done += 1
            first = first or time.time()
            bar.update()
            stop.check()
    except KeyboardInterrupt:
        stream.close()  # the workers stop; their photos in flight are done again by --resume
        bar.close()
        results.close()
        print(f"interrupted after {n_done} of {plural(total, 'photo')}" + (
            f"; {args.json} holds what was finished" + (" (--resume goes on)" if results.lines else "")
            if args.json else ""), file=sys.stderr)
        return 130
    bar.close()
    results.close()
    end, n_errors = time.time(), len(errors) + n_failed
    rate = f", {(n_done - 1) / (end - first):.2f} photos/s after the first" if n_done > 1 and end > first else ""
    print(f"{n_done - n_failed} of {plural(n_done, 'photo')}, {plural(n_faces, 'face')}, {end - t0:.1f} s{rate}"
          + (f", {plural(n_errors, 'error')}" if n_errors else "")
          + (f"; written into {args.out}" if args.out and n_done > n_failed else ""))
    return 1 if n_errors else 0
