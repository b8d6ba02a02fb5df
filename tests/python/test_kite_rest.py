"""The official kiteconnect client against `kestrel sim`'s REST API."""

import json
import time
import urllib.request

import pytest
from kiteconnect import KiteConnect
from kiteconnect import exceptions as ex

# The `sim` fixture (a `kestrel sim` per module) is in conftest.py.


def client(info, token=None):
    return KiteConnect(
        api_key=info["api_key"],
        access_token=token or info["access_token"],
        root=info["rest"],
        timeout=5,
    )


def set_faults(info, **faults):
    body = "&".join(f"{k}={v}" for k, v in faults.items()).encode()
    req = urllib.request.Request(info["rest"] + "/__sim/faults", data=body, method="POST")
    with urllib.request.urlopen(req, timeout=5) as r:
        assert json.load(r)["status"] == "success"


def place(kite, **kw):
    args = dict(
        variety=kite.VARIETY_REGULAR,
        exchange=kite.EXCHANGE_NSE,
        tradingsymbol="RELIANCE",
        transaction_type=kite.TRANSACTION_TYPE_BUY,
        quantity=1,
        product=kite.PRODUCT_MIS,
        order_type=kite.ORDER_TYPE_MARKET,
    )
    args.update(kw)
    return kite.place_order(**args)


def last_state(kite, order_id):
    return kite.order_history(order_id)[-1]


def test_ready_line_lists_instruments(sim):
    assert sim["ws"].startswith("ws://127.0.0.1:")
    assert sim["rest"].startswith("http://127.0.0.1:")
    assert {"symbol": "RELIANCE", "token": 738561} in sim["instruments"]


def test_market_and_limit_orders_modify_cancel_and_books(sim):
    kite = client(sim)
    mkt = place(kite, quantity=2, tag="py-mkt")
    assert isinstance(mkt, str) and mkt.isdigit()
    deadline = time.monotonic() + 10
    while last_state(kite, mkt)["status"] != "COMPLETE":
        assert time.monotonic() < deadline, last_state(kite, mkt)
        time.sleep(0.05)
    done = last_state(kite, mkt)
    assert done["filled_quantity"] == 2 and done["average_price"] > 0
    assert done["tag"] == "py-mkt"
    assert kite.order_history(mkt)[0]["status"] == "PUT ORDER REQ RECEIVED"
    fills = kite.order_trades(mkt)
    assert sum(t["quantity"] for t in fills) == 2
    assert all(t["order_id"] == mkt for t in fills)

    # A buy limit 1 % under the market rests.
    ltp = done["average_price"]
    limit = round(round(ltp * 0.99 / 0.05) * 0.05, 2)
    lim = place(kite, order_type=kite.ORDER_TYPE_LIMIT, price=limit)
    assert last_state(kite, lim)["status"] == "OPEN"
    assert kite.modify_order(kite.VARIETY_REGULAR, lim, quantity=3, price=round(limit - 0.05, 2)) == lim
    modified = last_state(kite, lim)
    assert modified["quantity"] == 3 and modified["modified"] is True
    assert kite.cancel_order(kite.VARIETY_REGULAR, lim) == lim
    assert last_state(kite, lim)["status"] == "CANCELLED"

    ids = [o["order_id"] for o in kite.orders()]
    assert mkt in ids and lim in ids
    assert {t["trade_id"] for t in fills} <= {t["trade_id"] for t in kite.trades()}
    pos = kite.positions()
    reliance = [p for p in pos["net"] if p["tradingsymbol"] == "RELIANCE"]
    assert reliance and reliance[0]["quantity"] >= 2
    assert pos["day"] == pos["net"]
    margins = kite.margins()
    assert margins["equity"]["enabled"] is True
    assert kite.profile()["user_id"]


