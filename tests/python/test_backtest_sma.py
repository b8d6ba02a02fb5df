"""kestrel's backtest of an SMA crossover on daily bars against backtesting.py's, on the same
bars: INFY's daily candles for 2025 from `kestrel sim`'s historical API (a deterministic
series), fetched by the official kiteconnect client for backtesting.py and by `kestrel history
fetch` into a journal of bars for `kestrel replay`.

Where the semantics agree the trades are identical (entry and exit dates and prices): both
decide on a bar's close, fill market orders at the next bar's open, charge nothing
(`--fees none`, `commission=0`) and slip nothing. Where they differ, the test pins the
difference down (docs/BACKTESTING.md, "Against backtesting.py"):

* At the end of the data, `kestrel replay --at-end close` closes an open position at the last
  bar's close; backtesting.py's `finalize_trades=True` closes it at the last bar's open (it
  processes the closing order against that bar again). With `--at-end leave` and
  `finalize_trades=False` both leave it open, and agree.
* Equal averages: kestrel keeps the side it had (a later strict crossing is a cross);
  backtesting.py's `crossover` needs strictly opposite sides on consecutive bars. The test
  checks, in exact arithmetic, that no bar of this series has equal averages, so the two
  cannot part there.
"""

import csv
import json
import os
import subprocess
from fractions import Fraction
from pathlib import Path

import pandas as pd
import pytest
from backtesting import Backtest, Strategy
from backtesting.lib import crossover
from kiteconnect import KiteConnect

from conftest import KESTREL_BIN

FAST, SLOW, QTY = 5, 20, 10
FROM, TO = "2025-01-01", "2025-12-31"

STRATEGY = f"""[strategy]
kind = "sma_cross"
fast = {FAST}
slow = {SLOW}
bar_interval = "day"

[strategy.sizing]
method = "fixed"
qty = {QTY}

"""


def daily_candles(sim):
    kite = KiteConnect(api_key=sim["api_key"], access_token=sim["access_token"], root=sim["rest"], timeout=5)
    infy = next(i for i in kite.instruments("NSE") if i["tradingsymbol"] == "INFY")
    candles = kite.historical_data(infy["instrument_token"], FROM, TO, "day")
    assert len(candles) > 200, len(candles)
    return candles


def sma_cross(fast, slow):
    class SmaCross(Strategy):
        def init(self):
            self.fast = self.I(lambda c: pd.Series(c).rolling(fast).mean().values, self.data.Close)
            self.slow = self.I(lambda c: pd.Series(c).rolling(slow).mean().values, self.data.Close)

        def next(self):
            # Long only, as kestrel's sma_cross without allow_short: in on a cross up, out on
            # a cross down.
            if crossover(self.fast, self.slow):
                self.buy(size=QTY)
            elif crossover(self.slow, self.fast):
                self.position.close()

    return SmaCross


def backtesting_py(candles, finalize):
    """backtesting.py's fills, as (date, side, price), and its trades still open."""
    frame = pd.DataFrame(
        {
            "Open": [c["open"] for c in candles],
            "High": [c["high"] for c in candles],
            "Low": [c["low"] for c in candles],
            "Close": [c["close"] for c in candles],
            "Volume": [c["volume"] for c in candles],
        },
        index=pd.DatetimeIndex([c["date"].date() for c in candles]),
    )
    bt = Backtest(frame, sma_cross(FAST, SLOW), cash=10_000_000, commission=0, finalize_trades=finalize)
    if finalize:
        stats = bt.run()
    else:
        with pytest.warns(UserWarning, match="remain open"):
            stats = bt.run()
    fills = []
    for t in stats["_trades"].itertuples():
        assert t.Size == QTY, t
        fills.append((t.EntryTime.date().isoformat(), "Buy", t.EntryPrice))
        fills.append((t.ExitTime.date().isoformat(), "Sell", t.ExitPrice))
    still_open = [(t.entry_time.date().isoformat(), t.entry_price, t.size) for t in stats["_strategy"].trades]
    return sorted(fills), still_open


