"""The official kiteconnect client's instrument dump, quotes, holdings and margins against
`kestrel sim`, and `kestrel instruments` against the same simulator."""

import os
import subprocess
from pathlib import Path
from datetime import date, datetime, timedelta, timezone

from kiteconnect import KiteConnect

from conftest import KESTREL_BIN

IST = timezone(timedelta(hours=5, minutes=30))
TUESDAY = 1


def client(info):
    return KiteConnect(api_key=info["api_key"], access_token=info["access_token"], root=info["rest"], timeout=5)


def nifty_weekly_atm(nfo):
    """The NIFTY call at 26000 of the nearest expiry, as a rule-based selection picks it."""
    options = [i for i in nfo if i["name"] == "NIFTY" and i["instrument_type"] == "CE"]
    nearest = min(i["expiry"] for i in options)
    return next(i for i in options if i["expiry"] == nearest and i["strike"] == 26000.0)


def test_instruments_parse_into_futures_and_options_with_lots_expiries_and_strikes(sim):
    kite = client(sim)
    everything = kite.instruments()
    nfo = kite.instruments("NFO")
    listed = {(i["exchange"], i["tradingsymbol"]): i for i in everything}
    assert listed[("NSE", "RELIANCE")]["instrument_token"] == 738561
    assert listed[("NSE", "NIFTY 50")]["segment"] == "INDICES"
    assert nfo and all(i["exchange"] == "NFO" for i in nfo)
    assert len(nfo) == sum(1 for i in everything if i["exchange"] == "NFO")

    today = datetime.now(IST).date()
    for i in nfo:
        assert isinstance(i["expiry"], date) and i["expiry"] >= today, i
        assert i["expiry"].weekday() == TUESDAY, i
        assert isinstance(i["strike"], float) and isinstance(i["lot_size"], int), i
        assert i["instrument_token"] & 0xFF == 2, i  # NFO's segment byte
        assert i["tick_size"] == 0.05, i

    futures = [i for i in nfo if i["instrument_type"] == "FUT" and i["name"] == "NIFTY"]
    assert len(futures) == 2 and {f["lot_size"] for f in futures} == {75}
    assert futures[0]["tradingsymbol"].endswith("FUT") and futures[0]["strike"] == 0.0
    # Weekly options: several NIFTY expiries a week apart, strikes 50 apart around 26000.
    options = [i for i in nfo if i["name"] == "NIFTY" and i["instrument_type"] in ("CE", "PE")]
    expiries = sorted({i["expiry"] for i in options})
    assert len(expiries) >= 4 and expiries[1] - expiries[0] == timedelta(days=7)
    strikes = sorted({i["strike"] for i in options})
    assert strikes[0] == 25500.0 and strikes[-1] == 26500.0
    assert all(s % 50 == 0 for s in strikes)
    assert nifty_weekly_atm(nfo)["lot_size"] == 75
    # One stock's monthly chain, with its own lot.
    stock = [i for i in nfo if i["name"] == "RELIANCE"]
    assert {i["instrument_type"] for i in stock} == {"FUT", "CE", "PE"}
    assert {i["lot_size"] for i in stock} == {500}


def test_quote_ohlc_and_ltp(sim):
    kite = client(sim)
    atm = "NFO:" + nifty_weekly_atm(kite.instruments("NFO"))["tradingsymbol"]
    q = kite.quote(["NSE:INFY", "NSE:NOPE", atm])
    assert set(q) == {"NSE:INFY", atm}  # the unknown instrument is left out
    infy = q["NSE:INFY"]
    assert infy["instrument_token"] == 408065
    assert infy["lower_circuit_limit"] < infy["last_price"] < infy["upper_circuit_limit"]
    assert len(infy["depth"]["buy"]) == 5 and len(infy["depth"]["sell"]) == 5
    assert infy["depth"]["buy"][0]["price"] < infy["depth"]["sell"][0]["price"]
    assert isinstance(infy["timestamp"], datetime) and isinstance(infy["last_trade_time"], datetime)
    assert set(infy["ohlc"]) == {"open", "high", "low", "close"}
    assert q[atm]["last_price"] > 0 and q[atm]["upper_circuit_limit"] > q[atm]["last_price"]

    ohlc = kite.ohlc("NSE:INFY")["NSE:INFY"]
    assert ohlc["ohlc"]["low"] <= ohlc["last_price"] <= ohlc["ohlc"]["high"]
    ltp = kite.ltp(["NSE:NIFTY 50", "NSE:RELIANCE"])
    assert ltp["NSE:NIFTY 50"] == {"instrument_token": 256265, "last_price": 26000.0}
    assert ltp["NSE:RELIANCE"]["last_price"] > 0


def test_holdings_and_equity_margins(sim):
    kite = client(sim)
    holdings = kite.holdings()
    assert [h["tradingsymbol"] for h in holdings] == ["INFY", "TCS"]
    infy = holdings[0]
    assert (infy["quantity"], infy["average_price"], infy["isin"]) == (10, 1450.0, "INE009A01021")
    assert infy["last_price"] > 0
    assert abs(infy["pnl"] - (infy["last_price"] - 1450.0) * 10) < 0.01
    margins = kite.margins("equity")
    assert margins["enabled"] is True
    assert margins["available"]["cash"] == 1_000_000
    assert set(margins["utilised"]) >= {"debits", "exposure", "m2m_realised", "span"}


def test_kestrel_instruments_syncs_searches_and_shows_from_the_simulator(sim, tmp_path):
    # The shipped configuration, pointed at the simulator and a fresh data directory.
    shipped = (Path(__file__).parents[2] / "config" / "kestrel.toml").read_text()
    assert 'rest_url = "https://api.kite.trade"' in shipped and 'dir = "kestrel-data"' in shipped
    config = tmp_path / "kestrel.toml"
    config.write_text(
        shipped.replace('rest_url = "https://api.kite.trade"', f'rest_url = "{sim["rest"]}"')
        .replace('dir = "kestrel-data"', f'dir = "{tmp_path / "data"}"'))
    env = dict(os.environ, KITE_API_KEY=sim["api_key"], KITE_ACCESS_TOKEN=sim["access_token"])

    def kestrel(*args):
        return subprocess.run([KESTREL_BIN, "instruments", *args, "--config", str(config)],
                              env=env, capture_output=True, text=True, timeout=60)

    out = kestrel("sync")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("fetched ") and "NFO " in out.stdout, out.stdout
    assert kestrel("sync").stdout.startswith("today's dump is already stored")
    out = kestrel("search", "NIFTY", "--limit", "3")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split() == ["INSTRUMENT", "TYPE", "EXPIRY", "STRIKE", "LOT", "TICK"]
    assert lines[1].startswith("NSE:NIFTY 50") and "matches shown" in lines[-1]
    out = kestrel("show", "NSE:INFY")
    assert out.returncode == 0 and "instrument_token  408065" in out.stdout, out
    out = kestrel("show", "NSE:INFI")
    assert out.returncode == 1
    assert 'unknown instrument "NSE:INFI"; closest: NSE:INFY' in out.stderr, out.stderr
