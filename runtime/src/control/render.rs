//! The `status` reply: the JSON object and the text a person reads.

use super::*;

fn named_counts<S: AsRef<str>>(rows: &[(S, u64)]) -> Value {
    Value::Object(
        rows.iter()
            .map(|(k, v)| (k.as_ref().to_string(), json!(v)))
            .collect::<Map<_, _>>(),
    )
}

/// The `status` object. Money and prices are exact decimal strings (rupees), as in
/// `summary.json`; times are nanoseconds.
pub fn status_json(s: &OpsSnapshot) -> Value {
    let l = &s.tick_to_order;
    json!({
        "mode": s.mode.name(),
        "at_ns": s.at,
        "uptime_s": s.uptime_s,
        "trading_state": s.trading_state,
        "paused": s.paused,
        "paused_strategies": s.paused_strategies,
        "strategies": s.strategies.iter().map(|r| json!({
            "id": r.id,
            "orders": r.orders,
            "fills": r.fills,
            "net_pnl": r.net_pnl.to_string(),
            "open_positions": r.open_positions,
        })).collect::<Vec<_>>(),
        "killed": s.killed,
        "token_problem": s.token_problem,
        "session_phase": s.session_phase,
        "market": {
            "ticks": s.ticks,
            "ticks_per_sec": s.ticks_per_sec,
            "decode_errors": s.decode_errors,
            "feed_reconnects": s.feed_reconnects,
            "feed_connected": s.feed_connected,
            "heartbeat_age_ns": s.heartbeat_age_ns,
        },
        "orders": {
            "sent": s.orders_sent,
            "fills": s.fills,
            "venue_rejects": s.venue_rejects,
            "incidents": s.incidents,
            "by_state": named_counts(&s.orders_by_state),
            "risk_rejects_by_reason": named_counts(&s.rejects_by_reason),
        },
        "pnl": {
            "net": s.net_pnl().to_string(),
            "realised": s.realised.to_string(),
            "unrealised": s.unrealised.to_string(),
            "fees": s.fees.to_string(),
            "expected": s.expected_pnl.to_string(),
            "drift": s.drift().to_string(),
        },
        "positions": s.positions.iter().map(|p| json!({
            "symbol": p.symbol,
            "qty": p.qty,
            "avg_price": p.avg_price.to_string(),
            "last_price": p.last_price.to_string(),
            "unrealised": p.unrealised.to_string(),
        })).collect::<Vec<_>>(),
        "tick_to_order_ns": {
            "count": l.count, "p50": l.p50, "p90": l.p90, "p99": l.p99, "p999": l.p999, "max": l.max,
        },
        "rings": s.rings.iter().map(|r| json!({
            "name": r.name, "occupancy": r.occupancy, "capacity": r.capacity, "drops": r.drops,
        })).collect::<Vec<_>>(),
        "journal_path": s.journal_path,
        "store_path": s.store_path,
    })
}

fn or_dash(s: &str) -> &str {
    if s.is_empty() { "-" } else { s }
}

fn list<S: AsRef<str>>(rows: &[(S, u64)]) -> String {
    if rows.is_empty() {
        return "none".into();
    }
    let items: Vec<String> = rows
        .iter()
        .map(|(k, v)| format!("{} {v}", k.as_ref()))
        .collect();
    items.join(", ")
}

