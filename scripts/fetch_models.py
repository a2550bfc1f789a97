#!/usr/bin/env python
"""Download the FaceControl model files that are missing, verifying each one.

    python scripts/fetch_models.py --models-dir <ComfyUI>/models [--paper face_adapter|dva|pie|faces]
                                   [--only NAME ...] [--with-optional] [--list] [--manifest PATH]
                                   [--allow-unverified]

Files go to <models-dir>/<folder>/<path> as listed in model_manifest.json. A file that is already present in
any of its locations (or shipped by an installed package) and verifies is left alone.

Every file is verified by size and sha256 before it is installed: against the manifest, and for Hugging Face
files also against the hub's own metadata (the sha256 and size of each LFS file, the git blob hash of small
files), read with huggingface_hub from --hf-endpoint. A file for which no checksum is known anywhere (Google
Drive files, for one) is refused before anything is downloaded, unless --allow-unverified is given.

Each download is written to a hidden ``.<name>.*.part`` file beside its target, never longer than the expected
size, checked and only then renamed into place; on any failure the partial file is deleted, and partial files
that a killed run left behind are removed on the next run. Nothing is resumed.

Exit status: 0 when every selected file is in place and verified, 1 when something failed or was refused,
2 when only manual steps remain.
"""

from __future__ import annotations

import argparse
import hashlib
import html.parser
import http.client
import http.cookiejar
import importlib.util
import logging
import os
import shutil
import sys
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, BinaryIO, Callable, Iterable, Mapping, Sequence

PACK_DIR = Path(__file__).resolve().parent.parent
DEFAULT_HF_ENDPOINT = "https://huggingface.co"
DEFAULT_GDRIVE_URL = "https://drive.google.com/uc"
USER_AGENT = "FaceControl-fetch-models/1 (+python urllib)"
CHUNK = 1 << 20
MAX_PAGE_BYTES = 2 << 20

logger = logging.getLogger("fetch_models")


def _load_model_files() -> ModuleType:
    """The pack's model_files module, from this checkout (the pack root is never put on sys.path)."""
    try:
        from facecontrol import model_files  # installed (editable) package

        if Path(model_files.__file__).resolve().parent == PACK_DIR:
            return model_files
    except ImportError:
        pass
    name = "_facecontrol_model_files"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, PACK_DIR / "model_files.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


mf = _load_model_files()


class FetchError(Exception):
    """A file could not be fetched."""


class VerificationError(FetchError):
    """A fetched file does not match its size or checksum."""


class ManualStepRequired(FetchError):
    """The file cannot be fetched automatically; the message says what to do."""


class UnverifiableFile(FetchError):
    """No checksum is known for the file, and --allow-unverified was not given."""


@dataclass(frozen=True)
class Expected:
    """What a file must be: its sha256 (or, for a small file on the hub, its git blob sha1) and size."""

    sha256: str | None = None
    size: int | None = None
    git_sha1: str | None = None
    content_sha256: str | None = None
    source: str = "manifest"

    @property
    def checkable(self) -> bool:
        return bool(self.sha256 or self.git_sha1)

    @classmethod
    def of(cls, entry: Any) -> "Expected":
        return cls(entry.sha256, entry.size, None, entry.content_sha256, "manifest")


@dataclass
class Outcome:
    name: str
    status: str  # present | downloaded | built | failed | refused | manual | skipped
    path: Path | None = None
    message: str = ""


@dataclass
class FetchContext:
    models_dir: Path
    work_dir: Path
    hf_endpoint: str = DEFAULT_HF_ENDPOINT
    gdrive_url: str = DEFAULT_GDRIVE_URL
    timeout: float = 60.0
    allow_unverified: bool = False
    cookies: http.cookiejar.CookieJar = field(default_factory=http.cookiejar.CookieJar)
    cache: dict[Any, Path] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.cookies))

    def open(self, url: str):
        request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
        try:
            return self.opener.open(request, timeout=self.timeout)
        except urllib.error.HTTPError as error:
            error.close()
            raise HttpError(error.code, f"HTTP {error.code} {error.reason} for {url}") from None
        except (urllib.error.URLError, OSError) as error:
            raise FetchError(f"could not reach {url}: {error}") from None


