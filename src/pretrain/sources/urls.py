"""Documents from URLs: fetched over http(s) only, with timeouts, retries, a size cap, and a
cache so that a rerun does not fetch again.

Only successful responses are cached (a failed URL is tried again on the next run), one pair of
files per URL under the cache folder, named by the SHA-256 of the URL: ``<hash>.body`` (the bytes
as received) and ``<hash>.json`` (status, content type, final URL after redirects, fetch time),
each written atomically, the JSON last, so a half-written entry is never read as a good one.
Bodies are decoded after the cache, by the Content-Type charset, an HTML meta charset, UTF-8
or a confident detection (pretrain.sources.encoding).
"""

from __future__ import annotations

import concurrent.futures
import email.message
import hashlib
import http.client
import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Callable, Iterator, NamedTuple

from pretrain import __version__
from pretrain.config.sources import FetchConfig, SourceConfig
from pretrain.io import atomic_path
from pretrain.sources.files import bytes_document
from pretrain.sources.kinds import extension_kind
from pretrain.sources.records import Document, Skipped

USER_AGENT = f"pretrain/{__version__} (Python urllib)"
HTML_TYPES = {"text/html", "application/xhtml+xml"}
TEXT_TYPE_ENDINGS = ("+xml", "+json", "/json", "/xml", "/javascript", "/x-python", "/yaml",
                     "/x-yaml", "/toml", "/x-sh")
MAX_RETRY_AFTER_S = 60.0
CACHE_LOCK = threading.Lock()


class Response(NamedTuple):
    """A successful response, fresh or from the cache."""

    body: bytes
    meta: dict  # url, final_url, status, content_type, charset, fetched_at
    from_cache: bool


class Failure(NamedTuple):
    """Why a URL gave no response: a skip reason, and whether trying again may help."""

    reason: str
    retry: bool = False
    retry_after: float | None = None


class RedirectRefused(urllib.error.URLError):
    """A redirect to a scheme other than http(s) (urllib itself would follow one to ftp:)."""


class _HttpOnlyRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        if urllib.parse.urlsplit(newurl).scheme.lower() not in ("http", "https"):
            raise RedirectRefused(f"redirect to {newurl!r}")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


OPENER = urllib.request.build_opener(_HttpOnlyRedirects)


def read_urls(src: SourceConfig, cfg: FetchConfig, cache_dir: Path | None, skipped: Skipped,
              label: str) -> Iterator[Document]:
    """One document per URL of ``src.urls``, in their order; a URL that gives none (a failed
    fetch, a binary or undecodable body) is counted in URLs (``Skipped.add_url``)."""
    for url, result in fetch_all(src.urls, cfg, cache_dir):
        if isinstance(result, Failure):
            skipped.add_url(result.reason, url)
            continue
        skipped.fetched["cache" if result.from_cache else "network"] += 1
        meta = result.meta
        if not is_text_type(meta["content_type"]):
            skipped.add_url("not_text", f"{url} ({meta['content_type']})")
            continue
        redirect = f" -> {meta['final_url']}" if meta["final_url"] != url else ""
        provenance = (f"{url}{redirect} (HTTP {meta['status']}, {meta['content_type']}, "
                      f"fetched {meta['fetched_at']})")
        html = meta["content_type"] in HTML_TYPES
        # Not HTML: a file's kind by the extension of the URL's path (raw.githubusercontent
        # serves x.py as text/plain), as the clean stage read the id before documents had a kind.
        code = extension_kind(urllib.parse.urlsplit(url).path, src.code_extensions) == "code"
        kind = "html" if html else "code" if code else "prose"
        yield from bytes_document(result.body, url, provenance, html, src.encoding,
                                  (meta["charset"],), skipped, label,
                                  lambda reason, where=provenance: skipped.add_url(reason, where),
                                  kind=kind)


def fetch_all(urls: list[str], cfg: FetchConfig,
              cache_dir: Path | None) -> Iterator[tuple[str, Response | Failure]]:
    """``(url, result)`` for each URL in order, ``cfg.workers`` fetched at a time; a few batches
    at most are held in memory."""
    batch = cfg.workers * 4
    with concurrent.futures.ThreadPoolExecutor(cfg.workers) as pool:
        for start in range(0, len(urls), batch):
            chunk = urls[start:start + batch]
            yield from zip(chunk, pool.map(lambda url: fetch(url, cfg, cache_dir), chunk))


def fetch(url: str, cfg: FetchConfig, cache_dir: Path | None,
          sleep: Callable[[float], None] = time.sleep) -> Response | Failure:
    """The response for ``url``: from the cache, or fetched (and then cached)."""
    cached = read_cache(cache_dir, url) if cache_dir else None
    if cached is not None:
        return Failure("too_large") if len(cached.body) > cfg.max_bytes else cached
    result = fetch_with_retries(url, cfg, sleep)
    if isinstance(result, Response) and cache_dir:
        write_cache(cache_dir, result)
    return result


