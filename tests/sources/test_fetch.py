"""URLs, against a real HTTP server on 127.0.0.1: success, 404, slow response, oversize body,
non-UTF-8 bodies, retries, redirects, and the cache that spares a rerun the fetching."""

import http.server
import json
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from pretrain.config import load_all
from pretrain.config.sources import DownloadConfig, FetchConfig
from pretrain.errors import ConfigError
from pretrain.io import iter_documents as read_table
from pretrain.sources.download import download, iter_documents
from pretrain.sources.records import Skipped
from pretrain.sources.urls import (
    Failure,
    Response,
    cache_key,
    fetch,
    fetch_with_retries,
)

ROOT = Path(__file__).resolve().parents[2]
CODE = "def find_max(numbers):\n    return max(numbers)\n"
FRENCH = ("Le château se trouve au bord de la rivière. Les élèves étudient l'histoire de la région "
          "depuis des années, et leurs professeurs sont très fiers de leurs progrès. À la fin de "
          "l'été, on organise une fête où chacun apporte un plat préparé à la maison.")
PAGE = '<html><head><meta charset="utf-8"></head><body><p>Ünïcode page</p></body></html>'
SLOW_S = 1.0
FAST = FetchConfig(timeout_s=0.3, retries=2, backoff_s=0.01, max_bytes=1000, workers=2)


