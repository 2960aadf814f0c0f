"""Text extraction: plain text, Markdown, HTML and PDF, and every way a file can have none."""

from __future__ import annotations

import io

import pytest
from pypdf import PdfReader, PdfWriter

from tokenmill.errors import InvalidRequest
from tokenmill.knowledge.extract import Extracted, detect_format, extract, html_text


def pdf_with_text(*pages: str) -> bytes:
    """A small valid PDF whose pages show these lines in Helvetica."""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"",  # the page tree, filled in below
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    kids = []
    for text in pages:
        stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
        objects.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream))
        content = len(objects)
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            b"/Resources << /Font << /F1 3 0 R >> >> /Contents %d 0 R >>" % content
        )
        kids.append(b"%d 0 R" % len(objects))
    objects[1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (b" ".join(kids), len(kids))
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


def refused(data: bytes, filename: str, content_type: str | None = None) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as caught:
        extract(data, filename, content_type, param="file_id")
    assert caught.value.param == "file_id"
    assert caught.value.status == 400
    return caught.value


def test_plain_text_and_markdown_are_kept() -> None:
    assert extract(b"\xef\xbb\xbfhello\r\nworld", "a.txt") == Extracted("hello\nworld", "text")
    markdown = "# Title\n\n* item with `code`\n"
    assert extract(markdown.encode(), "README.md") == Extracted(markdown, "markdown")
    assert extract("héllo".encode("utf-16"), "a.txt").text == "héllo"
    assert extract(b"x = 1\n", "script.py").format == "text"
    assert extract(b"plain", "noext", "text/plain; charset=utf-8").format == "text"


def test_binary_junk_is_refused() -> None:
    assert "not UTF-8" in refused(b"\x89PNG\r\n\x1a\n\xff\xd8\x00", "a.txt").message
    assert "binary" in refused(b"abc\x00\x01\x02def", "a.txt").message
    assert refused(b"\x01\x02", "photo.png").code == "unsupported_file"


def test_empty_and_blank_files_have_no_text() -> None:
    assert refused(b"", "a.txt").code == "no_text"
    assert "No text found" in refused(b"  \n\t ", "a.txt").message
    assert refused(b"<html><script>x()</script></html>", "a.html").code == "no_text"


def test_html_keeps_visible_text_with_block_breaks() -> None:
    html = """<!doctype html><html><head><title>Doc</title><style>p {color: red}</style>
    <script>var secret = 1;</script></head><body><h1>Heading</h1><p>First   <b>bold</b>
    paragraph &amp; more.</p><ul><li>one</li><li>two</li></ul>line<br>break
    <pre>  keep
  this</pre><table><tr><td>a</td><td>b</td></tr></table><noscript>no</noscript></body></html>"""
    text = html_text(html)
    assert "secret" not in text and "color" not in text and "no\n" not in text
    assert text == (
        "Doc\n\nHeading\n\nFirst bold paragraph & more.\n\none\ntwo\n\nline\nbreak\n\n"
        "  keep\n  this\n\na\tb"
    )
    assert extract(html.encode(), "page", "text/html").format == "html"


def test_pdf_text_by_page() -> None:
    extracted = extract(pdf_with_text("Hello world", "Second page"), "doc.pdf")
    assert extracted.format == "pdf"
    assert extracted.text == "Hello world\n\nSecond page"
    assert extracted.page_starts == (0, 13)
    # sniffed from the bytes whatever the name says
    assert extract(pdf_with_text("x y"), "upload.bin").format == "pdf"


def test_corrupt_pdf_is_refused() -> None:
    error = refused(b"%PDF-1.7\nthis is not really a pdf", "broken.pdf")
    assert error.code == "unsupported_file"
    assert "damaged" in error.message
    truncated = pdf_with_text("Hello")[:60]
    assert refused(truncated, "cut.pdf").code in ("unsupported_file", "no_text")


def test_encrypted_pdf_is_refused() -> None:
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf_with_text("secret"))))
    writer.encrypt("password", algorithm="RC4-128")
    out = io.BytesIO()
    writer.write(out)
    error = refused(out.getvalue(), "locked.pdf")
    assert error.code == "unsupported_file"
    assert "encrypted" in error.message


def test_pdf_without_a_text_layer() -> None:
    writer = PdfWriter()
    writer.add_blank_page(612, 792)
    out = io.BytesIO()
    writer.write(out)
    error = refused(out.getvalue(), "scan.pdf")
    assert error.code == "no_text"
    assert "no text layer" in error.message


def test_detect_format() -> None:
    assert detect_format(b"x", "a.MD", None) == "markdown"
    assert detect_format(b"x", "a", "application/pdf") == "pdf"
    assert detect_format(b"x", "a.docx", None) is None
