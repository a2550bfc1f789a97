"""What the paper runners share: queue a shipped API workflow per sample on one or several ComfyUI servers,
collect the outputs, score them, and keep every finished result on disk.

A runner (scripts/run_face_adapter.py, run_dva.py, run_pie.py) describes its paper with a `Paper`: the samples,
how a sample's prompt is made from the shipped workflow, and how its outputs are scored. `run()` then:

- spreads the samples over the servers (one worker per server, each takes the next pending sample);
- uploads a sample's inputs, queues its prompt (tagged with the sample id in the prompt's extra_data),
  waits, downloads the outputs into ``<out>/outputs/<sample>/`` and scores them;
- appends each finished sample to ``<out>/results.jsonl`` (flushed and synced at once) and rewrites
  ``<out>/samples.csv``, so a killed run loses at most the samples in flight;
- records each queued prompt in ``<out>/queued.jsonl``: a restarted run skips finished samples and picks up a
  prompt still queued or finished on its server instead of queueing it again;
- a server that stops answering has its sample put back for another server, and is probed again later;
- a sample whose workflow fails is tried once more on another server, then recorded as failed.

Only the standard library and the pack's metrics are used: each server is a plain ComfyUI.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import math
import os
import queue
import socket
import threading
import time
import urllib.error
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from comfy_client import ComfyClient, WorkflowError, load_workflow

log = logging.getLogger("facecontrol.run")

SAMPLE_KEY = "facecontrol_sample"
ServerFailure = (urllib.error.URLError, ConnectionError, socket.timeout, TimeoutError, OSError)


# ---------------------------------------------------------------- workflow editing


def nodes_of(prompt: dict, class_type: str) -> list[str]:
    """Ids of the nodes of one class, in id order."""
    return sorted((k for k, v in prompt.items() if v.get("class_type") == class_type), key=_id_key)


def _id_key(node_id: str):
    return (0, int(node_id)) if node_id.isdigit() else (1, node_id)


def title_of(prompt: dict, node_id: str) -> str:
    return prompt[node_id].get("_meta", {}).get("title", "")


def node_titled(prompt: dict, class_type: str, *words: str) -> str:
    """The one node of ``class_type`` whose title holds any of ``words`` (case-insensitive)."""
    found = [n for n in nodes_of(prompt, class_type) if any(w.lower() in title_of(prompt, n).lower() for w in words)]
    if len(found) != 1:
        titles = {n: title_of(prompt, n) for n in nodes_of(prompt, class_type)}
        raise ValueError(f"expected one {class_type} titled with {words}, found {found} among {titles}")
    return found[0]


def one_node(prompt: dict, class_type: str) -> str:
    found = nodes_of(prompt, class_type)
    if len(found) != 1:
        raise ValueError(f"expected one {class_type} node in the workflow, found {found}")
    return found[0]


def consumers(prompt: dict, node_id: str, output: int | None = None) -> list[tuple[str, str]]:
    """(node, input name) pairs fed by ``node_id`` (its output ``output``, or any)."""
    out = []
    for other, spec in prompt.items():
        for name, value in spec.get("inputs", {}).items():
            if (
                isinstance(value, list)
                and len(value) == 2
                and str(value[0]) == node_id
                and (output is None or value[1] == output)
            ):
                out.append((other, name))
    return sorted(out, key=lambda pair: _id_key(pair[0]))


def save_node_fed_by(prompt: dict, class_type: str) -> str:
    """The SaveImage whose images come from the one node of ``class_type``."""
    source = one_node(prompt, class_type)
    saves = [n for n, name in consumers(prompt, source) if prompt[n]["class_type"] == "SaveImage"]
    if not saves:
        raise ValueError(f"no SaveImage is fed by {class_type} (node {source})")
    return saves[0]


def add_save(prompt: dict, source: str, output: int, prefix: str) -> str:
    """Add a SaveImage of ``source``'s output; returns its id."""
    new_id = str(max(int(k) for k in prompt if k.isdigit()) + 1)
    prompt[new_id] = {
        "class_type": "SaveImage",
        "inputs": {"images": [source, output], "filename_prefix": prefix},
        "_meta": {"title": f"runner probe: {prefix}"},
    }
    return new_id


