"""The official kiteconnect client's login (`generate_session`) against `kestrel sim`."""

import hashlib
import http.client
import urllib.parse

import pytest
from kiteconnect import KiteConnect
from kiteconnect import exceptions as ex

# The `sim` fixture (a `kestrel sim` per module) is in conftest.py.


def browser_login(info):
    """The browser's part: open the login page, submit the form, return the redirect URL."""
    rest = urllib.parse.urlparse(info["rest"])
    conn = http.client.HTTPConnection(rest.hostname, rest.port, timeout=5)
    kite = KiteConnect(api_key=info["api_key"], root=info["rest"])
    login = urllib.parse.urlparse(kite.login_url())
    # The client's login URL points at Kite's own site; the simulator serves the same page.
    conn.request("GET", "/connect/login?" + login.query)
    page = conn.getresponse()
    body = page.read().decode()
    assert page.status == 200, body
    assert 'name="user_id"' in body
    form = urllib.parse.urlencode(
        {"api_key": info["api_key"], "user_id": "KS0001", "password": "any"}
    )
    conn.request(
        "POST",
        "/connect/login",
        body=form,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    resp = conn.getresponse()
    resp.read()
    assert resp.status == 302
    return resp.getheader("Location")


def request_token(info):
    query = urllib.parse.urlparse(browser_login(info)).query
    params = urllib.parse.parse_qs(query)
    assert params["status"] == ["success"] and params["action"] == ["login"]
    return params["request_token"][0]


def test_generate_session_opens_a_session_whose_token_the_api_accepts(sim):
    kite = KiteConnect(api_key=sim["api_key"], root=sim["rest"], timeout=5)
    data = kite.generate_session(request_token(sim), api_secret=sim["api_secret"])
    assert data["user_id"] == "KS0001"
    assert data["api_key"] == sim["api_key"]
    assert data["access_token"] and data["access_token"] != sim["access_token"]
    # The client parsed login_time as a datetime, as it does Kite's.
    assert data["login_time"].year >= 2024
    # generate_session set the token on the client: the API takes it.
    assert kite.profile()["user_id"] == "KS0001"
    assert isinstance(kite.orders(), list)
    # Logging out invalidates it.
    assert kite.invalidate_access_token() is True
    with pytest.raises(ex.TokenException):
        kite.orders()


def test_a_wrong_checksum_raises_the_clients_token_exception(sim):
    kite = KiteConnect(api_key=sim["api_key"], root=sim["rest"], timeout=5)
    with pytest.raises(ex.TokenException) as e:
        kite.generate_session(request_token(sim), api_secret="not-the-secret")
    assert str(e.value) == "Invalid checksum"
    assert e.value.code == 403


def test_a_request_token_works_once(sim):
    kite = KiteConnect(api_key=sim["api_key"], root=sim["rest"], timeout=5)
    token = request_token(sim)
    kite.generate_session(token, api_secret=sim["api_secret"])
    with pytest.raises(ex.TokenException, match="invalid or has expired"):
        kite.generate_session(token, api_secret=sim["api_secret"])


def test_the_checksum_is_sha256_of_key_token_and_secret(sim):
    token = request_token(sim)
    checksum = hashlib.sha256(
        (sim["api_key"] + token + sim["api_secret"]).encode()
    ).hexdigest()
    rest = urllib.parse.urlparse(sim["rest"])
    conn = http.client.HTTPConnection(rest.hostname, rest.port, timeout=5)
    conn.request(
        "POST",
        "/session/token",
        body=urllib.parse.urlencode(
            {"api_key": sim["api_key"], "request_token": token, "checksum": checksum}
        ),
        headers={"Content-Type": "application/x-www-form-urlencoded", "X-Kite-Version": "3"},
    )
    resp = conn.getresponse()
    assert resp.status == 200, resp.read()