class HttpError(FetchError):
    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code


# ----------------------------------------------------------------------------------------------- targets


def target_path(entry: Any, models_dir: Path, relative: str | None = None) -> Path:
    return models_dir / mf.folder_subdir(entry.folder) / (relative or entry.path)


def existing_copy(entry: Any, models_dir: Path) -> Path | None:
    """A copy already in any of the entry's locations under models_dir, or shipped by a package."""
    folders = mf.default_folders(models_dir, sorted({loc.folder for loc in entry.locations()}))
    for path in mf.candidate_paths(entry, folders) + mf.package_copy_paths(entry):
        if path.is_file():
            return path
    return None


def git_blob_sha1(path: Path) -> str:
    """The hash git (and so the Hugging Face hub) gives a small, non-LFS file: sha1 of 'blob <size>\\0' + bytes."""
    digest = hashlib.sha1(f"blob {path.stat().st_size}\0".encode())
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify(path: Path, expected: Expected, name: str | None = None) -> str:
    """Check size and checksum; returns how the file was verified. Raises VerificationError naming `name`."""
    name = name or path.name
    if expected.size is not None and path.stat().st_size != expected.size:
        raise VerificationError(
            f"{name}: size {path.stat().st_size} bytes, expected {expected.size} ({expected.source})"
        )
    if expected.sha256:
        if mf.verify_sha256(path, expected.sha256):
            return f"sha256 ({expected.source})"
        if (
            expected.content_sha256
            and zipfile.is_zipfile(path)
            and mf.zip_content_sha256(path) == expected.content_sha256
        ):
            return "content_sha256 (same arrays, different compression)"
        raise VerificationError(
            f"{name}: sha256 {mf.file_sha256(path)} does not match the expected {expected.sha256} ({expected.source})"
        )
    if expected.git_sha1:
        actual = git_blob_sha1(path)
        if actual != expected.git_sha1:
            raise VerificationError(
                f"{name}: git blob sha1 {actual} does not match the expected {expected.git_sha1} ({expected.source})"
            )
        return f"git blob sha1 ({expected.source})"
    return "UNVERIFIED (no checksum known" + (", size only)" if expected.size is not None else ")")


def require_checkable(entry: Any, expected: Expected, ctx: FetchContext) -> None:
    if expected.checkable or ctx.allow_unverified:
        return
    why = entry.extra.get("verification") or "no sha256 is known for it and its source publishes none"
    raise UnverifiableFile(
        f"{entry.name} cannot be verified ({why}); refusing to install it. Check the file yourself and pass "
        "--allow-unverified to install it anyway, or place a copy you trust at its path."
    )


def remove_stale_parts(target: Path) -> None:
    """Partial downloads of this target that an earlier, killed run left behind."""
    if not target.parent.is_dir():
        return
    for stale in target.parent.glob(f".{target.name}.*.part"):
        logger.info("removing a partial download left by an earlier run: %s", stale)
        stale.unlink(missing_ok=True)


def install(produce: Callable[[BinaryIO], None], target: Path, expected: Expected) -> str:
    """Write through `produce` into a temporary file beside target, verify it, then rename it into place."""
    created = [p for p in (target.parent, *target.parent.parents) if not p.exists()]
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_parts(target)
    handle, temp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    temp = Path(temp_name)
    try:
        with os.fdopen(handle, "wb") as out:
            produce(out)
        how = verify(temp, expected, target.name)
        os.replace(temp, target)
        return how
    except BaseException:
        temp.unlink(missing_ok=True)
        _remove_empty(created)
        raise


