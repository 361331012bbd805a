//! `pike-compare`: Pike against raw sockets, ZeroMQ, message-io and tokio on
//! 127.0.0.1, interleaved (A B C A B C) so that drift on a shared machine
//! hits every system alike.
//!
//! Every run verifies what arrived (count and sizes) and is bounded in time;
//! a run that fails is reported as a failure, never as a figure.
//!
//! ```text
//! bench/run            # installs libzmq, builds with ZeroMQ, runs, draws the chart
//! cargo run --release -p pike-compare -- [--quick] [--runs N] [--count N] [--csv FILE]
//! ```

mod certs;
mod extras;
mod systems;

use std::collections::HashMap;
use std::time::Duration;

use systems::System;

/// The longest a single run may take.
pub(crate) const RUN_LIMIT: Duration = Duration::from_secs(60);

/// What one run measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Metric {
    /// One-way throughput of messages of this many bytes, one connection.
    Throughput(usize),
    /// Ping-pong round trip of 16-byte messages.
    Latency,
}

impl Metric {
    /// The metric's name in `--metrics` and in the CSV: `thr16`, `lat`.
    fn key(self) -> String {
        match self {
            Metric::Throughput(size) => format!("thr{size}"),
            Metric::Latency => "lat".into(),
        }
    }
}