class Handler(http.server.BaseHTTPRequestHandler):
    """Routes by path; counts the requests each path got (``server.hits``)."""

    ROUTES = {
        "/ok.py": (200, {"Content-Type": "text/plain; charset=utf-8"}, CODE.encode()),
        "/latin1-declared": (200, {"Content-Type": "text/plain; charset=ISO-8859-1"}, FRENCH.encode("latin-1")),
        "/latin1-bare": (200, {"Content-Type": "text/plain"}, FRENCH.encode("latin-1")),
        "/latin1-short": (200, {"Content-Type": "text/plain"}, "café".encode("latin-1")),
        "/page.html": (200, {"Content-Type": "text/html"}, PAGE.encode()),
        "/image.png": (200, {"Content-Type": "image/png"}, b"\x89PNG\r\n\x1a\n"),
        "/big-declared": (200, {"Content-Type": "text/plain"}, b"x" * 5000),
        "/missing": (404, {"Content-Type": "text/plain"}, b"not found"),
        "/redirect": (302, {"Location": "/ok.py"}, b""),
        "/redirect-ftp": (302, {"Location": "ftp://127.0.0.1/file"}, b""),
    }

    def do_GET(self):
        self.server.hits[self.path] += 1
        n = self.server.hits[self.path]
        if self.path == "/slow":
            time.sleep(SLOW_S)
            return self.reply(200, {"Content-Type": "text/plain"}, b"too late")
        if self.path == "/big-undeclared":  # no Content-Length: the body ends when the server closes
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            for _ in range(100):
                self.wfile.write(b"y" * 100)
            return
        if self.path == "/flaky":  # two 503s, then the document
            if n <= 2:
                return self.reply(503, {"Content-Type": "text/plain"}, b"busy")
            return self.reply(200, {"Content-Type": "text/plain"}, b"third time lucky")
        if self.path == "/throttled":  # a 429 saying when to come back, then the document
            if n == 1:
                return self.reply(429, {"Retry-After": "0"}, b"")
            return self.reply(200, {"Content-Type": "text/plain"}, b"after waiting")
        self.reply(*self.ROUTES.get(self.path, (404, {}, b"")))

    def reply(self, status, headers, body):
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class Server(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        pass  # the client of /slow hangs up before the reply: expected


@pytest.fixture
def server():
    httpd = Server(("127.0.0.1", 0), Handler)
    httpd.hits = Counter()
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def collect(urls, fetch_cfg=FAST, cache=None, **kwargs):
    skipped = Skipped()
    cfg = DownloadConfig(source="urls", urls=urls, fetch=fetch_cfg, **kwargs)
    return list(iter_documents(cfg, skipped, cache)), skipped


def test_a_url_is_one_document_with_its_provenance(server):
    docs, skipped = collect([f"{server.url}/ok.py"])
    assert len(docs) == 1 and not skipped
    doc = docs[0]
    assert doc["id"] == f"{server.url}/ok.py" and doc["text"] == CODE and doc["source"] == "urls"
    assert doc["provenance"].startswith(f"{server.url}/ok.py (HTTP 200, text/plain, fetched 20")
    assert skipped.fetched == {"network": 1}


def test_404_is_skipped_without_retrying(server):
    docs, skipped = collect([f"{server.url}/missing", f"{server.url}/ok.py"])
    assert [d["text"] for d in docs] == [CODE]
    assert skipped.urls == {"http_404": 1} and skipped.examples["http_404"] == [f"{server.url}/missing"]
    assert server.hits["/missing"] == 1


def test_slow_response_times_out_after_its_retries(server):
    start = time.monotonic()
    docs, skipped = collect([f"{server.url}/slow"], FetchConfig(timeout_s=0.2, retries=1, backoff_s=0.01))
    assert docs == [] and skipped.urls == {"timeout": 1}
    assert server.hits["/slow"] == 2  # the first try and one retry
    assert time.monotonic() - start < 2 * SLOW_S  # the client gave up; it did not wait the server out


def test_server_errors_and_throttling_are_retried(server):
    waits = []
    result = fetch_with_retries(f"{server.url}/flaky", FAST, sleep=waits.append)
    assert isinstance(result, Response) and result.body == b"third time lucky"
    assert waits == [0.01, 0.02]  # exponential backoff
    result = fetch_with_retries(f"{server.url}/throttled", FAST, sleep=waits.append)
    assert isinstance(result, Response) and waits[2:] == [0.0]  # the server's Retry-After
    server.hits.clear()  # /flaky fails twice again
    gave_up = fetch_with_retries(f"{server.url}/flaky", FetchConfig(retries=0), sleep=waits.append)
    assert gave_up == Failure("http_503", retry=True)


def test_oversize_responses_are_skipped_without_reading_past_the_cap(server):
    docs, skipped = collect([f"{server.url}/big-declared", f"{server.url}/big-undeclared"])
    assert docs == [] and skipped.urls == {"too_large": 2}


def test_non_utf8_bodies_are_decoded_by_header_or_detection(server):
    docs, skipped = collect([f"{server.url}/latin1-declared", f"{server.url}/latin1-bare",
                             f"{server.url}/latin1-short"], FetchConfig(max_bytes=10_000))
    assert [d["text"] for d in docs] == [FRENCH, FRENCH]
    assert skipped.urls == {"encoding_uncertain": 1}  # four bytes: too few to tell the encoding
    assert skipped.decoded == {"cp1252": 2}
    assert docs[1]["provenance"].endswith("(decoded from cp1252)")


def test_html_is_marked_and_other_binary_types_are_skipped(server):
    docs, skipped = collect([f"{server.url}/page.html", f"{server.url}/image.png", f"{server.url}/ok.py",
                             f"{server.url}/latin1-declared"])
    assert [(d["id"], d["kind"]) for d in docs] == [
        (f"{server.url}/page.html", "html"), (f"{server.url}/ok.py", "code"),  # text/plain, .py
        (f"{server.url}/latin1-declared", "prose")]
    assert docs[0]["text"] == PAGE
    assert skipped.urls == {"not_text": 1}


def test_redirects_are_followed_to_http_only(server):
    docs, skipped = collect([f"{server.url}/redirect", f"{server.url}/redirect-ftp"])
    assert [d["text"] for d in docs] == [CODE]
    assert f"-> {server.url}/ok.py (HTTP 200" in docs[0]["provenance"]
    assert skipped.urls == {"redirect_refused": 1}


def test_refused_connection_is_counted():
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    docs, skipped = collect([f"http://127.0.0.1:{port}/x"], FetchConfig(timeout_s=1, retries=1, backoff_s=0))
    assert docs == [] and skipped.urls == {"connection_failed": 1}


def test_cache_spares_a_rerun_the_fetching(server, tmp_path):
    urls = [f"{server.url}/ok.py", f"{server.url}/page.html", f"{server.url}/missing"]
    first, skipped = collect(urls, cache=tmp_path)
    assert skipped.fetched == {"network": 2}
    hits = dict(server.hits)
    again, skipped = collect(urls, cache=tmp_path)
    assert again == first and skipped.fetched == {"cache": 2}
    assert server.hits == {**hits, "/missing": 2}  # only the failed URL is tried again
    key = cache_key(f"{server.url}/ok.py")
    assert (tmp_path / f"{key}.body").read_bytes() == CODE.encode()
    assert json.loads((tmp_path / f"{key}.json").read_text())["status"] == 200


def test_half_written_cache_entry_is_fetched_again(server, tmp_path):
    url = f"{server.url}/ok.py"
    (tmp_path / f"{cache_key(url)}.body").write_bytes(b"partial")  # a run killed before the .json
    result = fetch(url, FAST, tmp_path)
    assert isinstance(result, Response) and not result.from_cache and result.body == CODE.encode()
    assert fetch(url, FAST, tmp_path).from_cache


def test_download_stage_fetches_once(server, tmp_path):
    """The real stage script, run twice: the second run reads the cache folder, not the server."""
    params = tmp_path / "params.yaml"
    params.write_text(f"download:\n  source: urls\n  urls: ['{server.url}/ok.py', '{server.url}/missing']\n")
    cmd = [sys.executable, str(ROOT / "stages" / "download.py"), "--params", str(params),
           "--out", "raw", "--url-cache", "url_cache", "--metrics", "download.json"]
    for run in range(2):
        result = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        report = json.loads((tmp_path / "download.json").read_text())
        assert report["fetched"] == ({"network": 1} if run == 0 else {"cache": 1})
        assert report["by_source"] == {"urls": 1} and report["skipped_urls"] == {"http_404": 1} and report["skipped"] == {}
    assert server.hits["/ok.py"] == 1
    assert [d["text"] for d in read_table(tmp_path / "raw")] == [CODE]


def test_download_creates_the_cache_folder_dvc_expects(tmp_path):
    jsonl = tmp_path / "a.jsonl"
    jsonl.write_text('{"text": "x"}\n')
    download(DownloadConfig(source="files", path=str(jsonl)), tmp_path / "raw", tmp_path / "cache")
    tag = (tmp_path / "cache" / "CACHEDIR.TAG").read_text()  # not empty: DVC warns about empty outputs
    assert tag.startswith("Signature: 8a477f597d28d172789f06886806bc55")


@pytest.mark.parametrize("text, message", [
    ("download:\n  source: urls\n  urls: ['file:///etc/passwd']\n",
     "download.urls[0]: expected an http:// or https:// URL, got 'file:///etc/passwd'"),
    ("download:\n  source: urls\n  urls: ['https://example.com/a', 'ftp://example.com/b']\n",
     "download.urls[1]: expected an http:// or https:// URL, got 'ftp://example.com/b'"),
    ("download:\n  source: urls\n  urls: []\n", "download.urls: required when source is 'urls'"),
    ("download:\n  source: urls\n  urls: ['https://x.org/a', 'https://x.org/a']\n",
     "download.urls[1]: 'https://x.org/a' is listed twice"),
    ("download:\n  source: urls\n  urls: ['https://x.org']\n  fetch:\n    timeout_s: 0\n",
     "download.fetch.timeout_s: expected a value > 0, got 0.0"),
    ("download:\n  source: urls\n  urls: ['https://x.org']\n  fetch:\n    retrys: 2\n",
     "download.fetch.retrys: unknown key"),
])
def test_bad_url_params_fail_in_one_line_naming_the_key(tmp_path, text, message):
    path = tmp_path / "params.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_all(path)
    assert str(err.value).startswith(f"{path}: {message}") and "\n" not in str(err.value)
