//! The gateway's audit store: SQLite in WAL mode with `synchronous=FULL`, so a committed
//! order row survives a crash or power loss. A new order costs one commit before its
//! placement request leaves ([`Store::reserve_in_flight`]).
//!
//! Tables (see [`MIGRATIONS`]): `orders` (one row per client order id, its current state),
//! `order_events` (append-only: every transition), `fills` (append-only, unique trade id),
//! `risk_verdicts` (the risk gate's verdict rows, copied from the journal by whoever holds
//! them), `risk_state` (pause, kill switch, day baseline), `incidents`, `position_snapshots`
//! (append-only: the venue's positions at each reconciliation and at shutdown),
//! `config_changes` (append-only: each distinct config text, hashed), `meta` (schema
//! version). Every order-related row carries the decision id; every time is UTC ns. Each
//! fill row keeps the fee estimate the engine was told (`fills.fee`, since migration 4; NULL
//! for older rows: not estimated).
//!
//! Ids: `client_order_id` is stored as its Kite tag (`ks` + 16 hex digits, see
//! [`crate::idempotency`]) so that it reads the same in SQL, logs and Kite's console;
//! `decision_id` and venue ids are stored as SQLite integers (`u64` bit-cast to `i64`).
//! Prices and fees are decimal text (exact, as [`Price`] and [`Money`] print them).

use std::path::Path;

use kestrel_engine::{Money, OrderRequest, Price, RecordTag, UnixNanos};
use rusqlite::{Connection, OptionalExtension, params};

use crate::fsm::{EventKind, Fill, OrderFsm, OrderState};
use crate::idempotency::tag_for;

/// Schema migrations; `meta.schema_version` = how many have been applied.
pub const MIGRATIONS: &[&str] = &[
    // 1: the initial schema.
    r#"
    CREATE TABLE orders (
        client_order_id TEXT PRIMARY KEY,   -- the Kite tag: 'ks' + 16 hex digits
        decision_id     INTEGER NOT NULL,
        strategy        INTEGER NOT NULL,
        instrument_token INTEGER NOT NULL,
        exchange        TEXT NOT NULL,
        symbol          TEXT NOT NULL,
        side            TEXT NOT NULL,      -- BUY | SELL
        quantity        INTEGER NOT NULL,
        price           TEXT NOT NULL,      -- limit / protection price, decimal
        trigger_price   TEXT NOT NULL,
        order_type      TEXT NOT NULL,      -- MARKET | LIMIT | SL | SL-M
        validity        TEXT NOT NULL,      -- DAY | IOC
        state           TEXT NOT NULL,      -- fsm::OrderState::as_str
        venue_order_id  INTEGER,            -- NULL until acknowledged or adopted
        submit_count    INTEGER NOT NULL DEFAULT 0,  -- placement requests written
        request         BLOB NOT NULL,      -- the 64-byte OrderRequest as approved
        created_ns      INTEGER NOT NULL,
        updated_ns      INTEGER NOT NULL
    );
    CREATE INDEX orders_by_state ON orders(state);
    CREATE INDEX orders_by_decision ON orders(decision_id);
    CREATE TABLE order_events (
        id              INTEGER PRIMARY KEY AUTOINCREMENT,
        client_order_id TEXT NOT NULL REFERENCES orders(client_order_id),
        decision_id     INTEGER NOT NULL,
        ts_ns           INTEGER NOT NULL,
        event           TEXT NOT NULL,      -- fsm::EventKind::as_str
        from_state      TEXT NOT NULL,
        to_state        TEXT NOT NULL,
        detail          TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX order_events_by_order ON order_events(client_order_id);
    CREATE TRIGGER order_events_append_only_u BEFORE UPDATE ON order_events
        BEGIN SELECT RAISE(ABORT, 'order_events is append-only'); END;
    CREATE TRIGGER order_events_append_only_d BEFORE DELETE ON order_events
        BEGIN SELECT RAISE(ABORT, 'order_events is append-only'); END;
    CREATE TABLE fills (
        trade_id        TEXT PRIMARY KEY,   -- the venue's, unique
        client_order_id TEXT NOT NULL REFERENCES orders(client_order_id),
        decision_id     INTEGER NOT NULL,
        venue_order_id  INTEGER,
        quantity        INTEGER NOT NULL,
        price           TEXT NOT NULL,
        venue_ts_ns     INTEGER NOT NULL,
        recorded_ns     INTEGER NOT NULL
    );
    CREATE INDEX fills_by_order ON fills(client_order_id);
    CREATE TRIGGER fills_append_only_u BEFORE UPDATE ON fills
        BEGIN SELECT RAISE(ABORT, 'fills is append-only'); END;
    CREATE TRIGGER fills_append_only_d BEFORE DELETE ON fills
        BEGIN SELECT RAISE(ABORT, 'fills is append-only'); END;
    CREATE TABLE risk_verdicts (
        client_order_id TEXT NOT NULL,
        decision_id     INTEGER NOT NULL,
        ts_ns           INTEGER NOT NULL,
        verdict         INTEGER NOT NULL,   -- kestrel_engine::risk::Verdict code
        reason          INTEGER NOT NULL,   -- kestrel_engine::RiskReason code, 0 = accept
        observed        INTEGER NOT NULL,
        limit_value     INTEGER NOT NULL,
        requested_qty   INTEGER NOT NULL,
        allowed_qty     INTEGER NOT NULL,
        PRIMARY KEY (client_order_id, ts_ns, reason)
    );
    CREATE TABLE risk_state (
        key             TEXT PRIMARY KEY,   -- paused | kill_switch | day_baseline
        value           TEXT NOT NULL,
        decision_id     INTEGER NOT NULL DEFAULT 0,
        updated_ns      INTEGER NOT NULL
    );
    CREATE TABLE incidents (
        id              INTEGER PRIMARY KEY AUTOINCREMENT,
        ts_ns           INTEGER NOT NULL,
        client_order_id TEXT,
        decision_id     INTEGER NOT NULL DEFAULT 0,
        kind            TEXT NOT NULL,
        detail          TEXT NOT NULL,
        resolved_ns     INTEGER
    );
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    "#,
    // 2: freeze-quantity slicing. A child order row names its parent (the parent's tag; the
    // parent has no row of its own: the engine's one order is the sum of its children).
    r#"
    ALTER TABLE orders ADD COLUMN parent_client_order_id TEXT;  -- NULL unless a slice child
    ALTER TABLE orders ADD COLUMN slice_index INTEGER;           -- 0-based, children only
    CREATE INDEX orders_by_parent ON orders(parent_client_order_id);
    "#,
    // 3: position snapshots and config changes (both append-only, like `fills`).
    r#"
    CREATE TABLE position_snapshots (
        id              INTEGER PRIMARY KEY AUTOINCREMENT,
        ts_ns           INTEGER NOT NULL,
        decision_id     INTEGER NOT NULL DEFAULT 0,  -- 0: not taken for a decision
        source          TEXT NOT NULL CHECK (source IN ('venue', 'store', 'engine')),
        exchange        TEXT NOT NULL,
        symbol          TEXT NOT NULL,
        quantity        INTEGER NOT NULL,   -- signed: negative is short
        average_price   TEXT NOT NULL,      -- decimal, exact
        reason          TEXT NOT NULL       -- 'reconcile' | 'shutdown' | ...
    );
    CREATE INDEX position_snapshots_by_ts ON position_snapshots(ts_ns);
    CREATE TRIGGER position_snapshots_append_only_u BEFORE UPDATE ON position_snapshots
        BEGIN SELECT RAISE(ABORT, 'position_snapshots is append-only'); END;
    CREATE TRIGGER position_snapshots_append_only_d BEFORE DELETE ON position_snapshots
        BEGIN SELECT RAISE(ABORT, 'position_snapshots is append-only'); END;
    CREATE TABLE config_changes (
        id              INTEGER PRIMARY KEY AUTOINCREMENT,
        ts_ns           INTEGER NOT NULL,
        decision_id     INTEGER NOT NULL DEFAULT 0,
        hash            TEXT NOT NULL,      -- SHA-1 of `config`, 40 lower-case hex digits
        config          TEXT NOT NULL,      -- the whole TOML as loaded; secrets never live in it
        previous_hash   TEXT                -- the row before's hash; NULL for the first
    );
    CREATE TRIGGER config_changes_append_only_u BEFORE UPDATE ON config_changes
        BEGIN SELECT RAISE(ABORT, 'config_changes is append-only'); END;
    CREATE TRIGGER config_changes_append_only_d BEFORE DELETE ON config_changes
        BEGIN SELECT RAISE(ABORT, 'config_changes is append-only'); END;
    "#,
    // 4: each fill's estimated charges (`kestrel_engine::fees`), the value the engine was
    // told in `ExecReport::fee`. Decimal rupees as TEXT, exact (as `Money` prints them), like
    // `price` and every other money column here; not integer paise, because the fee model
    // works to 1e-8 rupee (₹24.2890628 is no whole number of paise) and the stored fee must
    // equal the reported one. NULL: a fill stored before this migration (not estimated).
    // The append-only triggers of `fills` stay as they are (old rows are never back-filled).
    // The CHECK (digits, a point, digits: how `Money` prints a fee, which is never negative)
    // lets SQL add fees exactly, as integers of 1e-8 rupee (`AUDIT_QUERY` does).
    r#"
    ALTER TABLE fills ADD COLUMN fee TEXT
        CHECK (fee IS NULL OR (fee GLOB '[0-9]*.[0-9]*' AND fee NOT GLOB '*[^0-9.]*'));
    "#,
];

/// Who says a position snapshot holds (`position_snapshots.source`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PositionSource {
    /// The venue's position book (`GET /portfolio/positions`).
    Venue,
    /// The store's own fills.
    Store,
    /// The engine's portfolio.
    Engine,
}

