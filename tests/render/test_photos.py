"""The photo pipeline on real parts: a local HTTP server, moto's S3 server over HTTP, Redis.

Every source image is made unique (random pixels in a corner) so tests sharing the
session's Redis and bucket never see each other's cached photos.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import io
import random
import struct
import threading
import time
import uuid
import zlib
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from PIL import ExifTags, Image, ImageCms

from services.render.photos import PhotoError, ProcessedPhoto, imaging, process_photo, source
from services.render.photos.imaging import crop_size, rendition_widths
from services.render.photos.model import VERSION
from shared import keys
from shared.ninjs import Photo
from shared.runtime import Runtime

RED, BLUE, GREEN, WHITE = (255, 0, 0), (0, 0, 255), (0, 160, 0), (255, 255, 255)


# --- a real HTTP server that counts requests ------------------------------------------------------------------


class ImageServer:
    def __init__(self) -> None:
        self.routes: dict[str, tuple[int, bytes, dict, float]] = {}
        self.hits: Counter[str] = Counter()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                server.hits[self.path] += 1
                status, body, headers, delay = server.routes.get(self.path, (404, b"not found", {}, 0.0))
                if delay:
                    time.sleep(delay)
                try:
                    self.send_response(status)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:  # the client gave up (deadline tests)
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def add(self, body: bytes, content_type: str = "image/jpeg", status: int = 200, headers: dict | None = None,
            delay: float = 0.0, path: str | None = None) -> str:
        """Serve `body` at a fresh path; returns its URL."""
        path = path or f"/{uuid.uuid4().hex}"
        self.routes[path] = (status, body, {"Content-Type": content_type, **(headers or {})}, delay)
        return self.base + path

    def count(self, url: str) -> int:
        return self.hits[url.removeprefix(self.base)]


@pytest.fixture(scope="module")
def server():
    srv = ImageServer()
    yield srv
    srv.httpd.shutdown()
    srv.httpd.server_close()


# --- images ---------------------------------------------------------------------------------------------------


def unique(size: tuple[int, int], mode: str = "RGB", color=BLUE) -> Image.Image:
    img = Image.new(mode, size, color if mode != "RGBA" else (*color, 255))
    for x in range(min(8, size[0])):
        value = tuple(random.randrange(256) for _ in img.getbands())
        img.putpixel((x, size[1] - 1), value)
    return img


def encode(img: Image.Image, fmt: str, **options) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **options)
    return buf.getvalue()


def png_bomb(width: int, height: int) -> bytes:
    """A valid 1-bit PNG of all-black rows: billions of pixels in a few hundred kilobytes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\x00" * (1 + (width + 7) // 8)
    z = zlib.compressobj(9)
    idat = b"".join(z.compress(row) for _ in range(height)) + z.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


# --- helpers --------------------------------------------------------------------------------------------------


def process(rt: Runtime, href: str) -> ProcessedPhoto:
    return process_photo(rt, Photo(href=href, caption="A caption", credit="A credit"))


def refusal(rt: Runtime, href: str) -> PhotoError:
    with pytest.raises(PhotoError) as info:
        process(rt, href)
    assert rt.redis.get(keys.photo_source(VERSION, href)) is None  # nothing is remembered for a refusal
    return info.value


def variant(settings, **changes) -> Runtime:
    """The test stack's settings with any public photo host allowed, unless `changes` say otherwise."""
    return Runtime(dataclasses.replace(settings, **{"photo_hosts": ("*",), **changes}))


@pytest.fixture(scope="module")
def rt(settings) -> Runtime:
    return variant(settings)


def stored(rt: Runtime, key: str) -> tuple[dict, Image.Image, bytes]:
    obj = rt.s3.get_object(Bucket=rt.settings.site_bucket, Key=key)
    body = obj["Body"].read()
    return obj, Image.open(io.BytesIO(body)), body


def every_rendition(photo: ProcessedPhoto):
    return [*photo.jpeg, *photo.webp, *photo.crops.values()]


def on_white(img: Image.Image) -> Image.Image:
    """How a browser shows the image on a white page."""
    rgba = img.convert("RGBA")
    flat = Image.new("RGB", img.size, WHITE)
    flat.paste(rgba, mask=rgba.getchannel("A"))
    return flat


def near(pixel, expected, tolerance: int = 40) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(pixel, expected, strict=False))


# --- what a photo becomes -------------------------------------------------------------------------------------


