"""The weights manifest: the repository's own file, schema validation naming entry and field,
path-escape refusal, and merging published versions."""

import copy
import json
from pathlib import Path

import pytest

import medzoo.hub
from medzoo.hub import ManifestError, NoPublishedWeightsError, VersionExistsError, read_manifest
from medzoo.hub.fetch import download
from medzoo.hub.manifest import (
    BundledSource,
    FileEntry,
    HfSource,
    UrlSource,
    VersionEntry,
    add_version,
    default_manifest_path,
    parse_manifest,
    parse_source,
)
from medzoo.registry import UnknownModelError

REPO = Path(__file__).resolve().parents[1]
SHA = "ab" * 32
COMMIT = "0123456789abcdef0123456789abcdef01234567"
FILES = {f: {"sha256": SHA, "size": 10} for f in medzoo.hub.manifest.PRESET_FILES}
VALID = {
    "schema_version": 1,
    "$comment": "test",
    "models": {
        "unet3d_mrbrains": {
            "task": "segmentation",
            "default_version": "1.0.0",
            "versions": {
                "1.0.0": {
                    "files": FILES,
                    "sources": [
                        "weights/unet3d_mrbrains/1.0.0",
                        "https://example.org/medzoo/unet3d_mrbrains/1.0.0/",
                        f"hf://org/repo/sub@{COMMIT}",
                    ],
                }
            },
        }
    },
}
ENTRY = "models['unet3d_mrbrains']"
VERSION = f"{ENTRY}.versions['1.0.0']"


def test_the_repository_manifest_is_valid_and_the_package_copy_is_the_same(monkeypatch):
    monkeypatch.delenv("MEDZOO_MANIFEST", raising=False)
    assert default_manifest_path() == REPO / "weights_manifest.json"
    manifest = read_manifest()
    assert manifest.root == REPO
    packaged = Path(medzoo.hub.__file__).parent / "weights_manifest.json"
    assert packaged.read_bytes() == (REPO / "weights_manifest.json").read_bytes()
    # Every checkpoint listed with a bundled copy really is in the repository, byte for byte.
    for name, model in manifest.models.items():
        for version, entry in model.versions.items():
            if any(isinstance(s, BundledSource) for s in entry.sources):
                folder = download(name, version, manifest=manifest, offline=True)
                assert folder.is_relative_to(REPO)


def test_manifest_env_var_overrides_the_default(tmp_path, monkeypatch):
    path = tmp_path / "mine.json"
    path.write_text(json.dumps(VALID))
    monkeypatch.setenv("MEDZOO_MANIFEST", str(path))
    manifest = read_manifest()
    assert manifest.path == path.resolve() and manifest.root == tmp_path.resolve()
    entry = manifest.models["unet3d_mrbrains"].versions["1.0.0"]
    assert entry.sources == (
        BundledSource("weights/unet3d_mrbrains/1.0.0"),
        UrlSource("https://example.org/medzoo/unet3d_mrbrains/1.0.0"),
        HfSource("org/repo", "sub", COMMIT),
    )
    assert entry.files["config.json"] == FileEntry(SHA, 10)


def test_a_model_without_weights_says_how_to_get_some(tmp_path):
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps({"schema_version": 1, "models": {}}))
    with pytest.raises(NoPublishedWeightsError) as err:
        download("resnet3d_ixi_age", manifest=empty)
    message = str(err.value)
    assert "No published weights for resnet3d_ixi_age yet" in message
    assert "training/resnet3d_ixi_age.py" in message
    assert "medzoo.build('resnet3d_ixi_age')" in message
    with pytest.raises(UnknownModelError, match="Did you mean 'resnet3d_ixi_age'"):
        download("resnet3d_ixi_ag", manifest=empty)


def test_an_unpublished_version_lists_the_published_ones(tmp_path):
    path = tmp_path / "m.json"
    path.write_text(json.dumps(VALID))
    expected = r"no published version '2\.0\.0'; available: 1\.0\.0"
    with pytest.raises(NoPublishedWeightsError, match=expected):
        download("unet3d_mrbrains", "2.0.0", manifest=path)


def _set(doc, path, value):
    node = doc
    for key in path[:-1]:
        node = node[key]
    if value is _DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value


_DELETE = object()
_V = ("models", "unet3d_mrbrains", "versions", "1.0.0")

BAD = [
    ((*_V, "files", "config.json", "sha256"), "ABC", f"{VERSION}.files['config.json'].sha256"),
    ((*_V, "files", "metadata.json", "size"), -1, f"{VERSION}.files['metadata.json'].size"),
    ((*_V, "files", "README.md", "size"), True, f"{VERSION}.files['README.md'].size"),
    ((*_V, "files", "model.weights.h5"), _DELETE, f"{VERSION}.files: missing model.weights.h5"),
    ((*_V, "files", "config.json"), {"sha265": SHA, "sha256": SHA, "size": 1}, "sha265"),
    ((*_V, "sources"), [], f"{VERSION}.sources: empty"),
    ((*_V, "sources"), ["hf://org/repo@main"], f"{VERSION}.sources[0]"),
    ((*_V, "sources"), ["http://example.org/w"], f"{VERSION}.sources[0]"),
    ((*_V, "sources"), ["ftp://example.org/w"], f"{VERSION}.sources[0]"),
    (("models", "unet3d_mrbrains", "default_version"), "2.0.0", f"{ENTRY}.default_version"),
    (("models", "unet3d_mrbrains", "task"), "segmentaion", f"{ENTRY}.task"),
    (("models", "unet3d_mrbrains", "versions", "v1"), {}, f"{ENTRY}.versions"),
    (("models", "unet3d_mrbrains", "licence"), "MIT", f"{ENTRY}: unknown field(s) licence"),
    (("schema_version",), 2, "schema_version is 2"),
]


