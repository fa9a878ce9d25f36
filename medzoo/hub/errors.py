"""The hub's exceptions. Each subclasses ValueError, FileNotFoundError or FileExistsError, so
callers can catch them broadly or precisely; every message names the file, entry or argument,
the problem and the fix."""

from __future__ import annotations


class ManifestError(ValueError):
    """A weights manifest that is not valid JSON or breaks the schema (the message names the model
    entry, the version and the field)."""


class NoPublishedWeightsError(ValueError):
    """A registered model that has no entry (or not the requested version) in the manifest."""


class ChecksumMismatchError(ValueError):
    """A file whose sha256 or size differs from the manifest's (expected and actual are named)."""


class UnsafePresetError(ValueError):
    """A preset or manifest that would load code or write outside its folder: a class that is
    neither a Keras built-in nor registered by medzoo, a Lambda layer, or an escaping path."""


class WeightsUnavailableError(FileNotFoundError):
    """No source could provide a file: offline with an incomplete cache, or every source failed
    (the message lists each source's reason)."""


class VersionExistsError(FileExistsError):
    """Publishing would overwrite a version that is already published."""