def _remove_empty(folders: Sequence[Path]) -> None:
    """Remove folders this run created (deepest first) when a failed fetch left them empty."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            return


# ------------------------------------------------------------------------------------------- downloading


def is_html(response) -> bool:
    return response.headers.get_content_type() in ("text/html", "application/xhtml+xml")


def copy_response(response, out: BinaryIO, url: str, expected_size: int | None = None) -> int:
    """Stream a response into out. A short body (fewer bytes than Content-Length), a Content-Length that is not
    the expected size, or a body running past the expected size is an error."""
    announced = response.headers.get("Content-Length")
    if expected_size is not None and announced is not None and announced.isdigit() and int(announced) != expected_size:
        response.close()
        raise FetchError(f"{url} announces {announced} bytes, but the file is {expected_size} bytes")
    written = 0
    read = getattr(response, "read1", response.read)  # what has arrived, so the partial file grows as it comes
    with response:
        for chunk in iter(lambda: read(CHUNK), b""):
            written += len(chunk)
            if expected_size is not None and written > expected_size:
                raise FetchError(f"{url} sent more than the {expected_size} bytes the file has")
            out.write(chunk)
    if announced is not None and announced.isdigit() and written != int(announced):
        raise FetchError(f"download of {url} was cut short: {written} of {announced} bytes")
    if expected_size is not None and written != expected_size:
        raise FetchError(f"download of {url} ended after {written} of {expected_size} bytes (cut short)")
    return written


def open_binary(url: str, ctx: FetchContext, allow_html: bool = False):
    response = ctx.open(url)
    if is_html(response) and not allow_html:
        response.close()
        raise FetchError(f"{url} sent a web page instead of the file (a login, quota or moved-file page)")
    return response


class _DrivePageParser(html.parser.HTMLParser):
    """Collects the confirm form (action + inputs) and confirm links of a Google Drive warning page."""

    def __init__(self) -> None:
        super().__init__()
        self.form_action: str | None = None
        self.inputs: dict[str, str] = {}
        self.confirm_links: list[str] = []
        self._in_form = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if (
            tag == "form"
            and self.form_action is None
            and "download" in (values.get("id", "") + values.get("action", ""))
        ):
            self.form_action = values.get("action", "")
            self._in_form = True
        elif tag == "input" and self._in_form and values.get("name"):
            self.inputs[values["name"]] = values.get("value", "")
        elif tag == "a" and "confirm=" in values.get("href", ""):
            self.confirm_links.append(values["href"])

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._in_form = False


def drive_confirm_url(page: str, page_url: str, cookies: Iterable[http.cookiejar.Cookie]) -> str | None:
    """The URL that confirms a large-file download, from the warning page or its cookie; None if there is none."""
    parser = _DrivePageParser()
    parser.feed(page)
    if parser.form_action is not None and parser.inputs:
        action = urllib.parse.urljoin(page_url, parser.form_action)
        return f"{action}?{urllib.parse.urlencode(parser.inputs)}"
    if parser.confirm_links:
        return urllib.parse.urljoin(page_url, parser.confirm_links[0])
    for cookie in cookies:
        if cookie.name.startswith("download_warning"):
            return f"{page_url}&confirm={urllib.parse.quote(cookie.value)}"
    return None


def drive_manual_message(file_id: str, target: Path) -> str:
    return (
        f"Google Drive did not hand out file {file_id} automatically (quota exceeded, sign-in or a changed page). "
        f"Open https://drive.google.com/file/d/{file_id}/view in a browser, download it and save it as {target}"
    )


def open_drive(file_id: str, ctx: FetchContext, target: Path):
    """Open a Google Drive file, going through the large-file confirm page when Drive shows one."""
    url = f"{ctx.gdrive_url}?{urllib.parse.urlencode({'export': 'download', 'id': file_id})}"
    response = open_binary(url, ctx, allow_html=True)
    if not is_html(response):
        return response
    with response:
        page = response.read(MAX_PAGE_BYTES).decode("utf-8", "replace")
    confirm = drive_confirm_url(page, response.geturl(), ctx.cookies)
    if confirm is None:
        raise ManualStepRequired(drive_manual_message(file_id, target))
    logger.info("Google Drive asked to confirm the download of %s; confirming", file_id)
    response = open_binary(confirm, ctx, allow_html=True)
    if is_html(response):
        response.close()
        raise ManualStepRequired(drive_manual_message(file_id, target))
    return response


def hf_url(ctx: FetchContext, repo: str, path: str, revision: str = "main") -> str:
    return f"{ctx.hf_endpoint.rstrip('/')}/{repo}/resolve/{revision}/{urllib.parse.quote(path)}"


def hub_expected(ctx: FetchContext, repo: str, path: str, revision: str, known: Expected) -> tuple[Expected, str]:
    """The hub's metadata for one file (huggingface_hub, at ctx.hf_endpoint), checked against the manifest's.

    Returns what the file must be and the commit to download it from. Raises HttpError(404) for a missing file."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_url
    from huggingface_hub.utils import HfHubHTTPError

    url = hf_hub_url(repo, path, revision=revision, endpoint=ctx.hf_endpoint.rstrip("/"))
    try:
        meta = get_hf_file_metadata(url, timeout=ctx.timeout)
    except HfHubHTTPError as error:
        code = getattr(getattr(error, "response", None), "status_code", None) or 0
        raise HttpError(int(code), f"HTTP {code} from the hub for {repo}/{path}") from None
    except Exception as error:  # noqa: BLE001 - network errors of httpx, offline mode, ...
        raise FetchError(
            f"could not read the hub's metadata for {repo}/{path}: {type(error).__name__}: {error}"
        ) from None
    etag = (meta.etag or "").lower()
    hub_sha256 = etag if len(etag) == 64 and all(c in "0123456789abcdef" for c in etag) else None
    hub_sha1 = etag if len(etag) == 40 and all(c in "0123456789abcdef" for c in etag) else None
    if known.sha256 and hub_sha256 and known.sha256.lower() != hub_sha256:
        raise VerificationError(
            f"the hub's {repo}/{path} has sha256 {hub_sha256}, not the {known.sha256} this pack "
            "was made for: the file was changed; refusing it"
        )
    if known.size is not None and meta.size is not None and known.size != meta.size:
        raise VerificationError(f"the hub's {repo}/{path} is {meta.size} bytes, not the {known.size} this pack expects")
    expected = Expected(
        known.sha256 or hub_sha256,
        known.size if known.size is not None else meta.size,
        None if (known.sha256 or hub_sha256) else hub_sha1,
        known.content_sha256,
        known.source if known.sha256 else "the hub's metadata",
    )
    return expected, meta.commit_hash or revision


