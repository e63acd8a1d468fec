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
from tests.browser import pixels_near, screenshot, srcset_urls
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


def test_fresh_with_a_bad_setting_or_a_taken_port_forgets_nothing(tmp_path):
    kept = tmp_path / "redis" / "appendonly.aof"
    kept.parent.mkdir()
    kept.write_text("yesterday's articles")
    (tmp_path / "s3").mkdir()
    bad = run_cli(["run", "--fresh"], {"PRESSROOM_PORT": "eighty", "PRESSROOM_STATE_DIR": str(tmp_path)})
    assert bad.returncode == 2
    assert bad.stderr.strip() == "pressroom: error: PRESSROOM_PORT: expected an integer, got 'eighty'"
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = run_cli(["run", "--fresh"], {"PRESSROOM_PORT": str(busy.getsockname()[1]),
                                             "PRESSROOM_STATE_DIR": str(tmp_path)})
    assert taken.returncode == 1 and "is already in use" in taken.stderr
    assert kept.read_text() == "yesterday's articles" and (tmp_path / "s3").is_dir()


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


class Run:
    """`pressroom run` in a subprocess on its own ports and state dir; console output in `log`."""

    def __init__(self, state_dir: Path, *args: str, demo: bool = False) -> None:
        args = args if demo else (*args, "--no-demo")
        self.port, self.site_port = processes.free_ports(2)
        self.env = {"PRESSROOM_PORT": str(self.port), "PRESSROOM_SITE_PORT": str(self.site_port),
                    "PRESSROOM_STATE_DIR": str(state_dir)}
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("PRESSROOM_", "AWS_"))}
        self.log = state_dir.parent / f"{state_dir.name}-run-{self.port}.log"
        self.file = open(self.log, "w+")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([*PRESSROOM, "run", *args], env={**clean, **self.env}, stdin=subprocess.PIPE,
                                     stdout=self.file, stderr=subprocess.STDOUT, cwd=ROOT)
        self.secrets = {}

    def output(self) -> str:
        return self.log.read_text()

    def wait_for_banner(self, count: int = 1) -> str:
        wait_for(lambda: self.output().count("Pressroom is running") >= count or self.proc.poll() is not None,
                 timeout=180, message=f"banner number {count}")
        assert self.proc.poll() is None, self.output()
        self.secrets = json.loads((Path(self.env["PRESSROOM_STATE_DIR"]) / "secrets.json").read_text())
        return self.output()

    def post(self, path: str) -> str:
        signing = {**self.env, "PRESSROOM_WEBHOOK_SECRETS": self.secrets["PRESSROOM_WEBHOOK_SECRETS"]}
        posted = run_cli(["post", path], signing)
        assert posted.returncode == 0, posted.stderr
        return json.loads(posted.stdout.split(" ", 1)[1])["id"]

    def status(self, aid: str) -> requests.Response:
        return requests.get(f"http://127.0.0.1:{self.port}/v1/articles/{aid}", timeout=10,
                            headers={"Authorization": f"Bearer {self.secrets['PRESSROOM_API_TOKEN']}"})

    def wait_published(self, aid: str) -> dict:
        return wait_for(lambda: (s := self.status(aid).json()).get("status") == "published" and s, timeout=60,
                        message=f"{aid} to be published")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(60)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
            self.file.close()


def test_run_starts_everything_publishes_the_sample_and_stops_cleanly(tmp_path):
    run = Run(tmp_path / "state")
    port, site_port, env, proc = run.port, run.site_port, run.env, run.proc
    try:
        banner = run.wait_for_banner()
        tmp_path = tmp_path / "state"
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
        shot = ROOT / "test-artifacts" / "screenshots" / "article.png"
        chosen = screenshot(photo_status["url"], shot, tmp_path / "chromium")
        assert chosen in srcset_urls(img) | srcset_urls(tree.find(".//figure//source"))  # one of its renditions
        assert pixels_near(shot, (40, 90, 140)) > 20_000  # the photo's blue, drawn on the page

        children = children_of(proc.pid)
        assert len(children) >= 7  # redis, s3, ingest, 2 workers, scheduler, site (+ their own children)
        assert run.stop() == 0
        time.sleep(0.5)
        assert [pid for pid in children if alive(pid)] == []
    finally:
        run.stop()


