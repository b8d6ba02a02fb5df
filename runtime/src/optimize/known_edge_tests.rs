//! The optimiser on a generated journal with a known edge: RELIANCE in cycles of 24 one-second
//! ticks, the first five cycles a trend in which breakout's wide profit target wins, the last
//! five a chop in which it loses and the tight target wins. Every price sits on a plateau of
//! two or more ticks, so a market order fills at the price that triggered it whether it
//! reaches the venue at once or at the next tick.
//!
//! Breakout with `lookback = 5`, `stop_bps = 100`, 10 shares, no time exit; `--param
//! exit.target_bps=100,300` (`t100`, `t300`). Entry when the price clears the previous five
//! ticks' high, exit at the target (≥ entry × (1 + target), rounded up to ₹0.05) or at the stop
//! (≤ entry × 0.99, rounded down).
//!
//! ```text
//! trend: 1000 ×13, 1002 ×3, 1017 ×3, 1036 ×3, 1015 ×2
//!   t100: buy 1002, target 1012.05 → sell 1017 (+150); buy 1036 (a new high), stop
//!         1025.60 → sell 1015 (−210): −60 a cycle before fees
//!   t300: buy 1002, target 1032.10 → sell 1036 (+340), then flat: +340
//! chop:  1000 ×16, 1002 ×3, 1014 ×3,  985 ×2
//!   t100: buy 1002 → sell 1014 (+120)
//!   t300: buy 1002, stop 991.95 → sell 985 (−170)
//! ```
//! Back at 1000 after each cycle, the five-tick window still holds the cycle's highs, so
//! nothing is bought until the next cycle's 1002.

use std::path::{Path, PathBuf};
use std::time::Duration;

use indicatif::ProgressBar;
use kestrel_engine::{InstrumentTable, JournalRecord, Money, Price, Tick};
use kestrel_journal::JournalWriter;

use super::*;
use crate::replay::Latency;
use crate::strategies::BuiltIn;

const SECOND: u64 = 1_000_000_000;
/// 2026-06-01 09:15:00 IST.
const T0: u64 = 1_780_285_500_000_000_000;

const TREND: [(i64, usize); 5] = [(1000, 13), (1002, 3), (1017, 3), (1036, 3), (1015, 2)];
const CHOP: [(i64, usize); 4] = [(1000, 16), (1002, 3), (1014, 3), (985, 2)];

/// Five trend cycles, five chop cycles, and one last tick at 1000 at T0 + 240 s.
fn journal(dir: &Path) -> PathBuf {
    let table = InstrumentTable::nse_default();
    let id = table.by_symbol("RELIANCE").unwrap();
    let path = dir.join("edge.kjnl");
    let mut w = JournalWriter::create(&path, &table, T0).unwrap();
    let mut prices: Vec<i64> = Vec::new();
    for cycle in [TREND.as_slice(); 5].iter().chain(&[CHOP.as_slice(); 5]) {
        for &(px, n) in *cycle {
            prices.extend(std::iter::repeat_n(px, n));
        }
    }
    prices.push(1000);
    assert_eq!(prices.len(), 241);
    for (i, px) in prices.into_iter().enumerate() {
        let ts = T0 + i as u64 * SECOND;
        let px = Price::from_units(px);
        let mut t = Tick::trade(id, ts, px, 10);
        t.exch_ts = ts;
        (t.bid_px, t.ask_px) = (px, px);
        (t.bid_qty, t.ask_qty) = (100_000, 100_000);
        w.append(&JournalRecord::from_tick(&t)).unwrap();
    }
    w.sync().unwrap();
    path
}

const STRATEGY: &str = "[strategy]\nkind = \"breakout\"\nlookback = 5\nstop_bps = 100\n\
                        instruments = [\"RELIANCE\"]\n[strategy.sizing]\nmethod = \"fixed\"\n\
                        qty = 10\n[strategy.exit]\ntarget_bps = 100\nmax_hold_s = 0\n\n";

fn backtest(journal: &Path) -> Backtest {
    let base = kestrel_testkit::config::any_hour(crate::config::DEFAULT_TOML);
    let (start, end) = (
        base.find("[strategy]\n").unwrap(),
        base.find("[instruments]\n").unwrap(),
    );
    let text = format!("{}{STRATEGY}{}", &base[..start], &base[end..]);
    let table = replay::journal_instruments(journal).unwrap();
    Backtest {
        journal: journal.to_path_buf(),
        config: Config::parse::<BuiltIn>(&text, "test", &table).unwrap(),
        fill: replay::FillFlags::default(),
        latency: Latency::Constant(Duration::ZERO),
    }
}

