"""Local files: one test per format (JSON lines, JSON arrays, Parquet, CSV / TSV, text, HTML), and
text in other encodings decoded when the encoding is certain, skipped and counted when not."""

import json
import random

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pretrain.config.sources import DownloadConfig, MixSourceConfig
from pretrain.errors import DataError
from pretrain.sources.download import iter_documents
from pretrain.sources.encoding import decode
from pretrain.sources.records import Skipped

FRENCH = ("Le château se trouve au bord de la rivière. Les élèves étudient l'histoire de la région "
          "depuis des années, et leurs professeurs sont très fiers de leurs progrès. À la fin de "
          "l'été, on organise une fête où chacun apporte un plat préparé à la maison.")
RUSSIAN = ("Москва является столицей России и крупнейшим городом страны. В городе много музеев, "
           "театров и парков. Каждый год сюда приезжают миллионы туристов, чтобы увидеть Красную "
           "площадь и Кремль. Зимой здесь бывает очень холодно, а летом тепло и солнечно.")
JAPANESE = ("東京は日本の首都であり、世界でも有数の大都市です。多くの人々が毎日電車で通勤しています。"
            "春には桜が咲き、公園は花見をする人でいっぱいになります。")


def files(path, **kwargs) -> tuple[list[dict], Skipped]:
    skipped = Skipped()
    return list(iter_documents(DownloadConfig(source="files", path=str(path), **kwargs), skipped)), skipped


# --- JSON lines and JSON arrays ------------------------------------------------------------------


def test_jsonl_skips_and_counts_unusable_records(tmp_path):
    path = tmp_path / "data.jsonl"
    lines = [
        b'\xef\xbb\xbf{"text": "first doc"}',  # BOM on the first line
        b'{not json',
        b'{"title": "no text field"}',
        b'{"text": 42}',
        b'{"text": ""}',
        b'{"text": "  \\n "}',
        b'',                                   # blank line: ignored, not counted
        b'[1, 2]',
        b'{"text": null}',
        b'\xff{"text": "not utf-8"}',
        b'{"text": "last \xc3\xbcn\xc3\xafcode", "meta": 1}',
    ]
    path.write_bytes(b"\r\n".join(lines) + b"\r\n")  # CRLF line endings
    docs, skipped = files(path)
    assert [d["text"] for d in docs] == ["first doc", "last ünïcode"]
    assert [d["id"] for d in docs] == [f"{path.as_posix()}:1", f"{path.as_posix()}:11"]
    assert docs[1]["provenance"] == f"{path}:11" and docs[1]["source"] == "files"
    assert skipped == {"malformed_json_line": 1, "not_utf8": 1, "missing_text_field": 2,
                       "text_not_a_string": 1, "empty_text": 2, "json_record_not_an_object": 1}
    name = path.as_posix()
    assert skipped.examples["not_utf8"] == [f"{name}:10"]
    assert skipped.examples["empty_text"] == [f"{name}:5", f"{name}:6"]


