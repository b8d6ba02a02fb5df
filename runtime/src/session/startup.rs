//! Start-up against the venue: the gateway over the store, reconciled before anything
//! trades, riding out a broker hiccup and waiting for a valid access token.

use super::*;
use kestrel_engine::log_event::event;

/// The gateway at the venue of `args`, reconciled ([`reconcile_riding_out_hiccups`]).
pub(super) fn start_gateway(
    args: &SessionArgs,
    store: Store,
    table: &InstrumentTable,
    engine_control: kestrel_engine::ring::Producer<ControlCommand>,
    startup: Startup<'_>,
) -> Result<Gateway<KiteClient>> {
    let kite = KiteClient::new(
        KiteConfig::new(args.venue.rest_url.clone()),
        &args.venue.credentials,
    )
    .map_err(|e| anyhow::anyhow!("the venue's REST API at {}: {e}", args.venue.rest_url))?;
    let mut gateway = Gateway::new(
        kite,
        store,
        table.clone(),
        GatewayConfig {
            poll_interval: Duration::from_millis(100),
            // Order updates bring the fills; polling is the fallback. Short enough that the
            // settle at the end sees a poll after the market stops.
            poll_interval_with_updates: Duration::from_millis(250),
            // `[engine] gateway_idle`: by default it spins for the next order with a core of
            // its own, and on a smaller machine spins briefly, then parks until woken.
            idle_spin: if args.config.engine.gateway_idle.spins(core_count()) {
                Duration::MAX
            } else {
                GatewayConfig::default().idle_spin
            },
            product: args.venue.product,
            above_freeze: args.config.venue.above_freeze.into(),
            durability: match args.config.storage.order_durability {
                OrderDurability::Full => Durability::Full,
                OrderDurability::Process => Durability::Process {
                    intent_log: args.store_path.with_extension("intents"),
                },
                OrderDurability::Group => Durability::Group(GroupCommitConfig::new(
                    args.store_path.with_extension("intents"),
                )),
            },
            ..GatewayConfig::default()
        },
    )
    .map_err(|e| anyhow::anyhow!("starting the gateway: {e}"))?;
    gateway.attach_engine_control(engine_control);
    gateway.attach_token_state(startup.watch.state.clone());
    let reconciled = reconcile_riding_out_hiccups(&mut gateway, args, startup)?;
    if reconciled.outcome != ReconcileOutcome::Clean {
        // The reconciliation paused trading in the store; the engine starts paused and the
        // operator decides (`kestrel ctl status`, then `kestrel ctl resume`).
        tracing::error!(event = event::HALT,
            incidents = reconciled.incidents.len(),
            store = %args.store_path.display(),
            "reconciliation found differences it cannot resolve: trading starts paused; \
             inspect the incidents table, then run `kestrel ctl resume`"
        );
    }
    Ok(gateway)
}

/// What start-up needs to wait for a token and say so.
pub(super) struct Startup<'a> {
    pub(super) stop: &'a AtomicBool,
    pub(super) watch: &'a mut TokenWatch,
    pub(super) alerts: AlertSender,
    pub(super) clock: &'a LiveClock,
}

/// Start-up reconciliation that rides out a broker hiccup: a transient failure (503, 429,
/// a timeout, a dropped connection) is retried with backoff, saying so, for as long as it
/// takes (nothing trades before it succeeds) or until `stop` is set. Without a valid access
/// token (none, expired, or refused by the broker) it waits for one ([`wait_for_token`]);
/// any other failure ends the start.
fn reconcile_riding_out_hiccups(
    gateway: &mut Gateway<KiteClient>,
    args: &SessionArgs,
    mut startup: Startup<'_>,
) -> Result<kestrel_gateway::ReconcileReport> {
    let rest_url = &args.venue.rest_url;
    let stop = startup.stop;
    let mut wait = Duration::from_millis(500);
    let mut attempt = 0u32;
    loop {
        wait_for_token(gateway, args, &mut startup)?;
        attempt += 1;
        match gateway.reconcile() {
            Ok(r) => {
                if startup.watch.state.refused() {
                    startup.watch.state.record_accepted();
                }
                return Ok(r);
            }
            Err(kestrel_gateway::GatewayError::Venue(
                e @ kestrel_gateway::VenueError::Token { .. },
            )) => {
                startup.watch.state.record_refusal();
                tracing::error!(event = event::TOKEN, error = %e, "the broker refused the access token at start-up");
            }
            Err(kestrel_gateway::GatewayError::Venue(e)) if e.is_transient() => {
                if stop.load(Ordering::Relaxed) {
                    anyhow::bail!(
                        "stopped before the venue at {rest_url} could be reconciled: {e}"
                    );
                }
                tracing::warn!(
                    attempt,
                    error = %e,
                    retry_in = ?wait,
                    "start-up reconciliation failed on a transient venue error; nothing trades \
                     until it succeeds; retrying"
                );
                let until = Instant::now() + wait;
                while Instant::now() < until && !stop.load(Ordering::Relaxed) {
                    thread::sleep(Duration::from_millis(20));
                }
                wait = (wait * 2).min(Duration::from_secs(30));
            }
            Err(e) => anyhow::bail!("reconciling with the venue at {rest_url}: {e}"),
        }
    }
}

/// Until the session has an access token with no known problem: says why it waits (the log
/// and `kestrel ctl status`), alerts with the login link when due ([`TokenWatch::alert`]),
/// and takes a new token from the credentials file or `kestrel ctl token`. Ends the start
/// when `stop` is set.
fn wait_for_token(
    gateway: &mut Gateway<KiteClient>,
    args: &SessionArgs,
    startup: &mut Startup<'_>,
) -> Result<()> {
    let started = Instant::now();
    let mut said: Option<String> = None;
    loop {
        let now = startup.clock.now();
        if let Some(source) = startup.watch.take_new(now / 1_000_000_000) {
            // Installed here; the gateway's run loop need not install it again.
            let _ = startup.watch.state.handoff.take();
            gateway
                .venue_mut()
                .set_access_token(startup.watch.current());
            startup.watch.state.token_replaced();
            tracing::info!(
                event = event::TOKEN,
                source,
                "a new Kite access token: reconciling with it"
            );
        }
        let Some(why) = startup.watch.problem(now / 1_000_000_000) else {
            return Ok(());
        };
        if said.as_deref() != Some(why.as_str()) {
            tracing::warn!(event = event::TOKEN,
                problem = %why,
                "waiting for a valid Kite access token; nothing trades until then. Run `kestrel \
                 login --config FILE` (the session picks the token up from \
                 venue.credentials_file) or `echo TOKEN | kestrel ctl token`"
            );
            snapshot::publish(
                &args.snapshot,
                OpsSnapshot {
                    mode: args.mode,
                    at: now,
                    uptime_s: started.elapsed().as_secs(),
                    trading_state: "waiting",
                    token_problem: Some(why.clone()),
                    store_path: args.store_path.display().to_string(),
                    ..OpsSnapshot::default()
                },
            );
            said = Some(why.clone());
        }
        if let Some(alert) = startup.watch.alert(now) {
            startup.alerts.send(alert);
        }
        if startup.stop.load(Ordering::Relaxed) {
            anyhow::bail!("stopped while waiting for a valid Kite access token: {why}");
        }
        thread::sleep(Duration::from_millis(100));
    }
}
