"""What the photo pipeline hands the page renderer, and how it is remembered in Redis.

The cached manifest holds keys, never URLs: the URL is built from the current
`site_url` when the manifest is read, so moving the site does not leave stale links.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

# Bump when the outputs change (widths, quality, crops): new keys are written beside the
# old ones, so pages already published keep their photos.
VERSION = 1


class PhotoError(Exception):
    """The photo cannot be used; `str(exc)` is one short line for the article's timeline.

    `transient` is True when the same photo may work later (network trouble, storage
    down), so a caller that wants to can try again instead of publishing without it.
    """

    def __init__(self, reason: str, transient: bool = False) -> None:
        super().__init__(" ".join(reason.split())[:300])
        self.transient = transient


@dataclass(frozen=True)
class Rendition:
    width: int
    height: int
    key: str
    url: str
    mimetype: str


@dataclass(frozen=True)
class ProcessedPhoto:
    digest: str
    width: int
    height: int
    jpeg: tuple[Rendition, ...]
    webp: tuple[Rendition, ...]
    crops: dict[str, Rendition]


def dumps(photo: ProcessedPhoto) -> str:
    def item(r: Rendition) -> dict:
        return {"width": r.width, "height": r.height, "key": r.key, "mimetype": r.mimetype}

    return json.dumps(
        {
            "digest": photo.digest,
            "width": photo.width,
            "height": photo.height,
            "jpeg": [item(r) for r in photo.jpeg],
            "webp": [item(r) for r in photo.webp],
            "crops": {name: item(r) for name, r in photo.crops.items()},
        },
        separators=(",", ":"),
    )


def loads(raw: bytes | str, site_url: str) -> ProcessedPhoto | None:
    """The cached photo, or None when the entry is unreadable (it is then rebuilt)."""
    try:
        data = json.loads(raw)

        def item(d: dict) -> Rendition:
            return Rendition(int(d["width"]), int(d["height"]), d["key"], f"{site_url}/{d['key']}", d["mimetype"])

        photo = ProcessedPhoto(
            digest=data["digest"],
            width=int(data["width"]),
            height=int(data["height"]),
            jpeg=tuple(item(d) for d in data["jpeg"]),
            webp=tuple(item(d) for d in data["webp"]),
            crops={name: item(d) for name, d in data["crops"].items()},
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    return photo if photo.jpeg and photo.webp else None
