"""scripts/fetch_models.py against a local HTTP server on 127.0.0.1 (no network): plain files, a Google Drive
look-alike, and a Hugging Face hub look-alike whose resolve URLs answer HEAD with the hub's metadata headers
(X-Repo-Commit, X-Linked-Etag = the LFS sha256, X-Linked-Size; a small file's ETag = its git blob sha1) and
redirect GET to a CDN path, as huggingface.co does."""

import hashlib
import importlib.util
import io
import json
import os
import subprocess
import sys
import threading
import time
import urllib.parse
import zipfile
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import facecontrol

SCRIPT = Path(facecontrol.__file__).resolve().parent / "scripts" / "fetch_models.py"
GOOD = b"good model bytes " * 64
DRIVE_FILES = {"bigfile": b"drive large file " * 100, "smallfile": b"drive small file"}
DRIVE_TOKEN = "t0k"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
SLOW = b"s" * (64 << 10)


def load_script():
    spec = importlib.util.spec_from_file_location("fetch_models_under_test", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


fetch = load_script()
mf = fetch.mf


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def git_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class FakeServer(SimpleHTTPRequestHandler):
    """Static files, a Google Drive look-alike, a hub look-alike and a few broken responses."""

    requests: list = []
    hub: dict = {}  # "Org/Repo/path" -> {"data": bytes, "lfs": bool, "cdn": bytes (what the CDN serves)}

    def log_message(self, *args):
        pass

    def do_HEAD(self):
        self.requests.append(("HEAD", self.path))
        hub_file = self.hub_file()
        if hub_file is not None:
            return self.hub_head(*hub_file)
        return super().do_HEAD()

    def do_GET(self):
        self.requests.append(self.path)
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        hub_file = self.hub_file()
        if hub_file is not None:
            return self.hub_get(*hub_file)
        if url.path.startswith("/cdn/"):
            return self.send_bytes(self.hub_by_sha()[url.path[5:]]["cdn"])
        if url.path == "/uc":
            return self.drive_page(query.get("id", ""))
        if url.path == "/drive-download":
            if query.get("confirm") == DRIVE_TOKEN and query.get("id") in DRIVE_FILES:
                return self.send_bytes(DRIVE_FILES[query["id"]])
            return self.send_bytes(b"<html>denied</html>", "text/html")
        if url.path == "/truncated.bin":
            return self.raw(b"only ten b", {"Content-Length": "1000"})
        if url.path == "/no-length.bin":  # a body cut short, with nothing announcing its length
            return self.raw(GOOD[:100], {})
        if url.path == "/too-long.bin":
            return self.raw(GOOD + b"and then some more", {})
        if url.path == "/slow.bin":
            return self.slow()
        if url.path == "/login.bin":
            return self.send_bytes(b"<html><body>please sign in</body></html>", "text/html; charset=utf-8")
        if url.path.startswith("/redirect/"):
            return self.redirect(urllib.parse.unquote(url.path[len("/redirect/") :]))
        return super().do_GET()

    # --------------------------------------------------------------- hub look-alike

    def hub_file(self):
        parts = urllib.parse.urlsplit(self.path).path.strip("/").split("/")
        if len(parts) >= 5 and parts[2] == "resolve" and parts[3] in ("main", COMMIT):
            key = "/".join(parts[:2]) + "/" + urllib.parse.unquote("/".join(parts[4:]))
            return (self.hub.get(key),)
        return None

    def hub_by_sha(self):
        return {sha(f["data"]): f for f in self.hub.values()}

    def hub_head(self, file):
        if file is None:
            self.send_response(404)
            self.send_header("X-Error-Code", "EntryNotFound")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        if file["lfs"]:
            self.send_response(302)
            # another host name for the same server, as the hub sends its LFS files to a CDN host
            port = self.server.server_address[1]
            self.send_header("Location", f"http://localhost:{port}/cdn/{sha(file['data'])}")
            self.send_header("X-Linked-Etag", f'"{sha(file["data"])}"')
            self.send_header("X-Linked-Size", str(len(file["data"])))
        else:
            self.send_response(200)
            self.send_header("ETag", f'"{git_sha1(file["data"])}"')
            self.send_header("Content-Length", str(len(file["data"])))
        self.send_header("X-Repo-Commit", COMMIT)
        self.end_headers()
        return None

    def hub_get(self, file):
        if file is None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        if file["lfs"]:
            return self.redirect(f"http://localhost:{self.server.server_address[1]}/cdn/{sha(file['data'])}")
        return self.send_bytes(file["cdn"])

    # --------------------------------------------------------------- helpers

    def redirect(self, location):
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def raw(self, data, headers):
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)
        self.close_connection = True

    def slow(self):
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(SLOW)))
        self.end_headers()
        try:
            for i in range(0, len(SLOW), 4096):
                self.wfile.write(SLOW[i : i + 4096])
                self.wfile.flush()
                time.sleep(0.2)
        except (BrokenPipeError, ConnectionResetError):
            pass
        self.close_connection = True

    def drive_page(self, file_id):
        if file_id == "smallfile":
            return self.send_bytes(DRIVE_FILES[file_id])
        if file_id == "bigfile":
            page = (
                "<html><body>Google Drive can't scan this file for viruses."
                '<form id="download-form" action="/drive-download" method="get">'
                f'<input type="hidden" name="id" value="{file_id}"><input type="hidden" name="export" value="download">'
                f'<input type="hidden" name="confirm" value="{DRIVE_TOKEN}">'
                '<input type="hidden" name="uuid" value="u-1">'
                '<input type="submit" value="Download anyway"></form></body></html>'
            )
            return self.send_bytes(page.encode(), "text/html; charset=utf-8")
        return self.send_bytes(b"<html>Quota exceeded</html>", "text/html")

    def send_bytes(self, data, content_type="application/octet-stream"):
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


