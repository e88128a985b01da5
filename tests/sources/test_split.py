"""Cutting one long text into documents (pretrain.sources.split), and the files source using it."""

import re

from pretrain.sources.split import Part, cut_text, split_lines

from tests.sources.test_files import files


def cut(text: str, target: int, maximum: int, pattern: str | None = None) -> list[Part]:
    lines = split_lines(text)
    return list(cut_text(lines, range(1, len(lines) + 1), target, maximum,
                         re.compile(pattern) if pattern else None))


def test_split_lines_numbers_lines_as_editors_do():
    assert split_lines("a\r\nb\x0cc\n\nd") == ["a\r\n", "b\x0cc\n", "\n", "d"]
    assert split_lines("a\n") == ["a\n"]
    assert split_lines("") == []


def test_paragraphs_are_grouped_whole_up_to_the_target():
    # paragraphs of 10, 10, 10 and 25 characters (line ends included), one blank line between
    text = "aaaa\nbbbb\n\ncccc\ndddd\n\neeee\nffff\n\n" + "g" * 24 + "\n"
    parts = cut(text, target=21, maximum=100)
    # 10 + 1 (the blank line) + 10 = 21 fits; the third would make 32; the fourth (25) is alone
    assert parts == [Part("aaaa\nbbbb\n\ncccc\ndddd\n", 1, 5), Part("eeee\nffff\n", 7, 8),
                     Part("g" * 24 + "\n", 10, 10)]


def test_a_paragraph_longer_than_the_maximum_is_cut_at_line_ends_only():
    para = "".join(f"{c * 9}\n" for c in "abcdefg")  # 7 lines of 10 characters, no blank line
    parts = cut("intro\n\n" + para + "\n" + "x" * 30 + "\nend\n", target=20, maximum=25)
    assert [(p.first_line, p.last_line) for p in parts] == [(1, 1), (3, 4), (5, 6), (7, 8), (9, 9), (11, 11), (12, 12)]
    assert parts[1].text == "aaaaaaaaa\nbbbbbbbbb\n"
    # a single line longer than the maximum stays whole: a cut inside it would cut a sentence
    assert parts[5].text == "x" * 30 + "\n"
    assert "".join(p.text for p in parts[1:5]) == para


def test_regex_sections_with_the_text_before_the_first_and_long_sections_cut():
    text = ("Title page\n\nCHAPTER I\nIt was.\n\nCHAPTER II\n" + "Long line number.\n\n" * 4
            + "CHAPTER III\nEnd.\n")
    parts = cut(text, target=40, maximum=60, pattern=r"^CHAPTER [IVXLC]+")
    assert [p.text for p in parts] == [
        "Title page\n", "CHAPTER I\nIt was.\n",
        # chapter II is 11 + 4 * 19 = 87 characters > 60: cut by paragraphs grouped to 40
        "CHAPTER II\nLong line number.\n", "Long line number.\n\nLong line number.\n",
        "Long line number.\n", "CHAPTER III\nEnd.\n"]
    assert [(p.first_line, p.last_line) for p in parts] == [(1, 1), (3, 4), (6, 7), (9, 11), (13, 13), (15, 16)]


def test_long_text_file_becomes_numbered_parts_and_short_ones_stay_whole(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    para = "ROMEO:\nSpeak, speak, the night is long.\n\n"  # 41 characters
    (src / "input.txt").write_text(para * 100)  # 4,100 characters
    (src / "short.txt").write_text(para * 2)
    (src / "code.py").write_text("x = 1\n\n" * 1000)  # code is never cut
    docs, skipped = files(src, split_above_chars=1000, split_target_chars=409, split_max_chars=1000)
    cut_docs = [d for d in docs if d["id"].startswith(f"{src}/input.txt")]
    # 10 paragraphs of 40 characters and the 9 blank lines between them: 409 characters
    assert len(cut_docs) == 10 and all(d["text"] == (para * 10).rstrip("\n") + "\n" for d in cut_docs)
    assert [d["id"] for d in cut_docs] == [f"{src}/input.txt#part={n}" for n in range(10)]
    assert cut_docs[0]["provenance"] == f"{src}/input.txt:1-29"
    assert cut_docs[9]["provenance"] == f"{src}/input.txt:271-299"
    assert {d["id"] for d in docs} - {d["id"] for d in cut_docs} == {f"{src}/short.txt", f"{src}/code.py"}
    assert sum(skipped.values()) == 0
    # split_above_chars: null keeps the file whole, as before
    docs, _ = files(src / "input.txt", split_above_chars=None)
    assert [d["id"] for d in docs] == [f"{src}/input.txt"] and docs[0]["text"] == para * 100


def test_default_threshold_leaves_files_of_100k_characters_whole(tmp_path):
    path = tmp_path / "book.txt"
    path.write_text(("word " * 19 + "word\n\n") * 1000)  # 101,000 characters
    assert len(files(path)[0]) == 26  # 39 paragraphs of 100 characters and 38 blank lines fit in 4,000: 1,000 / 39 -> 26
    path.write_text(("word " * 19 + "word\n\n") * 990)  # 99,990 characters
    assert len(files(path)[0]) == 1
