"""Which document a file is: its collection and its path inside it.

A document's identity is a collection, a named folder of sources, plus the file's path inside that
folder. Its source, which citations show, is "<collection>/<path>", e.g. "handbook/leave/travel.md".

- A folder given to `ingest` is a collection named after the folder ("docs/" -> "docs"), or as
  `--collection NAME` says. Its files are named by their path inside it.
- A file or folder that lies inside the folder of a collection ingested before belongs to that
  collection: ingesting "docs/" and later "docs/leave/travel.md" updates one document. Any other file
  belongs to the collection of its own folder.
- Paths are made absolute and symlinks in them resolved before any of this, so the current folder and
  the spelling of a path ("docs", "./docs/", "/home/me/repo/docs", a link to it) do not matter. Inside
  a folder, files are named as they are listed: a link to a file is named by the link; links to folders
  inside a collection are not followed.
- A collection is one folder (its root, recorded in the database). Two different folders of the same
  name are refused as one collection while the first one still exists: name the second with
  `--collection`. When the recorded folder is gone (moved, renamed), the new one takes its place.

Finding files touches the disk, so it runs in a worker thread (see ingest.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from .documents import is_supported

MAX_COLLECTION_CHARS = 100
# A collection name ends at the first "/" of a source, so it holds none, nor control characters.
_COLLECTION_NAME = re.compile(rf"[^/\x00-\x1f\x7f]{{1,{MAX_COLLECTION_CHARS}}}")


def check_collection_name(name: str) -> str:
    """The name, or ValueError saying why it cannot name a collection."""
    if not _COLLECTION_NAME.fullmatch(name) or name != name.strip() or name in (".", ".."):
        raise ValueError(
            f"{name!r} cannot name a collection: use 1 to {MAX_COLLECTION_CHARS} characters,"
            " no '/', no control characters, no spaces at either end"
        )
    return name


@dataclass(frozen=True)
class SourceFile:
    path: Path  # where to read it
    collection: str
    name: str  # its path inside the collection, with "/" between folders
    # The source that ingestion gave this file before collections existed (migration 0003): a document
    # still named so is renamed to `source` when its file is ingested again.
    legacy_source: str

    @property
    def source(self) -> str:
        return f"{self.collection}/{self.name}"


@dataclass
class Scan:
    """What one path given to `ingest` holds."""

    collection: str
    root: Path  # the collection's folder
    # For a folder: its path inside the collection ("" for the collection's own folder) and the prefix its
    # files had under the old naming. None for a file: only a folder can tell which files are gone (--sync).
    folder: str | None
    legacy_prefix: str | None
    files: list[SourceFile] = field(default_factory=list)


def find_source_files(
    paths: list[Path], roots: dict[str, str], collection: str | None = None
) -> tuple[list[Scan], list[tuple[str, str]]]:
    """The scans of the given files and folders, and (path, reason) for each one that cannot be ingested.

    roots maps each known collection to its folder; it is updated with the collections found here."""
    scans: list[Scan] = []
    failed: list[tuple[str, str]] = []
    for given in paths:
        try:
            scans.append(_scan(given, roots, collection))
        except _Refused as refusal:
            failed.append((str(given), str(refusal)))
    return scans, failed


class _Refused(Exception):
    pass


def _scan(given: Path, roots: dict[str, str], collection: str | None) -> Scan:
    if given.is_dir():
        location = given.resolve()
        folder_of = location
    elif given.is_file():
        folder_of = given.parent.resolve()
        location = folder_of / given.name
    else:
        raise _Refused("no such file or folder")
    name, root = _collection_of(location, folder_of, roots, collection)
    roots[name] = str(root)
    inside = location.relative_to(root).as_posix()
    if not given.is_dir():
        return Scan(name, root, None, None, [SourceFile(given, name, inside, _legacy_source(given, given))])
    folder = "" if inside == "." else inside + "/"
    legacy_prefix = _legacy_source(given, given) + "/"
    files = [
        SourceFile(path, name, folder + path.relative_to(given).as_posix(), _legacy_source(path, given))
        for path in sorted(
            p
            for p in given.rglob("*")
            if p.is_file() and is_supported(p) and not any(part.startswith(".") for part in p.relative_to(given).parts)
        )
    ]
    return Scan(name, root, folder, legacy_prefix, files)


def _collection_of(location: Path, folder_of: Path, roots: dict[str, str], collection: str | None) -> tuple[str, Path]:
    """The collection a file or folder at `location` (in folder `folder_of`) belongs to, and its root."""
    if collection is None:
        enclosing = [(len(root), name) for name, root in roots.items() if location.is_relative_to(root)]
        if enclosing:
            name = max(enclosing)[1]
            return name, Path(roots[name])
        if not folder_of.name:
            raise _Refused("the top folder has no name: name its collection with --collection")
        try:
            name = check_collection_name(folder_of.name)
        except ValueError as error:
            raise _Refused(f"{error}; name the collection with --collection") from error
    else:
        name = collection
        if name in roots and location.is_relative_to(roots[name]):
            return name, Path(roots[name])
    recorded = roots.get(name)
    if recorded and Path(recorded) != folder_of and Path(recorded).is_dir():
        raise _Refused(
            f"the collection {name!r} is the folder {recorded}; name this one's collection with --collection"
        )
    return name, folder_of


def _legacy_source(path: Path, given: Path) -> str:
    """The source ingestion gave a file before collections: its path relative to the current folder
    when inside it, else relative to the folder that holds the path given."""
    resolved = path.resolve()
    for base in (Path.cwd().resolve(), given.resolve().parent):
        if resolved.is_relative_to(base):
            return resolved.relative_to(base).as_posix()
    return resolved.as_posix()
