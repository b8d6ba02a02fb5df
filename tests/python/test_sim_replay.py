"""`kestrel sim --csv/--journal` replays recorded ticks: the matching engine trades at the
recorded prices, and the WebSocket faults are settable through /__sim/faults."""

import json
import os
import select
import subprocess
import tempfile
import urllib.request

from kiteconnect import KiteConnect

KESTREL_BIN = os.environ.get("KESTREL_BIN", "target/debug/kestrel")

CSV = """ts_utc_ns,symbol,last_price,last_qty,bid_price,bid_qty,ask_price,ask_qty,volume
1795408200000000000,RELIANCE,2500.00,10,2499.95,100,2500.05,100,10
1795408200100000000,RELIANCE,2500.05,5,2500.00,100,2500.10,100,15
1795408200200000000,TCS,3900.00,1,3899.95,50,3900.05,50,1
1795408200300000000,HDFCBANK,1650.00,1,1649.95,50,1650.05,50,1
1795408200400000000,INFY,1550.00,1,1549.95,50,1550.05,50,1
1795408200500000000,ICICIBANK,1250.00,1,1249.95,50,1250.05,50,1
"""


def test_replayed_csv_prices_are_what_orders_fill_at():
    with tempfile.TemporaryDirectory() as tmp:
        csv_path = os.path.join(tmp, "ticks.csv")
        with open(csv_path, "w") as f:
            f.write(CSV)
        proc = subprocess.Popen(
            [KESTREL_BIN, "sim", "--rest-addr", "127.0.0.1:0", "--ws-addr", "127.0.0.1:0",
             "--csv", csv_path, "--speed", "inf", "--stop-on-eof"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        try:
            ready, _, _ = select.select([proc.stdout], [], [], 20)
            assert ready, "kestrel sim printed no ready line within 20 s"
            info = json.loads(proc.stdout.readline())
            kite = KiteConnect(api_key=info["api_key"], access_token=info["access_token"],
                               root=info["rest"], timeout=5)
            order_id = kite.place_order(
                variety=kite.VARIETY_REGULAR, exchange=kite.EXCHANGE_NSE, tradingsymbol="RELIANCE",
                transaction_type=kite.TRANSACTION_TYPE_BUY, quantity=3, product=kite.PRODUCT_MIS,
                order_type=kite.ORDER_TYPE_MARKET)
            last = kite.order_history(order_id)[-1]
            assert last["status"] == "COMPLETE", last
            # The last recorded RELIANCE ask was 2500.10.
            assert abs(last["average_price"] - 2500.10) < 1e-9, last

            body = b"ws_duplicate_updates=true&ws_disconnect_every_s=30"
            req = urllib.request.Request(info["rest"] + "/__sim/faults", data=body, method="POST")
            with urllib.request.urlopen(req, timeout=5) as r:
                faults = json.load(r)["data"]
            assert faults["ws_duplicate_updates"] is True and faults["ws_disconnect_every_s"] == 30
        finally:
            proc.stdin.close()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
