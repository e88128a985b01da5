"""Document kinds (pretrain.sources.kinds): set by the reader from a file's extension, or from
the record field that ``kind_field`` names, and read by the clean stage to choose its rules."""

import json
from pathlib import Path

import pytest

from pretrain.clean.runner import clean
from pretrain.config import load_section
from pretrain.config.executor import ExecutorConfig
from pretrain.config.sources import DownloadConfig
from pretrain.io import iter_documents
from pretrain.sources.builtin import stdlib_files
from pretrain.sources.download import download
from pretrain.sources.download import iter_documents as source_documents
from pretrain.sources.kinds import KindRule, extension_kind
from pretrain.sources.records import Skipped


def kinds(path, **kwargs) -> tuple[list[tuple[str, str]], Skipped]:
    skipped = Skipped()
    docs = source_documents(DownloadConfig(source="files", path=str(path), **kwargs), skipped)
    return [(d["text"], d["kind"]) for d in docs], skipped


@pytest.mark.parametrize("field, value, kind", [
    ("lang", "python", "code"),
    ("lang", "Python", "code"),        # The Stack's spelling
    ("lang", "C++", "code"),
    ("lang", "HTML", "html"),
    ("lang", "Markdown", "prose"),
    ("path", "src/tool.py", "code"),
    ("path", "site/index.HTM", "html"),
    ("path", "README", "prose"),
    ("ext", "py", "code"),
    ("ext", ".rs", "code"),
    ("ext", "txt", "prose"),
    ("kind", "code", "code"),          # a field that already says it
    ("kind", "prose", "prose"),
])
def test_a_record_s_kind_comes_from_the_field_kind_field_names(tmp_path, field, value, kind):
    path = tmp_path / "records.jsonl"
    path.write_text(json.dumps({"text": "x = 1", field: value}) + "\n")
    assert kinds(path, kind_field=field)[0] == [("x = 1", kind)]


def test_a_record_without_the_kind_field_is_prose_and_counted(tmp_path):
    path = tmp_path / "records.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in [
        {"text": "a", "lang": "python"}, {"text": "b"}, {"text": "c", "lang": None}]))
    found, skipped = kinds(path, kind_field="lang")
    assert found == [("a", "code"), ("b", "prose"), ("c", "prose")]
    assert skipped.kind_field_missing == 2
    report = download(DownloadConfig(source="files", path=str(path), kind_field="lang"),
                      tmp_path / "raw")
    assert report["by_kind"] == {"code": 1, "prose": 2} and report["kind_field_missing"] == 2


def test_code_values_are_configurable(tmp_path):
    path = tmp_path / "records.jsonl"
    path.write_text(json.dumps({"text": "x", "lang": "Zig"}) + "\n")
    assert kinds(path, kind_field="lang")[0] == [("x", "prose")]
    assert kinds(path, kind_field="lang", code_values=["zig"])[0] == [("x", "code")]


def test_without_a_kind_field_a_record_id_is_matched_like_a_file_name(tmp_path):
    """As the clean stage read ids before documents had a kind: ``tool.py`` is code; a bare
    name is not an extension (``r`` is not R)."""
    path = tmp_path / "records.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in [
        {"id": "tool.py", "text": "a"}, {"id": "r", "text": "b"}, {"text": "c"},
        {"id": "page.html", "text": "d"}]))
    assert kinds(path)[0] == [("a", "code"), ("b", "prose"), ("c", "prose"), ("d", "prose")]


def test_files_have_the_kind_of_their_extension(tmp_path):
    (tmp_path / "a.py").write_text("import os\n")
    (tmp_path / "b.md").write_text("# B\n")
    (tmp_path / "c.html").write_text("<p>c</p>")
    assert kinds(tmp_path)[0] == [("import os\n", "code"), ("# B\n", "prose"), ("<p>c</p>", "html")]


def test_source_files_of_every_code_extension_are_read_as_code(tmp_path):
    """``download.code_extensions`` names .c, .js, .rs ...: such files are read (plain or
    compressed), not counted as unsupported; a suffix no one names still is."""
    (tmp_path / "a.c").write_text("int main(void) { return 0; }\n")
    (tmp_path / "b.js.gz").write_bytes(__import__("gzip").compress(b"export const b = 1;\n"))
    (tmp_path / "c.xyz").write_text("?\n")
    docs, skipped = kinds(tmp_path)
    assert docs == [("int main(void) { return 0; }\n", "code"), ("export const b = 1;\n", "code")]
    assert skipped.files == {"unsupported_file_type": 1}
    assert kinds(tmp_path, code_extensions=[".py"])[1].files == {"unsupported_file_type": 3}