/// The figure of one run.
#[derive(Debug, Clone, Copy)]
enum Figure {
    /// Messages per second.
    Rate(f64),
    /// p50 and p99 round trip in microseconds.
    RoundTrip(f64, f64),
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [flag, addr, n] = &args[..]
        && flag == "--idle-clients"
    {
        extras::hold_idle_clients(addr, n.parse().unwrap_or(0));
        return;
    }
    if let [flag, n] = &args[..]
        && flag == "--idle-server"
    {
        match extras::idle_connections(n.parse().unwrap_or(0)) {
            Ok(bytes) => println!("{bytes}"),
            Err(e) => {
                eprintln!("{e}");
                std::process::exit(1);
            }
        }
        return;
    }
    let quick = args.iter().any(|a| a == "--quick");
    let runs: usize = args
        .iter()
        .position(|a| a == "--runs")
        .and_then(|i| args.get(i + 1)?.parse().ok())
        .unwrap_or(3);
    let scale = if quick { 10 } else { 1 };
    // `--count N` runs every metric with N messages (for callgrind's
    // marginal cost: the difference of two counts).
    let count: Option<usize> = args
        .iter()
        .position(|a| a == "--count")
        .and_then(|i| args.get(i + 1)?.parse().ok());
    let metrics = [
        (Metric::Throughput(16), 2_000_000 / scale),
        (Metric::Throughput(256), 1_000_000 / scale),
        (Metric::Throughput(64 * 1024), 20_000 / scale),
        (Metric::Latency, 20_000 / scale),
    ]
    .map(|(m, n)| (m, count.unwrap_or(n)));
    // `--systems pike,raw` and `--metrics thr16,lat` narrow a run down,
    // for profiling one path; the default is everything.
    let wanted = |flag: &str| -> Option<Vec<String>> {
        let i = args.iter().position(|a| a == flag)?;
        Some(args.get(i + 1)?.split(',').map(str::to_owned).collect())
    };
    let systems: Vec<Box<dyn System>> = match wanted("--systems") {
        Some(names) => systems::all()
            .into_iter()
            .filter(|s| names.iter().any(|n| n == s.name()))
            .collect(),
        None => systems::all(),
    };
    let metrics: Vec<(Metric, usize)> = match wanted("--metrics") {
        Some(names) => metrics
            .into_iter()
            .filter(|(m, _)| names.iter().any(|n| *n == m.key()))
            .collect(),
        None => metrics.to_vec(),
    };
    let mut results: HashMap<(&str, Metric), Vec<Figure>> = HashMap::new();
    // Peak RSS of the process (both peers) during each throughput run, MB.
    let mut rss: HashMap<(&str, Metric), Vec<f64>> = HashMap::new();
    // Context switches of the process per 1,000 messages in each run.
    let mut switches: HashMap<(&str, Metric), Vec<f64>> = HashMap::new();
    let mut failures = Vec::new();
    for run in 0..runs {
        for &(metric, count) in &metrics {
            for system in &systems {
                if metric == Metric::Latency && !system.measures_latency() {
                    continue;
                }
                eprint!(
                    "\rrun {}/{runs}: {:<10} {metric:?}          ",
                    run + 1,
                    system.name()
                );
                reset_peak_rss();
                let switches_before = context_switches();
                let outcome = match metric {
                    Metric::Throughput(size) => system
                        .throughput(size, count)
                        .map(|d| Figure::Rate(count as f64 / d.as_secs_f64())),
                    Metric::Latency => system.latency(count).map(|mut rtts| {
                        rtts.sort();
                        let at = |q: f64| {
                            rtts[((rtts.len() as f64 * q) as usize).min(rtts.len() - 1)]
                                .as_secs_f64()
                                * 1e6
                        };
                        Figure::RoundTrip(at(0.5), at(0.99))
                    }),
                };
                if let (Ok(_), Metric::Throughput(_), Some(mb)) = (&outcome, metric, peak_rss_mb())
                {
                    rss.entry((system.name(), metric)).or_default().push(mb);
                }
                if let (Ok(_), Metric::Throughput(_), Some(a), Some(b)) =
                    (&outcome, metric, switches_before, context_switches())
                {
                    let per_1000 = (b - a) as f64 * 1000.0 / count as f64;
                    switches
                        .entry((system.name(), metric))
                        .or_default()
                        .push(per_1000);
                }
                match outcome {
                    Ok(f) => results.entry((system.name(), metric)).or_default().push(f),
                    Err(e) => failures.push(format!("{} {metric:?}: {e}", system.name())),
                }
            }
        }
    }
    eprintln!();
    report(&systems, &metrics, &results, &rss, &switches, runs);
    // The extras run in a full run, or when `--metrics` names them
    // (`--metrics idle,doubler`).
    let narrowed = wanted("--systems").is_some() || wanted("--metrics").is_some();
    let extra =
        |name: &str| !narrowed || wanted("--metrics").is_some_and(|m| m.iter().any(|n| n == name));
    if extra("idle") {
        let idle: usize = args
            .iter()
            .position(|a| a == "--idle")
            .and_then(|i| args.get(i + 1)?.parse().ok())
            .unwrap_or(if quick { 1000 } else { 10_000 });
        println!();
        match extras::idle_connections_in_child(idle) {
            Ok(bytes) => {
                println!("idle connections: {idle} on one connector, {bytes:.0} bytes of RSS each")
            }
            Err(e) => failures.push(format!(
                "idle connections: {e} (raise the fd limit: bench/run does)"
            )),
        }
    }
    if extra("doubler") {
        let secs = if quick { 1 } else { 5 };
        match extras::doubler(100, 8, Duration::from_secs(secs)) {
            Ok(rate) => {
                println!("doubler: 100 connections, 8 workers in recv: {rate:.0} requests/s")
            }
            Err(e) => failures.push(format!("doubler: {e}")),
        }
    }
    if let Some(path) = args
        .iter()
        .position(|a| a == "--csv")
        .and_then(|i| args.get(i + 1))
        && let Err(e) = write_csv(path, &systems, &metrics, &results)
    {
        eprintln!("cannot write {path}: {e}");
        std::process::exit(1);
    }
    if !failures.is_empty() {
        for f in &failures {
            eprintln!("FAILED: {f}");
        }
        std::process::exit(1);
    }
}

/// Medians as `system,metric,value` lines: `thr<size>` in messages/s,
/// `p50`/`p99` in microseconds. `bench/chart.py` draws them.
fn write_csv(
    path: &str,
    systems: &[Box<dyn System>],
    metrics: &[(Metric, usize)],
    results: &HashMap<(&str, Metric), Vec<Figure>>,
) -> std::io::Result<()> {
    let mut out = String::from("system,metric,value\n");
    for s in systems {
        for &(metric, _) in metrics {
            let Some(figs) = results.get(&(s.name(), metric)) else {
                continue;
            };
            match metric {
                Metric::Throughput(size) => {
                    let rates = figs.iter().filter_map(|f| match f {
                        Figure::Rate(r) => Some(*r),
                        Figure::RoundTrip(..) => None,
                    });
                    out += &format!("{},thr{size},{:.0}\n", s.name(), median(rates.collect()));
                }
                Metric::Latency => {
                    for (i, name) in ["p50", "p99"].iter().enumerate() {
                        let xs = figs.iter().filter_map(|f| match f {
                            Figure::RoundTrip(a, b) => Some([*a, *b][i]),
                            Figure::Rate(_) => None,
                        });
                        out += &format!("{},{name},{:.1}\n", s.name(), median(xs.collect()));
                    }
                }
            }
        }
    }
    std::fs::write(path, out)
}