PROXY_VARS = ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY")


@pytest.fixture
def server(tmp_path, monkeypatch):
    for var in PROXY_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    root = tmp_path / "served"
    root.mkdir()
    requests: list = []
    hub: dict = {}
    handler = type("Handler", (FakeServer,), {"requests": requests, "hub": hub})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(handler, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield {"root": root, "url": f"http://127.0.0.1:{httpd.server_address[1]}", "requests": requests, "hub": hub}
    httpd.shutdown()
    httpd.server_close()


def serve(server, relative: str, data: bytes) -> str:
    path = server["root"] / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return f"{server['url']}/{relative}"


def on_hub(server, repo_path: str, data: bytes, lfs: bool = True, cdn: bytes | None = None) -> None:
    server["hub"][repo_path] = {"data": data, "lfs": lfs, "cdn": data if cdn is None else cdn}


def model(name_path: str, source: dict, folder: str = "face_adapter", **extra) -> dict:
    entry = {
        "folder": folder,
        "path": name_path,
        "source": source,
        "license": "test licence",
        "non_commercial": True,
        "papers": ["face_adapter"],
        "used_by": "test",
    }
    entry.update(extra)
    return entry


def write_manifest(tmp_path: Path, models: list) -> Path:
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps({"manifest_version": 1, "models": models}), encoding="utf-8")
    return path


def leftovers(directory: Path) -> list:
    return [p for p in directory.rglob("*") if p.name.endswith(".part")]


def run_main(tmp_path, server, models, *extra):
    manifest = write_manifest(tmp_path, models)
    models_dir = tmp_path / "models"
    argv = [
        "--models-dir",
        str(models_dir),
        "--manifest",
        str(manifest),
        "--hf-endpoint",
        server["url"],
        "--gdrive-url",
        f"{server['url']}/uc",
        "--timeout",
        "10",
        *extra,
    ]
    return fetch.main(argv), models_dir


def outcomes_of(tmp_path, server, models, allow_unverified=False):
    manifest = mf.load_manifest(write_manifest(tmp_path, models))
    ctx = fetch.FetchContext(
        models_dir=tmp_path / "models",
        work_dir=tmp_path / "work",
        hf_endpoint=server["url"],
        timeout=10,
        allow_unverified=allow_unverified,
    )
    return {o.name: o for o in fetch.fetch_all(list(manifest.values()), ctx)}, tmp_path / "models"


