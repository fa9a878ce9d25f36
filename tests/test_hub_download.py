"""Downloading published versions from a real HTTP server on 127.0.0.1: first download, cache
hits without any request, resume after an interruption, corruption, offline mode, bundled copies
and source fall-back."""

import hashlib
import logging
import shutil

import numpy as np
import pytest
from hub_servers import METRICS, TRAINING, StaticServer, real_input, tiny_unet, write_manifest

import medzoo
from medzoo.cli import main
from medzoo.hub import WeightsUnavailableError, publish
from medzoo.hub.fetch import download

NAME = "unet3d_mrbrains"
WEIGHTS = "model.weights.h5"


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """Two versions of a tiny U-Net (different weights) under www/NAME/VERSION, their manifest
    entries, and each model's prediction on the real scan."""
    www = tmp_path_factory.mktemp("www")
    x = real_input()
    versions = {}
    for version in ("1.0.0", "1.1.0"):
        model = tiny_unet()
        done = publish(
            model, www, metrics=METRICS, training_data=TRAINING, license="MIT", version=version
        )
        versions[version] = (done.entry.to_dict(), model.predict(x, verbose=0))
    return www, versions, x


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDZOO_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    for var in ("MEDZOO_OFFLINE", "HF_HUB_OFFLINE", "MEDZOO_MANIFEST"):
        monkeypatch.delenv(var, raising=False)


def _manifest(tmp_path, published, *bases):
    """A manifest listing both versions, served from each base URL in turn."""
    _, versions, _ = published
    entries = {}
    for version, (entry, _) in versions.items():
        sources = [f"{base}/{NAME}/{version}" for base in bases]
        entries[version] = {**entry, "sources": sources}
    return write_manifest(tmp_path / "manifest.json", {NAME: entries})


def _gets(server, file):
    return [r for r in server.requests if r[0] == "GET" and r[1].endswith("/" + file)]


def test_first_download_then_cache_hits_make_no_request(tmp_path, published):
    www, versions, x = published
    with StaticServer(www) as server:
        manifest = _manifest(tmp_path, published, server.url)
        model = medzoo.load(NAME, manifest=manifest)
        assert server.count() == 4  # one GET per file of the default version, 1.1.0
        np.testing.assert_array_equal(model.predict(x, verbose=0), versions["1.1.0"][1])
        assert model.medzoo_spec.name == NAME
        assert model.medzoo_spec.output.labels[3] == "white matter"

        again = medzoo.load(NAME, "1.1.0", manifest=manifest)
        assert server.count() == 4
        np.testing.assert_array_equal(again.predict(x, verbose=0), versions["1.1.0"][1])


def test_each_version_is_cached_apart(tmp_path, published):
    www, versions, x = published
    with StaticServer(www) as server:
        manifest = _manifest(tmp_path, published, server.url)
        new = download(NAME, manifest=manifest)
        old = download(NAME, "1.0.0", manifest=manifest)
        assert server.count() == 8
        assert old.parent.name == "1.0.0" and new.parent.name == "1.1.0"
        model = medzoo.load(NAME, "1.0.0", manifest=manifest)
        np.testing.assert_array_equal(model.predict(x, verbose=0), versions["1.0.0"][1])
        assert not np.array_equal(versions["1.0.0"][1], versions["1.1.0"][1])


def test_an_interrupted_download_resumes_with_a_range_request(tmp_path, published, caplog):
    www, versions, x = published
    with StaticServer(www) as server:
        server.cut_once[f"/{NAME}/1.1.0/{WEIGHTS}"] = 5000
        manifest = _manifest(tmp_path, published, server.url)
        with caplog.at_level(logging.WARNING, logger="medzoo.hub.fetch"):
            model = medzoo.load(NAME, manifest=manifest)
        assert [r[2] for r in _gets(server, WEIGHTS)] == [None, "bytes=5000-"]
        assert "interrupted at 5000 of" in caplog.text
        np.testing.assert_array_equal(model.predict(x, verbose=0), versions["1.1.0"][1])


def test_a_partial_file_left_by_an_earlier_call_is_resumed(tmp_path, published):
    www, _, _ = published
    with StaticServer(www) as server:
        manifest = _manifest(tmp_path, published, server.url)
        folder = download(NAME, manifest=manifest)
        data = (folder / WEIGHTS).read_bytes()
        (folder / WEIGHTS).unlink()
        (folder / (WEIGHTS + ".part")).write_bytes(data[:7000])  # as a killed process leaves it
        assert download(NAME, manifest=manifest) == folder
        assert [r[2] for r in _gets(server, WEIGHTS)] == [None, "bytes=7000-"]
        assert (folder / WEIGHTS).read_bytes() == data
        assert not (folder / (WEIGHTS + ".part")).exists()