fn plan(params: &[&str], threads: usize) -> Plan {
    let grid = Grid::new(params.iter().map(|p| Param::parse(p).unwrap()).collect()).unwrap();
    Plan {
        points: grid.choose(None, 1).unwrap(),
        grid,
        metric: Metric::NetPnl,
        walk_forward: Some((4, 50)),
        monte_carlo: Some((1_000, 3, 1_000)),
        threads,
        progress: false,
    }
}

fn money(text: &str) -> Money {
    Money::parse(text).unwrap()
}

fn target(run: &Run) -> i64 {
    run.params[0].1.as_integer().unwrap()
}

/// 240 s in four folds, half in sample: each window is 48 s, two cycles (see
/// `walk_forward::folds`). Fold 1 and 2 learn the trend and pick t300, which keeps winning
/// out of sample until the regime turns; fold 3 learns a trend and a chop cycle, still picks
/// t300 (+340 − 170 against t100's −60 + 120), and loses out of sample in the chop; fold 4
/// learns the chop and picks t100.
#[test]
fn walk_forward_picks_the_in_sample_winner_and_shows_its_decay_out_of_sample() {
    let dir = tempfile::tempdir().unwrap();
    let bt = backtest(&journal(dir.path()));
    let plan = plan(&["exit.target_bps=100,300"], 2);
    let out = optimise::<BuiltIn>(&bt, &plan).unwrap();
    let wf = out.walk_forward.as_ref().unwrap();
    assert_eq!(wf.folds.len(), 4);
    let picked: Vec<i64> = wf.folds.iter().map(|f| target(&f.best_in_sample)).collect();
    assert_eq!(picked, [300, 300, 300, 100]);

    // Each pick is the in-sample winner: no other point did better in that window.
    for f in &wf.folds {
        let all = bt
            .run_all::<BuiltIn>(
                &plan.grid,
                &plan.points,
                f.in_sample,
                1,
                &ProgressBar::hidden(),
            )
            .unwrap();
        assert!(
            all.iter()
                .all(|r| r.figures.net_pnl <= f.best_in_sample.figures.net_pnl),
            "{all:?}"
        );
        assert!(all.contains(&f.best_in_sample));
    }

    // The decay: fold 3 made money in sample and loses it out of sample.
    let f3 = &wf.folds[2];
    assert!(f3.best_in_sample.figures.net_pnl > Money::ZERO);
    assert!(f3.out_of_sample_run.figures.net_pnl < Money::ZERO);

    // Fold 3 by hand: out of sample are chop cycles 6 and 7, from T0 + 144 s to T0 + 192 s;
    // t300 buys 10 at 1002 and sells at 985 in each. Charges (NSE intraday, per fill):
    // buy 10 × 1002 = 10,020: brokerage 0.03 % = 3.006, exchange 0.00297 % = 0.297594,
    // SEBI 0.01002, stamp 0.003 % = 0.3006, GST 18 % of (3.006 + 0.297594 + 0.01002) =
    // 0.59645052: 4.21066452. Sell 10 × 985 = 9,850: brokerage 2.955, STT 0.025 % = 2.4625,
    // exchange 0.292545, SEBI 0.00985, GST 0.5863311: 6.3062261. A round trip: −170 −
    // 10.51689062 = −180.51689062; two of them: −361.03378124 net, fees 21.03378124.
    assert_eq!(f3.in_sample.from, T0 + 96 * SECOND);
    assert_eq!(f3.out_of_sample.from, T0 + 144 * SECOND);
    assert_eq!(f3.out_of_sample.to, T0 + 192 * SECOND);
    let oos = &f3.out_of_sample_run.figures;
    assert_eq!(oos.trades, 2);
    assert_eq!(oos.fills, 4);
    assert_eq!(oos.fees, money("21.03378124"));
    assert_eq!(oos.net_pnl, money("-361.03378124"));
    assert_eq!(
        f3.out_of_sample_run.trades,
        [money("-180.51689062"), money("-180.51689062")]
    );
    assert_eq!(oos.win_rate, Some(0.0));
    assert_eq!(oos.profit_factor, Some(0.0));

    // Stitched: the out-of-sample P&Ls add up, and the curve starts at the capital.
    let sum = wf
        .folds
        .iter()
        .map(|f| f.out_of_sample_run.figures.net_pnl)
        .fold(Money::ZERO, |a, b| a + b);
    assert_eq!(wf.out_of_sample_net_pnl, sum);
    let capital = bt.config.engine_config().capital;
    assert_eq!(wf.equity.first().unwrap().1, capital);
    assert_eq!(wf.equity.last().unwrap().1, capital + sum);
    assert!(wf.equity.windows(2).all(|w| w[0].0 <= w[1].0));
    assert!(wf.out_of_sample_max_drawdown >= money("361.03378124"));
    // Out of sample: folds 1, 2 and 4 win, fold 3 loses.
    let signs: Vec<bool> = wf
        .folds
        .iter()
        .map(|f| f.out_of_sample_run.figures.net_pnl > Money::ZERO)
        .collect();
    assert_eq!(signs, [true, true, false, true]);

    // On the whole journal t300 (5 × 340 − 5 × 170 = +850) beats t100 (−300 + 600 = +300).
    assert_eq!(target(&out.runs[0]), 300);
    assert_eq!(out.runs[0].figures.trades, 10);
    // One day of data: VaR is that day's result (a gain here: a negative loss).
    assert_eq!(out.daily_risk.days, 1);
    assert_eq!(
        out.daily_risk.var_95,
        Some(Money::ZERO - wf.out_of_sample_net_pnl)
    );
    let mc = out.monte_carlo.as_ref().unwrap();
    assert_eq!(mc.trades, wf.trades.len());
    let json = serde_json::to_value(&out).unwrap();
    assert_eq!(
        json["walk_forward"]["folds"][2]["out_of_sample_run"]["figures"]["net_pnl"],
        "-361.03378124"
    );
    assert_eq!(
        json["runs"][0]["params"]["exit.target_bps"],
        serde_json::json!(300)
    );
}