def test_good_corrupt_missing_and_present(tmp_path, server, caplog):
    caplog.set_level("INFO")
    good_url = serve(server, "files/good.pth", GOOD)
    bad_url = serve(server, "files/corrupt.pth", b"these are not the bytes you want")
    present_url = serve(server, "files/present.pth", GOOD)
    models = [
        model("good.pth", {"url": good_url}, sha256=sha(GOOD), size=len(GOOD)),
        model("corrupt.pth", {"url": bad_url}, sha256=sha(b"the real bytes")),
        model("gone.pth", {"url": f"{server['url']}/files/gone.pth"}, sha256=sha(GOOD)),
        model("present.pth", {"url": present_url}, sha256=sha(GOOD)),
    ]
    models_dir = tmp_path / "models"
    (models_dir / "face_adapter").mkdir(parents=True)
    (models_dir / "face_adapter" / "present.pth").write_bytes(GOOD)
    status, models_dir = run_main(tmp_path, server, models)

    assert status == 1
    target_dir = models_dir / "face_adapter"
    assert (target_dir / "good.pth").read_bytes() == GOOD
    assert not (target_dir / "corrupt.pth").exists()
    assert not (target_dir / "gone.pth").exists()
    assert leftovers(models_dir) == []
    assert not any("present.pth" in str(r) for r in server["requests"])
    assert "HTTP 404" in caplog.text and "gone.pth" in caplog.text
    assert "corrupt.pth: sha256" in caplog.text and "does not match the expected" in caplog.text
    assert "summary:" in caplog.text


def test_unverifiable_file_is_refused_before_download_unless_allowed(tmp_path, server, caplog):
    caplog.set_level("INFO")
    url = serve(server, "nohash.pth", GOOD)
    entry = model("nohash.pth", {"url": url}, size=len(GOOD), verification="the test source publishes no checksum")
    status, models_dir = run_main(tmp_path, server, [entry])
    assert status == 1
    assert not (models_dir / "face_adapter" / "nohash.pth").exists()
    assert server["requests"] == []  # refused before anything was downloaded
    assert "cannot be verified (the test source publishes no checksum)" in caplog.text
    assert "--allow-unverified" in caplog.text

    status, models_dir = run_main(tmp_path, server, [entry], "--allow-unverified")
    assert status == 0
    assert (models_dir / "face_adapter" / "nohash.pth").read_bytes() == GOOD
    assert "UNVERIFIED" in caplog.text


def test_hub_metadata_verifies_hugging_face_files(tmp_path, server):
    config = b'{"model_type": "clip_vision_model"}'
    on_hub(server, "Org/Repo/sub/model.safetensors", GOOD)
    on_hub(server, "Org/Repo/sub/config.json", config, lfs=False)
    on_hub(server, "Org/Repo/weights/pytorch_model.bin", GOOD)
    on_hub(server, "Org/Repo/swapped.pth", GOOD + b"swap", cdn=(GOOD + b"swap")[::-1])  # same size, other bytes
    on_hub(server, "Org/Repo/changed.pth", b"a newer upload")
    on_hub(server, "Org/Repo/bigger.pth", GOOD)
    models = [
        model("sub/model.safetensors", {"hf_repo": "Org/Repo", "path": "sub/model.safetensors"}),
        model("sub/config.json", {"hf_repo": "Org/Repo", "path": "sub/config.json"}),
        model(
            "weights/model.safetensors",
            {
                "hf_repo": "Org/Repo",
                "path": "weights/model.safetensors",
                "fallback_paths": ["weights/pytorch_model.bin"],
            },
            alternatives=[{"folder": "face_adapter", "path": "weights/pytorch_model.bin"}],
        ),
        model("swapped.pth", {"hf_repo": "Org/Repo", "path": "swapped.pth"}),
        model("changed.pth", {"hf_repo": "Org/Repo", "path": "changed.pth"}, sha256=sha(GOOD)),
        model("bigger.pth", {"hf_repo": "Org/Repo", "path": "bigger.pth"}, size=len(GOOD) - 1),
        model("absent.pth", {"hf_repo": "Org/Repo", "path": "absent.pth"}),
    ]
    outcomes, models_dir = outcomes_of(tmp_path, server, models)
    folder = models_dir / "face_adapter"

    lfs = outcomes["face_adapter/sub/model.safetensors"]
    assert lfs.status == "downloaded" and "sha256 (the hub's metadata)" in lfs.message
    assert (folder / "sub/model.safetensors").read_bytes() == GOOD
    small = outcomes["face_adapter/sub/config.json"]
    assert small.status == "downloaded" and "git blob sha1" in small.message
    assert (folder / "sub/config.json").read_bytes() == config
    fallback = outcomes["face_adapter/weights/model.safetensors"]
    assert fallback.status == "downloaded" and fallback.path.name == "pytorch_model.bin"
    assert (
        mf.resolve(
            mf.load_manifest(tmp_path / "manifest.json")["face_adapter/weights/model.safetensors"],
            mf.default_folders(models_dir),
        )
        == fallback.path
    )
    assert f"/Org/Repo/resolve/{COMMIT}/sub/model.safetensors" in server["requests"]  # pinned to the commit

    assert outcomes["face_adapter/swapped.pth"].status == "failed"
    assert "does not match" in outcomes["face_adapter/swapped.pth"].message
    assert outcomes["face_adapter/changed.pth"].status == "failed"
    assert "the file was changed" in outcomes["face_adapter/changed.pth"].message
    assert outcomes["face_adapter/bigger.pth"].status == "failed"
    assert (
        outcomes["face_adapter/absent.pth"].status == "failed" and "404" in outcomes["face_adapter/absent.pth"].message
    )
    for name in ("swapped.pth", "changed.pth", "bigger.pth", "absent.pth"):
        assert not (folder / name).exists()
    assert f"/cdn/{sha(b'a newer upload')}" not in server["requests"]  # refused before the body
    assert leftovers(models_dir) == []