def set_inputs(prompt: dict, class_type: str, **values: Any) -> None:
    """Set widget values on every node of one class (only inputs the node has)."""
    for node_id in nodes_of(prompt, class_type):
        inputs = prompt[node_id]["inputs"]
        for name, value in values.items():
            if name in inputs and not isinstance(inputs[name], list):
                inputs[name] = value


# ---------------------------------------------------------------- samples and papers


@dataclass
class Sample:
    """One unit of work: input files by role, and facts the scores need (labels, requested edits)."""

    id: str
    files: dict[str, str]
    info: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"id": self.id, "files": self.files, "info": self.info}

    @classmethod
    def from_json(cls, data: dict) -> "Sample":
        return cls(data["id"], dict(data["files"]), dict(data.get("info", {})))


class Paper:
    """What a runner says about its paper; see run_face_adapter.py for an example."""

    name = "paper"

    def prompt(self, sample: Sample, uploaded: dict[str, str], server: "Server") -> tuple[dict, dict[str, str]]:
        """The API prompt for a sample and {output role: SaveImage node id}."""
        raise NotImplementedError

    def score(self, sample: Sample, outputs: dict[str, list[Path]]) -> dict[str, Any]:
        """Per-sample numbers from the downloaded outputs (JSON-serialisable)."""
        raise NotImplementedError

    def table(self, rows: list[dict]) -> "Table":
        raise NotImplementedError


@dataclass
class Table:
    title: str
    columns: list[str]  # first column: the row label
    rows: list[list[Any]]
    notes: list[str] = field(default_factory=list)

    def markdown(self) -> str:
        lines = [f"### {self.title}", "", "| " + " | ".join(self.columns) + " |", "|" + "---|" * len(self.columns)]
        lines += ["| " + " | ".join(format_value(v) for v in row) + " |" for row in self.rows]
        return "\n".join(lines + [""] + [f"- {n}" for n in self.notes]) + "\n"

    def csv_rows(self) -> list[list[str]]:
        return [[self.title], self.columns] + [[format_value(v) for v in row] for row in self.rows] + [[]]