def test_exif_orientation_is_applied_and_no_metadata_survives(rt, server):
    img = unique((1200, 800))
    img.paste(RED, (0, 0, 300, 200))  # top-left as stored; orientation 6 shows it top-right
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6
    exif[ExifTags.Base.Make] = "Reporter's phone"
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "N"
    gps[ExifTags.GPS.GPSLatitude] = (52.0, 13.0, 37.0)
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    body = encode(img, "JPEG", exif=exif, icc_profile=srgb, quality=90)
    assert Image.open(io.BytesIO(body)).getexif().get_ifd(ExifTags.IFD.GPSInfo)  # the source does carry GPS

    photo = process(rt, server.add(body))

    assert (photo.width, photo.height) == (800, 1200)
    assert [(r.width, r.height) for r in photo.jpeg] == [(320, 480), (640, 960), (800, 1200)]
    for rendition in every_rendition(photo):
        _obj, out, raw = stored(rt, rendition.key)
        assert out.size == (rendition.width, rendition.height)
        assert len(out.getexif()) == 0
        assert not {"exif", "icc_profile", "xmp"} & set(out.info)
        assert b"Exif\x00\x00" not in raw and b"Reporter" not in raw
    _obj, small, _raw = stored(rt, photo.jpeg[0].key)
    rgb = small.convert("RGB")
    assert near(rgb.getpixel((310, 10)), RED) and near(rgb.getpixel((10, 10)), BLUE)


def test_a_rotated_jpeg_decoded_at_reduced_scale_reports_its_upright_size():
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6
    body = encode(Image.new("RGB", (3842, 3841), BLUE), "JPEG", exif=exif)  # drafted to 1921x1921
    pixels, size = imaging.decode(body, 40_000_000)
    assert pixels.size == (1921, 1921)
    assert size == (3841, 3842)


def test_a_broken_colour_profile_costs_the_profile_not_the_photo():
    body = encode(Image.new("RGB", (400, 300), GREEN), "JPEG", icc_profile=b"not an ICC profile at all")
    assert Image.open(io.BytesIO(body)).info["icc_profile"] == b"not an ICC profile at all"
    rendered = imaging.render(body, 40_000_000)
    for out in rendered.outputs:
        decoded = Image.open(io.BytesIO(out.body))
        assert "icc_profile" not in decoded.info and near(decoded.convert("RGB").getpixel((5, 5)), GREEN)


def test_png_alpha_is_flattened_on_white_for_jpeg_and_kept_in_webp(rt, server):
    img = unique((700, 500), "RGBA", GREEN)
    img.paste((0, 0, 0, 0), (0, 0, 350, 500))  # left half fully transparent (and black underneath)
    photo = process(rt, server.add(encode(img, "PNG"), "image/png"))

    _obj, jpeg, _raw = stored(rt, photo.jpeg[0].key)
    assert jpeg.format == "JPEG" and jpeg.mode == "RGB"
    assert near(jpeg.getpixel((20, 100)), WHITE, 8) and near(jpeg.getpixel((300, 100)), GREEN)
    _obj, webp, _raw = stored(rt, photo.webp[0].key)
    webp = webp.convert("RGBA")
    assert webp.getpixel((20, 100))[3] == 0 and webp.getpixel((300, 100))[3] == 255


def test_webp_input(rt, server):
    body = encode(unique((900, 600), color=GREEN), "WEBP", quality=90)
    photo = process(rt, server.add(body, "image/webp"))
    assert (photo.width, photo.height) == (900, 600)
    assert [r.width for r in photo.webp] == [320, 640, 900]
    _obj, out, _raw = stored(rt, photo.webp[-1].key)
    assert out.format == "WEBP" and near(out.convert("RGB").getpixel((100, 100)), GREEN)


def test_gif_input_uses_its_first_frame(rt, server):
    frames = [unique((400, 300), color=RED).convert("P"), unique((400, 300), color=BLUE).convert("P")]
    body = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    assert Image.open(io.BytesIO(body)).n_frames == 2
    photo = process(rt, server.add(body, "image/gif"))
    for rendition in (photo.jpeg[0], photo.webp[0], photo.crops["1x1"]):
        _obj, out, _raw = stored(rt, rendition.key)
        assert near(out.convert("RGB").getpixel((50, 50)), RED)


@pytest.mark.parametrize(
    ("width", "widths"),
    [
        (100, [100]),
        (320, [320]),
        (500, [320, 500]),
        (700, [320, 640]),
        (1000, [320, 640, 960]),
        (1900, [320, 640, 960, 1280, 1900]),
        (5000, [320, 640, 960, 1280, 1920]),
    ],
)
def test_rendition_widths_are_never_upscaled(width, widths):
    assert rendition_widths(width) == widths


