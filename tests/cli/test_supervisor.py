"""The embedded stack's supervisor: one log file per child, warnings on the console, crashes reported."""

import io
import logging
import sys
import textwrap
import threading

from pressroom import processes
from tests.conftest import ROOT, wait_for


def child(script: str) -> list[str]:
    return [sys.executable, "-c", textwrap.dedent(script)]


SPEAKER = """
    import logging, sys
    from shared.logs import configure_logging
    from shared.settings import Settings
    configure_logging(Settings.from_env(), "INFO")
    log = logging.getLogger("pressroom.render")
    log.info("published a1")
    log.warning("published a2 without its photo")
    try:
        raise ValueError("bad photo")
    except ValueError:
        log.exception("photo of a3 failed")
    log.info("published a4")
    print("a plain print", flush=True)
"""


def run_until_exit(sup: processes.Supervisor, name: str, cmd: list[str], **kwargs) -> None:
    proc = sup.start(name, cmd, **kwargs)
    proc.wait(30)
    [entry] = [c for c in sup.children if c.name == name]
    entry.pump.join(10)


def test_console_gets_warnings_and_their_tracebacks_the_file_gets_everything(tmp_path):
    console = io.StringIO()
    sup = processes.Supervisor({"PYTHONPATH": str(ROOT)},
                               log_dir=tmp_path / "logs", console=console)
    try:
        run_until_exit(sup, "render worker", child(SPEAKER))
    finally:
        sup.stop()
    shown = console.getvalue().splitlines()
    assert all(line.startswith("render worker | ") for line in shown)
    assert any("WARNING pressroom.render: published a2 without its photo" in line for line in shown)
    assert any("ERROR pressroom.render: photo of a3 failed" in line for line in shown)
    assert any("ValueError: bad photo" in line for line in shown)  # the traceback belongs to its record
    assert not any("published a1" in line or "published a4" in line or "a plain print" in line for line in shown)
    written = (tmp_path / "logs" / "render-worker.log").read_text()
    for text in ("published a1", "without its photo", "ValueError: bad photo", "published a4", "a plain print"):
        assert text in written


def test_json_records_are_levelled_too(tmp_path):
    console = io.StringIO()
    env = {"PYTHONPATH": str(ROOT), "PRESSROOM_LOG_FORMAT": "json"}
    sup = processes.Supervisor(env, log_dir=tmp_path / "logs", console=console, console_level=logging.INFO)
    try:
        run_until_exit(sup, "ingest", child(SPEAKER))
    finally:
        sup.stop()
    shown = [line.removeprefix("ingest         | ") for line in console.getvalue().splitlines()]
    assert any('"message": "published a1"' in line for line in shown)  # --verbose shows INFO
    assert any('"level": "WARNING"' in line for line in shown)


def test_raw_children_stay_in_their_files_and_an_exit_shows_the_last_lines(tmp_path):
    console = io.StringIO()
    sup = processes.Supervisor({}, log_dir=tmp_path / "logs", console=console)
    try:
        sup.start("s3", child("""
            import sys
            for i in range(40):
                print(f"W1202 volume line {i}", flush=True)
            sys.exit(3)
        """), raw=True)
        assert sup.watch() == "s3"
    finally:
        sup.stop()
    shown = console.getvalue()
    assert f"pressroom: s3 exited with code 3; last lines of {tmp_path / 'logs' / 's3.log'}:" in shown
    assert "W1202 volume line 39" in shown and "W1202 volume line 20" not in shown
    assert (tmp_path / "logs" / "s3.log").read_text().count("W1202 volume line") == 40


def test_a_crashed_child_is_restarted_into_the_same_log(tmp_path):
    console = io.StringIO()
    marker = tmp_path / "started"
    sup = processes.Supervisor({}, log_dir=tmp_path / "logs", console=console)
    script = child(f"""
        import pathlib, sys, time
        marker = pathlib.Path({str(marker)!r})
        runs = int(marker.read_text()) + 1 if marker.exists() else 1
        marker.write_text(str(runs))
        print(f"run {{runs}}", flush=True)
        sys.exit(1) if runs == 1 else time.sleep(60)
    """)
    try:
        sup.start("site", script, restart=True)
        turns = []
        threading.Thread(target=sup.watch, kwargs={"every": lambda: turns.append(1)}, daemon=True).start()
        wait_for(lambda: "run 2" in (tmp_path / "logs" / "site.log").read_text(), timeout=30,
                 message="the restarted child")
    finally:
        sup.stop()
    assert "pressroom: restarting site" in console.getvalue()
    assert (tmp_path / "logs" / "site.log").read_text().splitlines() == ["run 1", "run 2"]
    assert turns


def test_a_log_file_is_rotated_when_a_run_starts_and_when_it_grows_past_its_limit(tmp_path):
    path = tmp_path / "render-worker.log"
    path.write_text("yesterday\n")
    log = processes.LogFile(path, max_bytes=100)
    log.write(b"x" * 60 + b"\n")
    log.write(b"y" * 60 + b"\n")
    log.close()
    assert path.read_bytes() == b"y" * 60 + b"\n"
    assert path.with_name("render-worker.log.1").read_bytes() == b"x" * 60 + b"\n"


def test_line_level_reads_text_and_json_records_and_carries_over_continuations():
    assert processes.line_level("2026-12-02 05:21:42,187 ERROR pressroom.render: boom", logging.INFO) == logging.ERROR
    assert processes.line_level('{"time": "…", "level": "WARNING", "message": "m"}', logging.INFO) == logging.WARNING
    assert processes.line_level("Traceback (most recent call last):", logging.ERROR) == logging.ERROR
    assert processes.line_level("{not json", logging.INFO) == logging.INFO