def format_value(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        if math.isnan(value):
            return "n/a"
        if math.isinf(value):
            return "inf"
        return f"{value:.4g}" if abs(value) < 1000 else f"{value:.1f}"
    return str(value)


def mean(values: Iterable[Any]) -> float | None:
    finite = [float(v) for v in values if v is not None and isinstance(v, (int, float)) and math.isfinite(float(v))]
    return sum(finite) / len(finite) if finite else None


# ---------------------------------------------------------------- state on disk


class Journal:
    """results.jsonl (finished samples) and queued.jsonl (prompt ids), appended and synced line by line."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self.results_path = out_dir / "results.jsonl"
        self.queued_path = out_dir / "queued.jsonl"
        self.lock = threading.Lock()

    @staticmethod
    def _read(path: Path) -> list[dict]:
        if not path.is_file():
            return []
        rows = []
        for line in path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:  # a line cut by a kill
                log.warning("ignoring a partial line in %s", path)
        return rows

    def results(self) -> dict[str, dict]:
        return {row["sample"]: row for row in self._read(self.results_path)}

    def queued(self) -> dict[str, dict]:
        return {row["sample"]: row for row in self._read(self.queued_path)}

    def _append(self, path: Path, row: dict) -> None:
        with self.lock, open(path, "a") as handle:
            handle.write(json.dumps(row) + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def add_result(self, row: dict) -> None:
        self._append(self.results_path, row)

    def add_queued(self, sample: str, server: str, prompt_id: str) -> None:
        self._append(
            self.queued_path, {"sample": sample, "server": server, "prompt_id": prompt_id, "time": time.time()}
        )


def write_samples_csv(out_dir: Path, rows: list[dict]) -> None:
    keys = sorted({k for row in rows for k in row if not isinstance(row[k], (dict, list))})
    first = [k for k in ("sample", "status", "server", "seconds") if k in keys]
    keys = first + [k for k in keys if k not in first]
    tmp = out_dir / "samples.csv.part"
    with open(tmp, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(keys)
        for row in rows:
            writer.writerow(
                [format_value(row.get(k)) if isinstance(row.get(k), float) else row.get(k, "") for k in keys]
            )
    tmp.replace(out_dir / "samples.csv")


# ---------------------------------------------------------------- servers


class Server(ComfyClient):
    """A ComfyUI server the runner sends samples to; it may die and come back."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.uploaded: set[str] = set()
        self._object_info: dict[str, dict] = {}

    def alive(self) -> bool:
        try:
            self.get_json("/system_stats")
            return True
        except ServerFailure:
            return False

    def node_info(self, class_type: str) -> dict:
        if class_type not in self._object_info:
            self._object_info[class_type] = self.get_json(f"/object_info/{class_type}").get(class_type, {})
        return self._object_info[class_type]

    def prompt_state(self, prompt_id: str) -> str:
        """'success', 'error', 'queued' (pending or running) or 'lost' (the server does not know it)."""
        entry = self.get_json(f"/history/{prompt_id}").get(prompt_id)
        if entry and entry.get("status", {}).get("status_str") in ("success", "error"):
            return entry["status"]["status_str"]
        pending = self.get_json("/queue")
        for item in pending.get("queue_running", []) + pending.get("queue_pending", []):
            if len(item) > 1 and item[1] == prompt_id:
                return "queued"
        return "queued" if entry else "lost"

    def finish(self, prompt_id: str, timeout: float) -> dict | None:
        """The history entry once the prompt is done; None when the server lost it (restarted)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            state = self.prompt_state(prompt_id)
            if state == "lost":
                return None
            if state in ("success", "error"):
                entry = self.get_json(f"/history/{prompt_id}")[prompt_id]
                if state == "error":
                    from comfy_client import execution_error_message

                    raise WorkflowError(execution_error_message(entry), entry)
                return entry
            time.sleep(0.5)
        raise TimeoutError(f"prompt {prompt_id} did not finish within {timeout:.0f}s on {self.url}")


# ---------------------------------------------------------------- the run


@dataclass
class Settings:
    out_dir: Path
    servers: list[str]
    timeout: float = 3600.0
    retry_failed: bool = False
    probe_every: float = 10.0
    give_up_after: float = 600.0  # no server alive for this long: stop


class Runner:
    def __init__(self, paper: Paper, samples: list[Sample], settings: Settings) -> None:
        self.paper, self.settings = paper, settings
        self.samples = {s.id: s for s in samples}
        self.out_dir = settings.out_dir
        self.journal = Journal(self.out_dir)
        self.servers = [Server(url) for url in settings.servers]
        self.pending: queue.Queue = queue.Queue()
        self.attempts: dict[str, list[str]] = {}
        self.unhealthy: set[str] = set()
        self.score_lock = threading.Lock()
        self.done = 0
        self.stop = threading.Event()
        self.bar = None

    # -- bookkeeping

    def finished(self) -> dict[str, dict]:
        rows = self.journal.results()
        if self.settings.retry_failed:
            rows = {k: v for k, v in rows.items() if v.get("status") == "ok"}
        return {k: v for k, v in rows.items() if k in self.samples}

    def _record(self, row: dict) -> None:
        self.journal.add_result(row)
        write_samples_csv(self.out_dir, list(self.journal.results().values()))
        with self.score_lock:
            self.done += 1
            if self.bar is not None:
                self.bar.update(1)
                self.bar.set_postfix_str(f"last {row['sample']} on {row.get('server', '?')}")
            else:
                log.info("%d/%d done (%s)", self.done + self.skipped, len(self.samples), row["sample"])

    # -- one sample on one server

    def _upload(self, server: Server, sample: Sample) -> dict[str, str]:
        names = {}
        for role, path in sample.files.items():
            name = f"{self.paper.name}_{sample.id}_{role}{Path(path).suffix}".replace("/", "_")
            if name not in server.uploaded:
                name = server.upload(Path(path), name)
                server.uploaded.add(name)
            names[role] = name
        return names

    def _download(self, server: Server, sample: Sample, entry: dict, saves: dict[str, str]) -> dict[str, list[Path]]:
        folder = self.out_dir / "outputs" / sample.id
        folder.mkdir(parents=True, exist_ok=True)
        files = server.output_files(entry)
        out: dict[str, list[Path]] = {}
        for role, node_id in saves.items():
            items = files.get(node_id, [])
            if not items:
                raise WorkflowError(f"the {role} output (SaveImage {node_id}) saved nothing", entry)
            paths = []
            for index, item in enumerate(items):
                path = folder / f"{role}_{index:04d}{Path(item['filename']).suffix}"
                path.write_bytes(server.view(item))
                paths.append(path)
            out[role] = paths
        return out

    def _run_on(self, server: Server, sample: Sample, reattach: dict | None) -> dict:
        start = time.time()
        prompt, saves = self.paper.prompt(sample, self._upload(server, sample), server)
        entry = None
        if reattach is not None:
            entry = server.finish(reattach["prompt_id"], self.settings.timeout)
            if entry is not None:
                log.info("%s: picked up prompt %s finished on %s", sample.id, reattach["prompt_id"], server.url)
        if entry is None:
            prompt_id = server.queue(prompt, {SAMPLE_KEY: sample.id})
            self.journal.add_queued(sample.id, server.url, prompt_id)
            entry = server.finish(prompt_id, self.settings.timeout)
            if entry is None:
                raise ConnectionError(f"{server.url} lost prompt {prompt_id} (restarted?)")
        outputs = self._download(server, sample, entry, saves)
        with self.score_lock:
            scores = self.paper.score(sample, outputs)
        return {
            "sample": sample.id,
            "status": "ok",
            "server": server.url,
            "seconds": round(time.time() - start, 1),
            **scores,
            "outputs": {k: [str(p.relative_to(self.out_dir)) for p in v] for k, v in outputs.items()},
        }

    def _worker(self, server: Server) -> None:
        while not self.stop.is_set():
            try:
                sample, reattach = self.pending.get(timeout=0.5)
            except queue.Empty:
                if self._all_done():
                    return
                continue
            if reattach is not None and reattach["server"] in self.unhealthy:
                reattach = None  # its server is down: queue it afresh wherever
            if reattach is not None and reattach["server"] != server.url:
                self.pending.put((sample, reattach))  # its server's worker picks it up
                time.sleep(0.2)
                continue
            tried = self.attempts.setdefault(sample.id, [])
            others = [s for s in self.servers if s is not server and s.url not in self.unhealthy]
            if server.url in tried and any(s.url not in tried for s in others):
                self.pending.put((sample, None))
                time.sleep(0.2)
                continue
            try:
                row = self._run_on(server, sample, reattach)
            except WorkflowError as error:
                tried.append(server.url)
                if len(tried) < min(2, len(self.servers)):
                    log.warning("%s failed on %s (%s); trying another server", sample.id, server.url, error)
                    self.pending.put((sample, None))
                else:
                    self._record(
                        {"sample": sample.id, "status": "failed", "server": server.url, "error": str(error)[:2000]}
                    )
                continue
            except ServerFailure as error:
                log.warning(
                    "server %s failed on %s (%s): the sample goes back to the queue", server.url, sample.id, error
                )
                self.unhealthy.add(server.url)
                self.pending.put((sample, None))
                if not self._wait_until_alive(server):
                    return
                self.unhealthy.discard(server.url)
                continue
            self._record(row)

    def _wait_until_alive(self, server: Server) -> bool:
        """Probe a failed server until it answers again (or every sample is done)."""
        while not self.stop.is_set():
            if self._all_done():
                return False
            if server.alive():
                log.info("server %s answers again", server.url)
                return True
            time.sleep(self.settings.probe_every)
        return False

    def _all_done(self) -> bool:
        return self.done + self.skipped >= len(self.samples)

    # -- the whole run

    def run(self) -> list[dict]:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        finished = self.finished()
        self.skipped = len(finished)
        queued = self.journal.queued()
        live = {s.url for s in self.servers if s.alive()}
        for sample_id, sample in self.samples.items():
            if sample_id in finished:
                continue
            previous = queued.get(sample_id)
            self.pending.put((sample, previous if previous and previous["server"] in live else None))
        log.info(
            "%s: %d samples, %d already finished, %d to run on %d server(s)",
            self.paper.name,
            len(self.samples),
            self.skipped,
            len(self.samples) - self.skipped,
            len(self.servers),
        )
        self._open_bar()
        threads = [threading.Thread(target=self._worker, args=(s,), daemon=True) for s in self.servers]
        for thread in threads:
            thread.start()
        self._watch(threads)
        if self.bar is not None:
            self.bar.close()
        return [row for row in self.journal.results().values() if row["sample"] in self.samples]

    def _watch(self, threads: list[threading.Thread]) -> None:
        dead_since = None
        while any(t.is_alive() for t in threads) and not self._all_done():
            time.sleep(1.0)
            if any(s.alive() for s in self.servers):
                dead_since = None
            elif dead_since is None:
                dead_since = time.time()
            elif time.time() - dead_since > self.settings.give_up_after:
                self.stop.set()
                raise RuntimeError(
                    f"no server has answered for {self.settings.give_up_after:.0f}s; run again to resume"
                )
        self.stop.set()
        for thread in threads:
            thread.join(timeout=5)

    def _open_bar(self) -> None:
        try:
            from tqdm import tqdm
        except ImportError:
            return
        self.bar = tqdm(
            total=len(self.samples), initial=self.skipped, desc=self.paper.name, unit="sample", dynamic_ncols=True
        )


# ---------------------------------------------------------------- command line and outputs


def common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", type=Path, required=True, help="the dataset folder (see the runner's docstring)")
    parser.add_argument("--out", type=Path, required=True, help="results folder; run again with the same to resume")
    parser.add_argument(
        "--server",
        action="append",
        dest="servers",
        default=[],
        help="a ComfyUI address (repeat for several; default http://127.0.0.1:8188)",
    )
    parser.add_argument(
        "--models-dir",
        type=Path,
        action="append",
        default=[],
        help="a ComfyUI models folder holding the metric networks (repeatable)",
    )
    parser.add_argument("--identity", default="dlib", help="identity network: dlib, ir_se50 or arcface_r100")
    parser.add_argument(
        "--weights-label",
        default="",
        help="what the servers' weights are, printed above the table "
        "(e.g. 'filled test weights'); the metric networks are checked against the manifest",
    )
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds one sample may take")
    parser.add_argument("--retry-failed", action="store_true", help="run again the samples recorded as failed")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sample choice")
    parser.add_argument("-v", "--verbose", action="store_true")


def resolver(models_dirs: list[Path]) -> Callable[[str], Path]:
    """A manifest-name resolver over ComfyUI models folders (then package copies)."""
    import facecontrol.model_files as mf

    folders: dict[str, list[Path]] = {}
    for root in models_dirs:
        for key, paths in mf.default_folders(root).items():
            folders.setdefault(key, []).extend(paths)
            folders[key].append(root / key)
    return lambda name: mf.resolve(name, folders)


def weights_notes(resolve: Callable[[str], Path], used: list[str], label: str) -> list[str]:
    """Where the numbers come from: the servers' weights as the user says, the metric files as the manifest says."""
    import facecontrol.model_files as mf

    notes = [f"Weights on the servers: {label}." if label else "Weights on the servers: not stated (--weights-label)."]
    for name in used:
        try:
            path = resolve(name)
        except mf.ModelFileNotFound:
            notes.append(f"{name}: not found, so its metric is not reported")
            continue
        entry = mf.get_entry(name)
        if entry.sha256 and not mf.verify_sha256(path, entry.sha256):
            notes.append(
                f"{name}: NOT the released file (sha256 differs from the manifest): numbers are not the paper's kind"
            )
        elif not entry.sha256:
            notes.append(f"{name}: {path.name} (no sha256 in the manifest to check it against)")
        else:
            notes.append(f"{name}: the released file (sha256 checked)")
    return notes


def write_tables(out_dir: Path, tables: list[Table], header: list[str]) -> str:
    text = "\n".join(f"{line}" for line in header) + "\n\n" + "\n".join(t.markdown() for t in tables)
    (out_dir / "table.md").write_text(text)
    with open(out_dir / "table.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        for line in header:
            writer.writerow([line])
        for table in tables:
            writer.writerows(table.csv_rows())
    return text


def load_plan(out_dir: Path, make: Callable[[], list[Sample]]) -> list[Sample]:
    """The samples of this results folder: chosen once, kept in plan.json so a resumed run runs the same ones."""
    path = out_dir / "plan.json"
    if path.is_file():
        return [Sample.from_json(s) for s in json.loads(path.read_text())]
    samples = make()
    if not samples:
        raise SystemExit("the dataset gave no samples")
    out_dir.mkdir(parents=True, exist_ok=True)
    path.with_suffix(".part").write_text(json.dumps([s.to_json() for s in samples], indent=1))
    path.with_suffix(".part").replace(path)
    return samples


def main_run(
    paper: Paper, args: argparse.Namespace, make_samples: Callable[[], list[Sample]], header: list[str]
) -> int:
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    samples = load_plan(args.out, make_samples)
    settings = Settings(args.out, args.servers or ["http://127.0.0.1:8188"], args.timeout, args.retry_failed)
    rows = Runner(paper, samples, settings).run()
    text = write_tables(args.out, paper.table(rows), header)
    if isinstance(getattr(paper, "nets", None), Networks):
        paper.nets.close()
    print(text)
    failed = [r["sample"] for r in rows if r.get("status") != "ok"]
    if failed:
        log.warning("%d sample(s) failed: %s (see %s)", len(failed), ", ".join(failed[:10]), args.out / "results.jsonl")
    return 0 if len(rows) == len(samples) else 1


def image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".bmp", ".webp"))


