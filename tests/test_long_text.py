"""One ~1 MB text file of Tiny Shakespeare's shape (speakers' lines, blank lines between the
speeches) through download, clean, dedup, tokenizer and pack with the debug profile: it is cut
into documents, so the document-level validation split gets some (before, the one document went
to one split and pack refused)."""

import random
from pathlib import Path

import yaml

from pretrain.clean.runner import clean
from pretrain.config import load_all
from pretrain.dedup.runner import dedup
from pretrain.sources.download import download
from pretrain.tokens.pack import pack
from pretrain.tokens.tokenizer import build_tokenizer

ROOT = Path(__file__).resolve().parents[1]
SPEAKERS = ["FIRST CITIZEN", "SECOND CITIZEN", "MENENIUS", "MARCIUS", "COMINIUS", "VOLUMNIA",
            "ROMEO", "JULIET", "NURSE", "FRIAR LAURENCE", "KING RICHARD", "QUEEN", "GLOUCESTER"]
WORDS = ("the and to of that with have be my your our their his her this what shall will would "
         "not but for from good lord king queen love death life night day heart hand eyes blood "
         "sword crown city people grief joy fortune honour time world heaven earth friend enemy "
         "brother father mother son daughter war peace speak hear come go stay tell know think "
         "fear hope swear call bring give take make keep leave find lose die live weep smile noble "
         "gentle poor proud sweet bitter fair foul true false young old great little dear cruel "
         "wise mad strange kind rich brave fortune senate tribune market bread corn famine rome "
         "verona london tower garden window morning evening tomorrow yesterday never always again "
         "here there now then thus therefore indeed alas farewell welcome pardon mercy justice").split()


def shakespeare_shape(target_bytes: int, seed: int = 0) -> str:
    """Speeches of one to four verse lines under a speaker's name, a blank line after each."""
    rng, speeches, size = random.Random(seed), [], 0
    while size < target_bytes:
        lines = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 10))).capitalize()
                 + rng.choice(".,;!?") for _ in range(rng.randint(1, 4))]
        speech = f"{rng.choice(SPEAKERS)}:\n" + "\n".join(lines) + "\n\n"
        speeches.append(speech)
        size += len(speech)
    return "".join(speeches)


def test_one_big_text_file_gives_the_validation_split_documents(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    source = tmp_path / "data" / "sources" / "input.txt"
    source.parent.mkdir(parents=True)
    text = shakespeare_shape(1_100_000)
    source.write_text(text)
    params = yaml.safe_load((ROOT / "profiles" / "debug.yaml").read_text())
    params["download"].update(source="files", path="data/sources/input.txt", max_documents=None)
    params["executor"]["workers"] = 1
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    cfg = load_all(tmp_path / "params.yaml")
    data = tmp_path / "data"

    got = download(cfg["download"], data / "raw")
    # 1.1 MB in parts of at most 4,000 characters of whole speeches: ~280 documents
    assert 275 <= got["documents"] <= 300 and got["chars"] <= len(text)
    clean(cfg["clean"], cfg["executor"], data / "raw", data / "clean", tmp_path / "work" / "clean")
    kept = dedup(cfg["dedup"], cfg["executor"], data / "clean", data / "dedup", tmp_path / "work" / "dedup")
    assert kept["documents_out"] > 0.9 * got["documents"]
    build_tokenizer(cfg["tokenizer"], data / "dedup", data / "tokenizer")
    report = pack(cfg["pack"], cfg["executor"], data / "tokenizer", data / "dedup", data / "packed",
                  tmp_path / "work" / "pack", data / "tokens")
    assert report["val"]["documents"] > 10 and report["val"]["rows"] > 100
    assert report["train"]["documents"] > 8 * report["val"]["documents"]