impl PositionSource {
    pub fn as_str(self) -> &'static str {
        match self {
            PositionSource::Venue => "venue",
            PositionSource::Store => "store",
            PositionSource::Engine => "engine",
        }
    }
}

/// One row of a position snapshot: exchange, symbol, signed quantity, average price.
pub type PositionRow<'a> = (&'a str, &'a str, i64, Price);

/// The stable hash of a config text kept in `config_changes.hash`: SHA-1, 40 lower-case hex
/// digits (the same for the same bytes on every build and platform, unlike `std`'s hasher).
pub fn config_hash(text: &str) -> String {
    sha1_smol::Sha1::from(text).digest().to_string()
}

/// The audit query: for one order (`?1` = its tag, `ks` + 16 hex digits), which decision,
/// which limits were checked (the risk verdict rows copied from the journal), whether it was
/// submitted once, what filled and what each fill cost. One row per order.
///
/// `fills` lists `trade_id:quantity@price fee F` (`F` is `?` for a fill stored before fees
/// were, migration 4); `fees` is the sum of the estimated fees, exact, with 8 decimals: the
/// decimal texts are summed as integers of 1e-8 rupee (SQLite's `sum` of text is a float);
/// `fills_without_fee` counts the fills `fees` leaves out. The READMEs carry this text
/// (checked by `tests/sim.rs`).
pub const AUDIT_QUERY: &str = "
SELECT o.client_order_id, o.decision_id, o.symbol, o.side, o.quantity, o.state,
       o.venue_order_id,
       o.submit_count,
       (SELECT count(*) FROM order_events e
         WHERE e.client_order_id = o.client_order_id AND e.event = 'SUBMIT') AS submits_logged,
       (SELECT group_concat(v.verdict || ':' || v.reason || ':' || v.observed || '/' || v.limit_value, ' ')
          FROM risk_verdicts v WHERE v.client_order_id = o.client_order_id) AS risk_checks,
       (SELECT coalesce(sum(f.quantity), 0) FROM fills f
         WHERE f.client_order_id = o.client_order_id) AS filled_qty,
       (SELECT group_concat(f.trade_id || ':' || f.quantity || '@' || f.price
                            || ' fee ' || coalesce(f.fee, '?'), '; ')
          FROM fills f WHERE f.client_order_id = o.client_order_id) AS fills,
       (SELECT printf('%d.%08d', coalesce(sum(x.e8), 0) / 100000000,
                      coalesce(sum(x.e8), 0) % 100000000)
          FROM (SELECT CAST(substr(f.fee, 1, instr(f.fee, '.') - 1) AS INTEGER) * 100000000
                     + CAST(substr(substr(f.fee, instr(f.fee, '.') + 1) || '00000000', 1, 8)
                            AS INTEGER) AS e8
                  FROM fills f
                 WHERE f.client_order_id = o.client_order_id AND f.fee IS NOT NULL) x) AS fees,
       (SELECT count(*) FROM fills f
         WHERE f.client_order_id = o.client_order_id AND f.fee IS NULL) AS fills_without_fee
  FROM orders o
 WHERE o.client_order_id = ?1";

/// The store's errors.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("SQLite: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error(
        "the store {path} has schema version {found}, newer than this build's {known}: upgrade kestrel"
    )]
    TooNew {
        path: String,
        found: usize,
        known: usize,
    },
    #[error("order {tag}: corrupt row ({what})")]
    Corrupt { tag: String, what: String },
}

/// The `risk_state` key of the operator's (or reconciliation's) pause: `"1"` while paused.
pub const PAUSED_KEY: &str = "paused";
/// The `risk_state` key of the kill switch: `"1"` while engaged.
pub const KILL_KEY: &str = "kill_switch";

/// How an order row looks when loaded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredOrder {
    pub request: OrderRequest,
    pub tag: String,
    pub exchange: String,
    pub symbol: String,
    pub venue_order_id: Option<u64>,
    pub submit_count: u32,
    pub fsm: OrderFsm,
}

/// One row of `fills` as read back ([`Store::stored_fills`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredFill {
    pub client_order_id: u64,
    pub decision_id: u64,
    pub fill: Fill,
    /// The estimated charges stored with the fill: the [`kestrel_engine::ExecReport::fee`]
    /// the engine was told. `None` for a fill stored before migration 4 (not estimated).
    pub fee: Option<Money>,
    /// When the store recorded the fill (UTC ns).
    pub recorded_ns: UnixNanos,
}

/// What [`Store::reserve`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reservation {
    /// A new row, committed.
    Reserved,
    /// The client order id was already in the store (a replayed approval): send nothing.
    AlreadyKnown(OrderState),
}

/// One SQLite connection (the gateway thread's own).
#[derive(Debug)]
pub struct Store {
    conn: Connection,
    /// The database file (the write-ahead log is beside it, `<path>-wal`).
    path: std::path::PathBuf,
}

/// The busy handler of every connection: retry every 200 µs for up to 5 s. SQLite's own
/// busy timeout sleeps 1, 2, 5, … 100 ms between tries, so a connection writing back to back
/// (the gateway in a burst) can take the lock again in each gap and starve the other writer
/// (`kestrel ctl pause`) past any timeout; short, even retries keep both moving.
fn wait_for_the_lock(attempt: i32) -> bool {
    const EVERY: std::time::Duration = std::time::Duration::from_micros(200);
    const ATTEMPTS: i32 = 25_000;
    std::thread::sleep(EVERY);
    attempt < ATTEMPTS
}

fn i(v: u64) -> i64 {
    v as i64
}