def kestrel_replay(journal, config, env, out, *flags):
    """kestrel's fills, as (date, side, price), and its summary."""
    run = subprocess.run([KESTREL_BIN, "replay", str(journal), "--config", str(config), "--fees", "none",
                          "--report", str(out), *flags],
                         env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    with open(out / "trades.csv") as f:
        rows = list(csv.DictReader(f))
    fills = [(r["time_ist"][:10], r["side"], float(r["price"])) for r in rows]
    for r in rows:
        assert int(r["qty"]) == QTY and Fraction(r["fee"]) == 0, r
    summary = json.loads((out / "summary.json").read_text())
    return fills, summary


def no_equal_averages(candles):
    """True when no bar's fast and slow averages are exactly equal (in exact arithmetic)."""
    closes = [Fraction(str(c["close"])) for c in candles]
    for i in range(SLOW - 1, len(closes)):
        fast = sum(closes[i + 1 - FAST:i + 1]) / FAST
        slow = sum(closes[i + 1 - SLOW:i + 1]) / SLOW
        if fast == slow:
            return False
    return True


def test_an_sma_crossover_on_daily_bars_trades_as_backtesting_py_does(sim, tmp_path):
    candles = daily_candles(sim)
    assert no_equal_averages(candles), "equal averages: the two crossover rules would part"

    # kestrel: the shipped configuration, pointed at the simulator, trading the strategy.
    shipped = (Path(__file__).parents[2] / "config" / "kestrel.toml").read_text()
    start, end = shipped.index("[strategy]\n"), shipped.index("[instruments]\n")
    text = (shipped[:start] + STRATEGY + shipped[end:]) \
        .replace('rest_url = "https://api.kite.trade"', f'rest_url = "{sim["rest"]}"') \
        .replace('dir = "kestrel-data"', f'dir = "{tmp_path / "data"}"')
    # backtesting.py has no loss limit: a 5% fall must not force kestrel's risk gate out.
    assert "position_loss_bps = 500 " in text
    text = text.replace("position_loss_bps = 500 ", "position_loss_bps = 9000 ")
    config = tmp_path / "kestrel.toml"
    config.write_text(text)
    env = dict(os.environ, KITE_API_KEY=sim["api_key"], KITE_ACCESS_TOKEN=sim["access_token"])
    journal = tmp_path / "infy-day.kjnl"
    for args in (["instruments", "sync"],
                 ["history", "fetch", "NSE:INFY", "--interval", "day", "--from", FROM, "--to", TO,
                  "--out", str(journal)]):
        run = subprocess.run([KESTREL_BIN, *args, "--config", str(config)], env=env,
                             capture_output=True, text=True, timeout=60)
        assert run.returncode == 0, run.stderr

    # Positions left open at the end, by both: the same trades, the same open position.
    theirs, their_open = backtesting_py(candles, finalize=False)
    ours, summary = kestrel_replay(journal, config, env, tmp_path / "leave", "--at-end", "leave")
    assert summary["bars"] == len(candles)
    assert summary["assumptions"]["session"].startswith("NSE hours"), summary["assumptions"]
    assert len(theirs) >= 8, f"too few trades to compare: {theirs}"
    assert len(their_open) == 1, "the range is chosen to end with a position open"
    # Both exclude the open trade's entry from their trade lists; kestrel books it as a fill.
    entry_date, entry_price, _ = their_open[0]
    assert ours[:-1] == theirs, "\n".join(map(str, zip(ours, theirs)))
    assert ours[-1] == (entry_date, "Buy", entry_price)
    [left] = summary["at_end"]
    assert (left["symbol"], left["qty"], float(left["avg_price"])) == ("INFY", QTY, entry_price)
    assert float(left["mark"]) == candles[-1]["close"]

    # Closed at the end: kestrel at the last close, backtesting.py at the last bar's open.
    theirs, _ = backtesting_py(candles, finalize=True)
    ours, summary = kestrel_replay(journal, config, env, tmp_path / "close")
    assert summary["assumptions"]["at_end"].startswith("close: 1 position"), summary["assumptions"]
    last = candles[-1]
    last_day = last["date"].date().isoformat()
    assert ours[:-1] == theirs[:-1], "\n".join(map(str, zip(ours, theirs)))
    assert ours[-1] == (last_day, "Sell", last["close"])
    assert theirs[-1] == (last_day, "Sell", last["open"])
