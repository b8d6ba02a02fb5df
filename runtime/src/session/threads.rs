//! The session's threads and the order in which they stop: the engine (pinned; in inline
//! mode it also polls the feed's socket), the gateway, and in split mode the feed thread.

use std::thread::JoinHandle;

use kestrel_engine::ring::Producer;
use kestrel_gateway::{GatewayError, ShutdownReport};

use super::*;

/// The engine as a session runs it.
pub(super) type SessionEngine<S> = Engine<S, RiskGate, LiveClock, true>;

/// What the gateway thread hands back: the gateway, how its run loop ended, and what its
/// shutdown did (`None` when the run loop failed).
type GatewayEnd = (
    Gateway<KiteClient>,
    Result<(), GatewayError>,
    Option<ShutdownReport>,
);

/// The engine's ends of its rings.
pub(super) struct EngineRings {
    pub(super) inputs: EngineInputs,
    pub(super) out: kestrel_gateway::WriterOutput,
}

/// The gateway's ends of its rings.
pub(super) struct GatewayEnds {
    pub(super) orders: Consumer<Approved>,
    pub(super) execs: Producer<ExecReport>,
    pub(super) texts: Consumer<TextRecord>,
    /// What the engine and the feed notify: the gateway parks on it when idle.
    pub(super) wake: Arc<kestrel_engine::wake::Wake>,
}

/// What the engine thread's order writer did, said when the engine stops.
fn log_writer(out: &kestrel_gateway::WriterOutput) {
    if let Some(w) = &out.writer {
        tracing::info!(
            written = w.written,
            passed_on = w.passed_on,
            "inline order writer: orders the engine thread wrote itself, and those it passed to the gateway"
        );
    }
}

/// The running threads of one session.
pub(super) struct Threads<S> {
    engine: JoinHandle<(SessionEngine<S>, Option<FeedClient>)>,
    /// `None` in a dry run (nothing is sent).
    gateway: Option<JoinHandle<GatewayEnd>>,
    /// `None` in inline mode (the engine thread polls the feed).
    feed: Option<JoinHandle<FeedClient>>,
    engine_stop: Arc<AtomicBool>,
    gateway_stop: Arc<AtomicBool>,
    feed_stop: Arc<AtomicBool>,
    /// Set by the engine once it has seen the session's stop flag and decides no more.
    decisions_stopped: Arc<AtomicBool>,
}

/// What the threads left when they stopped.
pub(super) struct Ended<S> {
    pub(super) engine: SessionEngine<S>,
    pub(super) feed: FeedClient,
    pub(super) gateway: Option<Gateway<KiteClient>>,
    /// The gateway's run loop failed (reported after the alerts are delivered).
    pub(super) gateway_failure: Option<anyhow::Error>,
}

impl<S: StrategySet> Threads<S> {
    /// Starts the engine (with the feed inline, or the feed on its own thread) and the
    /// gateway, whose shutdown sees the orders already sent through to their end
    /// (`cancel_open`: cancel what rests at the venue). `decisions_stopped` is the engine's
    /// acknowledgement of the stop ([`Engine::stop_deciding_on`]).
    pub(super) fn spawn(
        mut engine: SessionEngine<S>,
        mut rings: EngineRings,
        mut feed: FeedClient,
        layout: EngineMode,
        gateway: Option<(Gateway<KiteClient>, GatewayEnds)>,
        cancel_open: bool,
        decisions_stopped: Arc<AtomicBool>,
    ) -> Result<Threads<S>> {
        let engine_stop = Arc::new(AtomicBool::new(false));
        let gateway_stop = Arc::new(AtomicBool::new(false));
        let feed_stop = Arc::new(AtomicBool::new(false));
        let (inline_feed, feed_thread) = match layout {
            EngineMode::Inline => (Some(feed), None),
            _ => {
                let feed_stop = feed_stop.clone();
                let t = thread::Builder::new().name("feed".into()).spawn(move || {
                    feed.run(&feed_stop, false);
                    feed
                })?;
                (None, Some(t))
            }
        };
        let engine_thread = {
            let engine_stop = engine_stop.clone();
            thread::Builder::new()
                .name("engine".into())
                .spawn(move || match inline_feed {
                    Some(mut feed) => {
                        engine.run_with_poll(
                            &mut rings.inputs,
                            &mut rings.out,
                            &engine_stop,
                            || {
                                feed.turn(Duration::ZERO);
                            },
                        );
                        feed.finish();
                        log_writer(&rings.out);
                        (engine, Some(feed))
                    }
                    None => {
                        engine.run(&mut rings.inputs, &mut rings.out, &engine_stop);
                        log_writer(&rings.out);
                        (engine, None)
                    }
                })?
        };
        let gateway_thread = match gateway {
            Some((mut gateway, mut ends)) => {
                let gateway_stop = gateway_stop.clone();
                Some(
                    thread::Builder::new()
                        .name("gateway".into())
                        .spawn(move || {
                            gateway.flush(&mut ends.execs);
                            let mut rings = GatewayRings {
                                orders: &mut ends.orders,
                                execs: &mut ends.execs,
                                updates: Some(&mut ends.texts),
                                wake: Some(&ends.wake),
                            };
                            let result = gateway.run(&mut rings, &gateway_stop);
                            // Told to stop once the engine decides no more: what was sent is seen
                            // through to its end, with the engine told of every fill.
                            let shutdown = result.is_ok().then(|| {
                                gateway.shutdown_in_session(
                                    &mut rings,
                                    cancel_open,
                                    SHUTDOWN_DEADLINE,
                                )
                            });
                            (gateway, result, shutdown)
                        })?,
                )
            }
            None => None,
        };
        Ok(Threads {
            engine: engine_thread,
            gateway: gateway_thread,
            feed: feed_thread,
            engine_stop,
            gateway_stop,
            feed_stop,
            decisions_stopped,
        })
    }