@pytest.mark.parametrize("size", [(16, 16), (600, 2000), (3000, 500), (1201, 1201), (1300, 731), (5000, 4000)])
def test_crops_are_the_largest_exact_ratio_the_source_allows(size):
    for a, b in ((16, 9), (4, 3), (1, 1)):
        w, h = crop_size(*size, (a, b))
        assert w * b == h * a
        assert w <= min(1200, size[0]) and h <= size[1]
        assert w + a > min(1200, size[0]) or h + b > size[1]  # one unit more would not fit


def test_a_source_smaller_than_one_ratio_unit_still_gets_a_crop():
    assert crop_size(7, 3, (16, 9)) == (16, 9)


@pytest.mark.parametrize(
    ("img", "fmt", "expected"),
    [
        (Image.new("L", (400, 300), 128), "PNG", (128, 128, 128)),
        (Image.new("1", (400, 300), 1), "PNG", WHITE),
        (Image.new("LA", (400, 300), (0, 0)), "PNG", WHITE),
        (Image.new("I;16", (400, 300), 65535), "PNG", WHITE),
        (Image.new("RGB", (400, 300), RED).convert("P"), "GIF", RED),
        (Image.new("CMYK", (400, 300), (0, 0, 0, 0)), "JPEG", WHITE),
    ],
    ids=["grey", "bilevel", "grey-alpha", "16-bit", "palette", "cmyk"],
)
def test_every_pixel_mode_becomes_rgb_or_rgba(img, fmt, expected):
    rendered = imaging.render(encode(img, fmt), 40_000_000)
    assert (rendered.width, rendered.height) == (400, 300)
    for out in rendered.outputs:
        decoded = Image.open(io.BytesIO(out.body))
        assert decoded.size == (out.width, out.height)
        assert decoded.mode in (("RGB",) if out.mimetype == "image/jpeg" else ("RGB", "RGBA"))
        assert near(on_white(decoded).getpixel((5, 5)), expected, 12), out.name


def test_a_large_photo_gets_every_width_and_full_size_crops(rt, server):
    body = encode(unique((2400, 1600)), "JPEG", quality=85)
    photo = process(rt, server.add(body))
    assert photo.digest == hashlib.sha256(body).hexdigest()
    assert [(r.width, r.height) for r in photo.jpeg] == [(320, 213), (640, 427), (960, 640), (1280, 853), (1920, 1280)]
    assert [(r.width, r.height) for r in photo.webp] == [(r.width, r.height) for r in photo.jpeg]
    assert {name: (r.width, r.height) for name, r in photo.crops.items()} == {
        "16x9": (1200, 675), "4x3": (1200, 900), "1x1": (1200, 1200)
    }
    for rendition in every_rendition(photo):
        obj, out, _raw = stored(rt, rendition.key)
        assert out.size == (rendition.width, rendition.height)
        assert obj["ContentType"] == rendition.mimetype == {"JPEG": "image/jpeg", "WEBP": "image/webp"}[out.format]
        assert obj["CacheControl"] == "public, max-age=31536000, immutable"
        assert rendition.key.startswith(f"photos/v{VERSION}/{photo.digest[:2]}/{photo.digest}/")
        assert rendition.url == f"{rt.settings.site_url}/{rendition.key}"
    assert photo.crops["16x9"].key.endswith("/crop-16x9-1200w.jpg")
    assert photo.webp[0].key.endswith("/320w.webp")


# --- processed once -------------------------------------------------------------------------------------------


def test_a_photo_seen_before_is_not_fetched_again_and_same_bytes_share_a_digest(rt, server):
    body = encode(unique((800, 600)), "JPEG")
    first_url, second_url = server.add(body), server.add(body)

    first = process(rt, first_url)
    again = process(rt, first_url)
    assert again == first and server.count(first_url) == 1

    other = process(rt, second_url)
    assert server.count(second_url) == 1  # a new href has to be fetched to learn its bytes...
    assert other == first  # ...but the same bytes are not rendered again: same digest, same objects
    process(rt, second_url)
    assert server.count(second_url) == 1


def test_an_existing_object_is_never_overwritten(rt, server):
    url = server.add(encode(unique((800, 600)), "JPEG"))
    photo = process(rt, url)
    key = photo.jpeg[0].key
    rt.s3.put_object(Bucket=rt.settings.site_bucket, Key=key, Body=b"already here", ContentType="image/jpeg")
    rt.redis.delete(keys.photo_manifest(VERSION, photo.digest), keys.photo_source(VERSION, url))  # cache lost

    assert process(rt, url) == photo
    assert server.count(url) == 2
    assert rt.s3.get_object(Bucket=rt.settings.site_bucket, Key=key)["Body"].read() == b"already here"
    assert rt.redis.get(keys.photo_manifest(VERSION, photo.digest)) is not None


