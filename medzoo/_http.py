"""Resumable HTTP downloads: the one client under the hub's weights and the datasets' archives.

A download goes to ``<file>.part`` next to its final name. :func:`open_range` asks for the bytes
from an offset (an HTTP Range request) and says from where the answer really starts (0 when
the server ignored the Range header); :func:`append_body` writes the answer to the part file
with a progress bar. The callers keep their own policy: how often to resume, what an HTTP error
means for them (the hub tries its next source; a dataset tells the user how to download by
hand), and when the part file is complete and may be renamed.

Only the standard library (``urllib``) and ``tqdm``; no Keras, no SimpleITK.
"""

from __future__ import annotations

import http.client
import logging
import urllib.request
from pathlib import Path

from tqdm.auto import tqdm

__all__ = ["append_body", "content_range_total", "open_range"]

logger = logging.getLogger(__name__)

#: The request headers of every download: no compression, so sizes and ranges are the file's.
HEADERS = {"User-Agent": "medzoo", "Accept-Encoding": "identity"}


def open_range(url: str, offset: int, timeout: float) -> tuple[http.client.HTTPResponse, int]:
    """Open ``url`` asking for its bytes from ``offset`` (the whole file when 0).

    Returns:
        ``(response, start)``: the open response, to be closed by the caller (a context
        manager), and the offset its body starts at: ``offset`` for a 206 answer, else 0 (the
        server ignored the Range header and sends the whole file; logged).

    Raises:
        urllib.error.HTTPError, urllib.error.URLError: as :func:`urllib.request.urlopen`; the
            caller words them for its users.
    """
    headers = dict(HEADERS)
    if offset:
        headers["Range"] = f"bytes={offset}-"
    response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    if offset and response.status != 206:
        logger.info("%s: the server ignored the Range request; downloading from the start", url)
        return response, 0
    return response, offset


def append_body(
    response: http.client.HTTPResponse,
    part: Path,
    start: int,
    *,
    total: int | None,
    chunk: int,
    limit: int | None = None,
    progress: bool = True,
) -> int:
    """Write the body of ``response`` to ``part``: appended when ``start`` > 0, else replacing it.

    Args:
        response: an answer from :func:`open_range`.
        part: the partial file (bytes ``0..start-1`` already there when ``start`` > 0).
        start: the offset the body starts at.
        total: the file's full size in bytes for the progress bar (None: unknown).
        chunk: bytes read per call.
        limit: stop once the file holds more than ``limit`` bytes (a server sending too much is
            caught without reading it all); None reads to the end of the body.
        progress: show a progress bar (bytes, named after the file).

    Returns:
        The size of ``part`` in bytes afterwards.
    """
    written = start
    with (
        open(part, "ab" if start else "wb") as out,
        tqdm(
            total=total,
            initial=start,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=part.name.removesuffix(".part"),
            disable=not progress,
        ) as bar,
    ):
        while limit is None or written <= limit:
            size = chunk if limit is None else min(chunk, limit + 1 - written)
            data = response.read(size)
            if not data:
                break
            out.write(data)
            written += len(data)
            bar.update(len(data))
    return written


def content_range_total(value: str) -> int | None:
    """The full size in a ``Content-Range`` header (``bytes 10-99/100`` -> 100), or None."""
    total = value.rpartition("/")[2]
    return int(total) if total.isdigit() else None