@pytest.mark.parametrize(("path", "value", "named"), BAD, ids=[b[2] for b in BAD])
def test_validation_errors_name_the_entry_and_the_field(tmp_path, path, value, named):
    doc = copy.deepcopy(VALID)
    _set(doc, path, value)
    file = tmp_path / "m.json"
    file.write_text(json.dumps(doc))
    with pytest.raises(ManifestError) as err:
        read_manifest(file)
    assert named in str(err.value)
    assert str(file.resolve()) in str(err.value)


def test_invalid_json_is_a_manifest_error_naming_the_file(tmp_path):
    file = tmp_path / "m.json"
    file.write_text('{"schema_version": 1, "models": {')
    with pytest.raises(ManifestError, match=r"m\.json is not valid JSON"):
        read_manifest(file)
    with pytest.raises(FileNotFoundError, match="No weights manifest at"):
        read_manifest(tmp_path / "missing.json")


ESCAPES = [
    ("source", "../outside"),
    ("source", "weights/../../etc"),
    ("source", "/etc/passwd"),
    ("source", "~/weights"),
    ("source", "C:/weights"),
    ("source", "weights\\x"),
    ("source", f"hf://org/repo/../x@{COMMIT}"),
    ("file", "../model.weights.h5"),
    ("file", "sub/model.weights.h5"),
    ("file", ".hidden"),
    ("model", "../evil"),
    ("model", "a/b"),
    ("version", "1.0.0/../../x"),
]


@pytest.mark.parametrize(("where", "value"), ESCAPES, ids=[f"{w}:{v}" for w, v in ESCAPES])
def test_paths_that_could_escape_their_folder_are_refused(where, value):
    doc = copy.deepcopy(VALID)
    model = doc["models"]["unet3d_mrbrains"]
    version = model["versions"]["1.0.0"]
    if where == "source":
        version["sources"] = [value]
    elif where == "file":
        version["files"][value] = {"sha256": SHA, "size": 1}
    elif where == "model":
        doc["models"][value] = doc["models"].pop("unet3d_mrbrains")
    else:
        model["versions"][value] = model["versions"].pop("1.0.0")
    with pytest.raises(ManifestError):
        parse_manifest(doc, root=Path("/repo"))


def test_a_cache_folder_linked_elsewhere_is_refused(tmp_path):
    manifest = parse_manifest(VALID, root=tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "unet3d_mrbrains").symlink_to(outside)
    with pytest.raises(medzoo.hub.UnsafePresetError, match="outside"):
        download("unet3d_mrbrains", manifest=manifest, cache_dir=cache, offline=True)


def test_http_is_accepted_for_loopback_test_servers_only():
    assert parse_source("http://127.0.0.1:8000/w") == UrlSource("http://127.0.0.1:8000/w")
    with pytest.raises(ValueError, match=r"http:// only for 127\.0\.0\.1"):
        parse_source("http://10.0.0.1/w")


def _entry(sha, source):
    files = {f: FileEntry(sha, 1) for f in medzoo.hub.manifest.PRESET_FILES}
    return VersionEntry(files=files, sources=(parse_source(source),))


def test_add_version_merges_mirrors_refuses_changes_and_moves_the_default():
    manifest = parse_manifest({"schema_version": 1, "models": {}}, root=Path("/repo"))
    one = add_version(manifest, "m", "segmentation", "1.0.0", _entry(SHA, "weights/m/1.0.0"))
    assert one.models["m"].default_version == "1.0.0"
    mirror = _entry(SHA, f"hf://org/m@{COMMIT}")
    both = add_version(one, "m", "segmentation", "1.0.0", mirror)
    assert [s.uri for s in both.models["m"].versions["1.0.0"].sources] == [
        "weights/m/1.0.0",
        f"hf://org/m@{COMMIT}",
    ]
    with pytest.raises(VersionExistsError, match=r"m 1\.0\.0 with other files"):
        add_version(both, "m", "segmentation", "1.0.0", _entry("cd" * 32, "weights/m/x"))
    rc = add_version(both, "m", "segmentation", "1.1.0-rc1", _entry("cd" * 32, "weights/m/rc"))
    assert rc.models["m"].default_version == "1.0.0"  # a pre-release is never the default
    new = add_version(rc, "m", "segmentation", "1.1.0", _entry("ef" * 32, "weights/m/1.1.0"))
    assert new.models["m"].default_version == "1.1.0"
    # The result round-trips through JSON unchanged.
    assert parse_manifest(new.to_dict(), root=Path("/repo")).models == new.models


def test_add_version_can_keep_or_force_the_default():
    manifest = parse_manifest({"schema_version": 1, "models": {}}, root=Path("/repo"))
    one = add_version(manifest, "m", "segmentation", "1.0.0", _entry(SHA, "weights/m/1.0.0"))
    kept = add_version(
        one, "m", "segmentation", "3.0.0", _entry("cd" * 32, "weights/m/3"), make_default=False
    )
    assert kept.models["m"].default_version == "1.0.0"
    assert set(kept.models["m"].versions) == {"1.0.0", "3.0.0"}
    back = add_version(
        kept, "m", "segmentation", "0.9.0", _entry("ef" * 32, "weights/m/0.9"), make_default=True
    )
    assert back.models["m"].default_version == "0.9.0"  # older, but asked for
    first = add_version(
        manifest, "n", "segmentation", "2.0.0", _entry(SHA, "weights/n/2"), make_default=False
    )
    assert first.models["n"].default_version == "2.0.0"  # a first version is the default
    with pytest.raises(ValueError, match="pre-release and cannot be the default"):
        add_version(
            one, "m", "segmentation", "2.0.0-rc1", _entry("ab" * 32, "w/rc"), make_default=True
        )
