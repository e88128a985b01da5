"""PDF and DOCX files: one document per file; a PDF without text, a damaged or an encrypted one
counted by reason; a DOCX's paragraphs and tables in order."""

import json

import docx
import pypdf
from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject

from pretrain.config.sources import DownloadConfig
from pretrain.sources.download import iter_documents
from pretrain.sources.records import Skipped


def read(path, **kwargs) -> tuple[list[dict], Skipped]:
    skipped = Skipped()
    docs = list(iter_documents(DownloadConfig(source="files", path=str(path), **kwargs), skipped))
    return docs, skipped


def write_pdf(path, pages: list[list[str]], title: str | None = None,
              password: str | None = None) -> None:
    """A PDF of ``pages``, each a list of lines drawn in Helvetica through a content stream
    (``[]``: a page with no text, as a scanned page's image-only content gives)."""
    writer = pypdf.PdfWriter()
    font = DictionaryObject({NameObject("/Type"): NameObject("/Font"),
                             NameObject("/Subtype"): NameObject("/Type1"),
                             NameObject("/BaseFont"): NameObject("/Helvetica")})
    for lines in pages:
        page = writer.add_blank_page(612, 792)
        ops = "".join(f"BT /F1 12 Tf 72 {720 - 16 * i} Td ({line}) Tj ET\n"
                      for i, line in enumerate(lines))
        stream = DecodedStreamObject()
        stream.set_data(ops.encode("latin-1"))
        page[NameObject("/Contents")] = writer._add_object(stream)
        page[NameObject("/Resources")] = DictionaryObject({NameObject("/Font"): DictionaryObject(
            {NameObject("/F1"): writer._add_object(font)})})
    if title:
        writer.add_metadata({"/Title": title})
    if password:
        writer.encrypt(password, algorithm="AES-128")
    with open(path, "wb") as handle:
        writer.write(handle)


def test_pdf_pages_are_one_document_joined_by_a_blank_line(tmp_path):
    path = tmp_path / "report.pdf"
    write_pdf(path, [["First page, first line.", "First page, second line."], [],
                     ["Second page: the test was con-", "ducted twice."]], title="A report")
    docs, skipped = read(path)
    assert [d["id"] for d in docs] == [path.as_posix()]
    assert docs[0]["text"] == ("First page, first line.\nFirst page, second line.\n\n"
                               "Second page: the test was conducted twice.")  # hyphen rejoined
    assert json.loads(docs[0]["metadata"]) == {"pages": 3, "title": "A report"}
    assert not skipped and not skipped.files


def test_image_only_damaged_and_encrypted_pdfs_are_counted(tmp_path):
    write_pdf(tmp_path / "scan.pdf", [[], []])
    write_pdf(tmp_path / "good.pdf", [["Readable text."]])
    good = (tmp_path / "good.pdf").read_bytes()
    (tmp_path / "cut.pdf").write_bytes(good[:len(good) // 3])
    (tmp_path / "fake.pdf").write_bytes(b"<html>not a pdf</html>")
    write_pdf(tmp_path / "secret.pdf", [["Hidden text."]], password="pw")
    docs, skipped = read(tmp_path)
    assert [d["text"] for d in docs] == ["Readable text."]
    assert skipped.files == {"no_text_layer": 1, "damaged_pdf": 2, "encrypted_pdf": 1}
    assert skipped.file_bytes["no_text_layer"] == (tmp_path / "scan.pdf").stat().st_size
    assert skipped.examples["encrypted_pdf"] == [(tmp_path / "secret.pdf").as_posix()]


def test_docx_paragraphs_and_tables_in_document_order(tmp_path):
    document = docx.Document()
    document.core_properties.title = "Minutes"
    document.add_paragraph("Opening paragraph.")
    table = document.add_table(rows=2, cols=3)
    for r, row in enumerate([["Name", "Role", "Since"], ["Ada", "Chair", "2024"]]):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    table.cell(0, 1).merge(table.cell(0, 2))  # a merged header cell, kept once
    document.add_paragraph("Closing paragraph.")
    path = tmp_path / "minutes.docx"
    document.save(path)
    (tmp_path / "broken.docx").write_bytes(path.read_bytes()[:200])
    empty = docx.Document()
    empty.save(tmp_path / "empty.docx")
    docs, skipped = read(tmp_path)
    assert [d["id"] for d in docs] == [path.as_posix()]
    assert docs[0]["text"] == ("Opening paragraph.\nName\tRole\nSince\nAda\tChair\t2024\n"
                               "Closing paragraph.")
    assert json.loads(docs[0]["metadata"]) == {"title": "Minutes"}
    assert skipped.files == {"damaged_docx": 1, "empty_file": 1}