def hf_candidates(entry: Any) -> list[tuple[str, str]]:
    """(file in the repo, relative target path) pairs: the file, then its fallback names."""
    source = entry.source
    fallbacks = list(source.get("fallback_paths", []))
    return list(zip([source["path"], *fallbacks], [entry.path, *fallbacks]))


def fetch_hf(entry: Any, ctx: FetchContext) -> Outcome:
    """A Hugging Face file: the hub's metadata first (trying fallback names on a 404), then the verified download."""
    source = entry.source
    last_error: FetchError | None = None
    for path, relative in hf_candidates(entry):
        known = Expected.of(entry) if relative == entry.path else Expected()
        try:
            expected, commit = hub_expected(ctx, source["hf_repo"], path, source.get("revision", "main"), known)
        except HttpError as error:
            last_error = error
            if error.code == 404:
                continue
            raise
        require_checkable(entry, expected, ctx)
        url = hf_url(ctx, source["hf_repo"], path, commit)
        target = target_path(entry, ctx.models_dir, relative)
        logger.info("downloading %s -> %s", url, target)

        def download(out, url=url, expected=expected):
            return copy_response(open_binary(url, ctx), out, url, expected.size)

        how = install(download, target, expected)
        return Outcome(entry.name, "downloaded", target, f"verified by {how}")
    raise last_error or FetchError("no file to try")


def fetch_direct(entry: Any, ctx: FetchContext) -> Outcome:
    """Download a file from its URL, verified against the manifest."""
    expected = Expected.of(entry)
    require_checkable(entry, expected, ctx)
    url = entry.source["url"]
    target = target_path(entry, ctx.models_dir)
    logger.info("downloading %s -> %s", url, target)
    how = install(lambda out: copy_response(open_binary(url, ctx), out, url, expected.size), target, expected)
    return Outcome(entry.name, "downloaded", target, f"verified by {how}")


def fetch_drive(entry: Any, ctx: FetchContext) -> Outcome:
    expected = Expected.of(entry)
    require_checkable(entry, expected, ctx)
    target = target_path(entry, ctx.models_dir)
    file_id = entry.source["gdrive_id"]
    logger.info("downloading Google Drive file %s -> %s", file_id, target)
    how = install(
        lambda out: copy_response(open_drive(file_id, ctx, target), out, file_id, expected.size), target, expected
    )
    return Outcome(entry.name, "downloaded", target, f"verified by {how}")