impl Store {
    /// Opens (or creates) the store and applies pending migrations.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let mut conn = Connection::open(path)?;
        conn.busy_handler(Some(wait_for_the_lock))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        let mut store = Store {
            conn,
            path: path.to_path_buf(),
        };
        store.migrate(path)?;
        Ok(store)
    }

    /// The database file this store was opened at.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Group commit ([`crate::Durability::Group`]): from now on a commit writes its WAL frames
    /// without an fsync (`synchronous=NORMAL`) and the gateway's connection never checkpoints
    /// on its own (`wal_autocheckpoint=0`): the group-commit thread fsyncs the WAL and
    /// checkpoints off the order path ([`crate::group_commit`]). A process crash loses
    /// nothing (the frames are in the page cache); a power loss loses the commits after the
    /// last group sync, never more, and never corrupts the file (SQLite's WAL guarantee).
    pub fn enable_group_commit(&mut self) -> Result<(), StoreError> {
        self.conn.pragma_update(None, "synchronous", "NORMAL")?;
        self.conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        Ok(())
    }

    /// Per strategy id (the decision id's top byte), the highest decision sequence of any
    /// order row: after a power loss in `Group` mode, the durable watermark that survived.
    pub fn last_decision_seqs(&self) -> Result<std::collections::BTreeMap<u8, u64>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT (decision_id >> 56) & 255, max(decision_id & 72057594037927935)
               FROM orders GROUP BY 1",
        )?;
        let rows = stmt
            .query_map([], |r| {
                Ok((r.get::<_, i64>(0)? as u8, r.get::<_, i64>(1)? as u64))
            })?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// Inserts the row of an order the venue holds but the store had lost (found by
    /// recomputing its client order id, [`crate::adoption`]): in flight, as if reserved and
    /// submitted, with its parent for a slice child; reconciliation then adopts it like any
    /// in-flight order. An id already present is reported, not overwritten.
    #[allow(clippy::too_many_arguments)]
    pub fn reserve_adopted(
        &mut self,
        req: &OrderRequest,
        exchange: &str,
        symbol: &str,
        instrument_token: u32,
        parent: Option<(u64, u32)>,
        now: UnixNanos,
    ) -> Result<Reservation, StoreError> {
        self.reserve_as(req, exchange, symbol, instrument_token, parent, now, true)
    }

    fn migrate(&mut self, path: &Path) -> Result<(), StoreError> {
        let has_meta: bool = self.conn.query_row(
            "SELECT count(*) FROM sqlite_master WHERE type='table' AND name='meta'",
            [],
            |r| r.get::<_, i64>(0).map(|n| n > 0),
        )?;
        let version: usize = if has_meta {
            self.conn
                .query_row(
                    "SELECT value FROM meta WHERE key='schema_version'",
                    [],
                    |r| r.get::<_, String>(0),
                )
                .optional()?
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        } else {
            0
        };
        if version > MIGRATIONS.len() {
            return Err(StoreError::TooNew {
                path: path.display().to_string(),
                found: version,
                known: MIGRATIONS.len(),
            });
        }
        for (n, sql) in MIGRATIONS.iter().enumerate().skip(version) {
            let tx = self.write_tx()?;
            tx.execute_batch(sql)?;
            tx.prepare_cached(
                "INSERT INTO meta(key, value) VALUES('schema_version', ?1)
                 ON CONFLICT(key) DO UPDATE SET value=excluded.value",
            )?
            .execute(params![(n + 1).to_string()])?;
            tx.commit()?;
        }
        Ok(())
    }

    /// The applied schema version.
    pub fn schema_version(&self) -> Result<usize, StoreError> {
        let v: String = self.conn.query_row(
            "SELECT value FROM meta WHERE key='schema_version'",
            [],
            |r| r.get(0),
        )?;
        Ok(v.parse().unwrap_or(0))
    }

    /// The raw connection, for audit queries and tests.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// Reserves a new order: one committed row in state RESERVED plus its first event,
    /// before any request leaves. An id already present is reported, not overwritten.
    pub fn reserve(
        &mut self,
        req: &OrderRequest,
        exchange: &str,
        symbol: &str,
        instrument_token: u32,
        now: UnixNanos,
    ) -> Result<Reservation, StoreError> {
        self.reserve_as(req, exchange, symbol, instrument_token, None, now, false)
    }

    /// Reserves a new order that is about to be written to the venue: one committed row
    /// born IN_FLIGHT with `submit_count` 1 and both its events (RESERVE, then SUBMIT), in
    /// one transaction: the one durable commit before the placement request leaves. After
    /// a crash the row says the request may have left; the tag look-up at the venue decides
    /// (found: adopt it; not found: it never left). An id already present is reported, not
    /// overwritten.
    pub fn reserve_in_flight(
        &mut self,
        req: &OrderRequest,
        exchange: &str,
        symbol: &str,
        instrument_token: u32,
        now: UnixNanos,
    ) -> Result<Reservation, StoreError> {
        self.reserve_as(req, exchange, symbol, instrument_token, None, now, true)
    }

    /// One reservation: `parent` names a slice's parent, `in_flight` stores it as submitted.
    #[allow(clippy::too_many_arguments)]
    fn reserve_as(
        &mut self,
        req: &OrderRequest,
        exchange: &str,
        symbol: &str,
        instrument_token: u32,
        parent: Option<(u64, u32)>,
        now: UnixNanos,
        in_flight: bool,
    ) -> Result<Reservation, StoreError> {
        let tx = self.write_tx()?;
        if let Some(st) = stored_state(&tx, &tag_for(req.client_order_id))? {
            return Ok(Reservation::AlreadyKnown(st));
        }
        insert_reserved(
            &tx,
            req,
            exchange,
            symbol,
            instrument_token,
            parent,
            now,
            in_flight,
        )?;
        tx.commit()?;
        Ok(Reservation::Reserved)
    }

    /// The stored state of one order, `None` when the store has no row for it (one indexed
    /// read, no write).
    pub fn state(&self, client_order_id: u64) -> Result<Option<OrderState>, StoreError> {
        stored_state(&self.conn, &tag_for(client_order_id))
    }

    /// Reserves every child of a sliced parent in one transaction (all or none), each row
    /// naming the parent. If the first child is already in the store the parent was seen
    /// before (a replayed approval, a restart): nothing is written.
    pub fn reserve_slices(
        &mut self,
        parent_client_order_id: u64,
        children: &[OrderRequest],
        exchange: &str,
        symbol: &str,
        instrument_token: u32,
        now: UnixNanos,
    ) -> Result<Reservation, StoreError> {
        let tx = self.write_tx()?;
        if let Some(first) = children.first()
            && let Some(st) = stored_state(&tx, &tag_for(first.client_order_id))?
        {
            return Ok(Reservation::AlreadyKnown(st));
        }
        for (k, c) in children.iter().enumerate() {
            insert_reserved(
                &tx,
                c,
                exchange,
                symbol,
                instrument_token,
                Some((parent_client_order_id, k as u32)),
                now,
                false,
            )?;
        }
        tx.commit()?;
        Ok(Reservation::Reserved)
    }

    /// Every slice child in the store: `(parent, child, slice index)`, by parent then index.
    pub fn slice_children(&self) -> Result<Vec<(u64, u64, u32)>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT parent_client_order_id, client_order_id, slice_index FROM orders
             WHERE parent_client_order_id IS NOT NULL ORDER BY parent_client_order_id, slice_index",
        )?;
        let rows: Vec<(String, String, u32)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<Result<_, _>>()?;
        rows.into_iter()
            .map(|(p, c, k)| {
                let id = |t: &str| {
                    crate::idempotency::client_order_id_from_tag(t).ok_or_else(|| {
                        StoreError::Corrupt {
                            tag: c.clone(),
                            what: format!("slice tag '{t}'"),
                        }
                    })
                };
                Ok((id(&p)?, id(&c)?, k))
            })
            .collect()
    }

    /// Copies the write-ahead log into the database file and truncates it (shutdown).
    pub fn checkpoint(&self) -> Result<(), StoreError> {
        self.conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        Ok(())
    }

    /// Records one transition (and, for a fill, the fill row with its estimated fee: the
    /// [`kestrel_engine::ExecReport::fee`] the engine is told, stored as exact decimal text)
    /// in one transaction. A Submit event counts a placement request written to the venue.
    #[allow(clippy::too_many_arguments)]
    pub fn record_transition(
        &mut self,
        req: &OrderRequest,
        event: EventKind,
        from: OrderState,
        to: OrderState,
        fill: Option<(&Fill, Money)>,
        venue_order_id: Option<u64>,
        detail: &str,
        now: UnixNanos,
    ) -> Result<(), StoreError> {
        let tag = tag_for(req.client_order_id);
        let tx = self.write_tx()?;
        if let Some((f, fee)) = fill {
            // The fee model never charges less than nothing; if it ever did, the fill must
            // still be stored (the column's CHECK would refuse the row), so such a fee is
            // kept as not estimated.
            let fee = (fee >= Money::ZERO).then(|| fee.to_string());
            if fee.is_none() {
                tracing::warn!(trade_id = %f.trade_id, "negative fee estimate: stored as not estimated");
            }
            tx.prepare_cached(
                "INSERT INTO fills(trade_id, client_order_id, decision_id, venue_order_id, quantity,
                    price, venue_ts_ns, recorded_ns, fee) VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9)",
            )?
            .execute(
                params![
                    f.trade_id,
                    tag,
                    i(req.decision_id),
                    venue_order_id.map(i),
                    f.qty,
                    f.price.to_string(),
                    i(f.ts),
                    i(now),
                    fee
                ],
            )?;
        }
        let submitted = i64::from(event == EventKind::Submit);
        tx.prepare_cached(
            "UPDATE orders SET state=?2, updated_ns=?3, submit_count=submit_count+?4,
                venue_order_id=COALESCE(?5, venue_order_id) WHERE client_order_id=?1",
        )?
        .execute(params![
            tag,
            to.as_str(),
            i(now),
            submitted,
            venue_order_id.map(i)
        ])?;
        tx.prepare_cached(
            "INSERT INTO order_events(client_order_id, decision_id, ts_ns, event, from_state, to_state, detail)
             VALUES(?1,?2,?3,?4,?5,?6,?7)",
        )?
        .execute(
            params![
                tag,
                i(req.decision_id),
                i(now),
                event.as_str(),
                from.as_str(),
                to.as_str(),
                detail
            ],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// One order by client order id.
    pub fn load(&self, client_order_id: u64) -> Result<Option<StoredOrder>, StoreError> {
        let tag = tag_for(client_order_id);
        let mut rows = self.load_where("client_order_id=?1", &tag)?;
        Ok(rows.pop())
    }

    /// Orders the venue may still change: every state except Filled and Rejected.
    pub fn unfinished(&self) -> Result<Vec<StoredOrder>, StoreError> {
        self.load_where("state NOT IN ('FILLED','REJECTED') AND ?1=?1", "")
    }

    /// Every order, oldest first.
    pub fn all_orders(&self) -> Result<Vec<StoredOrder>, StoreError> {
        self.load_where("?1=?1", "")
    }

    fn load_where(&self, cond: &str, arg: &str) -> Result<Vec<StoredOrder>, StoreError> {
        let sql = format!(
            "SELECT client_order_id, exchange, symbol, state, venue_order_id, submit_count, request, quantity
             FROM orders WHERE {cond} ORDER BY created_ns, client_order_id"
        );
        let mut stmt = self.conn.prepare(&sql)?;
        type Row = (
            String,
            String,
            String,
            String,
            Option<i64>,
            u32,
            Vec<u8>,
            u32,
        );
        let rows: Vec<Row> = stmt
            .query_map(params![arg], |r| r.try_into())?
            .collect::<Result<_, _>>()?;
        let mut out = Vec::with_capacity(rows.len());
        for (tag, exchange, symbol, state, venue, submits, blob, qty) in rows {
            let corrupt = |what: String| StoreError::Corrupt {
                tag: tag.clone(),
                what,
            };
            let state =
                OrderState::parse(&state).ok_or_else(|| corrupt(format!("state '{state}'")))?;
            let request = request_from_bytes(&blob)
                .ok_or_else(|| corrupt(format!("request blob of {} bytes", blob.len())))?;
            let fills = self.fills(&tag)?;
            out.push(StoredOrder {
                request,
                tag,
                exchange,
                symbol,
                venue_order_id: venue.map(|v| v as u64),
                submit_count: submits,
                fsm: OrderFsm::restore(qty, state, fills),
            });
        }
        Ok(out)
    }

    fn fills(&self, tag: &str) -> Result<Vec<Fill>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT trade_id, quantity, price, venue_ts_ns FROM fills WHERE client_order_id=?1 ORDER BY rowid",
        )?;
        let rows: Vec<(String, u32, String, i64)> = stmt
            .query_map(params![tag], |r| r.try_into())?
            .collect::<Result<_, _>>()?;
        rows.into_iter()
            .map(|(trade_id, qty, px, ts)| {
                let price = Price::parse(&px).map_err(|_| StoreError::Corrupt {
                    tag: tag.to_string(),
                    what: format!("fill {trade_id} price '{px}'"),
                })?;
                Ok(Fill {
                    trade_id,
                    qty,
                    price,
                    ts: ts as u64,
                })
            })
            .collect()
    }

    /// Every fill in the store, in the order they were recorded, with its stored fee
    /// estimate (`None`: stored before migration 4, not estimated). A fee or price that is
    /// not exact decimal text is [`StoreError::Corrupt`], naming the order and the trade.
    pub fn stored_fills(&self) -> Result<Vec<StoredFill>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT client_order_id, decision_id, trade_id, quantity, price, venue_ts_ns,
                    recorded_ns, fee
               FROM fills ORDER BY rowid",
        )?;
        type Row = (String, i64, String, u32, String, i64, i64, Option<String>);
        let rows: Vec<Row> = stmt
            .query_map([], |r| r.try_into())?
            .collect::<Result<_, _>>()?;
        rows.into_iter()
            .map(|(tag, decision, trade_id, qty, px, ts, recorded, fee)| {
                let corrupt = |what: String| StoreError::Corrupt {
                    tag: tag.clone(),
                    what,
                };
                let client_order_id = crate::idempotency::client_order_id_from_tag(&tag)
                    .ok_or_else(|| corrupt(format!("fill {trade_id} order tag")))?;
                let price = Price::parse(&px)
                    .map_err(|_| corrupt(format!("fill {trade_id} price '{px}'")))?;
                let fee = fee
                    .map(|t| {
                        Money::parse(&t).map_err(|_| corrupt(format!("fill {trade_id} fee '{t}'")))
                    })
                    .transpose()?;
                Ok(StoredFill {
                    client_order_id,
                    decision_id: decision as u64,
                    fill: Fill {
                        trade_id,
                        qty,
                        price,
                        ts: ts as u64,
                    },
                    fee,
                    recorded_ns: recorded as u64,
                })
            })
            .collect()
    }

    /// Records an incident for the operator; returns its id.
    pub fn add_incident(
        &mut self,
        client_order_id: Option<u64>,
        decision_id: u64,
        kind: &str,
        detail: &str,
        now: UnixNanos,
    ) -> Result<i64, StoreError> {
        self.conn.execute(
            "INSERT INTO incidents(ts_ns, client_order_id, decision_id, kind, detail) VALUES(?1,?2,?3,?4,?5)",
            params![i(now), client_order_id.map(tag_for), i(decision_id), kind, detail],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Open incidents: `(id, kind, detail)`.
    pub fn open_incidents(&self) -> Result<Vec<(i64, String, String)>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT id, kind, detail FROM incidents WHERE resolved_ns IS NULL ORDER BY id",
        )?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// Sets a risk-state value (`paused`, `kill_switch`, `day_baseline`).
    /// A write transaction that takes the write lock at `BEGIN` (IMMEDIATE). A deferred one
    /// that reads first cannot upgrade to a write once another connection (the operator's,
    /// `kestrel ctl`) has written since its read began, and SQLite then fails at once with
    /// "database is locked" instead of waiting the busy timeout: that stopped the gateway.
    fn write_tx(&mut self) -> Result<rusqlite::Transaction<'_>, rusqlite::Error> {
        self.conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
    }

    pub fn set_risk_state(
        &mut self,
        key: &str,
        value: &str,
        decision_id: u64,
        now: UnixNanos,
    ) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO risk_state(key, value, decision_id, updated_ns) VALUES(?1,?2,?3,?4)
             ON CONFLICT(key) DO UPDATE SET value=excluded.value, decision_id=excluded.decision_id,
                updated_ns=excluded.updated_ns",
            params![key, value, i(decision_id), i(now)],
        )?;
        Ok(())
    }

    pub fn risk_state(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT value FROM risk_state WHERE key=?1",
                params![key],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// True when trading was paused (by reconciliation or the operator) and not resumed.
    pub fn is_paused(&self) -> Result<bool, StoreError> {
        Ok(self.risk_state(PAUSED_KEY)?.as_deref() == Some("1"))
    }

    /// Appends one position snapshot (every row in one transaction, stamped `now` and
    /// `decision_id`, 0 when no decision asked for it); returns how many rows it wrote. An
    /// empty `rows` writes nothing: a flat book leaves no row.
    pub fn record_position_snapshot(
        &mut self,
        source: PositionSource,
        reason: &str,
        rows: &[PositionRow<'_>],
        decision_id: u64,
        now: UnixNanos,
    ) -> Result<usize, StoreError> {
        let tx = self.write_tx()?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO position_snapshots(ts_ns, decision_id, source, exchange, symbol,
                    quantity, average_price, reason) VALUES(?1,?2,?3,?4,?5,?6,?7,?8)",
            )?;
            for (exchange, symbol, qty, avg) in rows {
                stmt.execute(params![
                    i(now),
                    i(decision_id),
                    source.as_str(),
                    exchange,
                    symbol,
                    qty,
                    avg.to_string(),
                    reason
                ])?;
            }
        }
        tx.commit()?;
        Ok(rows.len())
    }

    /// Records the config `text` (the whole TOML as loaded) when its hash ([`config_hash`])
    /// differs from the latest row's; returns whether a row was written. The read and the
    /// insert are one transaction.
    pub fn record_config(&mut self, text: &str, now: UnixNanos) -> Result<bool, StoreError> {
        let hash = config_hash(text);
        let tx = self.write_tx()?;
        let previous = latest_config_hash(&tx)?;
        if previous.as_deref() == Some(hash.as_str()) {
            return Ok(false);
        }
        tx.prepare_cached(
            "INSERT INTO config_changes(ts_ns, decision_id, hash, config, previous_hash)
             VALUES(?1, 0, ?2, ?3, ?4)",
        )?
        .execute(params![i(now), hash, text, previous])?;
        tx.commit()?;
        Ok(true)
    }

    /// The hash of the latest recorded config, `None` before the first.
    pub fn latest_config_hash(&self) -> Result<Option<String>, StoreError> {
        latest_config_hash(&self.conn)
    }

    /// Each (exchange, symbol)'s net quantity over the store's fills (buys positive) of the
    /// orders whose venue order id is in `venue_order_ids`.
    pub fn net_filled_by_symbol(
        &self,
        venue_order_ids: &std::collections::HashSet<u64>,
    ) -> Result<std::collections::BTreeMap<(String, String), i64>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT o.venue_order_id, o.exchange, o.symbol, o.side, coalesce(sum(f.quantity), 0)
               FROM orders o JOIN fills f ON f.client_order_id = o.client_order_id
              WHERE o.venue_order_id IS NOT NULL
              GROUP BY o.client_order_id",
        )?;
        let rows: Vec<(i64, String, String, String, i64)> = stmt
            .query_map([], |r| r.try_into())?
            .collect::<Result<_, _>>()?;
        let mut out = std::collections::BTreeMap::new();
        for (venue, exchange, symbol, side, qty) in rows {
            if !venue_order_ids.contains(&(venue as u64)) {
                continue;
            }
            let signed = if side == "SELL" { -qty } else { qty };
            *out.entry((exchange, symbol)).or_insert(0) += signed;
        }
        Ok(out)
    }

    /// Stores a risk verdict (from the engine's journal record) next to the orders, so the
    /// audit query can answer "which limits were checked" from SQLite alone.
    pub fn record_risk_verdict(
        &mut self,
        r: &kestrel_engine::records::RiskRecord,
    ) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT OR IGNORE INTO risk_verdicts(client_order_id, decision_id, ts_ns, verdict, reason,
                observed, limit_value, requested_qty, allowed_qty) VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9)",
            params![
                tag_for(r.client_order_id),
                i(r.decision_id),
                i(r.ts),
                r.verdict,
                r.reason,
                r.observed,
                r.limit,
                r.requested_qty,
                r.allowed_qty
            ],
        )?;
        Ok(())
    }
}

