"""A Kite-ticker-shaped WebSocket server built on the `websockets` library, for the feed
client's interop test (feed-handler/tests/client_interop.rs).

It listens on 127.0.0.1:0, prints `PORT <n>`, accepts one client, waits for its subscribe
and mode messages, then sends Kite binary messages whose packets carry sequence numbers
0, 1, 2, ... in their volume field, framed every way RFC 6455 allows: single frames with
7-bit, 16-bit and 64-bit lengths, and fragmented messages (fragments of all three length
encodings) with pings between the fragments. It ends with a heartbeat, a final ping, and a
normal close, then prints `SENT <packets>`, `PINGS <n>` and `PONGS <n>` (pongs whose
payload matched) and exits 0. Any failure prints `ERROR <why>` and exits 1.
"""

import asyncio
import struct
import sys

from websockets.asyncio.server import serve

TOKENS = [738561, 2953217, 341249, 408065, 1270529]
QUOTE, FULL = 44, 184


def packet(seq, length):
    """A quote (44) or full (184) packet whose volume is `seq`."""
    token = TOKENS[seq % len(TOKENS)]
    ltp = 150000 + (seq % 1000) * 5
    quote = struct.pack(">11I", token, ltp, 1 + seq % 50, ltp, seq, 10, 20, ltp, ltp, ltp, ltp)
    if length == QUOTE:
        return quote
    extra = struct.pack(">5I", 1700000000, 0, 0, 0, 1700000000 + seq)
    depth = b"".join(struct.pack(">IIH2x", 10 + i, ltp - 5 * (i + 1), 1) for i in range(5))
    depth += b"".join(struct.pack(">IIH2x", 20 + i, ltp + 5 * (i + 1), 1) for i in range(5))
    return quote + extra + depth


class Seq:
    def __init__(self):
        self.next = 0

    def message(self, count, length):
        """A Kite binary message of `count` packets of `length` bytes."""
        parts = [struct.pack(">H", count)]
        for _ in range(count):
            p = packet(self.next, length)
            self.next += 1
            parts.append(struct.pack(">H", len(p)) + p)
        return b"".join(parts)


def split(msg, sizes):
    """Cuts `msg` into fragments of the given sizes (cycled), the last taking the rest."""
    out, at, i = [], 0, 0
    while at < len(msg):
        n = sizes[i % len(sizes)]
        out.append(msg[at : at + n])
        at += n
        i += 1
    return out


async def handler(ws, done, stats):
    try:
        # The client subscribes, then sets the mode.
        for _ in range(2):
            text = await asyncio.wait_for(ws.recv(), 10)
            if not isinstance(text, str) or '"a"' not in text:
                raise RuntimeError(f"expected a subscribe/mode text message, got {text!r}")
        seq = Seq()
        pongs = []

        async def ping(tag):
            stats["pings"] += 1
            waiter = await ws.ping(tag)
            pongs.append(waiter)

        async def fragments(parts):
            for i, part in enumerate(parts):
                yield part
                if i % 2 == 0:
                    await ping(f"p{stats['pings']}".encode())

        # 7-bit length: one quote packet (48 bytes).
        await ws.send(seq.message(1, QUOTE))
        # 16-bit length: 20 quote packets (922 bytes) and 300 (13,802 bytes).
        await ws.send(seq.message(20, QUOTE))
        await ws.send(seq.message(300, QUOTE))
        # 64-bit length: 1,500 quote packets (69,002 bytes) in one frame.
        await ws.send(seq.message(1500, QUOTE))
        # Fragmented, with pings between fragments: fragments of 7-bit, 16-bit and 64-bit
        # lengths, cut through the middle of packets and length fields.
        await ws.send(fragments(split(seq.message(50, QUOTE), [1, 3, 100, 7])))
        await ws.send(fragments(split(seq.message(400, FULL), [70_001, 125, 126, 65_535, 65_536, 5])))
        await ws.send(fragments(split(seq.message(3000, FULL), [99_999, 3, 30_000])))
        # Small messages in between: many in a row, some fragmented.
        for i in range(200):
            m = seq.message(1 + i % 4, FULL if i % 3 == 0 else QUOTE)
            if i % 5 == 0:
                await ws.send(fragments(split(m, [17, 40])))
            else:
                await ws.send(m)
        # A heartbeat (1 byte) and a final ping.
        await ws.send(b"\x00")
        await ping(b"last")
        stats["sent"] = seq.next
        for w in pongs:
            await asyncio.wait_for(w, 10)
            stats["pongs"] += 1
        await ws.close(1000, "done")
    except Exception as e:  # reported to the test, which fails on it
        stats["error"] = repr(e)
    finally:
        done.set()


async def main():
    done = asyncio.Event()
    stats = {"pings": 0, "pongs": 0, "sent": 0, "error": None}
    async with serve(
        lambda ws: handler(ws, done, stats),
        "127.0.0.1",
        0,
        compression=None,
        ping_interval=None,
        max_size=1 << 20,
    ) as server:
        port = server.sockets[0].getsockname()[1]
        print(f"PORT {port}", flush=True)
        await asyncio.wait_for(done.wait(), 60)
    if stats["error"]:
        print(f"ERROR {stats['error']}", flush=True)
        sys.exit(1)
    print(f"SENT {stats['sent']}", flush=True)
    print(f"PINGS {stats['pings']}", flush=True)
    print(f"PONGS {stats['pongs']}", flush=True)


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except Exception as e:
        print(f"ERROR {e!r}", flush=True)
        sys.exit(1)
