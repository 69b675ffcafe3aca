import hashlib
import http.server
import io
import threading
import zipfile

import pytest

import data_load as dl

LABELS = b",0,1\nx_00.jpg,1,2\n"


def make_zip(members):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


@pytest.fixture
def server():
    """A file server on 127.0.0.1: files[path] = bytes; cut[path] = bytes to send before hanging up."""
    files, cut = {}, {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path not in files:
                self.send_error(404)
                return
            body = files[self.path]
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[:cut.get(self.path, len(body))])

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_port}", files, cut
    httpd.shutdown()


def fetch(url, dest, archive, **kw):
    sums = {"training_frames_keypoints.csv": hashlib.sha256(LABELS).hexdigest()}
    return dl.download(dest, url + "/train-test-data.zip", size=len(archive), members_sha256=sums, **kw)


def test_download_verifies_and_extracts(server, tmp_path, capsys):
    url, files, _ = server
    archive = make_zip({"training_frames_keypoints.csv": LABELS, "training/x_00.jpg": b"jpeg"})
    files["/train-test-data.zip"] = archive
    fetch(url, tmp_path / "data", archive)
    assert (tmp_path / "data" / "training" / "x_00.jpg").read_bytes() == b"jpeg"
    assert (tmp_path / "data" / "train-test-data.zip").read_bytes() == archive
    assert "train-test-data.zip" in capsys.readouterr().err  # the progress bar
    fetch(url, tmp_path / "data", archive)  # again: same files, nothing to do, no error


def test_wrong_checksum_extracts_nothing(server, tmp_path):
    url, files, _ = server
    archive = make_zip({"training_frames_keypoints.csv": b"other labels", "training/x_00.jpg": b"jpeg"})
    files["/train-test-data.zip"] = archive
    with pytest.raises(dl.DataError, match="training_frames_keypoints.csv checksum mismatch"):
        fetch(url, tmp_path / "data", archive)
    assert list((tmp_path / "data").iterdir()) == []


def test_interrupted_transfer_leaves_no_archive(server, tmp_path):
    url, files, cut = server
    archive = make_zip({"training_frames_keypoints.csv": LABELS})
    files["/train-test-data.zip"] = archive
    cut["/train-test-data.zip"] = len(archive) // 2
    with pytest.raises(dl.DataError, match="download failed"):
        fetch(url, tmp_path / "data", archive)
    assert list((tmp_path / "data").iterdir()) == []


@pytest.mark.parametrize("evil", ["../evil.txt", "/tmp/fkp-evil.txt", "training/../../evil.txt"])
def test_members_outside_the_data_folder_are_refused(server, tmp_path, evil):
    url, files, _ = server
    archive = make_zip({"training_frames_keypoints.csv": LABELS, evil: b"owned"})
    files["/train-test-data.zip"] = archive
    with pytest.raises(dl.DataError, match="would be written outside"):
        fetch(url, tmp_path / "data", archive)
    assert not (tmp_path / "evil.txt").exists()
    assert not list((tmp_path / "data").glob("training*"))


def test_existing_different_file_is_not_overwritten(server, tmp_path):
    url, files, _ = server
    archive = make_zip({"training_frames_keypoints.csv": LABELS})
    files["/train-test-data.zip"] = archive
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "training_frames_keypoints.csv").write_bytes(b"my own edits")
    with pytest.raises(dl.DataError, match="exists and differs"):
        fetch(url, tmp_path / "data", archive)
    assert (tmp_path / "data" / "training_frames_keypoints.csv").read_bytes() == b"my own edits"


def test_missing_server_is_a_clear_error(tmp_path):
    with pytest.raises(dl.DataError, match="download failed"):
        dl.download(tmp_path, "http://127.0.0.1:9/train-test-data.zip")