def test_a_server_ignoring_range_gives_a_complete_restart(tmp_path, published):
    www, versions, _ = published
    with StaticServer(www) as server:
        server.honour_range = False
        server.cut_once[f"/{NAME}/1.1.0/{WEIGHTS}"] = 3000
        folder = download(NAME, manifest=_manifest(tmp_path, published, server.url))
        assert [r[2] for r in _gets(server, WEIGHTS)] == [None, "bytes=3000-"]
        expected = versions["1.1.0"][0]["files"][WEIGHTS]
        assert (folder / WEIGHTS).stat().st_size == expected["size"]


def test_a_corrupted_download_is_deleted_and_both_hashes_named(tmp_path, published):
    www, versions, _ = published
    bad = tmp_path / "bad"
    shutil.copytree(www, bad)
    weights = bad / NAME / "1.1.0" / WEIGHTS
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    with StaticServer(bad) as server, pytest.raises(WeightsUnavailableError) as err:
        download(NAME, manifest=_manifest(tmp_path, published, server.url))
    expected = versions["1.1.0"][0]["files"][WEIGHTS]["sha256"]
    actual = hashlib.sha256(weights.read_bytes()).hexdigest()
    assert f"expected sha256 {expected}" in str(err.value)
    assert f"got sha256 {actual}" in str(err.value)
    cached = list((tmp_path / "cache").rglob(WEIGHTS + "*"))
    assert cached == []  # neither the final name nor a .part survives


def test_a_corrupted_cache_file_is_fetched_again(tmp_path, published, caplog):
    www, _, _ = published
    with StaticServer(www) as server:
        manifest = _manifest(tmp_path, published, server.url)
        folder = download(NAME, manifest=manifest)
        good = (folder / "config.json").read_bytes()
        (folder / "config.json").write_bytes(good.replace(b"Conv3D", b"Conv2D"))
        with caplog.at_level(logging.WARNING, logger="medzoo.hub.fetch"):
            download(NAME, manifest=manifest)
        assert len(_gets(server, "config.json")) == 2
        assert (folder / "config.json").read_bytes() == good
        assert "does not match the manifest" in caplog.text


def test_a_failing_source_falls_back_to_the_next(tmp_path, published, caplog):
    www, _, _ = published
    with StaticServer(tmp_path) as empty, StaticServer(www) as server:
        manifest = _manifest(tmp_path, published, empty.url, server.url)
        with caplog.at_level(logging.WARNING, logger="medzoo.hub.fetch"):
            download(NAME, manifest=manifest)
        assert empty.count() == 1 and server.count() == 4
        assert "HTTP 404" in caplog.text


@pytest.mark.parametrize("variable", ["MEDZOO_OFFLINE", "HF_HUB_OFFLINE"])
def test_offline_with_a_complete_cache_makes_no_request(tmp_path, published, monkeypatch, variable):
    www, versions, x = published
    with StaticServer(www) as server:
        manifest = _manifest(tmp_path, published, server.url)
        download(NAME, manifest=manifest)
        monkeypatch.setenv(variable, "1")
        model = medzoo.load(NAME, manifest=manifest)
        assert server.count() == 4
    np.testing.assert_array_equal(model.predict(x, verbose=0), versions["1.1.0"][1])


def test_offline_without_cache_names_the_missing_files(tmp_path, published, monkeypatch):
    www, _, _ = published
    with StaticServer(www) as server:
        manifest = _manifest(tmp_path, published, server.url)
        folder = download(NAME, manifest=manifest)
        (folder / WEIGHTS).unlink()
        monkeypatch.setenv("MEDZOO_OFFLINE", "1")
        with pytest.raises(WeightsUnavailableError) as err:
            medzoo.load(NAME, manifest=manifest)
        assert server.count() == 4
    message = str(err.value)
    assert f"missing {folder / WEIGHTS}" in message
    assert f"medzoo download {NAME} --version 1.1.0" in message
    assert "config.json" not in message  # only what is really missing