def test_kind_rule_and_extension_kind_directly():
    rule = KindRule.of(DownloadConfig(kind_field="lang"))
    assert rule.kind({"lang": " Rust "}, "x") == "code"
    assert rule.kind({}, "x.py") is None
    assert extension_kind("x.tar.gz", [".gz"]) == "code"  # the last extension only
    assert extension_kind("py", [".py"]) == "prose" and extension_kind("py", [".py"], bare=True) == "code"


@pytest.mark.parametrize("kwargs, message", [
    ({"kind_field": " "}, "kind_field: expected a field name"),
    ({"kind_field": "text"}, "kind_field: 'text' is also the text_field"),
    ({"code_values": ["python", ""]}, "code_values\\[1\\]: expected a value of kind_field"),
    ({"html_values": ["html", "Python"]}, "code_values, html_values: 'python' is in both"),
    ({"code_extensions": ["py"]}, "code_extensions: expected lower-case '.ext', got 'py'"),
    ({"code_extensions": [".PY"]}, "code_extensions: expected lower-case '.ext'"),
])
def test_kind_params_are_checked(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DownloadConfig(**kwargs)


def test_stdlib_files_as_json_lines_are_cleaned_as_code_like_the_same_py_files(tmp_path):
    """The Stack's shape: ``content`` plus ``path``. With ``kind_field: path`` the 100 files go
    through the code rules and keep exactly what the same files as .py keep; read as prose (no
    kind field, ids by line) the prose rules keep few of them (the issue measured 16). The
    rules are those of the real params.yaml."""
    rules = load_section("clean", Path(__file__).parents[2] / "params.yaml")
    files = stdlib_files(include_tests=False)[:100]
    folder, lines = tmp_path / "py", tmp_path / "stack.jsonl"
    folder.mkdir()
    with open(lines, "w", encoding="utf-8") as out:
        for rel, path in files:
            text = path.read_text(encoding="utf-8")
            (folder / rel.replace("/", "__")).write_text(text, encoding="utf-8")
            out.write(json.dumps({"content": text, "path": rel}) + "\n")
    kept = {}
    for name, cfg in {
        "py": DownloadConfig(source="files", path=str(folder)),
        "stack": DownloadConfig(source="files", path=str(lines), text_field="content",
                                kind_field="path"),
        "prose": DownloadConfig(source="files", path=str(lines), text_field="content"),
    }.items():
        report = download(cfg, tmp_path / name / "raw")
        assert report["documents"] == 100
        clean(rules, ExecutorConfig(workers=1), tmp_path / name / "raw",
              tmp_path / name / "clean", tmp_path / name / "work")
        kept[name] = sorted(d["text"] for d in iter_documents(tmp_path / name / "clean"))
    assert kept["stack"] == kept["py"]
    assert len(kept["prose"]) < len(kept["py"]) / 2
    print(f"kept of 100: as .py {len(kept['py'])}, as JSON lines with kind_field: path "
          f"{len(kept['stack'])}, as JSON lines without {len(kept['prose'])}")


def test_parquet_reads_the_kind_column_even_when_it_is_not_metadata(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "stack.parquet"
    pq.write_table(pa.table({"content": ["int x;", "# Title"], "path": ["a/x.c", "README.md"],
                             "ext": ["c", "md"]}), path)
    docs = list(source_documents(DownloadConfig(source="files", path=str(path), text_field="content",
                                                kind_field="ext", metadata_fields=[]), Skipped()))
    assert [(d["kind"], d["metadata"]) for d in docs] == [("code", "{}"), ("prose", "{}")]
    docs = list(source_documents(DownloadConfig(source="files", path=str(path), text_field="content",
                                                id_field="path", kind_field="path"), Skipped()))
    assert [(d["id"], d["kind"]) for d in docs] == [("a/x.c", "code"), ("README.md", "prose")]
