//! Test helpers shared by the workspace: driving programs as processes,
//! with a timeout on every wait.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

use crossbeam_channel::Receiver;

/// The longest any single wait may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(20);

/// A running program, with its output lines arriving on channels; killed
/// on drop.
#[derive(Debug)]
pub struct Proc {
    child: Child,
    stdin: Option<ChildStdin>,
    /// Lines the program writes to stdout.
    pub stdout: Receiver<String>,
    /// Lines the program writes to stderr.
    pub stderr: Receiver<String>,
}

fn lines(r: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = crossbeam_channel::unbounded();
    std::thread::spawn(move || {
        for l in BufReader::new(r).lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    rx
}

impl Proc {
    /// Starts `program` with `args`, all three standard streams piped.
    pub fn spawn(program: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> Self {
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn the program");
        let stdin = child.stdin.take();
        let stdout = lines(child.stdout.take().unwrap());
        let stderr = lines(child.stderr.take().unwrap());
        Self {
            child,
            stdin,
            stdout,
            stderr,
        }
    }

    /// The program's process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// A field of the program's `/proc/PID/status` (`Threads`, `VmHWM`,
    /// …), as the number it starts with (kB for sizes); 0 if unreadable.
    pub fn status_field(&self, field: &str) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
                    .and_then(|v| v.split_whitespace().next()?.parse().ok())
            })
            .unwrap_or(0)
    }

    /// Sends the program a signal by name (`INT`, `TERM`), as a person
    /// pressing Ctrl-C or a service manager stopping it would.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args(["-s", name, &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -s {name} failed");
    }

    /// The next line on stdout.
    pub fn stdout_line(&self) -> String {
        self.stdout.recv_timeout(WAIT).expect("a line on stdout")
    }

    /// The next stderr line containing `needle`.
    pub fn stderr_line_with(&self, needle: &str) -> String {
        loop {
            let l = self.stderr.recv_timeout(WAIT).expect("a line on stderr");
            if l.contains(needle) {
                return l;
            }
        }
    }

    /// The address from a `listening on ADDR` line on stderr.
    pub fn listening_addr(&self) -> SocketAddr {
        let l = self.stderr_line_with("listening on ");
        l["listening on ".len()..].parse().unwrap()
    }

    /// Writes `line` and a newline to stdin.
    pub fn type_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    /// Closes stdin (end of input).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Waits for the exit code.
    pub fn wait(&mut self) -> i32 {
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code().unwrap_or(-1);
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the program did not exit"
            );
            std::thread::park_timeout(Duration::from_millis(10));
        }
    }

    /// All of stderr after exit.
    pub fn rest_of_stderr(&self) -> Vec<String> {
        self.stderr.iter().collect()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
