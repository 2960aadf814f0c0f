"""Serves the web console: a small single-page app shipped as package data.

``/console`` redirects to ``/console/``, which is the app's ``index.html``; every other
``/console/{file}`` is a file under ``static/``. Files are read once and kept; each answer
carries an ETag and ``no-cache`` (there is no build step to fingerprint file names, so the
browser revalidates and gets a 304 while nothing changed). Anything that is not a plain file
under ``static/`` (``..``, hidden files, directories, unknown names) is a 404.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable

from tokenmill.errors import NotFound
from tokenmill.gateway.http import HttpRequest, Response

PREFIX = "/console/"
INDEX = "index.html"
CONTENT_TYPES = {
    ".html": b"text/html; charset=utf-8",
    ".js": b"text/javascript; charset=utf-8",
    ".css": b"text/css; charset=utf-8",
    ".svg": b"image/svg+xml",
    ".png": b"image/png",
    ".ico": b"image/x-icon",
    ".json": b"application/json",
}
# The app runs no inline script and sets no inline style (a style only through the CSSOM,
# ``element.style.left = …``), so neither is allowed; it is never framed (``frame-ancestors``,
# and ``x-frame-options`` for browsers without CSP level 2), embeds no plugins and posts its
# forms to nothing but itself (it submits them through fetch).
SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "content-security-policy": (
        "default-src 'self'; script-src 'self'; connect-src 'self'; img-src 'self' data:; "
        "style-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'"
    ),
}


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    content_type: bytes
    etag: str


def content_type(name: str) -> bytes | None:
    dot = name.rfind(".")
    return CONTENT_TYPES.get(name[dot:].lower()) if dot > 0 else None


def safe_parts(relative: str) -> tuple[str, ...] | None:
    """The path's parts when every one is a plain name (no ``..``, no hidden or empty part,
    no backslash or NUL); else None."""
    parts = tuple(relative.split("/"))
    for part in parts:
        if not part or part.startswith(".") or "\\" in part or "\x00" in part:
            return None
    return parts


class ConsoleAssets:
    def __init__(self, root: Traversable | None = None) -> None:
        self._root = root if root is not None else files("tokenmill.console") / "static"
        self._cache: dict[tuple[str, ...], Asset] = {}

    def find(self, relative: str) -> Asset | None:
        """The file at ``relative`` under the root (``""`` is the index), or None."""
        parts = safe_parts(relative or INDEX)
        if parts is None:
            return None
        cached = self._cache.get(parts)
        if cached is not None:
            return cached
        kind = content_type(parts[-1])
        node = self._root.joinpath(*parts)
        if kind is None or not node.is_file():
            return None
        body = node.read_bytes()
        asset = Asset(body, kind, '"' + hashlib.sha256(body).hexdigest()[:32] + '"')
        self._cache[parts] = asset
        return asset

    def response(self, relative: str, if_none_match: str | None = None) -> Response:
        asset = self.find(relative)
        if asset is None:
            raise NotFound(f"No console file {relative!r}.", code="not_found")
        headers = {**SECURITY_HEADERS, "cache-control": "no-cache", "etag": asset.etag}
        if if_none_match is not None and asset.etag in _etags(if_none_match):
            return Response(b"", 304, asset.content_type, headers)
        return Response(asset.body, 200, asset.content_type, headers)

    async def handle(self, services: object, request: HttpRequest) -> Response:
        """The gateway route for ``/console``, ``/console/`` and ``/console/{file}``."""
        if request.path == PREFIX.rstrip("/"):
            return Response(b"", 308, b"text/plain", {"location": PREFIX})
        relative = request.path.removeprefix(PREFIX)
        return self.response(relative, request.header(b"if-none-match"))


def _etags(header: str) -> set[str]:
    return {tag.strip().removeprefix("W/") for tag in header.split(",")}
