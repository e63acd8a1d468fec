"""The photo pipeline the page renderer calls: `process_photo(rt, photo) -> ProcessedPhoto`.

A photo that cannot be fetched or decoded raises PhotoError; the article then publishes
without it and the error's message goes into the article's timeline.
"""

from services.render.photos.model import PhotoError, ProcessedPhoto, Rendition
from services.render.photos.pipeline import process_photo

__all__ = ["PhotoError", "ProcessedPhoto", "Rendition", "process_photo"]
