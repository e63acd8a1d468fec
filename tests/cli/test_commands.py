"""The `pressroom` command: clear one-line errors, and the whole embedded stack for real."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import lxml.html
import requests

from pressroom import processes
from tests.conftest import ROOT, wait_for

PRESSROOM = [sys.executable, "-m", "pressroom.cli"]


def run_cli(args, env, timeout=30):
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PRESSROOM_")}
    return subprocess.run([*PRESSROOM, *args], env={**clean, **env}, capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


def test_malformed_secret_is_one_clear_line():
    result = run_cli(["ingest"], {"PRESSROOM_WEBHOOK_SECRETS": "not-a-secret"})
    assert result.returncode == 2
    assert result.stderr.strip() == "pressroom: error: PRESSROOM_WEBHOOK_SECRETS: secret must start with 'whsec_'"


def test_missing_bucket_name_is_one_clear_line():
    result = run_cli(["worker", "render"], {"PRESSROOM_SITE_BUCKET": " "})
    assert result.returncode == 2
    assert result.stderr.strip() == "pressroom: error: PRESSROOM_SITE_BUCKET: a bucket name is required"


def test_unreachable_redis_is_one_clear_line():
    port = processes.free_port()
    result = run_cli(["scheduler"], {"PRESSROOM_REDIS_URL": f"redis://127.0.0.1:{port}/0"})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"pressroom: error: cannot reach Redis at redis://127.0.0.1:{port}/0: ")


def test_unknown_pool_is_refused():
    result = run_cli(["worker", "printing"], {})
    assert result.returncode == 2
    assert "unknown pool 'printing'" in result.stderr


def test_taken_port_is_a_clear_message(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_cli(["run"], {"PRESSROOM_PORT": str(port), "PRESSROOM_STATE_DIR": str(tmp_path)})
    assert result.returncode == 1
    assert f"port {port} is already in use" in result.stderr and "PRESSROOM_PORT" in result.stderr


def children_of(pid: int, direct: bool = False) -> set[int]:
    """All descendants of pid (or only its children), read from /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    if direct:
        return {p for p, parent in parents.items() if parent == pid}
    found, frontier = set(), {pid}
    while frontier:
        frontier = {p for p, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def article_with_inline_photo() -> dict:
    """The seed article with its photo given inline, so the page shows a real figure offline."""
    import base64
    import io

    from PIL import Image, ImageDraw

    image = Image.new("RGB", (1600, 900), (40, 90, 140))
    draw = ImageDraw.Draw(image)
    for x in range(0, 1600, 80):
        draw.rectangle([x, 300, x + 40, 600], fill=(230, 200, 80))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=85)
    doc = json.loads((ROOT / "tests" / "samples" / "seed-article.ninjs.json").read_text())
    doc["uri"] += "-with-photo"
    doc["associations"]["featuremedia"]["renditions"]["original"]["href"] = (
        "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()
    )
    return doc