    /// The engine or the gateway ended on its own (a panic, or a gateway error it cannot go
    /// on from): the session must stop.
    pub(super) fn one_ended(&self) -> bool {
        self.engine.is_finished() || self.gateway_ended()
    }

    /// The gateway thread ended on its own: nothing can reach the broker any more.
    pub(super) fn gateway_ended(&self) -> bool {
        self.gateway.as_ref().is_some_and(|t| t.is_finished())
    }

    /// The graceful stop, in three steps, while `drain` keeps the journal ring moving:
    /// 1. no new decision: `stop` is set (a signal may have set it already) and the engine
    ///    acknowledges within one loop turn;
    /// 2. the gateway places what was decided before, cancels what is open when configured
    ///    and waits (bounded) for the venue, handing every fill to the engine;
    /// 3. the engine applies what is queued and stops; then the feed.
    pub(super) fn stop(self, stop: &AtomicBool, mut drain: impl FnMut()) -> Result<Ended<S>> {
        stop.store(true, Ordering::Relaxed);
        let acknowledged_by = Instant::now() + Duration::from_secs(2);
        while !self.decisions_stopped.load(Ordering::Acquire)
            && !self.engine.is_finished()
            && Instant::now() < acknowledged_by
        {
            drain();
            thread::sleep(Duration::from_micros(100));
        }
        tracing::info!("stopping: no new decisions; waiting for the orders already sent");
        self.gateway_stop.store(true, Ordering::Relaxed);
        let (mut gateway, mut gateway_failure) = (None, None);
        if let Some(t) = self.gateway {
            while !t.is_finished() {
                drain();
                thread::sleep(Duration::from_millis(1));
            }
            let (g, result, shutdown) = t
                .join()
                .map_err(|_| anyhow::anyhow!("the gateway thread panicked"))?;
            if let Err(e) = result {
                tracing::error!(error = %e, "the order gateway stopped with an error");
                gateway_failure = Some(anyhow::anyhow!(
                    "the order gateway stopped with an error: {e}; restart kestrel (it \
                     reconciles with the broker before trading) and check open positions with \
                     the broker"
                ));
            }
            if let Some(r) = shutdown
                && (!r.still_open.is_empty() || r.deadline_hit)
            {
                tracing::error!(
                    still_open = r.still_open.len(),
                    deadline_hit = r.deadline_hit,
                    "orders still working or unresolved at the venue after the shutdown \
                     deadline: check them with the broker"
                );
            }
            gateway = Some(g);
        }
        self.engine_stop.store(true, Ordering::Relaxed);
        let (engine, inline_feed) = self
            .engine
            .join()
            .map_err(|_| anyhow::anyhow!("the engine thread panicked"))?;
        self.feed_stop.store(true, Ordering::Relaxed);
        let feed = match (self.feed, inline_feed) {
            (Some(t), _) => t
                .join()
                .map_err(|_| anyhow::anyhow!("the feed thread panicked"))?,
            (None, Some(feed)) => feed,
            (None, None) => anyhow::bail!("the feed was neither on its own thread nor inline"),
        };
        Ok(Ended {
            engine,
            feed,
            gateway,
            gateway_failure,
        })
    }
}
