#!/usr/bin/env python3
"""N ticks as a kestrel tick CSV on stdout: the five default NSE equities in turn, one tick a
millisecond through NSE hours (09:15-15:30 IST) of consecutive weekdays from 2026-06-01, each
price a seeded random walk in 5-paisa steps with a one-step spread."""
import random
import sys

n = int(sys.argv[1])
symbols = ["RELIANCE", "TCS", "HDFCBANK", "INFY", "ICICIBANK"]
rng = random.Random(7)
paise = [250_000, 380_000, 160_000, 150_000, 110_000]
IST = 19_800 * 10**9
day_ns = 86_400 * 10**9
day = 1_780_272_000 * 10**9  # 2026-06-01T00:00:00Z, a Monday
open_ns, close_ns = (9 * 3600 + 15 * 60) * 10**9, (15 * 3600 + 30 * 60) * 10**9
t = day + open_ns - IST
out = sys.stdout
out.write("ts_utc_ns,symbol,last_price,last_qty,bid_price,bid_qty,ask_price,ask_qty,volume,exch_ts_ns,kind\n")
steps = [rng.choice((-5, 0, 0, 5)) for _ in range(1 << 16)]
lines = []
for i in range(n):
    k = i % 5
    p = paise[k] + steps[i & 0xFFFF]
    paise[k] = p
    lines.append(
        f"{t},{symbols[k]},{p // 100}.{p % 100:02},{1 + i % 50},{(p - 5) // 100}.{(p - 5) % 100:02},500,"
        f"{(p + 5) // 100}.{(p + 5) % 100:02},500,{i},{t - 1_000_000},Full\n"
    )
    if len(lines) == 100_000:
        out.write("".join(lines))
        lines.clear()
    t += 1_000_000
    if (t + IST) % day_ns >= close_ns:
        day += day_ns
        while ((day // day_ns) + 3) % 7 in (5, 6):  # Monday = 0: 1970-01-01 was a Thursday
            day += day_ns
        t = day + open_ns - IST
out.write("".join(lines))