def test_urls_follow_the_current_site_url(rt, settings, server):
    url = server.add(encode(unique((400, 300)), "JPEG"))
    photo = process(rt, url)
    moved = process(variant(settings, site_url="https://cdn.example.test"), url)
    assert server.count(url) == 1
    assert moved.jpeg[0].key == photo.jpeg[0].key
    assert moved.jpeg[0].url == f"https://cdn.example.test/{photo.jpeg[0].key}"


def test_a_data_uri_is_decoded_and_remembered(rt):
    body = encode(unique((500, 400), color=GREEN), "PNG")
    href = "data:image/png;base64," + base64.b64encode(body).decode()
    photo = process(rt, href)
    assert photo.digest == hashlib.sha256(body).hexdigest()
    assert [r.width for r in photo.jpeg] == [320, 500]
    assert rt.redis.get(keys.photo_source(VERSION, href)) == photo.digest.encode()
    assert process(rt, href) == photo
    _obj, out, _raw = stored(rt, photo.jpeg[-1].key)
    assert out.size == (500, 400) and near(out.getpixel((100, 100)), GREEN)


# --- refusals: each one a PhotoError with a reason for the timeline -------------------------------------------


def test_host_not_in_photo_hosts_is_refused_without_a_request(settings, server):
    url = server.add(encode(unique((100, 100)), "JPEG"))
    rt = variant(settings, photo_hosts=("photos.example.org", ".example.net"))
    error = refusal(rt, url)
    assert str(error) == "photo not fetched: 127.0.0.1 is not an allowed photo host (PRESSROOM_PHOTO_HOSTS)"
    assert server.count(url) == 0
    assert process(variant(settings, photo_hosts=("127.0.0.1",)), url).width == 100


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("photos.example.org", True),
        ("PHOTOS.example.org.", True),
        ("example.net", True),
        ("a.b.example.net", True),
        ("badexample.net", False),
        ("example.org", False),
        ("photos.example.org.evil.test", False),
    ],
)
def test_photo_hosts_match_exact_names_and_dot_suffixes(host, allowed):
    assert source.host_allowed(host, ("photos.example.org", ".example.net")) is allowed
    assert source.host_allowed(host, ("*",))


def test_a_private_address_is_refused_unless_its_network_is_allowed(settings, server):
    url = server.add(encode(unique((100, 100)), "JPEG"))
    error = refusal(variant(settings, webhook_allow_networks=()), url)
    assert "refused" in str(error) and "loopback" in str(error)
    assert not error.transient
    assert server.count(url) == 0


def test_a_redirect_to_a_private_address_is_refused(settings, server):
    url = server.add(b"", status=302, headers={"Location": "http://10.1.2.3/photo.jpg"})
    error = refusal(variant(settings, webhook_allow_networks=settings.webhook_allow_networks[:1]), url)
    assert str(error) == "photo not fetched: 10.1.2.3 resolves to 10.1.2.3, which is refused (private)"


def test_a_host_that_does_not_resolve_is_a_transient_failure(rt):
    error = refusal(rt, "http://photos.invalid/photo.jpg")
    assert "cannot resolve photos.invalid" in str(error) and error.transient


@pytest.mark.parametrize("href", ["ftp://127.0.0.1/photo.jpg", "file:///etc/passwd", "gopher://127.0.0.1:70/"])
def test_only_http_https_and_data_urls(rt, href):
    assert "only http, https and data: URLs are allowed" in str(refusal(rt, href))


def test_an_answer_larger_than_the_limit_is_refused(settings, server):
    url = server.add(encode(unique((300, 300)), "PNG") + b"\x00" * 4096)
    error = refusal(variant(settings, photo_max_bytes=2048), url)
    assert str(error) == "photo not fetched: 127.0.0.1 sent more than 2048 bytes"


def test_a_slow_server_hits_the_deadline(rt, server, monkeypatch):
    monkeypatch.setattr(source, "TOTAL_TIMEOUT", 0.5)
    url = server.add(encode(unique((100, 100)), "JPEG"), delay=3)
    error = refusal(rt, url)
    assert str(error) == "photo not fetched: 127.0.0.1 took longer than 0.5s (may be temporary)"
    assert error.transient


def test_an_error_status_is_refused(rt, server):
    assert str(refusal(rt, server.add(b"gone", status=404))) == "photo not fetched: 127.0.0.1 answered HTTP 404"
    error = refusal(rt, server.add(b"busy", status=503))
    assert "HTTP 503" in str(error) and error.transient


