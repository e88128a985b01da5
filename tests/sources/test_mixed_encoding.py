"""Text files that are UTF-8 but for a few lines (pretrain.sources.encoding.decode_mixed)."""

from pretrain.sources.download import download
from pretrain.sources.encoding import Decoded, Repaired, decode_mixed
from pretrain.config.sources import DownloadConfig

from tests.sources.test_files import FRENCH, files

GOOD = [f"Line {n}: the café opens at nine.\n" for n in range(27)]  # UTF-8, non-ASCII


def mixed_file(tmp_path):
    """30 lines: 27 UTF-8, two with cp1252 quotes (0x92, 0x93/0x94) and one with 0x81, which
    cp1252 leaves undefined."""
    lines = [line.encode("utf-8") for line in GOOD]
    lines.insert(3, b"It\x92s a fine day.\n")
    lines.insert(10, b"\x93Quoted,\x94 she said.\n")
    lines.insert(20, b"Broken \x81 byte.\n")
    path = tmp_path / "mixed.txt"
    path.write_bytes(b"".join(lines))
    return path


def test_cp1252_lines_in_a_utf8_file_are_repaired_and_an_undecodable_one_dropped(tmp_path):
    path = mixed_file(tmp_path)
    docs, skipped = files(path)
    expected = GOOD[:3] + ["It’s a fine day.\n"] + GOOD[3:9] + ["“Quoted,” she said.\n"] + GOOD[9:]
    assert [d["text"] for d in docs] == ["".join(expected)]
    assert docs[0]["provenance"] == f"{path} (lines repaired from cp1252: 2, lines dropped: 1)"
    report = skipped.report()
    assert (report["lines_repaired"], report["lines_dropped"]) == (2, 1)
    assert report["skipped_examples"] == {"lines_repaired": [f"{path}:4", f"{path}:11"],
                                          "lines_dropped": [f"{path}:21"]}
    assert report["skipped_files"] == {} and report["decoded"] == {}


def test_download_report_counts_lines_and_the_stage_line_names_the_dropped(tmp_path):
    report = download(DownloadConfig(source="files", path=str(mixed_file(tmp_path))), tmp_path / "raw")
    assert (report["documents"], report["lines_repaired"], report["lines_dropped"]) == (1, 2, 1)


def test_configured_encoding_does_not_turn_the_utf8_lines_into_mojibake(tmp_path):
    docs, skipped = files(mixed_file(tmp_path), encoding="cp1252")
    assert "café" in docs[0]["text"] and "cafÃ©" not in docs[0]["text"]
    assert skipped.lines == {"lines_repaired": 2, "lines_dropped": 1}


def test_without_a_fallback_encoding_the_bad_lines_are_dropped(tmp_path):
    docs, skipped = files(mixed_file(tmp_path), fallback_encoding=None)
    assert docs[0]["text"] == "".join(GOOD)
    assert skipped.lines == {"lines_dropped": 3}


def test_past_the_share_of_bad_lines_the_whole_file_path_applies(tmp_path):
    # 2 bad lines of 10: more than 10%, so the file is told whole: neither UTF-8 nor detected
    raw = b"".join(line.encode("utf-8") for line in GOOD[:8]) + b"It\x92s.\n" + b"\x93Q\x94\n"
    assert decode_mixed(raw, None, "cp1252", 0.1) == Decoded(None, None, "encoding_uncertain")
    assert isinstance(decode_mixed(raw, None, "cp1252", 0.2), Repaired)
    path = tmp_path / "half.txt"
    path.write_bytes(raw)
    docs, skipped = files(path)
    assert docs == [] and skipped.files == {"encoding_uncertain": 1} and not skipped.lines


def test_a_file_mostly_in_cp1252_is_decoded_whole_not_line_by_line(tmp_path):
    path = tmp_path / "fr.txt"
    text = (FRENCH + "\n") * 4
    path.write_bytes(text.encode("cp1252"))
    docs, skipped = files(path)  # every line is not UTF-8: detection, as before
    assert [d["text"] for d in docs] == [text] and skipped.decoded == {"cp1252": 1}
    assert docs[0]["provenance"] == f"{path} (decoded from cp1252)" and not skipped.lines


def test_configured_cp1252_still_reads_a_pure_cp1252_file(tmp_path):
    path = tmp_path / "short.txt"
    path.write_bytes("Ça coûte 5 €.\n".encode("cp1252"))  # too short to detect
    assert files(path)[1].files == {"encoding_uncertain": 1}
    docs, skipped = files(path, encoding="cp1252")
    assert [d["text"] for d in docs] == ["Ça coûte 5 €.\n"] and skipped.decoded == {"cp1252": 1}


def test_an_ascii_file_with_one_cp1252_quote_is_repaired_when_detection_cannot_tell(tmp_path):
    path = tmp_path / "notes.txt"
    lines = [f"Note {n}: plain ASCII text.\n" for n in range(19)] + ["Don\x92t.\n"]
    path.write_bytes("".join(lines).encode("latin-1"))
    docs, skipped = files(path)
    assert docs[0]["text"].endswith("Don’t.\n") and skipped.lines == {"lines_repaired": 1}
