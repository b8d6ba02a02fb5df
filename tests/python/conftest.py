"""What the tests share: the `kestrel` binary under test and a `kestrel sim` per module."""

import json
import os
import select
import subprocess

import pytest

KESTREL_BIN = os.environ.get("KESTREL_BIN", "target/debug/kestrel")


@pytest.fixture(scope="module")
def sim():
    """A `kestrel sim` on loopback; yields its ready line (addresses, credentials)."""
    proc = subprocess.Popen(
        [KESTREL_BIN, "sim", "--rest-addr", "127.0.0.1:0", "--ws-addr", "127.0.0.1:0", "--seed", "7",
         "--stop-on-eof"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 20)
        assert ready, "kestrel sim printed no ready line within 20 s"
        info = json.loads(proc.stdout.readline())
        yield info
    finally:
        proc.stdin.close()  # closing stdin stops the simulator
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