fn latest_config_hash(conn: &Connection) -> Result<Option<String>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT hash FROM config_changes ORDER BY id DESC LIMIT 1")?
        .query_row([], |r| r.get(0))
        .optional()?)
}

/// The state of the order row `tag`, if there is one (one indexed read).
fn stored_state(conn: &Connection, tag: &str) -> Result<Option<OrderState>, StoreError> {
    let state: Option<String> = conn
        .prepare_cached("SELECT state FROM orders WHERE client_order_id=?1")?
        .query_row(params![tag], |r| r.get(0))
        .optional()?;
    state
        .map(|s| {
            OrderState::parse(&s).ok_or_else(|| StoreError::Corrupt {
                tag: tag.to_string(),
                what: format!("state '{s}'"),
            })
        })
        .transpose()
}

/// Inserts one RESERVED row and its first event inside `tx`; `in_flight`: the row is born
/// IN_FLIGHT with `submit_count` 1, its SUBMIT event after the RESERVE one.
#[allow(clippy::too_many_arguments)]
fn insert_reserved(
    tx: &rusqlite::Transaction<'_>,
    req: &OrderRequest,
    exchange: &str,
    symbol: &str,
    instrument_token: u32,
    parent: Option<(u64, u32)>,
    now: UnixNanos,
    in_flight: bool,
) -> Result<(), StoreError> {
    let tag = tag_for(req.client_order_id);
    let side = match req.side() {
        Some(kestrel_engine::Side::Buy) => "BUY",
        Some(kestrel_engine::Side::Sell) => "SELL",
        None => "?",
    };
    let order_type = req.order_type().map_or("?", crate::kite::order_type_str);
    let validity = match req.tif() {
        Some(kestrel_engine::TimeInForce::Ioc) => "IOC",
        _ => "DAY",
    };
    tx.prepare_cached(
        "INSERT INTO orders(client_order_id, decision_id, strategy, instrument_token, exchange,
                symbol, side, quantity, price, trigger_price, order_type, validity, state,
                venue_order_id, submit_count, request, created_ns, updated_ns)
             VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,NULL,?16,?14,?15,?15)",
    )?
    .execute(params![
        tag,
        i(req.decision_id),
        req.strategy,
        instrument_token,
        exchange,
        symbol,
        side,
        req.qty,
        req.price.to_string(),
        req.trigger_price.to_string(),
        order_type,
        validity,
        if in_flight {
            OrderState::InFlight
        } else {
            OrderState::Reserved
        }
        .as_str(),
        bytemuck_bytes(req),
        i(now),
        u32::from(in_flight),
    ])?;
    tx.prepare_cached(
            "INSERT INTO order_events(client_order_id, decision_id, ts_ns, event, from_state, to_state, detail)
             VALUES(?1,?2,?3,'RESERVE','','RESERVED','')",
        )?
        .execute(
            params![tag, i(req.decision_id), i(now)],
        )?;
    if in_flight {
        tx.prepare_cached(
            "INSERT INTO order_events(client_order_id, decision_id, ts_ns, event, from_state, to_state, detail)
             VALUES(?1,?2,?3,'SUBMIT','RESERVED','IN_FLIGHT','')",
        )?
        .execute(params![tag, i(req.decision_id), i(now)])?;
    }
    if let Some((p, k)) = parent {
        tx.prepare_cached(
            "UPDATE orders SET parent_client_order_id=?2, slice_index=?3 WHERE client_order_id=?1",
        )?
        .execute(params![tag, tag_for(p), k])?;
    }
    Ok(())
}