# ------------------------------------------------------------------------------------ archives and builds


def download_to_work(key: str, open_response: Callable[[], Any], ctx: FetchContext, suffix: str) -> Path:
    """Download a shared archive once per run into the work dir."""
    if key in ctx.cache:
        return ctx.cache[key]
    path = ctx.work_dir / f"archive{len(ctx.cache)}{suffix}"
    logger.info("downloading archive %s", key)
    try:
        with open(path, "wb") as out:
            copy_response(open_response(), out, key)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    ctx.cache[key] = path
    return path


def archive_of(entry: Any, ctx: FetchContext) -> Path:
    source = entry.source
    suffix = ".tar.gz" if str(source.get("url", "")).endswith((".tar.gz", ".tgz")) else ".zip"
    if "gdrive_id" in source:
        target = target_path(entry, ctx.models_dir).parent / source.get("archive_name", "archive.zip")
        return download_to_work(
            f"gdrive:{source['gdrive_id']}", lambda: open_drive(source["gdrive_id"], ctx, target), ctx, suffix
        )
    return download_to_work(source["url"], lambda: open_binary(source["url"], ctx), ctx, suffix)


def fetch_archive_member(entry: Any, ctx: FetchContext) -> Outcome:
    """Take one member (matched by file name) out of a zip archive that holds several model files."""
    expected = Expected.of(entry)
    require_checkable(entry, expected, ctx)
    archive = archive_of(entry, ctx)
    member_name = entry.source["member"]
    target = target_path(entry, ctx.models_dir)
    with zipfile.ZipFile(archive) as bundle:
        members = [m for m in bundle.namelist() if Path(m).name == member_name and not m.endswith("/")]
        if not members:
            raise FetchError(f"{member_name} is not in the archive (it holds {', '.join(bundle.namelist())})")

        def extract(out: BinaryIO) -> None:
            with bundle.open(members[0]) as stream:
                shutil.copyfileobj(stream, out, CHUNK)

        how = install(extract, target, expected)
    return Outcome(entry.name, "downloaded", target, f"from {members[0]}, verified by {how}")


def unpack(archive: Path, destination: Path) -> Path:
    """Unpack a zip or tar archive, refusing members that would land outside destination."""
    destination.mkdir(parents=True, exist_ok=True)
    root = destination.resolve()
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as bundle:
            for member in bundle.namelist():
                if not (root / member).resolve().is_relative_to(root):
                    raise FetchError(f"archive member {member!r} points outside the unpack folder")
            bundle.extractall(root)
    else:
        with tarfile.open(archive) as bundle:
            for member in bundle.getmembers():
                unsafe = member.issym() or member.islnk() or member.isdev()
                if unsafe or not (root / member.name).resolve().is_relative_to(root):
                    raise FetchError(f"archive member {member.name!r} is a link or points outside the unpack folder")
            bundle.extractall(root)
    return root


def find_dir_containing(root: Path, marker: str) -> Path:
    """The folder holding `marker`: the root itself or one of its subfolders (GitHub archives add one level)."""
    for candidate in [root, *sorted(p for p in root.rglob("*") if p.is_dir())]:
        if (candidate / marker).exists():
            return candidate
    raise FetchError(f"no folder containing {marker} in the unpacked archive")


