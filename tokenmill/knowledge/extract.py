"""The text of an uploaded file, for chunking: plain text, Markdown, HTML and PDF.

``extract`` picks the format from the content type, then the filename's extension, then the
bytes themselves (``%PDF-``), and returns the text with, for a PDF, where each page begins.
Markdown and source code are kept as they are (their markup is meaningful text); HTML keeps its
visible text only, block elements becoming line breaks; PDF text comes from its text layer
(pypdf). Every refusal is an ``InvalidRequest`` naming ``param`` (the file's id in the request):
``unsupported_file`` for a format we cannot read or bytes that are not what they claim,
``no_text`` when a readable file holds no text.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import PurePosixPath
from typing import Literal

from tokenmill.errors import InvalidRequest

Format = Literal["text", "markdown", "html", "pdf"]

TEXT_EXTENSIONS = frozenset(
    [
        ".txt",
        ".text",
        ".log",
        ".csv",
        ".tsv",
        ".json",
        ".jsonl",
        ".xml",
        ".yaml",
        ".yml",
        ".toml",
        ".ini",
        ".tex",
        ".rst",
        ".py",
        ".js",
        ".ts",
        ".java",
        ".c",
        ".h",
        ".cc",
        ".cpp",
        ".hpp",
        ".cs",
        ".go",
        ".rs",
        ".rb",
        ".php",
        ".sh",
        ".sql",
        ".css",
    ]
)
EXTENSIONS: dict[str, Format] = {
    **dict.fromkeys(TEXT_EXTENSIONS, "text"),
    ".md": "markdown",
    ".markdown": "markdown",
    ".html": "html",
    ".htm": "html",
    ".xhtml": "html",
    ".pdf": "pdf",
}
CONTENT_TYPES: dict[str, Format] = {
    "text/markdown": "markdown",
    "text/x-markdown": "markdown",
    "text/html": "html",
    "application/xhtml+xml": "html",
    "application/pdf": "pdf",
}
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")  # not tab, line ends or form feed
CONTROL_SHARE_LIMIT = 0.05  # more control characters than this and it is not text


@dataclass(frozen=True, slots=True)
class Extracted:
    text: str
    format: Format
    page_starts: tuple[int, ...] = ()  # a PDF's pages: the offset in ``text`` where each begins


def detect_format(data: bytes, filename: str, content_type: str | None) -> Format | None:
    """The format to read ``data`` as, or None when nothing says it is one we read."""
    if data.startswith(b"%PDF-"):
        return "pdf"
    media = (content_type or "").split(";")[0].strip().lower()
    if media in CONTENT_TYPES:
        return CONTENT_TYPES[media]
    by_name = EXTENSIONS.get(PurePosixPath(filename).suffix.lower())
    if by_name is not None:
        return by_name
    if media.startswith("text/"):
        return "text"
    return None


def extract(
    data: bytes, filename: str, content_type: str | None = None, *, param: str = "file_id"
) -> Extracted:
    """The text of a file; raises ``InvalidRequest`` when there is none to be had."""
    if not data:
        raise InvalidRequest(f"The file {filename!r} is empty.", param=param, code="no_text")
    kind = detect_format(data, filename, content_type)
    if kind is None:
        raise InvalidRequest(
            f"The file {filename!r} is not a supported type; supported are plain text, "
            f"Markdown, HTML and PDF ({', '.join(sorted(EXTENSIONS))}).",
            param=param,
            code="unsupported_file",
        )
    if kind == "pdf":
        return _pdf(data, filename, param)
    text = decode_text(data, filename, param)
    if kind == "html":
        text = html_text(text)
    if not text.strip():
        raise InvalidRequest(f"No text found in {filename!r}.", param=param, code="no_text")
    return Extracted(text, kind)


def decode_text(data: bytes, filename: str, param: str) -> str:
    """UTF-8 (or UTF-16 with a byte order mark) text; binary bytes are refused."""
    try:
        if data.startswith((b"\xff\xfe", b"\xfe\xff")):
            text = data.decode("utf-16")
        else:
            text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise InvalidRequest(
            f"The file {filename!r} is not UTF-8 text (invalid byte at offset {error.start}); "
            "is it a binary file?",
            param=param,
            code="unsupported_file",
        ) from error
    controls = len(_CONTROL.findall(text))
    if "\x00" in text or controls > CONTROL_SHARE_LIMIT * len(text):
        raise InvalidRequest(
            f"The file {filename!r} looks binary, not text (it holds control characters).",
            param=param,
            code="unsupported_file",
        )
    return text.replace("\r\n", "\n").replace("\r", "\n")


# ---- HTML -------------------------------------------------------------------------------------

_HIDDEN = frozenset({"script", "style", "noscript", "template", "svg"})
_PARAGRAPHS = frozenset(
    [
        "p",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "pre",
        "blockquote",
        "table",
        "ul",
        "ol",
        "dl",
        "section",
        "article",
        "header",
        "footer",
        "aside",
        "nav",
        "main",
        "figure",
        "form",
        "fieldset",
        "details",
        "address",
        "hr",
    ]
)
_LINES = frozenset(
    ["br", "div", "li", "tr", "dt", "dd", "caption", "figcaption", "summary", "option", "title"]
)
_CELLS = frozenset({"td", "th"})


class _Preformatted(str):
    """Text inside ``<pre>``: its spaces and line ends are kept as they are."""

    __slots__ = ()


class _VisibleText(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str | int] = []  # text, or a break of that many line ends
        self.hidden = 0
        self.pre = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._open_or_close(tag, opening=True)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in _HIDDEN:
            self._break(tag)

    def handle_endtag(self, tag: str) -> None:
        self._open_or_close(tag, opening=False)

    def _open_or_close(self, tag: str, *, opening: bool) -> None:
        step = 1 if opening else -1
        if tag in _HIDDEN:
            self.hidden = max(0, self.hidden + step)
            return
        if tag == "pre":
            self.pre = max(0, self.pre + step)
        if tag in _CELLS:
            if not opening:
                self.parts.append("\t")  # between cells; a row's last one is stripped
            return
        self._break(tag)

    def _break(self, tag: str) -> None:
        if tag in _PARAGRAPHS:
            self.parts.append(2)
        elif tag in _LINES:
            self.parts.append(1)

    def handle_data(self, data: str) -> None:
        if self.hidden:
            return
        if self.pre:
            self.parts.append(_Preformatted(data))
        else:
            self.parts.append(re.sub(r"[ \t\r\n\f\v]+", " ", data))


def html_text(html: str) -> str:
    """The visible text of an HTML document, block elements as line breaks."""
    parser = _VisibleText()
    parser.feed(html)
    parser.close()
    pieces: list[str] = []  # alternately flowing text and preformatted text

    def flow(text: str) -> None:
        if pieces and not isinstance(pieces[-1], _Preformatted):
            pieces[-1] += text
        else:
            pieces.append(text)

    pending = 0  # adjacent breaks merge into the widest: </li><li> is one line end
    for part in parser.parts:
        if isinstance(part, int):
            pending = max(pending, part)
            continue
        flow("\n" * pending)
        pending = 0
        if isinstance(part, _Preformatted):
            pieces.append(part)
        else:
            flow(part)
    return "".join(
        piece if isinstance(piece, _Preformatted) else _tidy(piece) for piece in pieces
    ).strip()


def _tidy(flowing: str) -> str:
    text = re.sub(r"[ \t]*\n[ \t]*", "\n", flowing)  # no spaces or tabs around line breaks
    text = re.sub(r"\n{3,}", "\n\n", text)
    return re.sub(r" {2,}", " ", text)


# ---- PDF --------------------------------------------------------------------------------------


def _pdf(data: bytes, filename: str, param: str) -> Extracted:
    from pypdf import PdfReader
    from pypdf.errors import DependencyError, FileNotDecryptedError

    def refuse(why: str) -> InvalidRequest:
        return InvalidRequest(
            f"The PDF {filename!r} cannot be read: {why}.", param=param, code="unsupported_file"
        )

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise refuse("it is encrypted with a password")
        pages = [page.extract_text() or "" for page in reader.pages]
    except InvalidRequest:
        raise
    except (FileNotDecryptedError, DependencyError) as error:
        raise refuse("it is encrypted in a way we cannot open") from error
    except Exception as error:  # pypdf raises many kinds on damaged files; each means the same
        raise refuse(f"it is damaged or not a PDF ({type(error).__name__}: {error})") from error
    if not pages:
        raise InvalidRequest(f"The PDF {filename!r} has no pages.", param=param, code="no_text")
    starts: list[int] = []
    text = ""
    for i, page in enumerate(pages):
        if i:
            text += "\n\n"
        starts.append(len(text))
        text += page.strip()
    if not text.strip():
        raise InvalidRequest(
            f"No text found in the PDF {filename!r}: it has no text layer (a scanned document? "
            "text in images is not read).",
            param=param,
            code="no_text",
        )
    return Extracted(text, "pdf", tuple(starts))
