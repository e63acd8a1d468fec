"""Headless Chromium (Debian's) driven over the DevTools protocol, to see a page as a reader does.

`chromium --screenshot` shoots when a virtual-time budget runs out, and whether an image
decoded by then varies from run to run (CI saw the featured photo missing three shots in a
row). Driving the browser over `--remote-debugging-pipe` lets the test wait for the thing it
checks: the page's load event, then the photo decoded, then a shot of the drawn frame. The
pipe carries NUL-terminated JSON messages on file descriptors 3 (to the browser) and 4 (from
it), so no websocket client is needed.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import select
import subprocess
import time
from pathlib import Path

# Resolves to the URL the browser chose (from <picture>/srcset) once that image is decoded;
# rejects if it failed to load. Two animation frames let the decoded image reach a paint.
DECODED = """(async () => {
  const img = document.querySelector(%s);
  if (!img) throw new Error("no element matches " + %s);
  await img.decode();
  await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
  return img.currentSrc;
})()"""


class DevTools:
    """One headless browser with one page, spoken to over the DevTools pipe."""

    def __init__(self, profile: Path, width: int, height: int, timeout: float = 60) -> None:
        self.timeout = timeout
        self._next_id = 0
        self._buffer = b""
        self._events: list[dict] = []  # what arrived while a command's reply was awaited
        to_browser, self._write = os.pipe()
        self._read, from_browser = os.pipe()

        def plumb() -> None:  # the protocol's fixed descriptors in the child, moved clear of 3 and 4 first
            high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (to_browser, from_browser)]
            os.dup2(high[0], 3)
            os.dup2(high[1], 4)

        self.process = subprocess.Popen(
            ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--hide-scrollbars", "--remote-debugging-pipe", f"--user-data-dir={profile}",
             f"--window-size={width},{height}", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=plumb, close_fds=False,  # Python's own descriptors are not inheritable anyway
        )
        os.close(to_browser)
        os.close(from_browser)
        try:
            target = self.call("Target.createTarget", url="about:blank")["targetId"]
            self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
            self.call("Emulation.setDeviceMetricsOverride", session=True, width=width, height=height,
                      deviceScaleFactor=1, mobile=False)
            self.call("Page.enable", session=True)
        except BaseException:
            self.close()
            raise

    def call(self, method: str, session: bool = False, **params) -> dict:
        """Send one command and return its result, keeping the events that come before it."""
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = self.session
        os.write(self._write, json.dumps(message).encode() + b"\0")
        reply = self._wait(lambda m: m.get("id") == self._next_id, keep_others=True)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply["result"]

    def _wait(self, wanted, keep_others: bool = False) -> dict:
        """The next message `wanted` accepts: an event kept earlier, else one still to come."""
        for number, message in enumerate(self._events):
            if wanted(message):
                return self._events.pop(number)
        deadline = time.monotonic() + self.timeout
        while True:
            while b"\0" in self._buffer:
                raw, self._buffer = self._buffer.split(b"\0", 1)
                message = json.loads(raw)
                if wanted(message):
                    return message
                if keep_others and "method" in message:
                    self._events.append(message)
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._read], [], [], left)[0]:
                raise TimeoutError("the browser did not answer in time")
            chunk = os.read(self._read, 1 << 16)
            if not chunk:
                raise RuntimeError(f"the browser exited ({self.process.wait()})")
            self._buffer += chunk

    def open(self, url: str) -> None:
        """Navigate and wait for the load event (every image the page asked for has arrived or failed)."""
        self._events.clear()  # only this navigation's load counts
        self.call("Page.navigate", session=True, url=url)
        self._wait(lambda m: m.get("method") == "Page.loadEventFired" and m.get("sessionId") == self.session)

    def decoded_image(self, selector: str) -> str:
        expression = DECODED % (json.dumps(selector), json.dumps(selector))
        result = self.call("Runtime.evaluate", session=True, expression=expression, awaitPromise=True,
                           returnByValue=True)
        if "exceptionDetails" in result:
            raise AssertionError(f"{selector} was not drawn: {result['exceptionDetails']}")
        return result["result"]["value"]

    def screenshot(self) -> bytes:
        return base64.b64decode(self.call("Page.captureScreenshot", session=True, format="png")["data"])

    def close(self) -> None:
        with contextlib.suppress(OSError, RuntimeError, TimeoutError):  # it may exit before it answers
            self.call("Browser.close")
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._read)
        os.close(self._write)


def screenshot(url: str, target: Path, profile: Path, image: str = "figure img",
               size: tuple[int, int] = (1280, 2000)) -> str:
    """Shoot `url` once `image` is decoded, keep the shot at `target`, and return the image's chosen URL."""
    target.parent.mkdir(parents=True, exist_ok=True)
    browser = DevTools(profile, *size)
    try:
        browser.open(url)
        chosen = browser.decoded_image(image)
        target.write_bytes(browser.screenshot())
    finally:
        browser.close()
    return chosen


def srcset_urls(element) -> set[str]:
    """The URLs an <img>'s or <source>'s srcset offers (what the browser may choose from)."""
    return {candidate.split()[0] for candidate in element.get("srcset", "").split(",") if candidate.strip()}


def pixels_near(shot: Path, colour: tuple[int, int, int], distance: int = 30) -> int:
    """How many pixels of `shot` are within `distance` (summed over R, G, B) of `colour`."""
    from PIL import Image

    with Image.open(shot) as image:
        colours = image.convert("RGB").getcolors(maxcolors=1 << 24) or []
    return sum(n for n, rgb in colours if sum(abs(a - b) for a, b in zip(rgb, colour, strict=True)) < distance)