/// `kestrel ctl status` for people.
pub fn status_text(s: &OpsSnapshot) -> String {
    use std::fmt::Write as _;
    let mut t = String::new();
    let up = humantime::format_duration(Duration::from_secs(s.uptime_s));
    let _ = writeln!(
        t,
        "kestrel {} · up {up} · session {}",
        s.mode.name(),
        or_dash(s.session_phase)
    );
    let mut flags = Vec::new();
    if s.paused {
        flags.push("PAUSED");
    }
    if s.killed {
        flags.push("KILL SWITCH ON");
    }
    let token_flag;
    if let Some(why) = &s.token_problem {
        token_flag = format!("ENTRIES BLOCKED: {why}");
        flags.push(&token_flag);
    }
    let strategies_paused;
    if !s.paused_strategies.is_empty() {
        let ids: Vec<String> = s.paused_strategies.iter().map(u8::to_string).collect();
        strategies_paused = format!("strategies {} paused", ids.join(", "));
        flags.push(&strategies_paused);
    }
    let _ = writeln!(
        t,
        "trading    {}{}",
        or_dash(s.trading_state),
        if flags.is_empty() {
            " (not paused, kill switch off)".to_string()
        } else {
            format!(", {}", flags.join(", "))
        }
    );
    let heartbeat = match s.heartbeat_age_ns {
        Some(ns) => format!("last frame {} ago", fmt_ns(ns)),
        None => "no frame yet".into(),
    };
    let _ = writeln!(
        t,
        "market     {} ticks/s, {} ticks · feed {}, {heartbeat} · {} reconnects, {} decode errors",
        s.ticks_per_sec,
        s.ticks,
        if s.feed_connected {
            "connected"
        } else {
            "DISCONNECTED"
        },
        s.feed_reconnects,
        s.decode_errors
    );
    let _ = writeln!(
        t,
        "orders     {} sent, {} fills, {} venue rejects, {} incidents",
        s.orders_sent, s.fills, s.venue_rejects, s.incidents
    );
    let _ = writeln!(t, "           by state: {}", list(&s.orders_by_state));
    let _ = writeln!(t, "           risk rejects: {}", list(&s.rejects_by_reason));
    let _ = writeln!(
        t,
        "P&L        net {} (realised {}, unrealised {}, fees {}) · at decision prices {}, drift {}",
        s.net_pnl().rupees(),
        s.realised.rupees(),
        s.unrealised.rupees(),
        s.fees.rupees(),
        s.expected_pnl.rupees(),
        s.drift().rupees()
    );
    if s.strategies.len() > 1 {
        for r in &s.strategies {
            let paused = if s.paused_strategies.contains(&r.id) {
                "  PAUSED"
            } else {
                ""
            };
            let _ = writeln!(
                t,
                "  strategy {:<3} net {} · orders {} · fills {} · open {}{paused}",
                r.id,
                r.net_pnl.rupees(),
                r.orders,
                r.fills,
                r.open_positions
            );
        }
    }
    if s.positions.is_empty() {
        let _ = writeln!(t, "positions  none");
    } else {
        let _ = writeln!(t, "positions");
        let _ = writeln!(
            t,
            "  {:<12} {:>8} {:>12} {:>12} {:>14}",
            "symbol", "qty", "avg", "last", "unrealised"
        );
        for p in &s.positions {
            let _ = writeln!(
                t,
                "  {:<12} {:>8} {:>12} {:>12} {:>14}",
                p.symbol,
                p.qty,
                p.avg_price.to_string(),
                p.last_price.to_string(),
                p.unrealised.rupees()
            );
        }
    }
    let l = &s.tick_to_order;
    if l.count == 0 {
        let _ = writeln!(t, "latency    tick→order: no orders yet");
    } else {
        let _ = writeln!(
            t,
            "latency    tick→order p50 {} p99 {} max {} (n={})",
            fmt_ns(l.p50),
            fmt_ns(l.p99),
            fmt_ns(l.max),
            l.count
        );
    }
    let _ = writeln!(t, "journal    {}", or_dash(&s.journal_path));
    let _ = write!(t, "store      {}", or_dash(&s.store_path));
    t
}

/// The P&L lines of a `status` object (the reply's `"status"`), for a phone.
pub fn pnl_text(status: &Value) -> String {
    let s = |v: &Value| v.as_str().unwrap_or("?").to_string();
    let p = &status["pnl"];
    let mut t = format!(
        "P&L net ₹{} (realised ₹{}, unrealised ₹{}, fees ₹{})\nexpected ₹{}, drift ₹{}",
        s(&p["net"]),
        s(&p["realised"]),
        s(&p["unrealised"]),
        s(&p["fees"]),
        s(&p["expected"]),
        s(&p["drift"])
    );
    let strategies = status["strategies"]
        .as_array()
        .map_or(&[][..], Vec::as_slice);
    if strategies.len() > 1 {
        for r in strategies {
            t.push_str(&format!(
                "\n  strategy {} net ₹{} · {} fills · {} open",
                r["id"],
                s(&r["net_pnl"]),
                r["fills"],
                r["open_positions"]
            ));
        }
    }
    t
}

/// The positions of a `status` object, one line each, for a phone.
pub fn positions_text(status: &Value) -> String {
    let rows = status["positions"]
        .as_array()
        .map_or(&[][..], Vec::as_slice);
    if rows.is_empty() {
        return "positions: none".into();
    }
    let s = |v: &Value| v.as_str().unwrap_or("?").to_string();
    let mut t = format!("positions ({})", rows.len());
    for p in rows {
        t.push_str(&format!(
            "\n{} {} @ ₹{} · last ₹{} · unrealised ₹{}",
            s(&p["symbol"]),
            p["qty"],
            s(&p["avg_price"]),
            s(&p["last_price"]),
            s(&p["unrealised"])
        ));
    }
    t
}
