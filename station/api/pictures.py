"""Product pictures for the packer's screen, served by the daemon itself.

The kiosk browser may have no network beyond the station PC, so a picture the station holds is
served from `/screen/picture?sku=...`: the file a catalog `image_url` names (a path or a `file:`
URL, relative to `[catalog] pictures_dir`, else to the catalog file's folder), or else
`<SKU>.<jpg|jpeg|png|webp|gif>` in `pictures_dir` ("/" in a SKU is "_" in the file name). A
remote `image_url` (http, https, data) goes to the page unchanged; a station that cannot reach it
shows the item's name and SKU without the picture. Pictures are looked up once at start: restart
the daemon after adding some.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

from station.domain import Catalog

log = logging.getLogger("packstation.api")

PICTURE_PATH = "/screen/picture"
PICTURE_TYPES = {
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".webp": "image/webp",
    ".gif": "image/gif",
}
# The screen shows a thumbnail; a bigger file is a mistake in the export, and reading it on every
# BLOCK would cost the loop's memory for nothing.
MAX_PICTURE_BYTES = 2_000_000
_PASSED_THROUGH = frozenset({"http", "https", "data"})
_LISTED_IN_WARNINGS = 5


@dataclass(frozen=True, slots=True)
class ProductPictures:
    local: Mapping[str, Path]  # SKU -> a picture file the daemon serves
    remote: Mapping[str, str]  # SKU -> a URL the page loads itself

    @classmethod
    def find(
        cls, catalog: Catalog, catalog_dir: Path, pictures_dir: Path | None
    ) -> ProductPictures:
        """Resolve every catalog item's picture (logs, once, the ones that cannot be used)."""
        named_by_sku = _pictures_in(pictures_dir)
        base = pictures_dir or catalog_dir
        local: dict[str, Path] = {}
        remote: dict[str, str] = {}
        unusable: list[str] = []
        for sku, item in catalog.items.items():
            url = item.image_url
            if url:
                parts = urlsplit(url)
                if parts.scheme in _PASSED_THROUGH:
                    remote[sku] = url
                    continue
                named = Path(unquote(parts.path)) if parts.scheme == "file" else Path(url)
                if parts.scheme in ("", "file") and _usable(base / named):
                    local[sku] = base / named
                    continue
                unusable.append(f"{sku} ({url})")
            found = named_by_sku.get(sku.replace("/", "_"))
            if found is not None:
                local[sku] = found
        if unusable:
            log.warning(
                "product pictures not found or not usable; the screen shows those items without "
                "one: fix image_url in the catalog or put the file in [catalog] pictures_dir",
                extra={
                    "count": len(unusable),
                    "first": unusable[:_LISTED_IN_WARNINGS],
                    "looked_in": str(base),
                    "types": sorted(PICTURE_TYPES),
                    "max_bytes": MAX_PICTURE_BYTES,
                },
            )
        return cls(local, remote)

    def url(self, sku: str) -> str | None:
        """What the page puts in the picture's `src`; None: no picture."""
        if sku in self.local:
            return f"{PICTURE_PATH}?sku={quote(sku, safe='')}"
        return self.remote.get(sku)

    def read(self, sku: str) -> tuple[bytes, str] | None:
        """The picture's bytes and content type; None if the SKU has no local picture (or its
        file has gone since the start). Blocking: call from a thread."""
        path = self.local.get(sku)
        if path is None or not _usable(path):
            return None
        return path.read_bytes(), PICTURE_TYPES[path.suffix.lower()]


def _pictures_in(folder: Path | None) -> dict[str, Path]:
    """`<stem> -> file` for the usable pictures in `folder`."""
    if folder is None:
        return {}
    try:
        files = sorted(folder.iterdir())
    except OSError as exc:
        log.warning(
            "[catalog] pictures_dir cannot be read; the screen shows no pictures from it: create "
            "it or fix the path",
            extra={"pictures_dir": str(folder), "error": str(exc)},
        )
        return {}
    return {f.stem: f for f in files if _usable(f)}


def _usable(path: Path) -> bool:
    try:
        return (
            path.suffix.lower() in PICTURE_TYPES
            and path.is_file()
            and path.stat().st_size <= MAX_PICTURE_BYTES
        )
    except OSError:
        return False