def assert_quiet_console_and_child_logs(console: str, logs: Path, aid: str) -> None:
    assert "celery@" not in console and "-------------- " not in console  # no worker banners
    assert " INFO " not in console and "Task render.article" not in console and "beat: Starting" not in console
    assert console.count("Pressroom is running") == 1
    assert "pressroom run --verbose" in console and str(logs) in console
    for child in ("redis", "s3", "ingest", "render-worker", "notify-worker", "scheduler", "site"):
        assert (logs / f"{child}.log").stat().st_size > 0, child
    assert "Ready to accept connections" in (logs / "redis.log").read_text()
    assert "Listening at: http://127.0.0.1:" in (logs / "ingest.log").read_text()
    render_log = (logs / "render-worker.log").read_text()
    assert f"published {aid} v" in render_log and "Task render.article" in render_log
    scheduler_log = (logs / "scheduler.log").read_text()
    assert "scheduler-" in scheduler_log and "ready." in scheduler_log
    # beat sends release-embargoes every second and the stack ran for several: none of that is logged
    assert "Sending due task" not in scheduler_log and "scheduler.release_embargoes" not in scheduler_log


def test_run_keeps_articles_and_pages_across_a_restart_and_fresh_starts_empty(tmp_path):
    """Also: the console shows the banner and warnings only, each child's full log is in its own file."""
    state = tmp_path / "state"
    first = Run(state)
    try:
        first.wait_for_banner()
        aid = first.post("tests/samples/seed-article.ninjs.json")
        published = first.wait_published(aid)
        page = requests.get(published["url"], timeout=10)
        assert page.status_code == 200 and "Israeli Defence Minister visits Georgia" in page.text
        wait_for(lambda: "Task render.article" in (state / "logs" / "render-worker.log").read_text(), timeout=30,
                 message="the render worker's log of the task")
    finally:
        assert first.stop() == 0
    assert_quiet_console_and_child_logs(first.output(), state / "logs", aid)
    assert any(p.name.startswith("appendonly") for p in (state / "redis").iterdir())  # Redis 6 file, 7 dir
    assert any((state / "s3").iterdir())

    second = Run(state)
    try:
        second.wait_for_banner()
        again = second.status(aid).json()
        assert again["status"] == "published" and again["version"] == published["version"]
        assert again["timeline"][: len(published["timeline"])] == published["timeline"]
        path = published["url"].split("/", 3)[3]
        page = requests.get(f"http://127.0.0.1:{second.site_port}/{path}", timeout=10)
        assert page.status_code == 200 and "Israeli Defence Minister visits Georgia" in page.text
        home = requests.get(f"http://127.0.0.1:{second.site_port}/", timeout=10)
        assert home.status_code == 200 and "Israeli Defence Minister visits Georgia" in home.text
        # a restarted SeaweedFS (a new master on new ports over yesterday's volumes) takes new objects too
        later = second.wait_published(second.post("tests/samples/editors-choice-article.ninjs.json"))
        assert requests.get(later["url"], timeout=10).status_code == 200

        busy = run_cli(["run"], {"PRESSROOM_STATE_DIR": str(state), "PRESSROOM_PORT": str(processes.free_port())})
        assert busy.returncode == 1
        assert f"another `pressroom run` (pid {second.proc.pid}) is using {state}" in busy.stderr

        second.proc.send_signal(signal.SIGUSR1)
        second.wait_for_banner(2)
        second.proc.stdin.write(b"\n")
        second.proc.stdin.flush()
        second.wait_for_banner(3)
    finally:
        assert second.stop() == 0

    fresh = Run(state, "--fresh")
    try:
        fresh.wait_for_banner()
        assert fresh.status(aid).status_code == 404
        assert requests.get(f"http://127.0.0.1:{fresh.site_port}/{path}", timeout=10).status_code == 404
        assert fresh.secrets == first.secrets  # --fresh forgets data, not the secrets a newsroom was given
    finally:
        assert fresh.stop() == 0
