"""The official KiteTicker against `kestrel sim`'s ticker WebSocket: the ticks it parses must
equal, field for field, the ticks the simulator generated (which it records to a journal)."""

import csv
import io
import json
import os
import select
import subprocess
import tempfile
import threading
import time

from kiteconnect import KiteTicker

KESTREL_BIN = os.environ.get("KESTREL_BIN", "target/debug/kestrel")


def start_sim(journal):
    proc = subprocess.Popen(
        [KESTREL_BIN, "sim", "--rest-addr", "127.0.0.1:0", "--ws-addr", "127.0.0.1:0",
         "--seed", "11", "--speed", "5", "--journal-out", journal, "--stop-on-eof"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    ready, _, _ = select.select([proc.stdout], [], [], 20)
    assert ready, "kestrel sim printed no ready line within 20 s"
    return proc, json.loads(proc.stdout.readline())


def stop_sim(proc):
    proc.stdin.close()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


def recorded_ticks(journal):
    out = subprocess.run([KESTREL_BIN, "journal", "export-csv", journal],
                         capture_output=True, text=True, timeout=30, check=True)
    return list(csv.DictReader(io.StringIO(out.stdout)))


def test_kite_ticker_receives_the_ticks_the_simulator_generated():
    with tempfile.TemporaryDirectory() as tmp:
        journal = os.path.join(tmp, "sim.kjnl")
        proc, info = start_sim(journal)
        try:
            assert info["ws"].startswith("ws://127.0.0.1:")
            tokens = [i["token"] for i in info["instruments"]]
            symbol_of = {i["token"]: i["symbol"] for i in info["instruments"]}
            got, connected = [], threading.Event()
            kws = KiteTicker(info["api_key"], info["access_token"], root=info["ws"], reconnect=False)

            def on_connect(ws, _response):
                ws.subscribe(tokens)
                ws.set_mode(ws.MODE_FULL, tokens)
                connected.set()

            def on_ticks(_ws, ticks):
                got.extend(ticks)

            kws.on_connect = on_connect
            kws.on_ticks = on_ticks
            kws.connect(threaded=True)
            deadline = time.time() + 20
            while time.time() < deadline and len([t for t in got if t["mode"] == "full"]) < 200:
                time.sleep(0.05)
            kws.close()
            assert connected.is_set(), "KiteTicker never connected"
        finally:
            stop_sim(proc)

        full = [t for t in got if t["mode"] == "full"]
        assert len(full) >= 200, f"only {len(full)} full-mode ticks arrived"
        rows = {(r["symbol"], int(r["volume"])): r for r in recorded_ticks(journal)}
        for t in full:
            key = (symbol_of[t["instrument_token"]], t["volume_traded"])
            assert key in rows, f"tick {key} was never generated"
            r = rows[key]
            assert abs(t["last_price"] - float(r["last_price"])) < 1e-9, (t, r)
            assert t["last_traded_quantity"] == int(r["last_qty"]), (t, r)
            best_bid, best_ask = t["depth"]["buy"][0], t["depth"]["sell"][0]
            assert abs(best_bid["price"] - float(r["bid_price"])) < 1e-9, (t, r)
            assert best_bid["quantity"] == int(r["bid_qty"]), (t, r)
            assert abs(best_ask["price"] - float(r["ask_price"])) < 1e-9, (t, r)
            assert best_ask["quantity"] == int(r["ask_qty"]), (t, r)