/// Starts the process's peak RSS over from its current RSS (Linux),
/// after giving the allocator's free memory back to the system: otherwise
/// what earlier runs freed stays resident, and every run's "peak" is the
/// largest run's so far.
fn reset_peak_rss() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` only returns free heap pages to the system; it
    // takes no pointer and is thread-safe in glibc.
    #[allow(unsafe_code)]
    unsafe {
        nix::libc::malloc_trim(0);
    }
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Context switches of every thread of the process so far, those that
/// ended included, voluntary and not.
fn context_switches() -> Option<nix::libc::c_long> {
    use nix::sys::resource::{UsageWho, getrusage};
    let usage = getrusage(UsageWho::RUSAGE_SELF).ok()?;
    Some(usage.voluntary_context_switches() + usage.involuntary_context_switches())
}

/// The process's peak RSS since the last reset, in MB (Linux).
fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn report(
    systems: &[Box<dyn System>],
    metrics: &[(Metric, usize)],
    results: &HashMap<(&str, Metric), Vec<Figure>>,
    rss: &HashMap<(&str, Metric), Vec<f64>>,
    switches: &HashMap<(&str, Metric), Vec<f64>>,
    runs: usize,
) {
    let rate = |name: &str, m: Metric| -> Option<f64> {
        let figs = results.get(&(name, m))?;
        Some(median(
            figs.iter()
                .filter_map(|f| match f {
                    Figure::Rate(r) => Some(*r),
                    Figure::RoundTrip(..) => None,
                })
                .collect(),
        ))
    };
    let rtt = |name: &str| -> Option<(f64, f64)> {
        let figs = results.get(&(name, Metric::Latency))?;
        let p = |i: usize| {
            median(
                figs.iter()
                    .filter_map(|f| match f {
                        Figure::RoundTrip(a, b) => Some([*a, *b][i]),
                        Figure::Rate(_) => None,
                    })
                    .collect(),
            )
        };
        Some((p(0), p(1)))
    };
    let peers: Vec<&str> = systems
        .iter()
        .map(|s| s.name())
        .filter(|n| !n.starts_with("pike") && *n != "raw" && !n.ends_with("-tls"))
        .collect();
    // tokio: the better of its rows.
    let tokio = |m: Metric| -> Option<f64> {
        ["tokio", "tokio-mt"]
            .iter()
            .filter_map(|n| rate(n, m))
            .fold(None, |a: Option<f64>, r| Some(a.map_or(r, |a| a.max(r))))
    };
    let ratio = |a: Option<f64>, b: Option<f64>| a.zip(b).map(|(a, b)| a / b);
    let show = |r: Option<f64>| r.map_or("-".into(), |r| format!("{r:.2}"));
    println!("pike-compare: 127.0.0.1, medians of {runs} interleaved runs");
    println!(
        "(pike-plain: send_waiting_for_room/recv_timeout one at a time, defaults; pike: send_batch_waiting_for_room/recv_batch with a window)"
    );
    println!();
    println!(
        "{:<22} {}   plain/raw  plain/tokio  batch/tokio",
        "throughput (msg/s)",
        systems
            .iter()
            .map(|s| format!("{:>14}", s.name()))
            .collect::<String>()
    );
    for &(metric, _) in metrics {
        let Metric::Throughput(size) = metric else {
            continue;
        };
        let mut line = format!("{:<22}", format!("{size} B"));
        for s in systems {
            line += &match rate(s.name(), metric) {
                Some(r) => format!("{r:>14.0}"),
                None => format!("{:>14}", "failed"),
            };
        }
        let plain = rate("pike-plain", metric);
        line += &format!(
            "   {:>9}  {:>11}  {:>11}",
            show(ratio(plain, rate("raw", metric))),
            show(ratio(plain, tokio(metric))),
            show(ratio(rate("pike", metric), tokio(metric))),
        );
        println!("{line}");
        let mb = |r: Option<f64>| r.map_or("-".into(), |r| format!("{:.0}", r * size as f64 / 1e6));
        if size >= 1024 {
            println!(
                "{:<22} {}",
                "  (MB/s)",
                systems
                    .iter()
                    .map(|s| format!("{:>14}", mb(rate(s.name(), metric))))
                    .collect::<String>()
            );
        }
        let row = |label: &str, figures: &HashMap<(&str, Metric), Vec<f64>>, digits: usize| {
            println!(
                "{:<22} {}",
                label,
                systems
                    .iter()
                    .map(|s| {
                        let v = figures.get(&(s.name(), metric)).map(|v| median(v.clone()));
                        format!("{:>14}", v.map_or("-".into(), |v| format!("{v:.digits$}")))
                    })
                    .collect::<String>()
            );
        };
        row("  peak RSS (MB)", rss, 0);
        row("  switches/1000 msgs", switches, 1);
    }
    if metrics.iter().any(|(m, _)| *m == Metric::Latency) {
        println!();
        println!("round trip, 16 B (µs): p50 / p99");
        for s in systems.iter().filter(|s| s.measures_latency()) {
            match rtt(s.name()) {
                Some((p50, p99)) => println!("  {:<12} {p50:>8.1} / {p99:>8.1}", s.name()),
                None => println!("  {:<12} failed", s.name()),
            }
        }
    }
    let pike_p50 = rtt("pike-plain").map(|r| r.0);
    let raw_p50 = rtt("raw").map(|r| r.0);
    let best_peer_p50 = peers
        .iter()
        .filter_map(|p| rtt(p).map(|r| r.0))
        .fold(None, |a: Option<f64>, r| Some(a.map_or(r, |a| a.min(r))));
    let fmt = |x: Option<f64>| x.map_or("nan".to_owned(), |x| format!("{x:.2}"));
    // The largest peak RSS of any Pike throughput run (the medians' max).
    let rss_max = rss
        .iter()
        .filter(|((name, _), _)| name.starts_with("pike"))
        .map(|(_, v)| median(v.clone()))
        .fold(None, |a: Option<f64>, v| Some(a.map_or(v, |a| a.max(v))));
    let thr = |size: usize| Metric::Throughput(size);
    println!();
    println!(
        "summary plain16_tokio={} plain256_tokio={} batch16_tokio={} thr64k_raw={} lat16_raw={} lat16_peer={} rss_max_mb={}",
        fmt(ratio(rate("pike-plain", thr(16)), tokio(thr(16)))),
        fmt(ratio(rate("pike-plain", thr(256)), tokio(thr(256)))),
        fmt(ratio(rate("pike", thr(16)), tokio(thr(16)))),
        fmt(ratio(
            rate("pike-plain", thr(64 * 1024)),
            rate("raw", thr(64 * 1024))
        )),
        fmt(ratio(pike_p50, raw_p50)),
        fmt(ratio(pike_p50, best_peer_p50)),
        rss_max.map_or("nan".to_owned(), |v| format!("{v:.0}")),
    );
    // TLS: Pike against tokio-rustls, and what TLS costs Pike.
    if systems.iter().any(|s| s.name() == "pike-tls") {
        let tls_p50 = rtt("pike-tls").map(|r| r.0);
        println!(
            "tls tls16_tokio={} tls64k_tokio={} tls16_plain={} tls64k_plain={} lat16_tls_tokio={} lat16_tls_plain={}",
            fmt(ratio(rate("pike-tls", thr(16)), rate("tokio-tls", thr(16)))),
            fmt(ratio(
                rate("pike-tls", thr(64 * 1024)),
                rate("tokio-tls", thr(64 * 1024))
            )),
            fmt(ratio(
                rate("pike-tls", thr(16)),
                rate("pike-plain", thr(16))
            )),
            fmt(ratio(
                rate("pike-tls", thr(64 * 1024)),
                rate("pike-plain", thr(64 * 1024))
            )),
            fmt(ratio(tls_p50, rtt("tokio-tls").map(|r| r.0))),
            fmt(ratio(tls_p50, pike_p50)),
        );
    }
}