def test_error_types_raise_the_right_exception_classes(sim):
    kite = client(sim)
    with pytest.raises(ex.TokenException) as e:
        client(sim, token="wrong").orders()
    assert e.value.code == 403
    with pytest.raises(ex.InputException) as e:
        kite._post("order.place", url_args={"variety": "regular"},
                   params={"exchange": "NSE", "tradingsymbol": "RELIANCE", "transaction_type": "BUY",
                           "product": "MIS", "order_type": "MARKET"})
    assert "quantity" in str(e.value) and e.value.code == 400
    with pytest.raises(ex.InputException):
        place(kite, tradingsymbol="NOSUCH")

    # A finished order cannot be cancelled.
    done = place(kite, order_type=kite.ORDER_TYPE_LIMIT, price=100.0)  # below the band
    rejected = last_state(kite, done)
    assert rejected["status"] == "REJECTED"
    assert rejected["status_message"].startswith("Your order price is lower than the current lower circuit limit")
    with pytest.raises(ex.OrderException) as e:
        kite.cancel_order(kite.VARIETY_REGULAR, done)
    assert e.value.code == 400

    set_faults(sim, reject_next=1)
    with pytest.raises(ex.OrderException):
        place(kite)
    set_faults(sim, unavailable_next=1)
    with pytest.raises(ex.NetworkException) as e:
        kite.orders()
    assert e.value.code == 503


def test_rate_limit_raises_network_exception_with_429(sim):
    kite = client(sim)
    time.sleep(1.1)  # leave the previous tests' rolling second behind
    codes = []
    for _ in range(12):
        try:
            place(kite, order_type=kite.ORDER_TYPE_LIMIT, price=100.0)
            codes.append(200)
        except ex.NetworkException as e:
            codes.append(e.code)
    assert 429 in codes
    assert codes.index(429) == 10


def set_market(info, is_open):
    body = f"open={'true' if is_open else 'false'}".encode()
    req = urllib.request.Request(info["rest"] + "/__sim/market", data=body, method="POST")
    with urllib.request.urlopen(req, timeout=5) as r:
        assert json.load(r)["data"]["open"] is is_open


def wait_complete(kite, order_id):
    deadline = time.monotonic() + 10
    while last_state(kite, order_id)["status"] != "COMPLETE":
        assert time.monotonic() < deadline, last_state(kite, order_id)
        time.sleep(0.05)


def test_amo_iceberg_and_a_crossed_stop_loss_through_the_official_client(sim):
    kite = client(sim)
    time.sleep(1.1)  # leave the previous tests' rolling second behind

    # Kite's RMS: a buy stop-loss whose trigger is below the last price is refused.
    ltp = kite.ltp("NSE:RELIANCE")["NSE:RELIANCE"]["last_price"]
    with pytest.raises(ex.InputException) as e:
        place(kite, order_type=kite.ORDER_TYPE_SLM, trigger_price=round(round(ltp * 0.9 / 0.05) * 0.05, 2))
    assert e.value.code == 400
    assert str(e.value) == "Trigger price for stoploss buy orders should be higher than the last traded price."

    # An AMO: refused while the market is open, held while it is closed, traded at the open.
    with pytest.raises(ex.InputException):
        place(kite, variety=kite.VARIETY_AMO)
    set_market(sim, False)
    try:
        amo = place(kite, variety=kite.VARIETY_AMO, quantity=3, tag="py-amo")
        time.sleep(0.3)  # ticks go on arriving: nothing trades
        held = last_state(kite, amo)
        assert (held["status"], held["variety"], held["filled_quantity"]) == ("AMO REQ RECEIVED", "amo", 0)
    finally:
        set_market(sim, True)
    wait_complete(kite, amo)

    # An iceberg of 10 in 2 legs of 5: the second leg follows the first, same tag.
    ice = place(kite, variety=kite.VARIETY_ICEBERG, quantity=10, iceberg_legs=2, iceberg_quantity=5, tag="py-ice")
    wait_complete(kite, ice)
    deadline = time.monotonic() + 10
    while True:
        legs = [o for o in kite.orders() if o["tag"] == "py-ice"]
        if len(legs) == 2 and all(o["status"] == "COMPLETE" for o in legs):
            break
        assert time.monotonic() < deadline, legs
        time.sleep(0.05)
    assert [o["meta"]["iceberg"]["leg"] for o in legs] == [1, 2]
    assert all(o["variety"] == "iceberg" and o["quantity"] == 5 for o in legs)
    with pytest.raises(ex.InputException) as e:
        place(kite, variety=kite.VARIETY_ICEBERG, quantity=10, iceberg_legs=2, iceberg_quantity=4)
    assert "iceberg_quantity" in str(e.value)