def test_jsonl_reads_the_configured_text_field(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_text('{"content": "a doc", "text": "not this"}\n{"text": "no content"}\n')
    docs, skipped = files(path, text_field="content")
    assert [d["text"] for d in docs] == ["a doc"]
    assert skipped == {"missing_text_field": 1}


def test_json_array_file_is_read_record_by_record(tmp_path):
    path = tmp_path / "records.json"
    path.write_text('[{"text": "one"}, {"text": "two\\r\\nlines"}, 3]')
    docs, skipped = files(path)
    assert [d["text"] for d in docs] == ["one", "two\nlines"]  # CRLF normalised in records too
    assert skipped == {"json_record_not_an_object": 1}


def test_ids_do_not_depend_on_how_the_path_is_written(tmp_path, monkeypatch):
    (tmp_path / "a.jsonl").write_text('{"text": "hello"}\n')
    monkeypatch.chdir(tmp_path)
    relative, _ = files("a.jsonl")
    absolute, _ = files(tmp_path / "a.jsonl")
    assert relative[0]["id"] == absolute[0]["id"] == "a.jsonl:1"


# --- a record's own id and fields ------------------------------------------------------------------


def test_jsonl_record_keeps_its_id_and_its_other_fields_as_metadata(tmp_path):
    path = tmp_path / "web.jsonl"
    records = [
        {"id": "page-1", "text": "one", "url": "https://a.org/1", "date": "2024-05-01",
         "licence": "CC-BY-4.0", "scores": {"edu": 3.5}, "tags": ["x", "日本"]},
        {"text": "two", "url": "https://a.org/2"},      # no id: file:line
        {"id": None, "text": "three"},                    # null id: file:line
        {"id": 42, "text": "four", "n": None},             # an integer id, in decimal
    ]
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    docs, skipped = files(path)
    name = path.as_posix()
    assert [d["id"] for d in docs] == ["page-1", f"{name}:2", f"{name}:3", "42"]
    assert [d["provenance"] for d in docs] == [f"{name}:{n}" for n in (1, 2, 3, 4)]
    # by default the scalar fields, in the record's order; the object and the list are left out
    assert list(json.loads(docs[0]["metadata"]).items()) == [
        ("url", "https://a.org/1"), ("date", "2024-05-01"), ("licence", "CC-BY-4.0")]
    assert [json.loads(d["metadata"]) for d in docs[1:]] == [{"url": "https://a.org/2"}, {}, {"n": None}]
    assert skipped == {} and skipped.ids == {"from_id_field": 2, "from_location": 2}
    # listed, they are kept whatever their type, in the list's order; a field a record lacks is absent
    docs, _ = files(path, metadata_fields=["tags", "url", "scores"])
    assert list(json.loads(docs[0]["metadata"]).items()) == [
        ("tags", ["x", "日本"]), ("url", "https://a.org/1"), ("scores", {"edu": 3.5})]
    assert [json.loads(d["metadata"]) for d in docs[1:]] == [{"url": "https://a.org/2"}, {}, {}]
    docs, _ = files(path, metadata_fields=[])
    assert {d["metadata"] for d in docs} == {"{}"}


def test_record_whose_id_cannot_be_an_id_is_skipped_and_counted(tmp_path):
    path = tmp_path / "data.jsonl"
    ids = [1.5, True, [1], {"a": 1}, 7.0, "  "]
    path.write_text("".join(json.dumps({"id": i, "text": f"doc {n}"}) + "\n" for n, i in enumerate(ids)))
    docs, skipped = files(path)
    # 7.0 is how pandas stores the integer 7 in a column with gaps; a blank id is no id
    assert [d["id"] for d in docs] == ["7", f"{path.as_posix()}:6"]
    assert skipped == {"id_not_a_string_or_integer": 4}
    assert skipped.examples["id_not_a_string_or_integer"][0] == f"{path.as_posix()}:1"


def test_configured_id_field_and_no_id_field(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_text('{"id": "a", "doc_id": "D1", "text": "one"}\n')
    docs, _ = files(path, id_field="doc_id")
    assert docs[0]["id"] == "D1" and json.loads(docs[0]["metadata"]) == {"id": "a"}
    docs, skipped = files(path, id_field=None)
    assert docs[0]["id"] == f"{path.as_posix()}:1"
    assert json.loads(docs[0]["metadata"]) == {"id": "a", "doc_id": "D1"}
    assert skipped.ids == {"from_location": 1}


def test_parquet_rows_keep_their_ids_and_typed_fields(tmp_path):
    import datetime
    import decimal

    path = tmp_path / "data.parquet"
    pq.write_table(pa.table({
        "id": pa.array([10, 11], pa.int64()),
        "text": ["a doc", "another"],
        "crawled": pa.array([datetime.datetime(2024, 5, 1, 12, 30), None], pa.timestamp("s")),
        "day": pa.array([datetime.date(2024, 5, 1)] * 2, pa.date32()),
        "price": pa.array([decimal.Decimal("1.10"), None], pa.decimal128(5, 2)),
        "raw": pa.array([b"\x00\x01", b""], pa.binary()),
        "score": [0.5, float("nan")],
        "meta": [{"lang": "en", "n": 1}, {"lang": "fr", "n": 2}],
        "embedding": pa.array([[0.1, 0.2], [0.3, 0.4]], pa.list_(pa.float32())),
        "lang": pa.array(["en", "fr"]).dictionary_encode(),  # a pandas categorical
        "ok": [True, False],
    }), path)
    docs, skipped = files(path)
    assert [d["id"] for d in docs] == ["10", "11"]
    assert docs[1]["provenance"] == f"{path.as_posix()}#row=1"
    # by default the scalar columns: binary, struct and list columns are left out
    assert [json.loads(d["metadata"]) for d in docs] == [
        {"crawled": "2024-05-01T12:30:00", "day": "2024-05-01", "price": "1.10", "score": 0.5,
         "lang": "en", "ok": True},
        {"crawled": None, "day": "2024-05-01", "price": None, "score": None, "lang": "fr",
         "ok": False}]
    assert skipped.ids == {"from_id_field": 2}
    # listed, any column is kept: bytes in base64
    docs, _ = files(path, metadata_fields=["raw", "meta", "embedding", "absent"])
    assert [json.loads(d["metadata"]) for d in docs] == [
        {"raw": "AAE=", "meta": {"lang": "en", "n": 1}, "embedding": [pytest.approx(0.1), pytest.approx(0.2)]},
        {"raw": "", "meta": {"lang": "fr", "n": 2}, "embedding": [pytest.approx(0.3), pytest.approx(0.4)]}]


def test_parquet_reads_only_the_text_id_and_metadata_columns(tmp_path, monkeypatch):
    """A wide image or embedding column is never read unless it is asked for: converting it to
    Python objects only to leave it out made reading many times slower (docs/data.md)."""
    path = tmp_path / "data.parquet"
    pq.write_table(pa.table({"image": [b"\x89PNG" * 1000], "id": ["a"], "text": ["a doc"],
                             "url": ["https://a.org"],
                             "embedding": pa.array([[0.5] * 768], pa.list_(pa.float32()))}), path)
    read = []
    iter_batches = pq.ParquetFile.iter_batches

    def spy(self, *args, **kwargs):
        read.append(kwargs.get("columns"))
        return iter_batches(self, *args, **kwargs)

    monkeypatch.setattr(pq.ParquetFile, "iter_batches", spy)
    docs, _ = files(path)
    assert read == [["text", "id", "url"]] and json.loads(docs[0]["metadata"]) == {"url": "https://a.org"}
    docs, _ = files(path, metadata_fields=[])
    assert read[-1] == ["text", "id"] and docs[0]["metadata"] == "{}"
    docs, _ = files(path, id_field=None, metadata_fields=["embedding"])
    assert read[-1] == ["text", "embedding"] and len(json.loads(docs[0]["metadata"])["embedding"]) == 768


def test_parquet_integer_ids_with_gaps_as_pandas_writes_them(tmp_path):
    path = tmp_path / "data.parquet"
    pq.write_table(pa.table({"id": [1.0, None, float("nan")], "text": ["a", "b", "c"]}), path)
    docs, _ = files(path)
    assert [d["id"] for d in docs] == ["1", f"{path.as_posix()}:1", f"{path.as_posix()}:2"]


def test_json_lone_surrogate_is_skipped_not_a_crash(tmp_path):
    """JSON may escape half of a UTF-16 pair (RFC 8259, 8.2); no UTF-8 table can hold it."""
    path = tmp_path / "data.jsonl"
    path.write_text('{"text": "bad \\ud800 text"}\n{"text": "ok", "note": "bad \\udc00"}\n'
                    '{"id": "\\ud83d", "text": "ok"}\n{"text": "fine \\ud83d\\udc0d"}\n')
    docs, skipped = files(path)
    assert [d["text"] for d in docs] == ["fine 🐍"]
    assert skipped == {"lone_surrogate": 3}
    from pretrain.sources.download import (
        download,  # the stage used to stop with a UnicodeEncodeError
    )

    report = download(DownloadConfig(source="files", path=str(path)), tmp_path / "raw")
    assert report["documents"] == 1 and report["skipped"] == {"lone_surrogate": 3}


# --- Parquet -----------------------------------------------------------------------------------------


def test_parquet_rows_keep_their_row_numbers(tmp_path):
    path = tmp_path / "data.parquet"
    pq.write_table(pa.table({"text": ["a doc", None, "", "another"], "n": [0, 1, 2, 3]}), path)
    docs, skipped = files(path)
    assert [(d["id"], d["text"]) for d in docs] == [(f"{path.as_posix()}:0", "a doc"),
                                                    (f"{path.as_posix()}:3", "another")]
    assert docs[1]["provenance"] == f"{path}#row=3"
    assert skipped == {"missing_text_field": 1, "empty_text": 1}


def test_parquet_non_string_text_is_counted(tmp_path):
    path = tmp_path / "data.parquet"
    pq.write_table(pa.table({"text": [1, 2]}), path)
    docs, skipped = files(path)
    assert docs == [] and skipped == {"text_not_a_string": 2}


def test_parquet_without_the_text_column_names_file_and_column(tmp_path):
    path = tmp_path / "data.parquet"
    pq.write_table(pa.table({"content": ["a doc"]}), path)
    with pytest.raises(DataError, match=r"data\.parquet: no column 'body'.*download\.text_field"):
        files(path, text_field="body")


def test_damaged_parquet_is_a_data_error(tmp_path):
    path = tmp_path / "data.parquet"
    path.write_bytes(b"PAR1 truncated")
    with pytest.raises(DataError, match=r"data\.parquet: cannot read Parquet"):
        files(path)


# --- CSV and TSV ------------------------------------------------------------------------------------


def test_csv_rows_are_documents_from_the_text_column_with_their_ids_and_fields(tmp_path):
    path = tmp_path / "data.csv"
    path.write_bytes(b'\xef\xbb\xbfid,text,lang\r\n'
                     b'1,"a doc, with a comma",en\r\n'
                     b'2,"a ""quoted"" doc\r\nover two lines",en\r\n'
                     b'\r\n'                                  # blank line: no record
                     b'3,,en\r\n'
                     b'4\r\n'                                 # a short row: no text column
                     b'5,' + ("x" * 200_000).encode() + b',en\r\n')  # over csv's default field limit
    docs, skipped = files(path)
    assert [d["text"] for d in docs] == ["a doc, with a comma", 'a "quoted" doc\nover two lines',
                                         "x" * 200_000]
    name = path.as_posix()
    assert [d["id"] for d in docs] == ["1", "2", "5"]  # the id column; the row in provenance
    assert [d["provenance"] for d in docs] == [f"{name}#row=0", f"{name}#row=1", f"{name}#row=4"]
    assert [json.loads(d["metadata"]) for d in docs] == [{"lang": "en"}] * 3
    assert docs[0]["source"] == "files"
    assert skipped == {"empty_text": 1, "missing_text_field": 1}
    assert skipped.ids == {"from_id_field": 3}
    docs, _ = files(path, metadata_fields=[])
    assert [d["metadata"] for d in docs] == ["{}"] * 3


def test_tsv_and_the_configured_column(tmp_path):
    path = tmp_path / "data.tsv"
    path.write_text("title\tbody\nfirst\tthe first body\nsecond\tthe second body\n")
    docs, _ = files(path, text_field="body")
    assert [d["text"] for d in docs] == ["the first body", "the second body"]


def test_csv_without_the_text_column_names_file_and_columns(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text("title,body\na,b\n")
    with pytest.raises(DataError, match=r"data\.csv: no column 'text' \(columns: \['title', 'body'\]\)"):
        files(path)


def test_csv_in_a_legacy_encoding_is_decoded(tmp_path):
    path = tmp_path / "data.csv"
    path.write_bytes(f'text\n"{FRENCH}"\n"{FRENCH[:80]}"\n'.encode("cp1252"))
    docs, skipped = files(path)
    assert [d["text"] for d in docs] == [FRENCH, FRENCH[:80]]
    assert skipped.decoded == {"cp1252": 1} and not skipped


def test_csv_that_is_not_what_its_first_mib_says_fails_naming_file_and_line(tmp_path):
    path = tmp_path / "data.csv"
    path.write_bytes(b"text\n" + b"plain ascii row\n" * 70_000 + b"caf\xe9\n")
    with pytest.raises(DataError, match=r"data\.csv: line \d+: cannot read as utf-8-sig CSV.*"
                                        r"set download\.encoding to its encoding if the whole file "
                                        r".*convert those lines\)$"):
        files(path)


# --- plain text and HTML -------------------------------------------------------------------------------


def test_text_file_is_one_document_without_bom_or_crlf(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_bytes(b"\xef\xbb\xbfline one\r\nline two\r\n")
    docs, _ = files(path)
    assert docs == [{"id": path.as_posix(), "text": "line one\nline two\n", "source": "files",
                     "provenance": path.as_posix(), "metadata": "{}", "kind": "prose"}]


def test_html_is_kept_raw_and_marked_for_the_clean_stage(tmp_path):
    page = '<html><head><meta charset="windows-1252"><title>t</title></head><body><p>café “x”</p></body></html>'
    (tmp_path / "page.html").write_bytes(page.encode("cp1252"))
    (tmp_path / "notes.txt").write_text("<p>not HTML: a text file</p>")
    docs, skipped = files(tmp_path)
    by_id = {d["id"]: d for d in docs}
    html_id = (tmp_path / "page.html").as_posix()
    assert by_id[html_id]["text"] == page  # decoded by its meta charset, markup kept
    assert "(decoded from cp1252)" in by_id[html_id]["provenance"]
    assert [d["kind"] for d in docs] == ["prose", "html"]
    assert skipped.decoded == {"cp1252": 1}


def test_empty_text_files_are_counted(tmp_path):
    (tmp_path / "empty.md").write_text("\n\n")
    docs, skipped = files(tmp_path)
    assert docs == [] and skipped.examples == {"empty_file": [(tmp_path / "empty.md").as_posix()]}


@pytest.mark.parametrize("text, encoding", [(FRENCH, "cp1252"), (FRENCH, "latin-1"),
                                            (RUSSIAN, "cp1251"), (RUSSIAN, "koi8_r"),
                                            (JAPANESE, "shift_jis"), ("Größe\n" + FRENCH, "utf-16")])
def test_text_in_another_encoding_is_decoded(tmp_path, text, encoding):
    path = tmp_path / "doc.txt"
    path.write_bytes(text.encode(encoding))
    docs, skipped = files(path)
    assert [d["text"] for d in docs] == [text] and not skipped
    assert docs[0]["provenance"].startswith(f"{path.as_posix()} (decoded from ")


@pytest.mark.parametrize("raw, reason", [
    ("café".encode("latin-1"), "encoding_uncertain"),       # too short to tell cp1252 from cp1251
    ("Kraków leży nad Wisłą, a Wawel był siedzibą królów polskich.".encode("iso8859_2"),
     "encoding_uncertain"),                                  # ISO-8859-2 and windows-1250 both fit
    (b"\x89PNG\r\n\x1a\n" + random.Random(0).randbytes(3000), "not_text"),
])
def test_text_whose_encoding_cannot_be_told_is_skipped_not_garbled(tmp_path, raw, reason):
    path = tmp_path / "doc.txt"
    path.write_bytes(raw)
    docs, skipped = files(path)
    assert docs == [] and skipped.files == {reason: 1} and not skipped  # a whole file, no record
    assert skipped.file_bytes == {reason: len(raw)}
    assert skipped.examples[reason] == [path.as_posix()]


def test_a_configured_encoding_is_used_and_checked(tmp_path):
    (tmp_path / "a.txt").write_bytes("café".encode("latin-1"))  # too short to detect
    (tmp_path / "b.txt").write_bytes("Ωμέγα".encode("utf-8"))      # UTF-8 is still read as UTF-8
    (tmp_path / "c.txt").write_bytes(b"\xaa\xff")                  # bytes that cp1253 leaves undefined
    docs, skipped = files(tmp_path, encoding="cp1253")
    assert [d["text"] for d in docs] == ["cafι", "Ωμέγα"]  # as asked: cp1253 reads é as ι
    assert skipped.examples == {"encoding_mismatch": [(tmp_path / "c.txt").as_posix()]}


def test_decode_prefers_a_declared_charset_and_reads_latin1_labels_as_windows_1252():
    raw = "“quoted” café".encode("cp1252")
    assert decode(raw, declared=("iso-8859-1",)).text == "“quoted” café"  # WHATWG: latin1 -> cp1252
    assert decode(raw, declared=("no-such-charset", "cp1252")).text == "“quoted” café"
    assert decode("plain".encode(), declared=("utf-16",)).text == "plain"  # a wrong hint is skipped


# --- folders and globs --------------------------------------------------------------------------------


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "sources"
    (root / "sub").mkdir(parents=True)
    (root / "a.jsonl").write_text('{"text": "from jsonl"}\n')
    (root / "c.md").write_text("# from markdown\n")
    (root / "sub" / "b.txt").write_text("from a nested text file\n")
    (root / "d.csv").write_text("text\nfrom csv\n")
    (root / "e.odt").write_bytes(b"PK\x03\x04")  # OpenDocument: no reader
    return root


def test_folder_is_searched_recursively_in_sorted_order(folder):
    docs, skipped = files(folder)
    assert [d["text"] for d in docs] == ["from jsonl", "# from markdown\n", "from csv",
                                         "from a nested text file\n"]
    assert not skipped and skipped.files == {"unsupported_file_type": 1}  # the .odt, counted


def test_glob_selects_files(folder):
    docs, _ = files(folder / "*.jsonl")
    assert [d["text"] for d in docs] == ["from jsonl"]
    docs, _ = files(f"{folder}/**/*.txt")
    assert [d["text"] for d in docs] == ["from a nested text file\n"]


def test_a_folder_a_glob_matches_is_read_whole(folder):
    docs, skipped = files(f"{folder}/s*")  # matches the folder sub/
    assert [d["text"] for d in docs] == ["from a nested text file\n"] and skipped.files == {}


def test_files_behind_a_link_to_a_folder_are_read(folder, tmp_path):
    """pathlib's rglob lists a link to a folder but does not descend into it: its files were
    neither read nor counted. (The stage refuses such a link, which DVC does not follow:
    pretrain.stage.watched; library use reads it.)"""
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "f.jsonl").write_text('{"text": "behind a link"}\n')
    (folder / "sub" / "linked").symlink_to(outside)
    (folder / "sub" / "up").symlink_to(folder)  # a loop is walked once
    docs, skipped = files(folder)
    assert [d["text"] for d in docs] == ["from jsonl", "# from markdown\n", "from csv",
                                         "from a nested text file\n", "behind a link"]
    assert skipped.files == {"unsupported_file_type": 1}


@pytest.fixture
def unknown_types(tmp_path):
    """Four files of a type no reader reads (1,000 bytes in all) and one JSON-lines file."""
    root = tmp_path / "src"
    (root / "sub").mkdir(parents=True)
    (root / "z.jsonl").write_text('{"text": "kept"}\n{"text": "kept too"}\n')
    for i, size in enumerate([100, 200, 300]):
        (root / f"{i}.bin").write_bytes(bytes(size))
    (root / "sub" / "3.bin").write_bytes(bytes(400))
    return root


def test_files_no_reader_reads_are_counted_in_files_and_bytes_however_the_path_is_given(
        unknown_types):
    """The report's case: a folder's .jsonl records, and its other files gone without a trace."""
    root = unknown_types
    paths = [root, f"{root}/*", f"{root}/**", f"{root}/**/*.*"]
    for path in paths:
        docs, skipped = files(path)
        assert [d["text"] for d in docs] == ["kept", "kept too"], path
        assert skipped.files == {"unsupported_file_type": 4}, path
        assert skipped.file_bytes == {"unsupported_file_type": 1000} and not skipped, path
    assert skipped.examples["unsupported_file_type"] == [
        (root / n).as_posix() for n in ("0.bin", "1.bin", "2.bin", "sub/3.bin")]
    docs, skipped = files(root / "sub" / "3.bin")  # one file
    assert docs == [] and skipped.files == {"unsupported_file_type": 1}
    # a mix entry (its files in sorted order, the .jsonl last: a source stops at its share)
    entry = MixSourceConfig(name="m", source="files", path=str(root), weight=1)
    skipped = Skipped()
    docs = list(iter_documents(DownloadConfig(source="mix", sources=[entry], max_documents=2),
                               skipped))
    assert len(docs) == 2 and skipped.files == {"unsupported_file_type": 4}
    with pytest.raises(DataError, match=r"has 2 usable documents, .* \(skipped so far, all "
                                        r"sources: 4 files, 1\.0 kB, unsupported_file_type\)$"):
        list(iter_documents(DownloadConfig(source="mix", sources=[entry], max_documents=3),
                            Skipped()))


def test_a_folder_of_only_unknown_types_is_counted_not_called_empty(unknown_types):
    (unknown_types / "z.jsonl").unlink()
    docs, skipped = files(unknown_types)  # "no input files match" before
    assert docs == [] and skipped.file_bytes == {"unsupported_file_type": 1000}


def test_no_matching_files_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match=r"download\.path: no input files match"):
        files(tmp_path / "*.jsonl")
    with pytest.raises(DataError, match="no input files"):
        files(tmp_path)  # an empty folder


def test_explicit_file_of_unknown_type_is_counted(folder):
    docs, skipped = files(folder / "e.odt")
    assert docs == [] and skipped.files == {"unsupported_file_type": 1} and not skipped
