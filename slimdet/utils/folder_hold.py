"""One run per output folder: a run holds its folder while it works there.

Two trainings (or studies) writing one ``OUTPUT_DIR`` overwrite each other's checkpoints and
logs; the second fails much later with an unrelated error, or not at all. ``hold_folder``
writes ``OUTPUT_DIR/HOLD_FILE`` (process id, host, command, start time) before anything else is
written there, and refuses a folder another live process of this host holds, naming it. A hold
left by a killed run (its process is gone) is taken over, so ``--resume`` after a kill works.
"""
from __future__ import annotations

import atexit
import datetime
import json
import logging
import os
import socket
import sys

__all__ = ["HOLD_FILE", "FolderHeld", "hold_folder", "release_folder"]

HOLD_FILE = "run.hold"

logger = logging.getLogger(__name__)


class FolderHeld(RuntimeError):
    """Another live run holds the output folder."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def _read(path: str) -> dict:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}  # half-written or unreadable: treated as stale


def hold_folder(folder: str) -> str:
    """Hold ``folder`` (created if missing) for this process until it exits
    (``release_folder``); return the hold file's path.

    Raises:
        FolderHeld: a live process of this host, or a process of another host (whose life
            cannot be checked), holds it; the message names it and how to go on.
    """
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, HOLD_FILE)
    me = {"pid": os.getpid(), "host": socket.gethostname(), "command": " ".join(sys.argv),
          "since": datetime.datetime.now().isoformat(timespec="seconds")}
    held = _read(path)
    if held and held.get("pid") != me["pid"]:
        mine = held.get("host") == me["host"]
        if not mine or _alive(int(held.get("pid", -1))):
            raise FolderHeld(
                f"{folder} is held by another run: pid {held.get('pid')} on "
                f"{held.get('host')} since {held.get('since')} ({held.get('command')}). Wait for "
                f"it, stop it, or choose another output folder; if no such run exists, delete "
                f"{path}")
        logger.warning("taking over %s from pid %s (%s), which is no longer running", folder,
                       held.get("pid"), held.get("command"))
    tmp = f"{path}.{me['pid']}"
    with open(tmp, "w") as f:
        json.dump(me, f)
    os.replace(tmp, path)
    atexit.register(release_folder, folder)
    return path


def release_folder(folder: str) -> None:
    """Remove this process's hold of ``folder`` (nothing if another process holds it)."""
    path = os.path.join(folder, HOLD_FILE)
    if _read(path).get("pid") == os.getpid():
        os.remove(path)