def test_a_bundled_copy_is_verified_and_used_in_place(tmp_path, published):
    www, versions, x = published
    repo = tmp_path / "repo"
    shutil.copytree(www / NAME / "1.0.0", repo / "weights" / NAME / "1.0.0")
    entry = {**versions["1.0.0"][0], "sources": [f"weights/{NAME}/1.0.0"]}
    manifest = write_manifest(repo / "weights_manifest.json", {NAME: {"1.0.0": entry}})
    folder = download(NAME, manifest=manifest, offline=True)
    assert folder == (repo / "weights" / NAME / "1.0.0").resolve()
    assert not (tmp_path / "cache").exists()
    model = medzoo.load(NAME, manifest=manifest)
    np.testing.assert_array_equal(model.predict(x, verbose=0), versions["1.0.0"][1])

    tampered = folder / "metadata.json"
    tampered.write_text(tampered.read_text().replace("MIT", "GPL"))
    with pytest.raises(WeightsUnavailableError, match=r"bundled .*metadata\.json does not match"):
        download(NAME, manifest=manifest, offline=True)
    assert tampered.exists()  # a repository file is reported, never deleted


def test_cli_download_prints_the_verified_folder(tmp_path, published, monkeypatch, capsys):
    www, _, _ = published
    with StaticServer(www) as server:
        monkeypatch.setenv("MEDZOO_MANIFEST", str(_manifest(tmp_path, published, server.url)))
        cache = tmp_path / "cli-cache"
        assert main(["download", NAME, "--version", "1.0.0", "--cache-dir", str(cache)]) == 0
        folder = capsys.readouterr().out.strip()
        assert folder.startswith(str(cache / NAME / "1.0.0"))
        monkeypatch.setenv("MEDZOO_OFFLINE", "1")
        assert main(["download", NAME, "--cache-dir", str(tmp_path / "empty")]) == 2
        assert "Offline" in capsys.readouterr().err


# ----------------------------------------------------------------------------- faults, array jobs

_LOADER = """
import sys, time
from pathlib import Path
import medzoo
Path(sys.argv[1]).touch()  # imported: ready
while not Path(sys.argv[2]).exists():
    time.sleep(0.01)
model = medzoo.load("unet3d_mrbrains", manifest=sys.argv[3])
print("loaded", model.count_params())
"""


def test_two_processes_loading_into_an_empty_cache_both_succeed(tmp_path, published):
    """An array job: two processes start loading the same model into one empty cache at the
    same moment; both get the model and every file is downloaded once."""
    import os
    import subprocess
    import sys
    import time
    from pathlib import Path

    www, _, _ = published
    script = tmp_path / "loader.py"
    script.write_text(_LOADER)
    root = str(Path(medzoo.__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    with StaticServer(www) as server:
        server.stall_s = 0.5  # a slow link: the two processes download at the same time
        manifest = _manifest(tmp_path, published, server.url)
        go = tmp_path / "go"
        children = [
            subprocess.Popen(
                [sys.executable, str(script), str(tmp_path / f"ready{i}"), str(go), str(manifest)],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for i in range(2)
        ]
        deadline = time.monotonic() + 300
        while not all((tmp_path / f"ready{i}").exists() for i in range(2)):
            assert time.monotonic() < deadline, "the loader processes did not start"
            assert all(c.poll() is None for c in children), children[0].communicate()
            time.sleep(0.05)
        go.touch()
        results = [c.communicate(timeout=300) for c in children]
        for child, (out, err) in zip(children, results, strict=True):
            assert child.returncode == 0, err[-2000:]
            assert "loaded" in out
        assert server.count("GET") == 4  # each file once: the second process waited, then reused


def test_a_partial_html_page_is_discarded_not_resumed(tmp_path, published):
    www, _, _ = published
    with StaticServer(www) as server:
        manifest = _manifest(tmp_path, published, server.url)
        folder = download(NAME, manifest=manifest)
        data = (folder / WEIGHTS).read_bytes()
        (folder / WEIGHTS).unlink()
        page = b"<!DOCTYPE html><html><body>Proxy error: try again later</body></html>\n"
        (folder / (WEIGHTS + ".part")).write_bytes(page)  # what a proxy's 200 page leaves behind
        assert download(NAME, manifest=manifest) == folder
        assert [r[2] for r in _gets(server, WEIGHTS)] == [None, None]  # no Range: a fresh start
        assert (folder / WEIGHTS).read_bytes() == data


def test_a_proxy_page_instead_of_the_file_is_refused_and_not_kept(tmp_path, published):
    www, _, _ = published
    with StaticServer(www) as server:
        manifest = _manifest(tmp_path, published, server.url)
        server.page = b"<html><body>Please log in to the proxy</body></html>"
        with pytest.raises(WeightsUnavailableError, match="text/html"):
            download(NAME, manifest=manifest)
        assert list((tmp_path / "cache").rglob("*.part")) == []
        server.page = None
        folder = download(NAME, manifest=manifest)
        assert sorted(p.name for p in folder.iterdir()) == sorted(_published_files(published))


def _published_files(published):
    _, versions, _ = published
    return list(versions["1.1.0"][0]["files"])