def test_broken_bodies_and_redirects_are_refused(tmp_path, server):
    elsewhere = serve(server, "elsewhere/other.bin", b"some other file")
    serve(server, "elsewhere/good.bin", GOOD)
    with_hash = {"sha256": sha(GOOD), "size": len(GOOD)}
    redirect = f"{server['url']}/redirect/"
    models = [
        model("wrong_size.bin", {"url": serve(server, "wrong_size.bin", GOOD + b"x")}, **with_hash),
        model("short.bin", {"url": f"{server['url']}/truncated.bin"}, sha256=sha(GOOD)),
        model("no_length.bin", {"url": f"{server['url']}/no-length.bin"}, **with_hash),
        model("no_length_no_size.bin", {"url": f"{server['url']}/no-length.bin"}, sha256=sha(GOOD)),
        model("too_long.bin", {"url": f"{server['url']}/too-long.bin"}, **with_hash),
        model("page.bin", {"url": f"{server['url']}/login.bin"}, **with_hash),
        model("redirected.bin", {"url": redirect + urllib.parse.quote(elsewhere, safe="")}, sha256=sha(GOOD)),
        model("to_file.bin", {"url": redirect + urllib.parse.quote("file:///etc/passwd", safe="")}, **with_hash),
        model("cdn.bin", {"url": redirect + urllib.parse.quote("/elsewhere/good.bin", safe="")}, **with_hash),
    ]
    outcomes, models_dir = outcomes_of(tmp_path, server, models)
    folder = models_dir / "face_adapter"
    expected_words = {
        "wrong_size.bin": "announces",
        "short.bin": "cut short",
        "no_length.bin": "cut short",
        "no_length_no_size.bin": "does not match",
        "too_long.bin": "more than",
        "page.bin": "web page",
        "redirected.bin": "does not match",
        "to_file.bin": "redirect",
    }
    for name, words in expected_words.items():
        outcome = outcomes[f"face_adapter/{name}"]
        assert outcome.status == "failed", (name, outcome)
        assert words in outcome.message.lower(), (name, outcome.message)
        assert not (folder / name).exists(), name
    assert outcomes["face_adapter/cdn.bin"].status == "downloaded"  # a redirect to the right bytes is fine
    assert (folder / "cdn.bin").read_bytes() == GOOD
    assert leftovers(models_dir) == []


