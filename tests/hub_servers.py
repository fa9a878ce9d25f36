"""Real HTTP servers on 127.0.0.1 for the hub tests (each on a free port, in a thread).

- :class:`StaticServer` serves files from a folder with Range support, counts requests, can cut
  a response off after some bytes (to test resume) and can ignore Range headers.
- :class:`FakeHub` speaks the part of the Hugging Face Hub protocol that huggingface_hub uses to
  create a repo, commit files inline ("regular" upload mode, base64 in the NDJSON commit payload,
  so no LFS or Xet server is needed) and download them (HEAD/GET ``/{repo}/resolve/{rev}/{path}``
  with X-Repo-Commit, ETag and Content-Length headers, error codes in X-Error-Code).
"""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit


class _Server:
    """A ThreadingHTTPServer on 127.0.0.1 whose requests go to ``self.handle(handler)``."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, str | None]] = []  # (method, path, Range header)
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                outer._dispatch(self)

            def do_HEAD(self) -> None:
                outer._dispatch(self)

            def do_POST(self) -> None:
                outer._dispatch(self)

            def log_message(self, *args) -> None:  # keep pytest output clean
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def _dispatch(self, h: BaseHTTPRequestHandler) -> None:
        with self._lock:
            self.requests.append(
                (h.command, unquote(urlsplit(h.path).path), h.headers.get("Range"))
            )
        self.handle(h)

    def handle(self, h: BaseHTTPRequestHandler) -> None:
        raise NotImplementedError

    # Shared response helpers.
    @staticmethod
    def send(h, status: int, body: bytes = b"", headers: dict | None = None) -> None:
        h.send_response(status)
        for key, value in (headers or {}).items():
            h.send_header(key, value)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        if h.command != "HEAD":
            h.wfile.write(body)

    @classmethod
    def send_json(cls, h, status: int, data, headers: dict | None = None) -> None:
        body = json.dumps(data).encode()
        cls.send(h, status, body, {"Content-Type": "application/json", **(headers or {})})

    @classmethod
    def send_file(
        cls, h, data: bytes, headers: dict, *, honour_range=True, cut_at=None, stall_s=0.0
    ) -> None:
        """200, or 206 for ``Range: bytes=N-``; ``cut_at`` drops the connection after that many
        body bytes while promising all of them; ``stall_s`` pauses halfway through the body."""
        start = 0
        wanted = h.headers.get("Range")
        if wanted and honour_range:
            start = int(wanted.removeprefix("bytes=").split("-")[0])
            if start >= len(data):
                cls.send(h, 416, headers={"Content-Range": f"bytes */{len(data)}"})
                return
        body = data[start:]
        h.send_response(206 if start else 200)
        for key, value in headers.items():
            h.send_header(key, value)
        h.send_header("Accept-Ranges", "bytes")
        if start:
            h.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        if h.command == "HEAD":
            return
        if cut_at is None:
            if stall_s:
                h.wfile.write(body[: len(body) // 2])
                h.wfile.flush()
                time.sleep(stall_s)
                body = body[len(body) // 2 :]
            h.wfile.write(body)
            return
        h.wfile.write(body[:cut_at])
        h.wfile.flush()
        h.close_connection = True
        h.connection.shutdown(socket.SHUT_RDWR)

    def count(self, method: str | None = None) -> int:
        with self._lock:
            return sum(1 for m, _, _ in self.requests if method in (None, m))


class StaticServer(_Server):
    """Serves the files under ``root`` at ``<url>/<relative path>``.

    ``cut_once[path] = n`` makes the next GET of ``path`` stop after ``n`` bytes (then normal);
    ``honour_range = False`` makes the server ignore Range headers (answers 200, whole file);
    ``stall_s`` pauses that long halfway through each file (a slow link, so that two clients
    download at the same time); ``page`` answers every GET with 200 and these bytes as
    text/html, as a proxy's error or login page does.
    """

    def __init__(self, root: Path) -> None:
        super().__init__()
        self.root = Path(root)
        self.cut_once: dict[str, int] = {}
        self.honour_range = True
        self.stall_s = 0.0
        self.page: bytes | None = None

    def handle(self, h) -> None:
        rel = unquote(urlsplit(h.path).path).lstrip("/")
        path = (self.root / rel).resolve()
        if h.command not in ("GET", "HEAD") or not path.is_relative_to(self.root.resolve()):
            self.send(h, 405 if h.command not in ("GET", "HEAD") else 403)
            return
        if self.page is not None:
            self.send(h, 200, self.page, {"Content-Type": "text/html"})
            return
        if not path.is_file():
            self.send(h, 404, b"not found")
            return
        cut = self.cut_once.pop("/" + rel, None) if h.command == "GET" else None
        self.send_file(
            h,
            path.read_bytes(),
            {},
            honour_range=self.honour_range,
            cut_at=cut,
            stall_s=self.stall_s if h.command == "GET" else 0.0,
        )


class FakeHub(_Server):
    """An in-memory Hugging Face Hub: model repos with a linear history on ``main``."""

    def __init__(self) -> None:
        super().__init__()
        # repo id -> list of (commit oid, {path: bytes}), oldest first; the last one is main.
        self.repos: dict[str, list[tuple[str, dict[str, bytes]]]] = {}

    def commit(self, repo_id: str, files: dict[str, bytes]) -> str:
        """Add a commit to ``main`` that adds or replaces ``files``; returns its oid."""
        history = self.repos[repo_id]
        parent, tree = history[-1] if history else ("", {})
        tree = {**tree, **files}
        digest = hashlib.sha1(parent.encode())
        for path in sorted(tree):
            digest.update(path.encode() + b"\0" + tree[path])
        oid = digest.hexdigest()
        history.append((oid, tree))
        return oid

    def handle(self, h) -> None:
        path = unquote(urlsplit(h.path).path)
        body = (
            h.rfile.read(int(h.headers.get("Content-Length") or 0)) if h.command == "POST" else b""
        )
        parts = path.strip("/").split("/")
        if h.command == "POST" and path == "/api/repos/create":
            self._create(h, json.loads(body))
        elif h.command == "POST" and path == "/api/validate-yaml":
            self.send_json(h, 200, {"errors": [], "warnings": []})
        elif h.command == "POST" and parts[:2] == ["api", "models"] and len(parts) == 6:
            repo_id, action = "/".join(parts[2:4]), parts[4]
            if repo_id not in self.repos:
                self.send_json(
                    h, 404, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"}
                )
            elif action == "preupload":
                files = json.loads(body)["files"]
                answer = [
                    {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                    for f in files
                ]
                self.send_json(h, 200, {"files": answer, "commitOid": self.repos[repo_id][-1][0]})
            elif action == "commit":
                self._commit(h, repo_id, body)
            else:
                self.send(h, 404)
        elif h.command in ("GET", "HEAD") and len(parts) >= 5 and parts[2] == "resolve":
            self._resolve(h, "/".join(parts[:2]), parts[3], "/".join(parts[4:]))
        else:
            self.send(h, 404, b"unsupported by FakeHub")

    def _create(self, h, payload: dict) -> None:
        repo_id = f"{payload['organization']}/{payload['name']}"
        if repo_id in self.repos:
            self.send_json(
                h,
                409,
                {"error": "You already created this model repo", "url": f"{self.url}/{repo_id}"},
            )
            return
        self.repos[repo_id] = []
        self.commit(repo_id, {".gitattributes": b"*.h5 filter=lfs diff=lfs merge=lfs -text\n"})
        self.send_json(h, 200, {"url": f"{self.url}/{repo_id}"})

    def _commit(self, h, repo_id: str, body: bytes) -> None:
        files = {}
        for line in body.decode().splitlines():
            item = json.loads(line)
            if item["key"] == "file":
                value = item["value"]
                assert value["encoding"] == "base64"
                files[value["path"]] = base64.b64decode(value["content"])
            elif item["key"] != "header":
                self.send_json(h, 400, {"error": f"FakeHub does not support {item['key']}"})
                return
        oid = self.commit(repo_id, files)
        self.send_json(
            h,
            200,
            {"commitUrl": f"{self.url}/{repo_id}/commit/{oid}", "commitOid": oid, "success": True},
        )

    def _resolve(self, h, repo_id: str, revision: str, filename: str) -> None:
        history = self.repos.get(repo_id)
        if history is None:
            self.send_json(
                h, 404, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"}
            )
            return
        found = (
            history[-1]
            if revision == "main"
            else next((c for c in history if c[0] == revision), None)
        )
        if found is None:
            self.send_json(
                h, 404, {"error": "Invalid rev id"}, {"X-Error-Code": "RevisionNotFound"}
            )
            return
        oid, tree = found
        if filename not in tree:
            headers = {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": oid}
            self.send_json(h, 404, {"error": "Entry not found"}, headers)
            return
        data = tree[filename]
        blob = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
        self.send_file(h, data, {"X-Repo-Commit": oid, "ETag": f'"{blob}"'})


# Building blocks the hub tests share (plain functions; each test module makes its own fixtures).

#: A real scan: the pyradiomics brain crop (see tests/data/README.md), 8 x 64 x 64 (z, y, x).
REAL_SCAN = Path(__file__).parent / "data" / "brain1_crop_image.nrrd"
METRICS = {"dice_mean": {"value": 0.5, "data": "two synthetic test volumes"}}
TRAINING = {"name": "synthetic", "note": "test fixture"}


def real_input():
    """(1, 8, 32, 32, 1) float32 crop of the real scan, min-max scaled to [0, 1]."""
    import numpy as np
    import SimpleITK as sitk  # noqa: N813

    array = sitk.GetArrayFromImage(sitk.ReadImage(str(REAL_SCAN)))[:, 16:48, 16:48]
    array = (array - array.min()) / (array.max() - array.min())
    return array[None, ..., None].astype(np.float32)


def tiny_unet(**overrides):
    """unet3d_mrbrains with 4 filters per level and one input channel (7.2 k parameters)."""
    import medzoo

    config = {"filters": (4, 4, 4, 4), "in_channels": 1, "channel_names": ("T1",), **overrides}
    return medzoo.build("unet3d_mrbrains", **config)


def write_manifest(path: Path, models: dict) -> Path:
    """Write a schema-1 manifest; ``models`` maps name -> {version: entry dict}."""
    doc = {"schema_version": 1, "models": {}}
    for name, versions in models.items():
        default = sorted(versions)[-1]
        doc["models"][name] = {
            "task": "segmentation",
            "default_version": default,
            "versions": versions,
        }
    path.write_text(json.dumps(doc, indent=2))
    return path
