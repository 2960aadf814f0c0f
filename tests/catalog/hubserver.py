"""A local Hugging Face-shaped hub over a temp directory, for download tests.

``root/<owner>/<name>/<file>`` is served as repo ``owner/name``: the model API
(``/api/models/{repo}`` and ``.../revision/{rev}``) and ``/{repo}/resolve/{rev}/{file}`` with
``Range`` support. Knobs: cut a file's next responses after N bytes, serve flipped bytes, or
ignore ``Range``. Every request is recorded with its ``Range`` header.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

LFS_THRESHOLD_BYTES = 1024  # bigger files are listed as LFS files, with a sha256


@dataclass
class HubState:
    root: Path
    cut_after: dict[str, list[int]] = field(default_factory=dict)  # file -> byte counts, in turn
    corrupt: set[str] = field(default_factory=set)
    ignore_range: bool = False
    requests: list[tuple[str, str | None]] = field(default_factory=list)  # (path, Range)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def ranges_for(self, filename: str) -> list[str | None]:
        with self.lock:
            return [rng for path, rng in self.requests if path.endswith("/" + filename)]


def siblings(repo_dir: Path) -> list[dict[str, object]]:
    entries: list[dict[str, object]] = []
    for path in sorted(p for p in repo_dir.rglob("*") if p.is_file()):
        data = path.read_bytes()
        entry: dict[str, object] = {"rfilename": path.relative_to(repo_dir).as_posix()}
        if len(data) > LFS_THRESHOLD_BYTES:
            sha256 = hashlib.sha256(data).hexdigest()
            entry.update(blobId="0" * 40, size=len(data))
            entry["lfs"] = {"sha256": sha256, "size": len(data), "pointerSize": 134}
        else:
            blob = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
            entry.update(blobId=blob, size=len(data))
        entries.append(entry)
    return entries


def _handler(state: HubState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            path = unquote(urlsplit(self.path).path)
            with state.lock:
                state.requests.append((path, self.headers.get("Range")))
            parts = path.strip("/").split("/")
            if parts[:2] == ["api", "models"] and len(parts) in (4, 6):
                self.api(parts[2] + "/" + parts[3])
            elif len(parts) >= 5 and parts[2] == "resolve":
                self.resolve(parts[0] + "/" + parts[1], "/".join(parts[4:]))
            else:
                self.reply(404, b'{"error": "not found"}')

        def api(self, repo: str) -> None:
            repo_dir = state.root / repo
            if not repo_dir.is_dir():
                self.reply(404, b'{"error": "Repository not found"}')
                return
            body = {"id": repo, "sha": "0" * 40, "siblings": siblings(repo_dir)}
            self.reply(200, json.dumps(body).encode())

        def resolve(self, repo: str, filename: str) -> None:
            file = state.root / repo / filename
            if not file.is_file():
                self.reply(404, b"Entry not found")
                return
            data = file.read_bytes()
            if filename in state.corrupt:
                data = bytes(b ^ 0xFF for b in data[:64]) + data[64:]
            start = 0
            rng = self.headers.get("Range")
            if rng and not state.ignore_range:
                start = int(rng.removeprefix("bytes=").split("-")[0])
                if start >= len(data):
                    self.reply(416, b"")
                    return
            with state.lock:
                cuts = state.cut_after.get(filename)
                cut = cuts.pop(0) if cuts else None
            self.send_response(206 if start else 200)
            if start:
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            self.send_header("Content-Length", str(len(data) - start))
            self.end_headers()
            body = data[start:] if cut is None else data[start : start + cut]
            self.wfile.write(body)
            if cut is not None:
                self.wfile.flush()
                self.close_connection = True

        def reply(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler


@contextmanager
def serve_hub(root: Path) -> Iterator[tuple[str, HubState]]:
    """Serve ``root`` as a hub on a free loopback port; yields its base URL and its knobs."""
    state = HubState(root)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
