//! A job queue: the server hands `Job`s to worker connections, two at a
//! time each, and collects the results. A worker that dies mid-job loses
//! nothing: its unsent jobs come back in `RemoteDisconnect`, those it had
//! are in the server's record, and both go to other workers. Only a
//! result for a job the server handed to that worker counts. Run
//! `cargo run --example job_queue --features pike/postcard -- serve 3454 100`
//! and (several times) `... -- work 3454 0`.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::error::Error;
use std::time::Duration;

use clap::Parser;
use pike::converters::serde::PostcardConverter;
use pike::{Connection, Connector, Delivery, Event, ShutdownMode};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Job {
    id: u64,
    name: String,
    payload: Vec<f64>,
}

#[derive(Debug, Serialize, Deserialize)]
enum Msg {
    Job(Job),
    Done { id: u64, sum: f64 },
}

#[derive(Parser)]
enum Args {
    /// Listen on PORT (0: any), hand out JOBS jobs, exit once all are done.
    Serve { port: u16, jobs: u64 },
    /// Connect to PORT and do jobs, taking WORK_MS milliseconds each.
    Work { port: u16, work_ms: u64 },
}

fn serve(port: u16, jobs: u64) -> Result<(), Box<dyn Error>> {
    let server = Connector::builder(PostcardConverter::<Msg>::new())
        .listen(("127.0.0.1", port))
        .spawn()?;
    eprintln!("listening on {}", server.local_address().unwrap());
    let job = |id| Job {
        id,
        name: format!("job-{id}"),
        payload: vec![id as f64; 100],
    };
    let mut pending: VecDeque<Job> = (0..jobs).map(job).collect();
    // The jobs in each worker's hands.
    let mut working: HashMap<Connection, Vec<Job>> = HashMap::new();
    let mut done = BTreeSet::new();
    while (done.len() as u64) < jobs {
        match server.recv()? {
            Event::RemoteConnect(r) => {
                working.insert(r.connection, Vec::new());
                r.finish_accept(Delivery::Merged);
            }
            Event::MessageReceived(m) => {
                let Msg::Done { id, sum } = m.message else {
                    println!("{}: not a result; ignored", m.connection);
                    continue;
                };
                // Only a job handed to this worker, and not yet done,
                // counts: a worker cannot report jobs it never had.
                let hands = working.entry(m.connection).or_default();
                match hands.iter().position(|j| j.id == id) {
                    Some(i) => {
                        hands.remove(i);
                        done.insert(id);
                        println!("done {id} by {} (sum {sum})", m.connection);
                    }
                    None => println!("{}: done {id}, not a job it had; ignored", m.connection),
                }
            }
            Event::RemoteDisconnect(r) => {
                let unsent: Vec<Job> = (r.incomplete.into_iter().chain(r.queued))
                    .filter_map(|m| if let Msg::Job(j) = m { Some(j) } else { None })
                    .collect();
                let mut lost = working.remove(&r.connection).unwrap_or_default();
                lost.retain(|j| unsent.iter().all(|u| u.id != j.id));
                let (n, m) = (unsent.len(), lost.len());
                println!("{} left: {n} jobs back unsent, {m} to redo", r.connection);
                pending.extend(unsent.into_iter().chain(lost));
            }
            _ => {}
        }
        for (worker, hands) in &mut working {
            while hands.len() < 2
                && let Some(job) = pending.pop_front()
            {
                hands.push(job.clone());
                server.send(worker, Msg::Job(job))?;
            }
        }
    }
    println!("all {jobs} jobs done");
    server.shutdown_timeout(ShutdownMode::FinishQueue, Duration::from_secs(5));
    Ok(())
}

fn work(port: u16, work_ms: u64) -> Result<(), Box<dyn Error>> {
    let worker = Connector::builder(PostcardConverter::<Msg>::new()).spawn()?;
    let server = worker.connect_timeout(
        ("127.0.0.1", port),
        Delivery::Merged,
        Duration::from_secs(9),
    )?;
    while let Ok(Event::MessageReceived(m)) = worker.recv() {
        if let Msg::Job(job) = m.message {
            println!("working on {} ({})", job.id, job.name);
            std::thread::sleep(Duration::from_millis(work_ms));
            let sum = job.payload.iter().sum();
            worker.send(&server, Msg::Done { id: job.id, sum })?;
        }
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn Error>> {
    match Args::parse() {
        Args::Serve { port, jobs } => serve(port, jobs),
        Args::Work { port, work_ms } => work(port, work_ms),
    }
}
