//! A measurement, not a check: the connector's peak memory while a peer
//! floods 500 MB and the application takes one event per millisecond.
//! Run it with
//!
//! ```text
//! cargo test --release -p pike --test flood -- --ignored --nocapture
//! ```

mod util;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use pike::converters::BytesConverter;
use pike::{Delivery, Event};
use util::*;

/// `VmHWM` (peak resident memory) or `VmRSS` of this process, in KiB.
fn status_kib(field: &str) -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn flood(message_size: usize) {
    const VOLUME: usize = 500 * 1000 * 1000;
    let count = VOLUME / message_size;
    let c = listening(BytesConverter::new());
    let addr = c.local_addr().unwrap();
    let sent = Arc::new(AtomicUsize::new(0));
    let before = status_kib("VmRSS:");
    let writer = {
        let sent = sent.clone();
        std::thread::spawn(move || {
            let mut s = raw_connect(addr);
            let body = vec![b'f'; message_size];
            let mut msg = format!("{message_size} ").into_bytes();
            msg.extend_from_slice(&body);
            for _ in 0..count {
                write_all(&mut s, &msg);
                sent.fetch_add(msg.len(), Ordering::Relaxed);
            }
            s
        })
    };
    accept(&c, Delivery::Merged);
    // Slow phase: one event per millisecond for 10 seconds.
    let slow_until = Instant::now() + Duration::from_secs(10);
    let mut taken = 0;
    while Instant::now() < slow_until {
        if let Ok(Event::MessageReceived(_)) = c.recv_timeout(WAIT) {
            taken += 1;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let slow_sent = sent.load(Ordering::Relaxed);
    let slow_taken = taken;
    let slow_peak = status_kib("VmHWM:");
    // Fast phase: take everything.
    while taken < count {
        match c.recv_timeout(WAIT) {
            Ok(Event::MessageReceived(_)) => taken += 1,
            other => panic!("{other:?}"),
        }
    }
    let _ = writer.join().unwrap();
    println!(
        "{message_size:>6} B messages: RSS before {:.1} MiB; after the slow phase ({:.1} MB sent by the peer, \
         {} events taken) peak {:.1} MiB; after all {} MB: peak {:.1} MiB",
        before as f64 / 1024.0,
        slow_sent as f64 / 1e6,
        slow_taken,
        slow_peak as f64 / 1024.0,
        VOLUME / 1_000_000,
        status_kib("VmHWM:") as f64 / 1024.0,
    );
}

#[test]
#[ignore = "a measurement: run it on purpose, in release"]
fn flood_peak_rss() {
    flood(1024);
}

#[test]
#[ignore = "a measurement: run it on purpose, in release"]
fn flood_peak_rss_64k() {
    flood(64 * 1024);
}