def fetch_with_retries(url: str, cfg: FetchConfig,
                       sleep: Callable[[float], None] = time.sleep) -> Response | Failure:
    """Fetch, retrying timeouts, dropped connections, 408, 429 and 5xx with exponential backoff
    (or the server's Retry-After, up to a minute); not 404 and other client errors."""
    attempt = 0
    while True:
        result = fetch_once(url, cfg)
        if isinstance(result, Response) or not result.retry or attempt >= cfg.retries:
            return result
        wait = cfg.backoff_s * 2**attempt
        if result.retry_after is not None:
            wait = min(result.retry_after, MAX_RETRY_AFTER_S)
        sleep(wait)
        attempt += 1


def fetch_once(url: str, cfg: FetchConfig) -> Response | Failure:
    """One GET of ``url`` (its #fragment is not sent), its body read up to ``cfg.max_bytes``."""
    request = urllib.request.Request(urllib.parse.urldefrag(url).url, headers={
        "User-Agent": USER_AGENT, "Accept-Encoding": "identity"})
    try:
        with OPENER.open(request, timeout=cfg.timeout_s) as response:
            length = response.headers.get("Content-Length", "")
            if length.isdigit() and int(length) > cfg.max_bytes:
                return Failure("too_large")  # said so up front: not read at all
            body = response.read(cfg.max_bytes + 1)
            if len(body) > cfg.max_bytes:
                return Failure("too_large")
            return Response(body, _meta(url, response.geturl(), response.status, response.headers),
                            from_cache=False)
    except RedirectRefused:
        return Failure("redirect_refused")
    except urllib.error.HTTPError as exc:
        exc.close()
        retry = exc.code in (408, 429) or exc.code >= 500
        return Failure(f"http_{exc.code}", retry, _retry_after(exc.headers))
    except urllib.error.URLError as exc:
        timed_out = isinstance(exc.reason, TimeoutError)
        return Failure("timeout" if timed_out else "connection_failed", retry=True)
    except TimeoutError:  # a read that timed out (socket.timeout is TimeoutError since 3.10)
        return Failure("timeout", retry=True)
    except (http.client.HTTPException, ConnectionError, OSError):  # dropped, reset, truncated
        return Failure("connection_failed", retry=True)


def is_text_type(content_type: str) -> bool:
    return content_type.startswith("text/") or content_type.endswith(TEXT_TYPE_ENDINGS)


def _meta(url: str, final_url: str, status: int, headers: email.message.Message) -> dict:
    return {"url": url, "final_url": final_url, "status": status,
            "content_type": headers.get_content_type(), "charset": headers.get_content_charset(),
            "fetched_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def _retry_after(headers) -> float | None:
    value = (headers or {}).get("Retry-After", "")
    return float(value) if value.strip().isdigit() else None  # the HTTP-date form is not honoured


# --- the cache -----------------------------------------------------------------------------------


def mark_cache_dir(cache_dir: Path) -> None:
    """Create the cache folder with a CACHEDIR.TAG (https://bford.info/cachedir/), which tells
    backup tools to skip it, and keeps it from being an empty folder that DVC warns about."""
    tag = cache_dir / "CACHEDIR.TAG"
    if not tag.exists():
        cache_dir.mkdir(parents=True, exist_ok=True)
        with atomic_path(tag) as tmp:
            tmp.write_text("Signature: 8a477f597d28d172789f06886806bc55\n"
                           "# The responses of URLs fetched by pretrain's download stage.\n")


def cache_key(url: str) -> str:
    return hashlib.sha256(url.encode("utf-8")).hexdigest()


def read_cache(cache_dir: Path, url: str) -> Response | None:
    """The cached response for ``url``, or None if there is none (or only part of one)."""
    key = cache_key(url)
    try:
        meta = json.loads((cache_dir / f"{key}.json").read_text(encoding="utf-8"))
        body = (cache_dir / f"{key}.body").read_bytes()
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    if meta.get("url") != url or len(body) != meta.get("bytes"):
        return None
    return Response(body, meta, from_cache=True)


def write_cache(cache_dir: Path, response: Response) -> None:
    key = cache_key(response.meta["url"])
    # One writer at a time: atomic_path clears what it takes for a killed run's leftovers, which
    # a second thread writing the same URL (listed by two sources of a mix) would be.
    with CACHE_LOCK:
        mark_cache_dir(cache_dir)
        with atomic_path(cache_dir / f"{key}.body") as tmp:
            tmp.write_bytes(response.body)
        with atomic_path(cache_dir / f"{key}.json") as tmp:
            tmp.write_text(json.dumps({**response.meta, "bytes": len(response.body)}, indent=1)
                           + "\n", encoding="utf-8")
