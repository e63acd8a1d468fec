"""Untrusted image bytes in, clean web renditions out; pure functions, no I/O.

The input may be a decompression bomb, a truncated upload, a file in a format whose
decoder we do not want to expose, or a phone photo carrying the reporter's GPS position.
So: only the JPEG, PNG, WebP and GIF decoders are tried, the pixel count is checked from
the header before any pixel is decoded, and every output is encoded from bare pixels
(orientation applied, colours in sRGB) with no metadata at all.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import ExifTags, Image, ImageCms, ImageOps, UnidentifiedImageError

from services.render.photos.model import PhotoError

FORMATS = ("JPEG", "PNG", "WEBP", "GIF")
WIDTHS = (320, 640, 960, 1280, 1920)
CROPS = {"16x9": (16, 9), "4x3": (4, 3), "1x1": (1, 1)}
CROP_WIDTH = 1200
SIDE = max(WIDTHS[-1], CROP_WIDTH)  # working pixels keep at least this on both sides
JPEG = {"format": "JPEG", "quality": 82, "optimize": True, "progressive": True}
WEBP = {"format": "WEBP", "quality": 80, "method": 4}
WHITE = (255, 255, 255)
_SRGB = ImageCms.createProfile("sRGB")


@dataclass(frozen=True)
class Output:
    kind: str  # jpeg | webp | crop
    label: str  # the crop's ratio name, else ""
    name: str  # file name under the photo's key prefix
    width: int
    height: int
    mimetype: str
    body: bytes


@dataclass(frozen=True)
class Rendered:
    width: int  # of the original, after EXIF orientation
    height: int
    outputs: tuple[Output, ...]


def rendition_widths(width: int) -> list[int]:
    """Standard widths up to the source's (never upscaled), plus the source's own when the
    largest standard one would throw away much of it (a 1900 px photo is not cut to 1280)."""
    widths = [w for w in WIDTHS if w <= width]
    if width < WIDTHS[-1] and (not widths or width >= widths[-1] * 1.2):
        widths.append(width)
    return widths


def crop_size(width: int, height: int, ratio: tuple[int, int], limit: int = CROP_WIDTH) -> tuple[int, int]:
    """The largest size of exactly `ratio`, at most `limit` wide, that a centre crop of the source fills."""
    a, b = ratio
    units = max(1, min(limit // a, width // a, height // b))
    return units * a, units * b


def decode(data: bytes, max_pixels: int) -> tuple[Image.Image, tuple[int, int]]:
    """The upright pixels (a JPEG may be decoded at a reduced scale, never below SIDE on a side)
    and the original's upright size; raises PhotoError for anything we will not decode."""
    with warnings.catch_warnings():
        # Pillow's own bomb guard warns, then raises at twice its limit; both are refusals.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            img = Image.open(io.BytesIO(data), formats=FORMATS)
        except UnidentifiedImageError:
            raise PhotoError("photo refused: not a JPEG, PNG, WebP or GIF image") from None
        except (Image.DecompressionBombWarning, Image.DecompressionBombError):
            raise PhotoError("photo refused: too many pixels (decompression bomb)") from None
        except Exception as exc:  # any decoder failure on untrusted bytes is a refusal
            raise PhotoError(f"photo refused: unreadable image ({exc})") from None
        width, height = img.size
        if width * height > max_pixels:
            raise PhotoError(
                f"photo refused: {width}x{height} is {width * height:,} pixels, more than the {max_pixels:,} allowed"
            )
        try:
            img.draft(None, (SIDE, SIDE))  # JPEG only: decode at 1/2..1/8 scale when that is still big enough
            img.load()
        except (Image.DecompressionBombWarning, Image.DecompressionBombError):
            raise PhotoError("photo refused: too many pixels (decompression bomb)") from None
        except Exception as exc:
            raise PhotoError(f"photo refused: damaged or truncated {img.format} image ({exc})") from None
    loaded = img.size
    try:
        # From the tag, not from the new size: a drafted near-square JPEG can come out square.
        turned = img.getexif().get(ExifTags.Base.Orientation) in (5, 6, 7, 8)
        ImageOps.exif_transpose(img, in_place=True)
    except Exception:  # a mangled EXIF block should cost us the rotation, not the photo
        turned = img.size != loaded
    return img, ((height, width) if turned else (width, height))


def to_srgb(img: Image.Image, icc: bytes | None) -> Image.Image:
    """Pixels in sRGB with alpha kept (mode RGB or RGBA), so outputs can go without a profile."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        img = img.convert("I").point(lambda v: v * (1 / 256)).convert("L")
    if icc and img.mode in ("RGB", "RGBA", "CMYK"):
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            img = ImageCms.profileToProfile(img, source, _SRGB, outputMode="RGBA" if img.mode == "RGBA" else "RGB")
        except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
            pass  # a broken profile: keep the pixels as they are
    alpha = img.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in img.info
    out = img.convert("RGBA" if alpha else "RGB")
    out.info = {}
    return out


def on_white(img: Image.Image) -> Image.Image:
    if img.mode != "RGBA":
        return img
    flat = Image.new("RGB", img.size, WHITE)
    flat.paste(img, mask=img.getchannel("A"))
    return flat


def encode(img: Image.Image, options: dict) -> bytes:
    buf = io.BytesIO()
    img.save(buf, **options)
    return buf.getvalue()


def render(data: bytes, max_pixels: int) -> Rendered:
    """Every output of one photo: JPEG and WebP at each rendition width, and the JPEG crops."""
    upright, (width, height) = decode(data, max_pixels)
    pixels = _reduced(to_srgb(upright, upright.info.get("icc_profile")))
    del upright
    flat = on_white(pixels)
    outputs: list[Output] = []
    for w in rendition_widths(width):
        h = max(1, round(height * w / width))
        jpeg = _resized(flat, (w, h))
        webp = jpeg if pixels is flat else _resized(pixels, (w, h))
        outputs.append(Output("jpeg", "", f"{w}w.jpg", w, h, "image/jpeg", encode(jpeg, JPEG)))
        outputs.append(Output("webp", "", f"{w}w.webp", w, h, "image/webp", encode(webp, WEBP)))
    for label, ratio in CROPS.items():
        w, h = crop_size(width, height, ratio)
        crop = ImageOps.fit(flat, (w, h), Image.Resampling.LANCZOS, centering=(0.5, 0.5))
        outputs.append(Output("crop", label, f"crop-{label}-{w}w.jpg", w, h, "image/jpeg", encode(crop, JPEG)))
    return Rendered(width, height, tuple(outputs))


def _resized(img: Image.Image, size: tuple[int, int]) -> Image.Image:
    if img.size == size:
        return img
    return img.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


def _reduced(img: Image.Image) -> Image.Image:
    """Shrink a very large source once by an integer factor, so the many resizes that follow
    start from a few megapixels instead of tens."""
    factor = min(img.width // SIDE, img.height // SIDE)
    return img.reduce(factor) if factor >= 2 else img