def screenshot(url: str, target: Path, tmp_path: Path, attempts: int = 3) -> None:
    """Load the page in headless Chromium (Debian's) and keep the screenshot as a test artifact.

    Headless Chromium may draw before a slow image arrives on a loaded machine, so the page
    is shot again (with more time) until the photo shows, up to `attempts` times.
    """
    from PIL import Image

    target.parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(1, attempts + 1):
        target.unlink(missing_ok=True)
        subprocess.run(
            ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--hide-scrollbars", f"--virtual-time-budget={10_000 * attempt}",
             f"--user-data-dir={tmp_path / f'chromium-{attempt}'}", "--window-size=1280,2000",
             f"--screenshot={target}", url],
            check=True, capture_output=True, timeout=120,
        )
        with Image.open(target) as shot:
            size = shot.size
            colours = shot.convert("RGB").getcolors(maxcolors=1_000_000) or []
        photo_blue = sum(n for n, (r, g, b) in colours if abs(r - 40) + abs(g - 90) + abs(b - 140) < 30)
        if photo_blue > 20_000:
            break
    assert size == (1280, 2000)
    assert len(colours) > 50  # text, photo and rules rendered, not a blank page
    assert photo_blue > 20_000  # the featured photo itself was loaded and drawn


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_run_starts_everything_publishes_the_sample_and_stops_cleanly(tmp_path):
    port, site_port = processes.free_port(), processes.free_port()
    env = {"PRESSROOM_PORT": str(port), "PRESSROOM_SITE_PORT": str(site_port), "PRESSROOM_STATE_DIR": str(tmp_path)}
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PRESSROOM_", "AWS_"))}
    log = open(tmp_path / "run.log", "w+")  # noqa: SIM115
    proc = subprocess.Popen([*PRESSROOM, "run"], env={**clean, **env}, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        wait_for(lambda: "Pressroom is running" in (tmp_path / "run.log").read_text(), timeout=120,
                 message="the banner")
        banner = (tmp_path / "run.log").read_text()
        secrets = json.loads((tmp_path / "secrets.json").read_text())
        assert secrets["PRESSROOM_WEBHOOK_SECRETS"] in banner
        assert f"http://127.0.0.1:{port}" in banner and f"http://127.0.0.1:{site_port}/" in banner
        assert "pressroom post tests/samples/seed-article.ninjs.json" in banner

        posted = run_cli(["post", "tests/samples/seed-article.ninjs.json"],
                         {**env, "PRESSROOM_WEBHOOK_SECRETS": secrets["PRESSROOM_WEBHOOK_SECRETS"]})
        assert posted.returncode == 0, posted.stderr
        aid = json.loads(posted.stdout.split(" ", 1)[1])["id"]
        token = {"Authorization": f"Bearer {secrets['PRESSROOM_API_TOKEN']}"}
        status = wait_for(
            lambda: (s := requests.get(f"http://127.0.0.1:{port}/v1/articles/{aid}", headers=token,
                                       timeout=5).json())["status"] == "published" and s,
            timeout=60, message="the sample to be published",
        )
        assert status["url"].startswith(f"http://127.0.0.1:{site_port}/2018/09/13/")
        page = requests.get(status["url"], timeout=5)
        assert page.status_code == 200 and "Israeli Defence Minister visits Georgia" in page.text
        assert requests.get(f"http://127.0.0.1:{port}/readyz", timeout=10).json()["status"] == "ready"

        def render_workers() -> list[int]:
            return [p for p in children_of(proc.pid, direct=True) if " -Q render " in cmdline(p) and alive(p)]

        [render_worker] = render_workers()
        os.kill(render_worker, signal.SIGKILL)  # `run` starts a crashed worker again
        wait_for(lambda: [p for p in render_workers() if p != render_worker], timeout=30,
                 message="the render worker to be restarted")

        signing = {**env, "PRESSROOM_WEBHOOK_SECRETS": secrets["PRESSROOM_WEBHOOK_SECRETS"]}
        chosen = run_cli(["post", "tests/samples/editors-choice-article.ninjs.json"], signing)
        chosen_id = json.loads(chosen.stdout.split(" ", 1)[1])["id"]
        chosen_url = wait_for(
            lambda: (s := requests.get(f"http://127.0.0.1:{port}/v1/articles/{chosen_id}", headers=token,
                                       timeout=5).json())["status"] == "published" and s["url"],
            timeout=60, message="the editor's choice sample to be published",
        )
        photo_doc = tmp_path / "with-photo.json"
        photo_doc.write_text(json.dumps(article_with_inline_photo()))
        posted = run_cli(["post", str(photo_doc)], signing)
        photo_aid = json.loads(posted.stdout.split(" ", 1)[1])["id"]
        photo_status = wait_for(
            lambda: (s := requests.get(f"http://127.0.0.1:{port}/v1/articles/{photo_aid}", headers=token,
                                       timeout=5).json())["status"] == "published" and s,
            timeout=60, message="the photo article to be published",
        )
        html = requests.get(photo_status["url"], timeout=5).text
        tree = lxml.html.fromstring(html)
        assert [a.get("href") for a in tree.find_class("editors-choice")[0].iter("a")] == [chosen_url]
        img = tree.find(".//figure//img")
        assert requests.get(img.get("src"), timeout=5).headers["Content-Type"] == "image/jpeg"
        screenshot(photo_status["url"], ROOT / "test-artifacts" / "screenshots" / "article.png", tmp_path)

        children = children_of(proc.pid)
        assert len(children) >= 7  # redis, s3, ingest, 2 workers, scheduler, site (+ their own children)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
        time.sleep(0.5)
        assert [pid for pid in children if alive(pid)] == []
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