def test_redirects_are_followed_up_to_the_limit(rt, server):
    target = server.add(encode(unique((200, 100)), "JPEG"))
    chain = [target]
    for _ in range(source.MAX_REDIRECTS + 1):
        chain.append(server.add(b"", status=302, headers={"Location": chain[-1].removeprefix(server.base)}))
    assert process(rt, chain[-2]).width == 200  # exactly MAX_REDIRECTS hops
    error = refusal(rt, chain[-1])
    assert str(error) == f"photo not fetched: more than {source.MAX_REDIRECTS} redirects"


def test_a_redirect_to_a_host_not_allowed_is_refused(settings, server):
    target = server.add(encode(unique((100, 100)), "JPEG"))
    url = server.add(b"", status=301, headers={"Location": target.replace("127.0.0.1", "localhost")})
    error = refusal(variant(settings, photo_hosts=("127.0.0.1",)), url)
    assert "localhost is not an allowed photo host" in str(error)
    assert server.count(target) == 0


def test_text_served_as_jpeg_is_refused(rt, server):
    error = refusal(rt, server.add(b"<html>this is not a photo</html>", "image/jpeg"))
    assert str(error) == "photo refused: not a JPEG, PNG, WebP or GIF image"


def test_formats_pillow_reads_but_we_do_not_accept_are_refused(rt, server):
    for fmt in ("BMP", "TIFF"):
        error = refusal(rt, server.add(encode(unique((50, 50)), fmt), "image/jpeg"))
        assert str(error) == "photo refused: not a JPEG, PNG, WebP or GIF image"


def test_a_truncated_jpeg_is_refused(rt, server):
    body = encode(unique((600, 400)), "JPEG", quality=95)
    error = refusal(rt, server.add(body[: len(body) // 2]))
    assert str(error).startswith("photo refused: damaged or truncated JPEG image")


def test_a_header_over_the_pixel_limit_is_refused_before_decoding(settings, server):
    body = encode(Image.new("1", (3000, 2000)), "PNG")
    error = refusal(variant(settings, photo_max_pixels=1_000_000), server.add(body, "image/png"))
    assert str(error) == "photo refused: 3000x2000 is 6,000,000 pixels, more than the 1,000,000 allowed"


def test_a_real_decompression_bomb_is_refused(rt, settings, server):
    bomb = png_bomb(50_000, 50_000)
    assert len(bomb) < 1_000_000  # 2.5 billion pixels in a few hundred kilobytes
    assert "decompression bomb" in str(refusal(rt, server.add(bomb, "image/png")))
    # Pillow's own guard still holds when an operator sets a higher limit than it allows...
    lax = variant(settings, photo_max_pixels=10**12)
    assert "decompression bomb" in str(refusal(lax, server.add(bomb, "image/png")))
    # ...including its warning band (above ~89 million pixels), which we treat as a refusal too.
    assert "decompression bomb" in str(refusal(lax, server.add(png_bomb(10_000, 10_000), "image/png")))


def test_our_pixel_limit_applies_below_pillows(settings, server):
    body = png_bomb(8000, 6000)  # 48 million pixels: under Pillow's limit, over the default 40 million
    error = refusal(variant(settings), server.add(body, "image/png"))
    assert str(error) == "photo refused: 8000x6000 is 48,000,000 pixels, more than the 40,000,000 allowed"


@pytest.mark.parametrize(
    ("href", "reason"),
    [
        ("data:text/html;base64,PGI+aGk8L2I+", "a data: URI must hold a base64-encoded image"),
        ("data:image/png,rawbytes", "a data: URI must hold a base64-encoded image"),
        ("data:image/png;base64,!!!not-base64!!!", "the data: URI is not valid base64"),
        ("data:image/png;base64,", "the data: URI is empty"),
        ("data:image/png;base64," + base64.b64encode(b"GIF89a not really").decode(), "not a JPEG, PNG, WebP or GIF"),
    ],
)
def test_bad_data_uris_are_refused(rt, href, reason):
    assert reason in str(refusal(rt, href))


def test_a_data_uri_over_the_size_limit_is_refused_before_decoding(settings):
    href = "data:image/png;base64," + "A" * 8192
    error = refusal(variant(settings, photo_max_bytes=2048), href)
    assert str(error) == "photo refused: the data: URI holds more than 2048 bytes"


def test_a_storage_failure_is_a_transient_photo_error(settings, server):
    url = server.add(encode(unique((300, 200)), "JPEG"))
    error = refusal(variant(settings, site_bucket=f"missing-{uuid.uuid4().hex[:8]}"), url)
    assert str(error).startswith("photo not stored: put missing-") and error.transient