def default_workflow(name: str) -> dict:
    return load_workflow(name)


# ---------------------------------------------------------------- networks for scoring, loaded once


class Networks:
    """The metric networks, loaded on first use from the models folders (``--models-dir``) or package copies."""

    def __init__(self, resolve: Callable[[str], Path], identity: str) -> None:
        self.resolve, self.identity_kind = resolve, identity
        self._cache: dict[str, Any] = {}
        self.missing: dict[str, str] = {}

    def _get(self, key: str, build: Callable[[], Any]) -> Any:
        if key not in self._cache:
            import facecontrol.model_files as mf

            try:
                self._cache[key] = build()
            except (mf.ModelFileNotFound, FileNotFoundError) as error:
                self.missing[key] = str(error).splitlines()[0]
                log.warning("%s unavailable: %s", key, self.missing[key])
                self._cache[key] = None
        return self._cache[key]

    @property
    def detector(self):
        import facecontrol.model_names as names
        from facecontrol.face.detect_mediapipe import MediaPipeFaceDetector

        return self._get("face detector", lambda: MediaPipeFaceDetector(self.resolve(names.MEDIAPIPE_LANDMARKER)))

    @property
    def identity(self):
        from facecontrol.pipelines import metrics

        return self._get("identity", lambda: metrics.load_identity_net(self.identity_kind, self.resolve))

    @property
    def lpips(self):
        from facecontrol.pipelines import metrics

        return self._get("LPIPS", lambda: metrics.load_lpips_net(self.resolve))

    @property
    def fid(self):
        from facecontrol.pipelines import metrics

        return self._get("FID Inception", lambda: metrics.load_fid_net(self.resolve))

    @property
    def d3dfr(self):
        from facecontrol.pipelines import metrics

        return self._get("D3DFR", lambda: metrics.load_face_adapter_d3dfr(self.resolve))

    @property
    def ict(self):
        import facecontrol.model_names as names
        from facecontrol.face.ict_model import load_ict_model

        return self._get("ICT-FaceKit", lambda: load_ict_model(self.resolve(names.ICT_LANDMARK_MODEL)))

    def face(self, rgb: "Any"):
        """The largest face of one RGB image as a one-frame FaceSet, or None."""
        from facecontrol.face.select import Selection, detect_face_set

        faces = detect_face_set(rgb[None], self.detector, Selection(), track=False)
        return None if faces.missing else faces

    def close(self) -> None:
        detector = self._cache.get("face detector")
        if detector is not None:
            detector.close()


def read_rgb(path: Path | str):
    import cv2

    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"cannot read the image {path}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def to_unit(rgb):
    import torch

    return torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255.0
