"""One run per output folder: a second run is refused naming the holder, a killed run's hold
is taken over."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

from helpers import REPO, SYNTHETIC_CONFIG
from slimdet.utils.folder_hold import HOLD_FILE, FolderHeld, hold_folder, release_folder


def _hold_of(folder, pid: int, command: str = "tools/train_net.py --config-file X") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / HOLD_FILE).write_text(json.dumps(
        {"pid": pid, "host": socket.gethostname(), "command": command, "since": "earlier"}))


def test_a_live_holder_is_named_and_a_dead_ones_hold_is_taken_over(tmp_path):
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        _hold_of(tmp_path / "live", live.pid)
        with pytest.raises(FolderHeld, match=f"held by another run: pid {live.pid} on "
                           f"{socket.gethostname()} since earlier \\(tools/train_net.py"):
            hold_folder(str(tmp_path / "live"))
    finally:
        live.kill()
        live.wait()
    hold_folder(str(tmp_path / "live"))  # its process is gone now: taken over
    assert json.loads((tmp_path / "live" / HOLD_FILE).read_text())["pid"] == os.getpid()
    hold_folder(str(tmp_path / "live"))  # this process again: fine
    release_folder(str(tmp_path / "live"))
    assert not (tmp_path / "live" / HOLD_FILE).exists()
    _hold_of(tmp_path / "elsewhere", os.getpid() + 1)
    other = json.loads((tmp_path / "elsewhere" / HOLD_FILE).read_text())
    (tmp_path / "elsewhere" / HOLD_FILE).write_text(json.dumps({**other, "host": "other-host"}))
    with pytest.raises(FolderHeld, match="on other-host"):  # cannot tell: refused
        hold_folder(str(tmp_path / "elsewhere"))


def test_a_second_training_on_a_held_folder_stops_before_writing(tmp_path):
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        _hold_of(tmp_path / "out", live.pid, "the first run")
        proc = subprocess.run(
            [sys.executable, str(REPO / "tools" / "train_net.py"), "--config-file",
             str(SYNTHETIC_CONFIG), "OUTPUT_DIR", str(tmp_path / "out")],
            cwd=REPO, capture_output=True, text=True, timeout=300)
    finally:
        live.kill()
        live.wait()
    assert proc.returncode != 0
    assert f"is held by another run: pid {live.pid}" in proc.stderr and "(the first run)" in (
        proc.stderr)
    assert sorted(os.listdir(tmp_path / "out")) == [HOLD_FILE]  # no config, log or checkpoint