def test_killed_download_leaves_a_part_file_that_the_next_run_removes(tmp_path, server):
    entry = model("slow.bin", {"url": f"{server['url']}/slow.bin"}, sha256=sha(SLOW), size=len(SLOW))
    manifest = write_manifest(tmp_path, [entry])
    models_dir = tmp_path / "models"
    env = {k: v for k, v in os.environ.items() if k not in PROXY_VARS}
    env["NO_PROXY"] = "127.0.0.1"
    process = subprocess.Popen(
        [sys.executable, str(SCRIPT), "--models-dir", str(models_dir), "--manifest", str(manifest), "--timeout", "10"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while not [p for p in leftovers(models_dir) if p.stat().st_size > 0] and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        process.kill()
        process.wait(timeout=10)
    assert len(leftovers(models_dir)) == 1 and not (models_dir / "face_adapter" / "slow.bin").exists()

    status, _ = run_main(tmp_path, server, [entry])
    assert status == 0
    assert (models_dir / "face_adapter" / "slow.bin").read_bytes() == SLOW
    assert leftovers(models_dir) == []


def test_present_file_that_fails_verification_is_reported_and_kept(tmp_path, server):
    url = serve(server, "x.pth", GOOD)
    models_dir = tmp_path / "models"
    (models_dir / "face_adapter").mkdir(parents=True)
    (models_dir / "face_adapter" / "x.pth").write_bytes(b"user's own different file")
    status, _ = run_main(tmp_path, server, [model("x.pth", {"url": url}, sha256=sha(GOOD))])
    assert status == 1
    assert (models_dir / "face_adapter" / "x.pth").read_bytes() == b"user's own different file"
    assert server["requests"] == []


def test_google_drive_confirm_page_and_refusal(tmp_path, server):
    models = [
        model("big.ckpt", {"gdrive_id": "bigfile"}, folder="dva", sha256=sha(DRIVE_FILES["bigfile"])),
        model("small.pkl", {"gdrive_id": "smallfile"}, folder="dva", sha256=sha(DRIVE_FILES["smallfile"])),
        model("blocked.ckpt", {"gdrive_id": "quota"}, folder="dva", sha256=sha(b"whatever Drive would send")),
    ]
    status, models_dir = run_main(tmp_path, server, models)
    dva_dir = models_dir / "dva"
    assert (dva_dir / "big.ckpt").read_bytes() == DRIVE_FILES["bigfile"]
    assert (dva_dir / "small.pkl").read_bytes() == DRIVE_FILES["smallfile"]
    assert not (dva_dir / "blocked.ckpt").exists()
    assert leftovers(models_dir) == []
    assert status == 2  # only a manual step remains

    manifest = mf.load_manifest(tmp_path / "manifest.json")
    ctx = fetch.FetchContext(
        models_dir=models_dir, work_dir=tmp_path / "w", gdrive_url=f"{server['url']}/uc", timeout=10
    )
    outcome = fetch.fetch_entry(manifest["dva/blocked.ckpt"], ctx)
    assert outcome.status == "manual"
    assert "drive.google.com/file/d/quota/view" in outcome.message and str(dva_dir / "blocked.ckpt") in outcome.message


def test_drive_confirm_from_cookie_and_link():
    import http.cookiejar

    link_page = '<a href="/uc?export=download&amp;confirm=abc&amp;id=F">Download anyway</a>'
    assert fetch.drive_confirm_url(link_page, "https://drive.example/uc?id=F", []) == (
        "https://drive.example/uc?export=download&confirm=abc&id=F"
    )
    cookie = http.cookiejar.Cookie(
        0, "download_warning_1", "tok", None, False, "d", False, False, "/", False, False, None, False, None, None, {}
    )
    assert fetch.drive_confirm_url("<html></html>", "https://d/uc?id=F", [cookie]) == "https://d/uc?id=F&confirm=tok"
    assert fetch.drive_confirm_url("<html>quota</html>", "https://d/uc?id=F", []) is None


def test_archive_members(tmp_path, server):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("pretrained_models/a.pth", GOOD)
        archive.writestr("pretrained_models/b.dat", b"b-bytes")
    url = serve(server, "pretrained_models.zip", buffer.getvalue())
    source = {"url": url, "archive": "zip"}
    models = [
        model("pretrained_models/a.pth", {**source, "member": "a.pth"}, folder="dva", sha256=sha(GOOD)),
        model("pretrained_models/b.dat", {**source, "member": "b.dat"}, folder="dva", sha256=sha(b"wrong")),
        model("pretrained_models/c.pth", {**source, "member": "c.pth"}, folder="dva", sha256=sha(b"c")),
    ]
    status, models_dir = run_main(tmp_path, server, models)
    assert status == 1
    assert (models_dir / "dva/pretrained_models/a.pth").read_bytes() == GOOD
    assert not (models_dir / "dva/pretrained_models/b.dat").exists()
    assert not (models_dir / "dva/pretrained_models/c.pth").exists()
    assert leftovers(models_dir) == []
    assert server["requests"].count("/pretrained_models.zip") == 1  # downloaded once for all members


FAKE_BUILDER = """
from pathlib import Path
def build_from_kit(kit_dir: Path, out_dir: Path) -> None:
    data = (Path(kit_dir) / "FaceXModel" / "generic_neutral_mesh.obj").read_bytes()
    (Path(out_dir) / "face_model.npz").write_bytes(b"built:" + data)
    (Path(out_dir) / "landmarks_model.npz").write_bytes(b"corrupt")
"""


def test_build_hook_with_fake_kit_archive(tmp_path, server):
    kit = io.BytesIO()
    with zipfile.ZipFile(kit, "w") as archive:
        archive.writestr("ICT-FaceKit-abc/FaceXModel/generic_neutral_mesh.obj", b"v 0 0 0\n")
    url = serve(server, "kit.zip", kit.getvalue())
    builder = tmp_path / "fake_builder.py"
    builder.write_text(FAKE_BUILDER)
    source = {"build": "ict_facekit", "commit": "abc", "url": url, "builder": f"{builder}:build_from_kit"}
    models = [
        model("ict_facekit/face_model.npz", source, folder="face_3dmm", sha256=sha(b"built:v 0 0 0\n")),
        model("ict_facekit/landmarks_model.npz", source, folder="face_3dmm", sha256=sha(b"expected")),
    ]
    status, models_dir = run_main(tmp_path, server, models)
    assert status == 1
    assert (models_dir / "face_3dmm/ict_facekit/face_model.npz").read_bytes() == b"built:v 0 0 0\n"
    assert not (models_dir / "face_3dmm/ict_facekit/landmarks_model.npz").exists()
    assert leftovers(models_dir) == []
    assert server["requests"].count("/kit.zip") == 1


def test_missing_builder_fails_cleanly(tmp_path, server):
    source = {"build": "ict_facekit", "url": serve(server, "kit.zip", b"PK"), "builder": "scripts/no_such_builder.py:f"}
    status, models_dir = run_main(tmp_path, server, [model("f.npz", source, folder="face_3dmm", sha256=sha(b"f"))])
    assert status == 1 and not (models_dir / "face_3dmm/f.npz").exists()


def test_unpack_refuses_paths_outside(tmp_path):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("../escape.txt", b"x")
    with pytest.raises(fetch.FetchError, match="outside"):
        fetch.unpack(archive, tmp_path / "out")
    assert not (tmp_path / "escape.txt").exists()


def test_selection_skips_pointers_and_optional(tmp_path):
    manifest = mf.load_manifest()
    selected, skipped = fetch.select_entries(manifest, paper="face_adapter")
    names = {e.name for e in selected}
    assert "face_adapter/net_id2token.pth" in names
    assert "checkpoints/v1-5-pruned-emaonly.safetensors" not in names
    assert "face_adapter/third_party/models/antelopev2/glintr100.onnx" not in names
    assert {o.name for o in skipped} >= {"checkpoints/v1-5-pruned-emaonly.safetensors"}
    assert all("dva" in e.papers for e in fetch.select_entries(manifest, paper="dva")[0])
    chosen, _ = fetch.select_entries(manifest, only=["v1-5-pruned-emaonly.safetensors"])
    assert [e.name for e in chosen] == ["checkpoints/v1-5-pruned-emaonly.safetensors"]


def test_unknown_name_and_list(tmp_path, server, capsys):
    status, _ = run_main(tmp_path, server, [model("a.pth", {"url": "http://127.0.0.1:9/a"})], "--only", "nope.pth")
    assert status == 1
    assert fetch.main(["--list", "--paper", "faces"]) == 0
    out = capsys.readouterr().out
    assert "mediapipe/face_landmarker.task" in out and "licence:" in out