fn bytemuck_bytes(req: &OrderRequest) -> Vec<u8> {
    bytemuck::bytes_of(req).to_vec()
}

fn request_from_bytes(b: &[u8]) -> Option<OrderRequest> {
    if b.len() != std::mem::size_of::<OrderRequest>() {
        return None;
    }
    let req: OrderRequest = bytemuck::pod_read_unaligned(b);
    (req.tag == RecordTag::Order.code()).then_some(req)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use kestrel_engine::{InstrumentId, RequestKind, Side};

    pub(crate) fn request(coid: u64, qty: u32) -> OrderRequest {
        OrderRequest {
            ts: 1,
            decision_id: (1 << 56) | 7,
            client_order_id: coid,
            price: Price::parse("2900.05").unwrap(),
            qty,
            instrument: InstrumentId(0),
            kind: RequestKind::New.code(),
            side: Side::Buy.code(),
            order_type: kestrel_engine::OrderType::Limit.code(),
            tif: kestrel_engine::TimeInForce::Day.code(),
            strategy: 1,
            tag: RecordTag::Order.code(),
            ..OrderRequest::default()
        }
    }

    #[test]
    fn migrates_once_and_reopens_in_wal_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gw.sqlite");
        let s = Store::open(&path).unwrap();
        assert_eq!(s.schema_version().unwrap(), MIGRATIONS.len());
        let mode: String = s
            .connection()
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        let sync: i64 = s
            .connection()
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .unwrap();
        assert_eq!(sync, 2, "FULL");
        drop(s);
        let s = Store::open(&path).unwrap();
        assert_eq!(s.schema_version().unwrap(), MIGRATIONS.len());
    }

    #[test]
    fn upgrades_a_version_1_store_keeping_its_orders_unsliced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gw.sqlite");
        {
            let c = Connection::open(&path).unwrap();
            c.execute_batch(MIGRATIONS[0]).unwrap();
            c.execute(
                "INSERT INTO meta(key, value) VALUES('schema_version', '1')",
                [],
            )
            .unwrap();
            let tx = c.unchecked_transaction().unwrap();
            insert_reserved(
                &tx,
                &request(5, 10),
                "NSE",
                "RELIANCE",
                738_561,
                None,
                1,
                false,
            )
            .unwrap();
            tx.commit().unwrap();
        }
        let mut s = Store::open(&path).unwrap();
        assert_eq!(s.schema_version().unwrap(), MIGRATIONS.len());
        assert_eq!(s.load(5).unwrap().unwrap().request, request(5, 10));
        assert!(s.slice_children().unwrap().is_empty());
        let kids = [request(7, 3), request(8, 2)];
        assert_eq!(
            s.reserve_slices(6, &kids, "NSE", "RELIANCE", 738_561, 2)
                .unwrap(),
            Reservation::Reserved
        );
        assert_eq!(
            s.reserve_slices(6, &kids, "NSE", "RELIANCE", 738_561, 3)
                .unwrap(),
            Reservation::AlreadyKnown(OrderState::Reserved)
        );
        assert_eq!(s.slice_children().unwrap(), [(6, 7, 0), (6, 8, 1)]);
    }

    #[test]
    fn reserve_is_idempotent_and_round_trips_the_request() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("gw.sqlite")).unwrap();
        let req = request(0xabc, 10);
        assert_eq!(
            s.reserve(&req, "NSE", "RELIANCE", 738_561, 5).unwrap(),
            Reservation::Reserved
        );
        assert_eq!(
            s.reserve(&req, "NSE", "RELIANCE", 738_561, 6).unwrap(),
            Reservation::AlreadyKnown(OrderState::Reserved)
        );
        let o = s.load(0xabc).unwrap().unwrap();
        assert_eq!(o.request, req);
        assert_eq!(o.tag, "ks0000000000000abc");
        assert_eq!(o.fsm.state(), OrderState::Reserved);
    }

    #[test]
    fn reserve_in_flight_is_one_commit_with_both_events_and_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("gw.sqlite")).unwrap();
        let req = request(0xdef, 10);
        assert_eq!(
            s.reserve_in_flight(&req, "NSE", "RELIANCE", 738_561, 5)
                .unwrap(),
            Reservation::Reserved
        );
        assert_eq!(
            s.reserve_in_flight(&req, "NSE", "RELIANCE", 738_561, 6)
                .unwrap(),
            Reservation::AlreadyKnown(OrderState::InFlight)
        );
        assert_eq!(
            s.reserve(&req, "NSE", "RELIANCE", 738_561, 6).unwrap(),
            Reservation::AlreadyKnown(OrderState::InFlight)
        );
        let o = s.load(0xdef).unwrap().unwrap();
        assert_eq!((o.fsm.state(), o.submit_count), (OrderState::InFlight, 1));
        assert_eq!(o.request, req);
        let events: Vec<(String, String, String)> = s
            .connection()
            .prepare("SELECT event, from_state, to_state FROM order_events ORDER BY id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let e = |a: &str, b: &str, c: &str| (a.to_string(), b.to_string(), c.to_string());
        assert_eq!(
            events,
            [
                e("RESERVE", "", "RESERVED"),
                e("SUBMIT", "RESERVED", "IN_FLIGHT")
            ]
        );
    }

    #[test]
    fn fills_are_unique_and_append_only() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("gw.sqlite")).unwrap();
        let req = request(1, 10);
        s.reserve(&req, "NSE", "RELIANCE", 738_561, 5).unwrap();
        let f = Fill {
            trade_id: "T1".into(),
            qty: 4,
            price: Price::from_units(10),
            ts: 9,
        };
        s.record_transition(
            &req,
            EventKind::Fill,
            OrderState::Open,
            OrderState::PartiallyFilled,
            Some((&f, Money::parse("0.02").unwrap())),
            Some(77),
            "",
            6,
        )
        .unwrap();
        assert!(
            s.record_transition(
                &req,
                EventKind::Fill,
                OrderState::PartiallyFilled,
                OrderState::PartiallyFilled,
                Some((&f, Money::parse("0.02").unwrap())),
                Some(77),
                "",
                7,
            )
            .is_err(),
            "a second row with the same trade id"
        );
        let o = s.load(1).unwrap().unwrap();
        assert_eq!(o.fsm.filled(), 4);
        assert_eq!(o.venue_order_id, Some(77));
        assert!(
            s.connection()
                .execute("UPDATE fills SET quantity=5", [])
                .is_err()
        );
        let err = s
            .connection()
            .execute("UPDATE fills SET fee='0.01'", [])
            .unwrap_err()
            .to_string();
        assert!(err.contains("fills is append-only"), "{err}");
        assert!(
            s.connection()
                .execute("DELETE FROM order_events", [])
                .is_err()
        );
    }

    #[test]
    fn upgrades_a_version_2_store_keeping_its_orders_and_fills() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gw.sqlite");
        let req = request(9, 10);
        {
            let c = Connection::open(&path).unwrap();
            c.execute_batch(MIGRATIONS[0]).unwrap();
            c.execute_batch(MIGRATIONS[1]).unwrap();
            c.execute(
                "INSERT INTO meta(key, value) VALUES('schema_version', '2')",
                [],
            )
            .unwrap();
            let tx = c.unchecked_transaction().unwrap();
            insert_reserved(&tx, &req, "NSE", "RELIANCE", 738_561, None, 1, true).unwrap();
            tx.commit().unwrap();
        }
        {
            // A fill as a version-2 build wrote it (no fee column yet).
            let s = Store {
                conn: Connection::open(&path).unwrap(),
                path: path.clone(),
            };
            insert_old_fill(
                s.connection(),
                &req,
                "T9",
                4,
                "2900.05",
                91,
                OrderState::PartiallyFilled,
            );
            let has = |t: &str| -> i64 {
                s.connection()
                    .query_row(
                        "SELECT count(*) FROM sqlite_master WHERE type='table' AND name=?1",
                        [t],
                        |r| r.get(0),
                    )
                    .unwrap()
            };
            assert_eq!((has("position_snapshots"), has("config_changes")), (0, 0));
        }
        let mut s = Store::open(&path).unwrap();
        assert_eq!(s.schema_version().unwrap(), MIGRATIONS.len());
        let o = s.load(9).unwrap().unwrap();
        assert_eq!(o.request, req);
        assert_eq!((o.venue_order_id, o.fsm.filled()), (Some(91), 4));
        assert_eq!(
            s.record_position_snapshot(
                PositionSource::Store,
                "test",
                &[("NSE", "RELIANCE", 4, Price::parse("2900.05").unwrap())],
                req.decision_id,
                5,
            )
            .unwrap(),
            1
        );
        assert!(s.record_config("[risk]\n", 6).unwrap());
        drop(s);
        assert_eq!(
            Store::open(&path).unwrap().schema_version().unwrap(),
            MIGRATIONS.len()
        );
    }

    /// A fill row as builds before migration 4 wrote it (no fee), with its order row moved
    /// to `state` and `venue_order_id`, as `record_transition` did then.
    fn insert_old_fill(
        c: &Connection,
        req: &OrderRequest,
        trade_id: &str,
        qty: u32,
        price: &str,
        venue_order_id: u64,
        state: OrderState,
    ) {
        let tag = tag_for(req.client_order_id);
        c.execute(
            "INSERT INTO fills(trade_id, client_order_id, decision_id, venue_order_id, quantity,
                price, venue_ts_ns, recorded_ns) VALUES(?1,?2,?3,?4,?5,?6,3,4)",
            params![
                trade_id,
                tag,
                i(req.decision_id),
                i(venue_order_id),
                qty,
                price
            ],
        )
        .unwrap();
        c.execute(
            "UPDATE orders SET state=?2, venue_order_id=?3 WHERE client_order_id=?1",
            params![tag, state.as_str(), i(venue_order_id)],
        )
        .unwrap();
    }

    /// The audit query's `fills`, `fees` and `fills_without_fee` for one order.
    fn audit_fees(s: &Store, client_order_id: u64) -> (String, String, i64) {
        s.connection()
            .query_row(AUDIT_QUERY, [tag_for(client_order_id)], |r| {
                Ok((r.get(11)?, r.get(12)?, r.get(13)?))
            })
            .unwrap()
    }

    /// The gateway's store and the operator's (`kestrel ctl pause` writes the risk state
    /// from another connection) write the same file at once. A write must wait for the
    /// other's (the busy timeout), never fail: a failed write stops the gateway.
    #[test]
    fn writers_on_two_connections_wait_for_each_other_instead_of_failing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gw.sqlite");
        let mut gateway = Store::open(&path).unwrap();
        let operator_path = path.clone();
        let operator = std::thread::spawn(move || {
            let mut operator = Store::open(&operator_path).unwrap();
            for k in 0..5_000u64 {
                operator
                    .set_risk_state("paused", if k % 2 == 0 { "1" } else { "0" }, 0, k)
                    .unwrap_or_else(|e| panic!("operator write {k}: {e}"));
            }
        });
        for coid in 1..=5_000u64 {
            gateway
                .reserve(&request(coid, 1), "NSE", "RELIANCE", 738_561, coid)
                .unwrap_or_else(|e| panic!("reserving order {coid}: {e}"));
        }
        operator.join().unwrap();
        let reserved: i64 = gateway
            .connection()
            .query_row("SELECT count(*) FROM orders", [], |r| r.get(0))
            .unwrap();
        assert_eq!(reserved, 5_000);
    }

    #[test]
    fn a_negative_fee_estimate_never_costs_the_fill_its_row() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("gw.sqlite")).unwrap();
        let req = request(4, 40);
        s.reserve(&req, "NSE", "RELIANCE", 738_561, 5).unwrap();
        let f = Fill {
            trade_id: "T9".into(),
            qty: 5,
            price: Price::parse("2890.05").unwrap(),
            ts: 10,
        };
        s.record_transition(
            &req,
            EventKind::Fill,
            OrderState::Open,
            OrderState::Filled,
            Some((&f, Money(-1))),
            Some(77),
            "",
            20,
        )
        .unwrap();
        let stored = s.stored_fills().unwrap();
        assert_eq!(stored.len(), 1);
        assert_eq!(
            (stored[0].fill.trade_id.as_str(), stored[0].fee),
            ("T9", None)
        );
    }

    #[test]
    fn a_fills_fee_round_trips_exactly_as_decimal_text() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gw.sqlite");
        let mut s = Store::open(&path).unwrap();
        let req = request(3, 30);
        s.reserve(&req, "NSE", "RELIANCE", 738_561, 5).unwrap();
        let m = |t: &str| Money::parse(t).unwrap();
        // Sub-paisa digits (no paise integer holds them), the smallest unit, a whole rupee
        // amount; in binary floating point 24.2890628 + 6.9666628 + 0.00000001 is not exact.
        let fees = [m("24.2890628"), m("6.9666628"), Money(1), m("20")];
        for (k, fee) in fees.iter().enumerate() {
            let f = Fill {
                trade_id: format!("T{k}"),
                qty: 5,
                price: Price::parse("2890.05").unwrap(),
                ts: 10 + k as u64,
            };
            s.record_transition(
                &req,
                EventKind::Fill,
                OrderState::Open,
                OrderState::PartiallyFilled,
                Some((&f, *fee)),
                Some(77),
                "",
                20 + k as u64,
            )
            .unwrap();
        }
        drop(s);
        let s = Store::open(&path).unwrap();
        let got: Vec<Option<Money>> = s.stored_fills().unwrap().iter().map(|f| f.fee).collect();
        assert_eq!(got, fees.map(Some));
        let stored = s.stored_fills().unwrap();
        assert_eq!(
            (stored[0].client_order_id, stored[0].decision_id),
            (3, req.decision_id)
        );
        assert_eq!(
            (stored[1].fill.trade_id.as_str(), stored[1].recorded_ns),
            ("T1", 21)
        );
        // In SQL: text, exactly as `Money` prints it.
        let texts: Vec<(String, String)> = s
            .connection()
            .prepare("SELECT typeof(fee), fee FROM fills ORDER BY rowid")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let t = |v: &str| ("text".to_string(), v.to_string());
        assert_eq!(
            texts,
            [t("24.2890628"), t("6.9666628"), t("0.00000001"), t("20.00")]
        );
        let (fills, total, without) = audit_fees(&s, 3);
        assert_eq!(
            fills,
            "T0:5@2890.05 fee 24.2890628; T1:5@2890.05 fee 6.9666628; \
             T2:5@2890.05 fee 0.00000001; T3:5@2890.05 fee 20.00"
        );
        assert_eq!((total.as_str(), without), ("51.25572561", 0), "exact sum");
        // What the CHECK keeps out (the exact sum above relies on it).
        for bad in ["-1.00", "1e3", "12", "1,5", "abc"] {
            let err = s
                .connection()
                .execute(
                    "INSERT INTO fills(trade_id, client_order_id, decision_id, quantity, price,
                        venue_ts_ns, recorded_ns, fee) VALUES('X', ?1, 0, 1, '1.00', 0, 0, ?2)",
                    params![tag_for(3), bad],
                )
                .unwrap_err()
                .to_string();
            assert!(err.contains("CHECK constraint failed"), "{bad}: {err}");
        }
    }

    #[test]
    fn a_corrupt_stored_fee_is_an_error_naming_the_order_and_trade() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gw.sqlite");
        {
            // A hand-edited row: digits and points pass the CHECK but are no decimal.
            let s = Store::open(&path).unwrap();
            let tx = s.conn.unchecked_transaction().unwrap();
            insert_reserved(&tx, &request(4, 10), "NSE", "INFY", 408_065, None, 1, false).unwrap();
            tx.commit().unwrap();
            s.connection()
                .execute(
                    "INSERT INTO fills(trade_id, client_order_id, decision_id, quantity, price,
                        venue_ts_ns, recorded_ns, fee) VALUES('T4', ?1, 0, 1, '1.00', 0, 0, '1.2.3')",
                    [tag_for(4)],
                )
                .unwrap();
        }
        let err = Store::open(&path)
            .unwrap()
            .stored_fills()
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "order ks0000000000000004: corrupt row (fill T4 fee '1.2.3')"
        );
    }

    #[test]
    fn upgrades_a_version_3_store_its_fills_reading_as_not_estimated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gw.sqlite");
        let req = request(11, 10);
        {
            let c = Connection::open(&path).unwrap();
            for m in &MIGRATIONS[..3] {
                c.execute_batch(m).unwrap();
            }
            c.execute(
                "INSERT INTO meta(key, value) VALUES('schema_version', '3')",
                [],
            )
            .unwrap();
            let tx = c.unchecked_transaction().unwrap();
            insert_reserved(&tx, &req, "NSE", "RELIANCE", 738_561, None, 1, true).unwrap();
            tx.commit().unwrap();
            insert_old_fill(
                &c,
                &req,
                "T11",
                4,
                "2900.05",
                93,
                OrderState::PartiallyFilled,
            );
            let cols: i64 = c
                .query_row(
                    "SELECT count(*) FROM pragma_table_info('fills') WHERE name = 'fee'",
                    [],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(cols, 0, "a version-3 store has no fee column");
        }
        let mut s = Store::open(&path).unwrap();
        assert_eq!(s.schema_version().unwrap(), MIGRATIONS.len());
        let o = s.load(11).unwrap().unwrap();
        assert_eq!((o.venue_order_id, o.fsm.filled()), (Some(93), 4));
        let old = s.stored_fills().unwrap();
        assert_eq!(old.len(), 1);
        assert_eq!((old[0].fill.trade_id.as_str(), old[0].fee), ("T11", None));
        // The append-only triggers still hold, for the new column too: no back-filling.
        for sql in [
            "UPDATE fills SET fee = '1.00'",
            "UPDATE fills SET quantity = 5",
            "DELETE FROM fills",
        ] {
            let err = s.connection().execute(sql, []).unwrap_err().to_string();
            assert!(err.contains("fills is append-only"), "{sql}: {err}");
        }
        // A new fill of the same order keeps its fee; the old one still reads as none.
        let f = Fill {
            trade_id: "T12".into(),
            qty: 6,
            price: Price::parse("2900.10").unwrap(),
            ts: 5,
        };
        let fee = Money::parse("7.0123456").unwrap();
        s.record_transition(
            &req,
            EventKind::Fill,
            OrderState::PartiallyFilled,
            OrderState::Filled,
            Some((&f, fee)),
            Some(93),
            "",
            6,
        )
        .unwrap();
        let fees: Vec<(String, Option<Money>)> = s
            .stored_fills()
            .unwrap()
            .into_iter()
            .map(|f| (f.fill.trade_id, f.fee))
            .collect();
        assert_eq!(
            fees,
            [("T11".to_string(), None), ("T12".to_string(), Some(fee))]
        );
        assert_eq!(
            audit_fees(&s, 11),
            (
                "T11:4@2900.05 fee ?; T12:6@2900.10 fee 7.0123456".to_string(),
                "7.01234560".to_string(),
                1
            )
        );
    }

    #[test]
    fn a_position_snapshot_is_one_transaction_and_keeps_sign_and_exact_price() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("gw.sqlite")).unwrap();
        let px = |p: &str| Price::parse(p).unwrap();
        let rows = [
            ("NSE", "RELIANCE", 25, px("2900.08333333")),
            ("NSE", "INFY", -40, px("1500.5")),
        ];
        assert_eq!(
            s.record_position_snapshot(PositionSource::Venue, "reconcile", &rows, 77, 100)
                .unwrap(),
            2
        );
        assert_eq!(
            s.record_position_snapshot(PositionSource::Engine, "shutdown", &[], 0, 101)
                .unwrap(),
            0
        );
        type Row = (i64, i64, String, String, String, i64, String, String);
        let got: Vec<Row> = s
            .connection()
            .prepare(
                "SELECT ts_ns, decision_id, source, exchange, symbol, quantity, average_price,
                        reason FROM position_snapshots ORDER BY id",
            )
            .unwrap()
            .query_map([], |r| r.try_into())
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let row = |sym: &str, q: i64, p: &str| {
            (
                100,
                77,
                "venue".to_string(),
                "NSE".to_string(),
                sym.to_string(),
                q,
                p.to_string(),
                "reconcile".to_string(),
            )
        };
        assert_eq!(
            got,
            [
                row("RELIANCE", 25, "2900.08333333"),
                row("INFY", -40, "1500.50")
            ]
        );
        assert!(
            s.connection()
                .execute(
                    "INSERT INTO position_snapshots(ts_ns, source, exchange, symbol, quantity,
                        average_price, reason) VALUES(1, 'guess', 'NSE', 'X', 0, '0', 'test')",
                    [],
                )
                .is_err(),
            "source is venue, store or engine"
        );
    }

    #[test]
    fn position_snapshots_and_config_changes_refuse_update_and_delete() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("gw.sqlite")).unwrap();
        s.record_position_snapshot(
            PositionSource::Venue,
            "reconcile",
            &[("NSE", "RELIANCE", 1, Price::from_units(2900))],
            0,
            1,
        )
        .unwrap();
        s.record_config("a = 1\n", 2).unwrap();
        for sql in [
            "UPDATE position_snapshots SET quantity = 2",
            "DELETE FROM position_snapshots",
            "UPDATE config_changes SET config = 'a = 2'",
            "DELETE FROM config_changes",
        ] {
            let err = s.connection().execute(sql, []).unwrap_err().to_string();
            assert!(err.contains("is append-only"), "{sql}: {err}");
        }
        let n = |t: &str| -> i64 {
            s.connection()
                .query_row(&format!("SELECT count(*) FROM {t}"), [], |r| r.get(0))
                .unwrap()
        };
        assert_eq!((n("position_snapshots"), n("config_changes")), (1, 1));
    }

    #[test]
    fn record_config_inserts_a_row_only_when_the_text_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gw.sqlite");
        let mut s = Store::open(&path).unwrap();
        assert_eq!(s.latest_config_hash().unwrap(), None);
        let (a, b) = ("[risk]\nmax_qty = 10\n", "[risk]\nmax_qty = 20\n");
        assert!(s.record_config(a, 1).unwrap());
        assert!(!s.record_config(a, 2).unwrap(), "same text: no row");
        assert_eq!(s.latest_config_hash().unwrap(), Some(config_hash(a)));
        assert!(s.record_config(b, 3).unwrap());
        drop(s);
        let mut s = Store::open(&path).unwrap();
        assert!(!s.record_config(b, 4).unwrap(), "same text after a reopen");
        assert!(
            s.record_config(a, 5).unwrap(),
            "back to the first: a change"
        );
        let rows: Vec<(i64, String, String, Option<String>)> = s
            .connection()
            .prepare("SELECT ts_ns, hash, config, previous_hash FROM config_changes ORDER BY id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let (ha, hb) = (config_hash(a), config_hash(b));
        assert_eq!(
            rows,
            [
                (1, ha.clone(), a.to_string(), None),
                (3, hb.clone(), b.to_string(), Some(ha.clone())),
                (5, ha.clone(), a.to_string(), Some(hb)),
            ]
        );
        assert_eq!(s.latest_config_hash().unwrap(), Some(ha));
    }

    #[test]
    fn config_hash_is_sha1_in_lower_case_hex() {
        // FIPS 180 test vectors: the value must never change with the toolchain.
        assert_eq!(config_hash(""), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
        assert_eq!(
            config_hash("abc"),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
    }
}