def load_builder(spec: str) -> Callable[[Path, Path], Any]:
    """Load `scripts/<file>.py:function` from this pack by file path."""
    relative, _, function = spec.partition(":")
    path = PACK_DIR / relative
    if not path.is_file():
        raise FetchError(f"the builder {relative} is missing from this pack, so the file cannot be built")
    module_spec = importlib.util.spec_from_file_location(f"_facecontrol_builder_{path.stem}", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return getattr(module, function)


def build_outputs(entry: Any, ctx: FetchContext) -> Path:
    """Download the kit's archive, unpack it and run the builder once per run; returns the output folder."""
    source = entry.source
    key = ("build", source["build"], source.get("commit"))
    if key in ctx.cache:
        return ctx.cache[key]
    archive = archive_of(entry, ctx)
    kit_root = unpack(archive, ctx.work_dir / f"{source['build']}_kit")
    kit_dir = find_dir_containing(kit_root, source.get("marker", "FaceXModel"))
    out_dir = ctx.work_dir / f"{source['build']}_out"
    out_dir.mkdir(parents=True, exist_ok=True)
    logger.info("building %s from %s", source["build"], kit_dir)
    load_builder(source["builder"])(kit_dir, out_dir)
    ctx.cache[key] = out_dir
    return out_dir


def fetch_built(entry: Any, ctx: FetchContext) -> Outcome:
    expected = Expected.of(entry)
    require_checkable(entry, expected, ctx)
    built = build_outputs(entry, ctx) / entry.filename
    if not built.is_file():
        raise FetchError(f"the builder did not write {entry.filename}")
    target = target_path(entry, ctx.models_dir)

    def copy(out: BinaryIO) -> None:
        with open(built, "rb") as stream:
            shutil.copyfileobj(stream, out, CHUNK)

    how = install(copy, target, expected)
    return Outcome(entry.name, "built", target, f"verified by {how}")


# ------------------------------------------------------------------------------------------------ driver


def fetch_entry(entry: Any, ctx: FetchContext) -> Outcome:
    """Make one manifest entry present under ctx.models_dir; never raises for a failed fetch."""
    present = existing_copy(entry, ctx.models_dir)
    if present is not None:
        try:
            how = verify(present, Expected.of(entry))
        except VerificationError as error:
            return Outcome(
                entry.name, "failed", present, f"present but does not verify: {error}; move it away to fetch again"
            )
        return Outcome(entry.name, "present", present, f"verified by {how}")
    source = entry.source
    try:
        if "manual" in source:
            raise ManualStepRequired(source["manual"].replace("<models>", str(ctx.models_dir)))
        if "build" in source:
            return fetch_built(entry, ctx)
        if source.get("archive"):
            return fetch_archive_member(entry, ctx)
        if "gdrive_id" in source:
            return fetch_drive(entry, ctx)
        if "hf_repo" in source:
            return fetch_hf(entry, ctx)
        return fetch_direct(entry, ctx)
    except ManualStepRequired as step:
        return Outcome(entry.name, "manual", None, str(step))
    except UnverifiableFile as refusal:
        return Outcome(entry.name, "refused", None, str(refusal))
    except (FetchError, OSError, http.client.HTTPException, zipfile.BadZipFile, tarfile.TarError) as error:
        return Outcome(
            entry.name,
            "failed",
            None,
            f"{type(error).__name__}: {error}" if not isinstance(error, FetchError) else str(error),
        )


def select_entries(
    manifest: Mapping[str, Any], only: Sequence[str] = (), paper: str | None = None, with_optional: bool = False
) -> tuple[list[Any], list[Outcome]]:
    """The entries to fetch, and skipped ones as outcomes. Named entries are always fetched."""
    if only:
        chosen = [mf.get_entry(name, manifest) for name in only]
        return [e for e in chosen if paper is None or paper in e.papers], []
    selected, skipped = [], []
    for entry in manifest.values():
        if paper is not None and paper not in entry.papers:
            continue
        if entry.pointer:
            skipped.append(
                Outcome(entry.name, "skipped", None, "ComfyUI's own loader reads it; add --only to fetch it")
            )
        elif not entry.required and not with_optional:
            skipped.append(Outcome(entry.name, "skipped", None, "optional; add --with-optional or --only to fetch it"))
        else:
            selected.append(entry)
    return selected, skipped


def fetch_all(entries: Sequence[Any], ctx: FetchContext) -> list[Outcome]:
    outcomes = []
    for entry in entries:
        outcome = fetch_entry(entry, ctx)
        log = (
            logger.error
            if outcome.status in ("failed", "refused")
            else logger.warning
            if outcome.status == "manual"
            else logger.info
        )
        log("%-10s %s %s %s", outcome.status, entry.name, outcome.path or "", outcome.message)
        outcomes.append(outcome)
    return outcomes


def summarize(outcomes: Sequence[Outcome]) -> int:
    """Log a summary and return the exit status."""
    counts: dict[str, int] = {}
    for outcome in outcomes:
        counts[outcome.status] = counts.get(outcome.status, 0) + 1
    logger.info("summary: %s", ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "nothing selected")
    for outcome in outcomes:
        if outcome.status in ("failed", "refused", "manual"):
            logger.warning("%s: %s: %s", outcome.status.upper(), outcome.name, outcome.message)
        elif "UNVERIFIED" in outcome.message:
            logger.warning(
                "UNVERIFIED: %s: %s (installed because --allow-unverified was given)", outcome.name, outcome.path
            )
    if counts.get("failed") or counts.get("refused"):
        return 1
    return 2 if counts.get("manual") else 0


def list_entries(manifest: Mapping[str, Any], models_dir: Path | None, paper: str | None) -> None:
    for entry in manifest.values():
        if paper is not None and paper not in entry.papers:
            continue
        where = "-"
        if models_dir is not None:
            found = existing_copy(entry, models_dir)
            where = f"present: {found}" if found else "missing"
        size = entry.size if entry.size is not None else (entry.size_approx or "?")
        flags = ",".join(f for f, on in (("pointer", entry.pointer), ("optional", not entry.required)) if on)
        sys.stdout.write(
            f"{entry.name}\n    {where} | size {size} | {flags or 'required'} | papers {','.join(entry.papers)}\n"
            f"    source: {entry.source_text()}\n    licence: {entry.license}\n    verified by: {verified_by(entry)}\n"
        )


def verified_by(entry: Any) -> str:
    if entry.sha256:
        return "sha256 in the manifest" + (" and the hub's metadata" if "hf_repo" in entry.source else "")
    if "hf_repo" in entry.source:
        return "the hub's sha256 and size (read at download time)"
    if "manual" in entry.source:
        return "nothing (a manual step; " + (entry.extra.get("verification") or "no checksum known") + ")"
    return (
        "nothing: refused unless --allow-unverified (" + (entry.extra.get("verification") or "no checksum known") + ")"
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models-dir", type=Path, help="ComfyUI's models folder (files go to <dir>/<folder>/<path>)")
    parser.add_argument(
        "--only", nargs="+", action="extend", default=[], metavar="NAME", help="manifest names (or unique file names)"
    )
    parser.add_argument("--paper", choices=mf.PAPERS, help="only the files one paper (or face detection) needs")
    parser.add_argument("--with-optional", action="store_true", help="also fetch optional files")
    parser.add_argument("--list", action="store_true", help="list the manifest (and what is present) and exit")
    parser.add_argument("--manifest", type=Path, default=None, help="manifest to use instead of the pack's")
    parser.add_argument("--hf-endpoint", default=os.environ.get("HF_ENDPOINT", DEFAULT_HF_ENDPOINT))
    parser.add_argument("--gdrive-url", default=DEFAULT_GDRIVE_URL, help=argparse.SUPPRESS)
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per network read")
    parser.add_argument(
        "--allow-unverified",
        action="store_true",
        help="also install files for which no sha256 is known (checked by size where known); "
        "without it they are refused",
    )
    args = parser.parse_args(argv)
    if not args.list and args.models_dir is None:
        parser.error("--models-dir is required")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    manifest = mf.load_manifest(args.manifest)
    if args.list:
        list_entries(manifest, args.models_dir, args.paper)
        return 0
    try:
        entries, skipped = select_entries(manifest, args.only, args.paper, args.with_optional)
    except KeyError as error:
        logger.error("%s", error.args[0])
        return 1
    with tempfile.TemporaryDirectory(prefix="facecontrol-fetch-") as work:
        ctx = FetchContext(
            models_dir=args.models_dir,
            work_dir=Path(work),
            hf_endpoint=args.hf_endpoint,
            gdrive_url=args.gdrive_url,
            timeout=args.timeout,
            allow_unverified=args.allow_unverified,
        )
        outcomes = fetch_all(entries, ctx)
    for outcome in skipped:
        logger.info("skipped    %s (%s)", outcome.name, outcome.message)
    return summarize(outcomes)


if __name__ == "__main__":
    sys.exit(main())
