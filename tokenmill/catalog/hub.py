"""Download a model repository from a Hugging Face-compatible hub.

Files stream to ``name.part`` and move into place only after their size and hash match what
the hub's API promised, so a destination file is always whole. A ``.part`` left by a broken
connection (or an earlier run) is resumed with an HTTP ``Range`` request; a server that ignores
the range and answers 200 gets the file from the start again.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http.client import HTTPException, HTTPResponse
from pathlib import Path
from typing import Any

from tokenmill.errors import HubError, NotFound, PermissionDenied, TokenmillError

ProgressCallback = Callable[[str, int, int], None]
_CHUNK_BYTES = 1 << 20
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


@dataclass(frozen=True, slots=True)
class HubFile:
    filename: str
    size_bytes: int | None
    sha256: str | None  # LFS files
    git_blob_sha1: str | None  # small files kept in git


class _Retryable(Exception):
    """A failure worth another attempt: the connection broke or the server hiccuped."""


class HubClient:
    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        timeout_seconds: float = 30.0,
        attempts: int = 4,
        backoff_seconds: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout_seconds = timeout_seconds
        self.attempts = attempts
        self.backoff_seconds = backoff_seconds
        self._sleep = sleep

    def list_files(self, repo: str, revision: str = "main") -> list[HubFile]:
        """The repository's files with sizes and hashes (the API's ``blobs=true`` view)."""
        quoted_repo = urllib.parse.quote(repo, safe="/")
        url = f"{self.base_url}/api/models/{quoted_repo}"
        if revision != "main":
            url += f"/revision/{urllib.parse.quote(revision, safe='')}"
        try:
            response = self._open(url + "?blobs=true", repo=repo)
        except _Retryable as error:
            raise HubError(f"The hub at {self.base_url} is unreachable: {error}.") from None
        with response:
            try:
                data = json.loads(response.read())
                siblings = data["siblings"]
                return [_hub_file(entry) for entry in siblings]
            except (ValueError, KeyError, TypeError) as error:
                raise HubError(f"Hub answered {url} with an unexpected body: {error}.") from None

    def download(
        self,
        repo: str,
        dest_dir: str | os.PathLike[str],
        *,
        revision: str = "main",
        include: Callable[[str], bool] | Iterable[str] | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> list[Path]:
        """Fetch the repository's files (those ``include`` accepts) into ``dest_dir``.

        ``include`` is a predicate or glob patterns (``"*.gguf"``); ``on_progress`` gets
        ``(filename, done_bytes, total_bytes)``. Returns the paths of the files, in hub order.
        """
        wanted = _matcher(include)
        dest = Path(dest_dir)
        paths = []
        for hub_file in self.list_files(repo, revision):
            if not wanted(hub_file.filename):
                continue
            target = _safe_target(dest, hub_file.filename)
            target.parent.mkdir(parents=True, exist_ok=True)
            if not (target.is_file() and _matches(target, hub_file, unknown=False)):
                self._fetch(repo, revision, hub_file, target, on_progress)
            elif on_progress is not None:
                size = target.stat().st_size
                on_progress(hub_file.filename, size, size)
            paths.append(target)
        return paths

    def _fetch(
        self,
        repo: str,
        revision: str,
        hub_file: HubFile,
        target: Path,
        on_progress: ProgressCallback | None,
    ) -> None:
        url = "/".join(
            (
                self.base_url,
                urllib.parse.quote(repo, safe="/"),
                "resolve",
                urllib.parse.quote(revision, safe=""),
                urllib.parse.quote(hub_file.filename, safe="/"),
            )
        )
        part = target.with_name(target.name + ".part")
        for attempt in range(1, self.attempts + 1):
            try:
                self._stream(url, repo, hub_file, part, on_progress)
                break
            except _Retryable as error:
                if attempt == self.attempts:
                    raise HubError(
                        f"Downloading {hub_file.filename} from {repo} failed {attempt} times; "
                        f"last: {error}. The partial file {part.name} is kept for a resume."
                    ) from None
                self._sleep(self.backoff_seconds * 2 ** (attempt - 1))
        if not _matches(part, hub_file, unknown=True):
            part.unlink()
            raise HubError(
                f"{hub_file.filename} from {repo} does not match the hub's size or hash; "
                "the download was discarded."
            )
        os.replace(part, target)

    def _stream(
        self,
        url: str,
        repo: str,
        hub_file: HubFile,
        part: Path,
        on_progress: ProgressCallback | None,
    ) -> None:
        have = part.stat().st_size if part.is_file() else 0
        total = hub_file.size_bytes
        if total is not None and have >= total:
            if have == total:
                return
            part.unlink()
            have = 0
        headers = {"Range": f"bytes={have}-"} if have else {}
        with self._open(url, repo=repo, headers=headers, allow_416=True) as response:
            if response.status == 416:
                part.unlink(missing_ok=True)
                raise _Retryable("the server refused the resume range")
            if response.status == 206:
                match = _CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", ""))
                if match is None or int(match.group(1)) != have:
                    part.unlink(missing_ok=True)
                    raise _Retryable("the server answered a different range")
                mode = "ab"
            else:
                have, mode = 0, "wb"
            length = response.headers.get("Content-Length")
            expected_end = have + int(length) if length and length.isdigit() else total
            with part.open(mode) as out:
                while True:
                    try:
                        chunk = response.read(_CHUNK_BYTES)
                    except (OSError, HTTPException) as error:
                        raise _Retryable(f"connection broke after {have} bytes: {error}") from None
                    if not chunk:
                        break
                    out.write(chunk)
                    have += len(chunk)
                    if on_progress is not None:
                        on_progress(hub_file.filename, have, total if total is not None else have)
            if expected_end is not None and have < expected_end:
                raise _Retryable(f"connection closed after {have} of {expected_end} bytes")

    def _open(
        self,
        url: str,
        *,
        repo: str,
        headers: dict[str, str] | None = None,
        allow_416: bool = False,
    ) -> HTTPResponse:
        request = urllib.request.Request(url, headers=headers or {})
        if self.token:
            # Unredirected: a hub's redirect to a CDN must not carry the token along.
            request.add_unredirected_header("Authorization", f"Bearer {self.token}")
        try:
            response: HTTPResponse = urllib.request.urlopen(request, timeout=self.timeout_seconds)
            return response
        except urllib.error.HTTPError as error:
            if allow_416 and error.code == 416:
                return error  # type: ignore[return-value]
            if error.code >= 500:
                error.close()
                raise _Retryable(f"{url}: {error.code} {error.reason}") from None
            raise self._http_error(error, url, repo) from None
        except (OSError, HTTPException) as error:
            raise _Retryable(f"{url}: {error}") from None

    def _http_error(self, error: urllib.error.HTTPError, url: str, repo: str) -> TokenmillError:
        error.close()
        if error.code == 404 or (error.code == 401 and not self.token):
            hint = "" if self.token else " (or it is private or gated: pass a token)"
            return NotFound(f"No repository or file '{repo}' on the hub at {url}{hint}.")
        if error.code in (401, 403):
            return PermissionDenied(f"The hub refused access to '{repo}' ({error.code}).")
        return HubError(f"The hub answered {error.code} {error.reason} for {url}.")


def _hub_file(entry: dict[str, Any]) -> HubFile:
    lfs = entry.get("lfs") or {}
    sha256 = lfs.get("sha256") or lfs.get("oid")
    if isinstance(sha256, str) and sha256.startswith("sha256:"):
        sha256 = sha256.removeprefix("sha256:")
    size = lfs.get("size", entry.get("size"))
    return HubFile(
        filename=str(entry["rfilename"]),
        size_bytes=int(size) if size is not None else None,
        sha256=sha256,
        git_blob_sha1=None if lfs else entry.get("blobId"),
    )


def _matcher(include: Callable[[str], bool] | Iterable[str] | None) -> Callable[[str], bool]:
    if include is None:
        return lambda _name: True
    if callable(include):
        return include
    patterns = [include] if isinstance(include, str) else list(include)
    return lambda name: any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


def _safe_target(dest: Path, filename: str) -> Path:
    """``dest / filename``, refusing names that would escape ``dest`` (``../``, absolute)."""
    target = (dest / filename).resolve()
    if not target.is_relative_to(dest.resolve()) or filename.endswith(".part"):
        raise HubError(f"The hub listed an unsafe file name: {filename!r}.")
    return target


def _matches(path: Path, hub_file: HubFile, *, unknown: bool) -> bool:
    """Size and hash agree with the hub (git blob sha1 for small files kept in git).

    ``unknown`` is the answer when the hub gave neither size nor hash.
    """
    size = path.stat().st_size
    if hub_file.size_bytes is not None and size != hub_file.size_bytes:
        return False
    if hub_file.sha256 is not None:
        digest = hashlib.sha256()
    elif hub_file.git_blob_sha1 is not None:
        digest = hashlib.sha1(f"blob {size}\0".encode())
    else:
        return unknown or hub_file.size_bytes is not None
    with path.open("rb") as file:
        while chunk := file.read(_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest() == (hub_file.sha256 or hub_file.git_blob_sha1)
