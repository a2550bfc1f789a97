"""Start a headless ComfyUI with the pack on 127.0.0.1, queue API workflows over HTTP, fetch outputs.

Used by the demo (scripts/demo.py), the integration and browser tests and the benchmarks. Standard library
only, so it runs in any interpreter; ComfyUI itself runs in the checkout's .venv.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
# the UI workflows, where ComfyUI's template browser looks for a pack's examples (custom_nodes/<pack>/example_workflows/)
UI_WORKFLOWS_DIR = REPO_ROOT / "example_workflows"
log = logging.getLogger("facecontrol.comfy_client")


def comfyui_dir() -> Path:
    return Path(os.environ.get("COMFYUI_DIR") or REPO_ROOT / "comfyui")


def venv_python() -> Path:
    """The interpreter that runs ComfyUI: COMFYUI_PYTHON (another ComfyUI's own environment), else .venv."""
    if os.environ.get("COMFYUI_PYTHON"):
        return Path(os.environ["COMFYUI_PYTHON"])
    candidate = REPO_ROOT / ".venv" / "bin" / "python"
    return candidate if candidate.exists() else Path(sys.executable)


FRONTEND_CACHE = REPO_ROOT / ".cache" / "frontend"


def frontend_root(version: str) -> Path:
    """The static folder of comfyui-frontend-package==version ('latest': the newest on PyPI), installed with
    pip into .cache/frontend/<version>/ (never into the environment), for ComfyUI's --front-end-root."""
    if version != "latest" and (FRONTEND_CACHE / version / "comfyui_frontend_package" / "static").is_dir():
        return FRONTEND_CACHE / version / "comfyui_frontend_package" / "static"
    FRONTEND_CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=FRONTEND_CACHE) as tmp:
        spec = "comfyui-frontend-package" + ("" if version == "latest" else f"=={version}")
        subprocess.run(
            [
                str(venv_python()),
                "-m",
                "pip",
                "install",
                "-q",
                "--disable-pip-version-check",
                "--no-deps",
                "--target",
                tmp,
                spec,
            ],
            check=True,
        )
        dist = next(Path(tmp).glob("comfyui_frontend_package-*.dist-info"))
        resolved = dist.name[len("comfyui_frontend_package-") : -len(".dist-info")]
        dest = FRONTEND_CACHE / resolved
        if not dest.is_dir():
            Path(tmp).rename(dest)
            Path(tmp).mkdir()  # TemporaryDirectory removes what it made
    log.info("frontend comfyui-frontend-package %s (asked for %s)", resolved, version)
    return dest / "comfyui_frontend_package" / "static"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class WorkflowError(RuntimeError):
    """A prompt failed: a 400 with node_errors, or an execution_error while running."""

    def __init__(self, message: str, details: dict):
        super().__init__(message)
        self.details = details


class ComfyClient:
    """The HTTP side of a ComfyUI server at `url` (one started here, or any a user runs)."""

    def __init__(self, url: str):
        self.url = url.rstrip("/")

    def get_json(self, route: str) -> dict:
        return json.loads(self.get_bytes(route, timeout=120))  # a busy CPU server answers late

    def get_bytes(self, route: str, timeout: float = 60, attempts: int = 4) -> bytes:
        """A GET, asked again when it times out: a server busy on a long node (ComfyUI 0.33, or any ComfyUI on
        two shared CPU cores) can leave a request unanswered past its timeout; a GET is safe to repeat."""
        for attempt in range(attempts):
            try:
                with urllib.request.urlopen(self.url + route, timeout=timeout) as r:
                    return r.read()
            except TimeoutError:
                if attempt == attempts - 1:
                    raise
                log.info("GET %s timed out after %.0f s; asking again", route, timeout)
        raise AssertionError("unreachable")

    def post_json(self, route: str, payload: dict) -> tuple[int, dict]:
        req = urllib.request.Request(
            self.url + route, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.status, json.loads(r.read() or b"{}")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"{}")

    def queue(self, prompt: dict, extra_data: dict | None = None) -> str:
        payload = {"prompt": prompt, "client_id": uuid.uuid4().hex}
        if extra_data:
            payload["extra_data"] = extra_data
        status, body = self.post_json("/prompt", payload)
        if status != 200:
            raise WorkflowError(f"prompt rejected ({status}): {json.dumps(body)[:2000]}", body)
        return body["prompt_id"]

    def wait(self, prompt_id: str, timeout: float = 1800.0) -> dict:
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                history = self.get_json(f"/history/{prompt_id}")
            except (TimeoutError, ConnectionError, urllib.error.URLError) as exc:
                # a server busy on a long node can leave /history unanswered past the request's 30 s (seen on
                # ComfyUI 0.33 with two CPU cores shared); the prompt's own deadline is what counts
                proc = getattr(self, "proc", None)
                if proc is not None and proc.poll() is not None:
                    raise RuntimeError(f"ComfyUI exited with {proc.returncode} while running {prompt_id}") from exc
                log.info("/history did not answer (%s); asking again", exc)
                time.sleep(1.0)
                continue
            entry = history.get(prompt_id)
            if (
                entry
                and entry.get("status", {}).get("completed") is not None
                and (entry["status"].get("status_str") in ("success", "error"))
            ):
                if entry["status"]["status_str"] == "error":
                    raise WorkflowError(execution_error_message(entry), entry)
                return entry
            time.sleep(0.25)
        raise TimeoutError(f"prompt {prompt_id} did not finish within {timeout}s")

    def run(self, prompt: dict, timeout: float = 1800.0) -> dict:
        return self.wait(self.queue(prompt), timeout)

    def output_files(self, entry: dict) -> dict[str, list[dict]]:
        """node id -> list of {filename, subfolder, type} of its saved images/videos."""
        files: dict[str, list[dict]] = {}
        for node_id, out in entry.get("outputs", {}).items():
            for key in ("images", "gifs", "videos", "animated"):
                for item in out.get(key, []) or []:
                    if isinstance(item, dict) and "filename" in item:
                        files.setdefault(node_id, []).append(item)
        return files

    def view(self, item: dict) -> bytes:
        query = urllib.parse.urlencode(
            {"filename": item["filename"], "subfolder": item.get("subfolder", ""), "type": item.get("type", "output")}
        )
        return self.get_bytes(f"/view?{query}")

    def upload(self, path: Path, name: str | None = None, subfolder: str = "") -> str:
        """Upload a file into the server's input folder (the frontend's /upload/image, any file type)."""
        name = name or Path(path).name
        boundary = uuid.uuid4().hex
        fields = [("overwrite", "true"), ("type", "input"), ("subfolder", subfolder)]
        body = b"".join(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode() for k, v in fields
        )
        body += (
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{name}"\r\n'
            f"Content-Type: application/octet-stream\r\n\r\n"
        ).encode() + Path(path).read_bytes()
        body += f"\r\n--{boundary}--\r\n".encode()
        req = urllib.request.Request(
            self.url + "/upload/image", data=body, headers={"Content-Type": f"multipart/form-data; boundary={boundary}"}
        )
        with urllib.request.urlopen(req, timeout=120) as r:
            answer = json.loads(r.read())
        return f"{answer['subfolder']}/{answer['name']}" if answer.get("subfolder") else answer["name"]