/// The grid on two threads gives, run for run, what one thread gives: the same figures,
/// round trips and equity curves, bit for bit.
#[test]
fn the_grid_in_parallel_equals_a_sequential_run() {
    let dir = tempfile::tempdir().unwrap();
    let bt = backtest(&journal(dir.path()));
    let params = [
        "lookback=3..6",
        "exit.target_bps=100,200,300",
        "sizing.qty=10,20",
    ];
    let (seq, par) = (plan(&params, 1), plan(&params, 2));
    let bar = ProgressBar::hidden();
    let a = bt
        .run_all::<BuiltIn>(&seq.grid, &seq.points, Window::ALL, 1, &bar)
        .unwrap();
    let b = bt
        .run_all::<BuiltIn>(&par.grid, &par.points, Window::ALL, 2, &bar)
        .unwrap();
    assert_eq!(a.len(), 24);
    assert_eq!(a, b);
    let bits = |runs: &[Run]| -> Vec<Option<u64>> {
        runs.iter()
            .map(|r| r.figures.sharpe.map(f64::to_bits))
            .collect()
    };
    assert_eq!(bits(&a), bits(&b));
    // The points differ (here through the target and the size: 200 and 300 trade alike on
    // these prices, and so do the lookbacks): not one result copied 24 times.
    let distinct: std::collections::BTreeSet<String> =
        a.iter().map(|r| r.figures.net_pnl.to_string()).collect();
    assert_eq!(distinct.len(), 4, "{distinct:?}");
}

/// A parameter the strategy does not have is refused before anything runs, naming it and
/// the strategy's keys.
#[test]
fn an_unknown_parameter_is_refused_with_the_strategys_keys() {
    let dir = tempfile::tempdir().unwrap();
    let bt = backtest(&journal(dir.path()));
    let table = replay::journal_instruments(&bt.journal).unwrap();
    let grid = Grid::new(vec![Param::parse("stop_pbs=50,80").unwrap()]).unwrap();
    let e = grid::check::<BuiltIn>(&bt.config, &grid, &[0, 1], &table)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("\"stop_pbs\"") && e.contains("lookback, stop_bps"),
        "{e}"
    );
}

