"""A `kestrel paper` session's Prometheus scrape, read by the official Python client's parser
(`prometheus_client.parser`): the exposition is valid text format, every family typed, the
tick-to-order histogram and the process metrics present."""

import os
import socket
import subprocess
import time
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from conftest import KESTREL_BIN


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape(url, deadline):
    """The body of the first 200 from `url` before `deadline` (the session starts meanwhile)."""
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return r.read().decode()
        except OSError:
            pass
        assert time.monotonic() < deadline, f"no scrape from {url} within the deadline"
        time.sleep(0.2)


def test_a_paper_sessions_scrape_parses_with_the_official_client(tmp_path):
    port = free_port()
    config = open("config/kestrel.toml").read()
    assert 'addr = "127.0.0.1:9464"' in config
    (tmp_path / "kestrel.toml").write_text(
        config.replace('addr = "127.0.0.1:9464"', f'addr = "127.0.0.1:{port}"')
    )
    proc = subprocess.Popen(
        [os.path.abspath(KESTREL_BIN), "paper", "--duration", "60s", "--config", "kestrel.toml"],
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 45
        # Let a few seconds of ticks reach the counters, then scrape.
        scrape(f"http://127.0.0.1:{port}/metrics", deadline)
        time.sleep(3)
        body = scrape(f"http://127.0.0.1:{port}/metrics", deadline)
    finally:
        proc.terminate()
        proc.wait(timeout=30)

    families = {f.name: f for f in text_string_to_metric_families(body)}
    assert families["kestrel_tick_to_order_seconds"].type == "histogram"
    buckets = [s for s in families["kestrel_tick_to_order_seconds"].samples if s.name.endswith("_bucket")]
    assert buckets and buckets[-1].labels["le"] == "+Inf"
    # Counters lose their `_total` in the parser's family names.
    ticks = families["kestrel_ticks"]
    assert ticks.type == "counter"
    assert ticks.samples[0].value > 0, "the paper session ticked"
    for name in ("kestrel_journal_records", "kestrel_alerts", "process_cpu_seconds"):
        assert families[name].type == "counter", name
    assert families["process_resident_memory_bytes"].samples[0].value > 0
