"""``python -m processors.intelligence ingest COLLECTION PATH...``: files and folders into a
collection, through the platform's API (``PLATFORM_API_URL``, ``PLATFORM_API_KEY``).

``.txt`` is text, ``.md`` Markdown, ``.html``/``.htm`` HTML (each file one document, its id the
path relative to the folder given, its title the first heading or the file name); ``.jsonl``
holds one document per line: ``{"id", "text", "title"?, "format"?, "metadata"?}``. Folders are
walked for those suffixes. Documents are sent 100 at a time; indexing is asynchronous (list
them with ``GET /v1/collections/{collection}/documents``)."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

__all__ = ["main"]

_FORMATS = {
    ".txt": "text",
    ".md": "markdown",
    ".markdown": "markdown",
    ".html": "html",
    ".htm": "html",
}
_HEADING = re.compile(r"^#{1,6}\s+(.+)$|<h1[^>]*>(.*?)</h1>", re.MULTILINE | re.IGNORECASE)
_BATCH = 100


class InputError(ValueError):
    """A file or a line that is not a document, named by path and line."""


def documents(paths: list[Path]) -> Iterator[dict[str, Any]]:
    for path in paths:
        if path.is_dir():
            for found in sorted(p for p in path.rglob("*") if p.is_file()):
                if found.suffix.lower() in _FORMATS or found.suffix.lower() == ".jsonl":
                    yield from _from_file(found, found.relative_to(path).as_posix())
        elif path.is_file():
            yield from _from_file(path, path.name)
        else:
            raise InputError(f"{path}: no such file or folder")


def _from_file(path: Path, document_id: str) -> Iterator[dict[str, Any]]:
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        yield from _from_jsonl(path)
        return
    if suffix not in _FORMATS:
        raise InputError(f"{path}: not .txt, .md, .html or .jsonl")
    text = path.read_text(encoding="utf-8")
    heading = _HEADING.search(text)
    title = (heading.group(1) or heading.group(2)).strip() if heading else path.stem
    yield {"id": document_id, "text": text, "title": title, "format": _FORMATS[suffix]}


def _from_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            document = json.loads(line)
        except json.JSONDecodeError as error:
            raise InputError(f"{path}:{number}: not JSON ({error.msg})") from None
        if not isinstance(document, dict) or not {"id", "text"} <= document.keys():
            raise InputError(f'{path}:{number}: a document needs "id" and "text"')
        yield document


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m processors.intelligence", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    ingest = commands.add_parser("ingest", help="send files and folders to a collection")
    ingest.add_argument("collection")
    ingest.add_argument("paths", nargs="+", type=Path)
    parser.add_argument("--api-url", help="default: PLATFORM_API_URL or http://localhost:8080")
    parser.add_argument("--api-key", help="default: PLATFORM_API_KEY or local-dev")
    args = parser.parse_args(argv)
    url = args.api_url or os.environ.get("PLATFORM_API_URL") or "http://localhost:8080"
    key = args.api_key or os.environ.get("PLATFORM_API_KEY") or "local-dev"
    try:
        found = list(documents(args.paths))
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as api:
        for start in range(0, len(found), _BATCH):
            batch = found[start : start + _BATCH]
            response = api.post(
                f"/v1/collections/{args.collection}/documents", json={"documents": batch}
            )
            if response.status_code != 202:
                print(f"error: HTTP {response.status_code}: {response.text}", file=sys.stderr)
                return 1
    print(f"sent {len(found)} documents to {args.collection}; indexing runs in the background")
    return 0


if __name__ == "__main__":
    sys.exit(main())