fn args(journal: &Path, config: &Path, params: &[&str]) -> OptimizeArgs {
    use clap::Parser;
    let mut argv = vec![
        "kestrel".to_string(),
        "optimize".to_string(),
        journal.display().to_string(),
        "--config".to_string(),
        config.display().to_string(),
        "--metric".to_string(),
        "net_pnl".to_string(),
        "--walk-forward".to_string(),
        "4".to_string(),
        "--in-sample".to_string(),
        "50%".to_string(),
        "--monte-carlo".to_string(),
        "100".to_string(),
        "--json".to_string(),
    ];
    for p in params {
        argv.push("--param".to_string());
        argv.push(p.to_string());
    }
    match crate::cli::Cli::try_parse_from(argv).unwrap().command {
        crate::cli::Command::Optimize(a) => a,
        _ => panic!("not optimize"),
    }
}

/// The command line end to end: a configuration file bound to the journal's instruments,
/// the parameters checked, the runs made.
#[test]
fn the_command_runs_from_a_config_file_and_refuses_a_bad_parameter() {
    let dir = tempfile::tempdir().unwrap();
    let journal = journal(dir.path());
    let base = kestrel_testkit::config::any_hour(crate::config::DEFAULT_TOML);
    let (start, end) = (
        base.find("[strategy]\n").unwrap(),
        base.find("[instruments]\n").unwrap(),
    );
    let text = format!("{}{STRATEGY}{}", &base[..start], &base[end..]);
    let config = kestrel_testkit::config::write(dir.path(), "edge.toml", &text);
    let a = args(&journal, &config, &["exit.target_bps=100,300"]);
    assert_eq!(
        (a.metric, a.in_sample, a.walk_forward),
        (Metric::NetPnl, 50, Some(4))
    );
    main::<BuiltIn>(a).unwrap();
    let e = main::<BuiltIn>(args(&journal, &config, &["lookbak=3,5"]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("no parameter \"lookbak\""), "{e}");
    let e = format!(
        "{:#}",
        main::<BuiltIn>(args(&journal, &config, &["lookback=1,5"])).unwrap_err()
    );
    assert!(e.contains("lookback=1") && e.contains("2..=4096"), "{e}");
}

/// The optimiser's runs assume what `kestrel replay` is told: `--fees none` parsed from the
/// command line reaches every run (no fees, a better net P&L), and a run equals the replay
/// of its point with the same flags.
#[test]
fn the_replay_flags_reach_every_run() {
    use clap::Parser;
    let dir = tempfile::tempdir().unwrap();
    let journal = journal(dir.path());
    let nse = backtest(&journal);
    let parsed = crate::cli::Cli::try_parse_from([
        "kestrel",
        "optimize",
        journal.to_str().unwrap(),
        "--param",
        "lookback=4",
        "--fees",
        "none",
        "--fill-at",
        "touch",
        "--latency-us",
        "0",
    ])
    .unwrap();
    let crate::cli::Command::Optimize(flags) = parsed.command else {
        panic!("not optimize")
    };
    assert_eq!(flags.fill.fees, replay::Fees::None);
    let free = Backtest {
        latency: flags.fill.latency().unwrap(),
        fill: flags.fill.clone(),
        ..backtest(&journal)
    };
    let p = plan(&["lookback=4"], 1);
    let run = |bt: &Backtest| {
        bt.run::<BuiltIn>(&p.grid, p.points[0], Window::ALL)
            .unwrap()
    };
    let (paid, unpaid) = (run(&nse), run(&free));
    assert!(paid.figures.fees > Money::ZERO, "{:?}", paid.figures);
    assert_eq!(unpaid.figures.fees, Money::ZERO);
    assert!(unpaid.figures.net_pnl > paid.figures.net_pnl);
    // The same point through replay, with the same flags.
    let mut config = free.config.clone();
    grid::apply(
        config.strategy.as_mut().unwrap(),
        &p.grid.point(p.points[0]),
    );
    let replayed = replay::run::<BuiltIn>(&flags.fill.apply(
        flags.fill.latency().unwrap(),
        replay::ReplayArgs::new(journal.clone(), config),
    ))
    .unwrap();
    assert_eq!(replayed.summary.net_pnl, unpaid.figures.net_pnl.to_string());
    assert_eq!(money(&replayed.summary.fees), Money::ZERO);
}