class ComfyServer(ComfyClient):
    """A ComfyUI process with its own input/output/user folders under `workdir`."""

    def __init__(
        self,
        workdir: Path,
        extra_model_paths: Path | None = None,
        port: int | None = None,
        comfyui_root: Path | None = None,
    ):
        self.workdir = Path(workdir)
        self.comfyui_root = Path(comfyui_root) if comfyui_root else comfyui_dir()
        self.frontend: Path | None = None  # set at start when COMFYUI_FRONTEND_VERSION asks for one
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.extra_model_paths = extra_model_paths
        self.proc: subprocess.Popen | None = None
        self.log_path = self.workdir / "comfyui.log"
        for sub in ("input", "output", "temp", "user"):
            (self.workdir / sub).mkdir(parents=True, exist_ok=True)

    @property
    def input_dir(self) -> Path:
        return self.workdir / "input"

    @property
    def output_dir(self) -> Path:
        return self.workdir / "output"

    def start(self, timeout: float = 180.0) -> "ComfyServer":
        cmd = [
            str(venv_python()),
            "main.py",
            "--cpu",
            "--listen",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--disable-auto-launch",
            "--output-directory",
            str(self.output_dir),
            "--input-directory",
            str(self.input_dir),
            "--temp-directory",
            str(self.workdir / "temp"),
            "--user-directory",
            str(self.workdir / "user"),
            "--database-url",
            "sqlite:///:memory:",
        ]
        if self.extra_model_paths:
            cmd += ["--extra-model-paths-config", str(self.extra_model_paths)]
        if os.environ.get("COMFYUI_FRONTEND_VERSION"):
            self.frontend = frontend_root(os.environ["COMFYUI_FRONTEND_VERSION"])
            cmd += ["--front-end-root", str(self.frontend)]
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        # MKL picks code paths by memory alignment unless told otherwise: the same PIE edit on the same inputs
        # then ends up to 255 levels apart between two prompts (the filled-weights edit magnifies ULPs), which
        # is what the composite-equals-workflow test saw on one CPU; COMPATIBLE makes runs bit-reproducible
        env.setdefault("MKL_CBWR", "COMPATIBLE")
        self._log_file = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            cmd, cwd=self.comfyui_root, stdout=self._log_file, stderr=subprocess.STDOUT, env=env
        )
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ComfyUI exited with {self.proc.returncode}; log:\n{self.log_text()[-4000:]}")
            try:
                self.get_json("/system_stats")
                return self
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.5)
        self.stop()
        raise TimeoutError(f"ComfyUI did not answer on {self.url} within {timeout}s; log:\n{self.log_text()[-4000:]}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        if getattr(self, "_log_file", None):
            self._log_file.close()

    def __enter__(self) -> "ComfyServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def add_input(self, path: Path, name: str | None = None) -> str:
        name = name or Path(path).name
        shutil.copyfile(path, self.input_dir / name)
        return name


def execution_error_message(entry: dict) -> str:
    for kind, data in entry.get("status", {}).get("messages", []):
        if kind == "execution_error":
            return f"{data.get('node_type')} (node {data.get('node_id')}): {data.get('exception_message', '').strip()}"
    return "execution failed"


def load_workflow(name: str) -> dict:
    path = REPO_ROOT / "workflows" / "api" / f"{name}.json"
    return json.loads(path.read_text())
