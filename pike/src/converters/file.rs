//! Files: the sender enqueues a path, the receiver saves into a directory
//! and delivers the saved path.
//!
//! ```text
//! <name length> ␠ <name> <size digits length> ␠ <size in decimal> <contents>
//! e.g. "9 notes.txt2 11hello world"
//! ```
//!
//! The name and the size use the string form of
//! [`StringConverter`](super::StringConverter), so a Python peer speaking the
//! original's string converter can send files by hand.
//!
//! Contents stream in bounded chunks. Reading (sender) and writing
//! (receiver) happen on a small pool of threads shared by every transfer
//! of the converter, never on the network thread: the serializer and
//! deserializer hand chunks over bounded queues and wait for a callback
//! when the other side is behind, so memory per transfer stays bounded
//! whatever the file size. At most [`DEFAULT_MAX_TRANSFERS`] transfers run
//! at once (configurable); others wait for a slot, their connection's
//! reading paused meanwhile.
//!
//! The receiver writes to a hidden temporary name (`.pike-part.<pid>.<n>`,
//! short whatever the file's name) and renames when the last byte is
//! written, so a transfer cut off midway leaves no file that looks complete
//! (and the temporary file is removed). Temporary files left by a process
//! that died are removed by [`FileConverter::remove_stale_parts`]. A name
//! that exists gets `_(1)`, `_(2)`, … before its extension. A name with a
//! path separator, `.`, `..`, a NUL or nothing at all is a protocol error:
//! nothing is written outside the directory. Files larger than the maximum
//! file size ([`DEFAULT_MAX_FILE_SIZE`] unless set) are refused before
//! anything is written.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::Waker;
use std::thread::JoinHandle;

use super::primitives::{LengthPrefixed, LengthPrefixedDeserializer};
use crate::converter::{Converter, Decoded, Deserializer, Encoded, Serializer, WriteBuf};
use crate::error::{ProtocolError, SerializeError};
use crate::sync::{Condvar, Mutex, Rank, lock};

/// The default size of one chunk of file contents: 64 KiB.
pub const DEFAULT_CHUNK_SIZE: usize = 64 * 1024;
/// The default threads that read and write files for all transfers: 4.
pub const DEFAULT_IO_THREADS: usize = 4;
/// The default most transfers (sending and receiving) at once: 64.
pub const DEFAULT_MAX_TRANSFERS: usize = 64;
/// The default largest file received: 4 GiB.
pub const DEFAULT_MAX_FILE_SIZE: u64 = 4 << 30;
/// Chunks queued between the network side and the file threads, per
/// transfer.
const CHANNEL_CHUNKS: usize = 4;
/// The longest file name accepted, in bytes (as most file systems).
const MAX_NAME_LEN: usize = 255;

/// Sends files by path; saves received files into a directory and delivers
/// their saved paths.
///
/// Clones share one pool of file threads and one bound on transfers.
#[derive(Debug, Clone)]
pub struct FileConverter {
    directory: PathBuf,
    chunk_size: usize,
    max_file_size: u64,
    pool: Arc<Pool>,
}

impl FileConverter {
    /// Received files are saved into `directory`, which must exist.
    pub fn new(directory: impl Into<PathBuf>) -> Self {
        Self {
            directory: directory.into(),
            chunk_size: DEFAULT_CHUNK_SIZE,
            max_file_size: DEFAULT_MAX_FILE_SIZE,
            pool: Arc::new(Pool::new(DEFAULT_IO_THREADS, DEFAULT_MAX_TRANSFERS)),
        }
    }

    /// Sets the chunk size (default [`DEFAULT_CHUNK_SIZE`]). Memory per
    /// transfer is a small multiple of it.
    pub fn with_chunk_size(mut self, bytes: usize) -> Self {
        self.chunk_size = bytes.max(1);
        self
    }

    /// Refuses incoming files larger than `bytes` before anything is
    /// written. Default [`DEFAULT_MAX_FILE_SIZE`] (4 GiB).
    pub fn with_max_file_size(mut self, bytes: u64) -> Self {
        self.max_file_size = bytes;
        self
    }

    /// Sets how many threads read and write files for all transfers
    /// (default [`DEFAULT_IO_THREADS`]) and how many transfers run at once
    /// (default [`DEFAULT_MAX_TRANSFERS`]); a transfer beyond that waits
    /// for one to end, its connection paused. This converter gets a pool
    /// of its own.
    pub fn with_pool(mut self, threads: usize, max_transfers: usize) -> Self {
        self.pool = Arc::new(Pool::new(threads, max_transfers));
        self
    }

    /// Where received files are saved.
    pub fn directory(&self) -> &Path {
        &self.directory
    }

    /// Removes the temporary files that receivers which are no longer
    /// running left in the directory (a process killed mid-transfer), and
    /// returns how many. Only files named by this converter's pattern
    /// (`.pike-part.<pid>.<n>`) whose process is gone are touched; on
    /// systems without `/proc`, those of this process's id only. Call it
    /// when a receiver starts.
    pub fn remove_stale_parts(&self) -> io::Result<usize> {
        let own = std::process::id();
        let mut removed = 0;
        for entry in std::fs::read_dir(&self.directory)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(pid) = name
                .to_str()
                .and_then(|n| n.strip_prefix(TEMP_PREFIX))
                .and_then(|rest| rest.split_once('.'))
                .filter(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|(pid, _)| pid.parse::<u32>().ok())
            else {
                continue;
            };
            let gone = if Path::new("/proc/self").exists() {
                pid != own && !Path::new("/proc").join(pid.to_string()).exists()
            } else {
                false
            };
            if gone && entry.file_type()?.is_file() {
                std::fs::remove_file(entry.path())?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

impl Converter for FileConverter {
    type Message = PathBuf;
    type Serializer = FileSerializer;
    type Deserializer = FileDeserializer;

    fn serializer(&self, _path: &PathBuf) -> FileSerializer {
        FileSerializer {
            chunk_size: self.chunk_size,
            pool: self.pool.clone(),
            slot: None,
            reader: None,
            staged: Vec::new(),
            pos: 0,
            remaining: None,
        }
    }

    fn deserializer(&self) -> FileDeserializer {
        FileDeserializer {
            directory: self.directory.clone(),
            chunk_size: self.chunk_size,
            max_file_size: self.max_file_size,
            pool: self.pool.clone(),
            state: RecvState::Name(name_field()),
            name: String::new(),
        }
    }

    fn message_size(&self, path: &PathBuf) -> usize {
        std::mem::size_of::<PathBuf>() + path.as_os_str().len()
    }

    /// A received file is on disk: its message, a path, holds none of it.
    fn holds_input(&self) -> bool {
        false
    }
}

fn name_field() -> LengthPrefixedDeserializer<String> {
    LengthPrefixed::<String>::new()
        .with_max_message_size(MAX_NAME_LEN)
        .deserializer()
}

fn size_field() -> LengthPrefixedDeserializer<String> {
    LengthPrefixed::<String>::new()
        .with_max_message_size(20)
        .deserializer()
}

// ----- the pool of file threads ---------------------------------------------

type Job = Box<dyn FnOnce() + Send>;

/// The threads that read and write files for every transfer of a
/// converter (and its clones), and the bound on transfers at once.
///
/// A transfer never owns a thread: each has at most one job queued or
/// running at a time, which moves a few chunks and returns, so a stalled
/// transfer costs a slot and an open file, not a thread. Threads start as
/// jobs need them, up to the pool's size, and are joined when the last
/// clone of the converter goes (after finishing the queued jobs, so that
/// the temporary files of transfers cut off are removed).
#[derive(Debug)]
struct Pool {
    shared: Arc<PoolShared>,
    max_threads: usize,
}

#[derive(Debug)]
struct PoolShared {
    state: Mutex<PoolState>,
    work: Condvar,
    slots: Mutex<Slots>,
}

#[derive(Default)]
struct PoolState {
    jobs: VecDeque<Job>,
    idle: usize,
    threads: Vec<JoinHandle<()>>,
    closed: bool,
}

impl std::fmt::Debug for PoolState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolState")
            .field("jobs", &self.jobs.len())
            .field("threads", &self.threads.len())
            .finish_non_exhaustive()
    }
}

/// Transfer slots: how many are free, and who waits for one.
#[derive(Debug, Default)]
struct Slots {
    free: usize,
    waiting: Vec<Waker>,
}

impl Pool {
    fn new(max_threads: usize, max_transfers: usize) -> Self {
        let shared = Arc::new(PoolShared {
            state: Mutex::new(Rank::FilePool, PoolState::default()),
            work: Condvar::new(),
            slots: Mutex::new(Rank::FileSlots, Slots::default()),
        });
        lock(&shared.slots).free = max_transfers.max(1);
        Self {
            shared,
            max_threads: max_threads.max(1),
        }
    }

    fn submit(&self, job: Job) {
        let mut state = lock(&self.shared.state);
        state.jobs.push_back(job);
        if state.idle > 0 {
            drop(state);
            self.shared.work.notify_one();
            return;
        }
        if state.threads.len() < self.max_threads {
            let shared = self.shared.clone();
            let spawned = std::thread::Builder::new()
                .name("pike-file-io".into())
                .spawn(move || shared.work_loop());
            match spawned {
                Ok(handle) => state.threads.push(handle),
                // Queued for the threads there are (there is at least one
                // unless none could ever start, then the job waits).
                Err(e) => tracing::warn!("cannot start a file thread: {e}"),
            }
        }
    }

    /// A transfer slot, or `None` after registering `waker` to be woken
    /// when one frees up.
    fn acquire(&self, waker: &Waker) -> Option<TransferSlot> {
        let mut slots = lock(&self.shared.slots);
        if slots.free > 0 {
            slots.free -= 1;
            return Some(TransferSlot(self.shared.clone()));
        }
        if !slots.waiting.iter().any(|w| w.will_wake(waker)) {
            slots.waiting.push(waker.clone());
        }
        None
    }
}

impl PoolShared {
    fn work_loop(&self) {
        loop {
            let mut state = lock(&self.state);
            let job = loop {
                if let Some(job) = state.jobs.pop_front() {
                    break job;
                }
                if state.closed {
                    return;
                }
                state.idle += 1;
                state = self.work.wait(state);
                state.idle -= 1;
            };
            drop(state);
            // A job that panics must not take the thread (and its queue)
            // with it; its transfer sees its state dropped and fails.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        let threads = {
            let mut state = lock(&self.shared.state);
            state.closed = true;
            std::mem::take(&mut state.threads)
        };
        self.shared.work.notify_all();
        for thread in threads {
            let _ = thread.join();
        }
    }
}

/// One transfer's place among the transfers at once; given back on drop.
#[derive(Debug)]
struct TransferSlot(Arc<PoolShared>);

impl Drop for TransferSlot {
    fn drop(&mut self) {
        let waiting = {
            let mut slots = lock(&self.0.slots);
            slots.free += 1;
            std::mem::take(&mut slots.waiting)
        };
        // Everyone waiting tries again; those that lose register again.
        for waker in waiting {
            waker.wake();
        }
    }
}

/// State shared by a transfer's network side and its jobs, and the
/// waker of the network side.
#[derive(Debug)]
struct Transfer<S> {
    state: Mutex<S>,
    /// Signalled when a job stops (for a network side that is going away).
    stopped: Condvar,
}

impl<S> Transfer<S> {
    fn new(state: S) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(Rank::FileJob, state),
            stopped: Condvar::new(),
        })
    }
}

fn wake(waker: &mut Option<Waker>) {
    if let Some(w) = waker.take() {
        w.wake();
    }
}

// ----- sending ---------------------------------------------------------------

/// What the reading job hands to the serializer.
#[derive(Debug)]
enum ReadChunk {
    /// The wire header (name and size, and the contents of a file read
    /// whole), and how many content bytes follow it.
    Header(Vec<u8>, u64),
    Data(Vec<u8>),
    Failed(io::Error),
}

#[derive(Debug)]
struct ReadState {
    path: PathBuf,
    name: String,
    chunk_size: usize,
    file: Option<File>,
    /// Content bytes the reader has still to read; `None` before opening.
    left: Option<u64>,
    chunks: VecDeque<ReadChunk>,
    /// A job is queued or running.
    running: bool,
    /// Everything is read (or failed): no job is needed any more.
    done: bool,
    /// The serializer went away.
    abandoned: bool,
    waker: Option<Waker>,
}

/// Streams one file: jobs on the converter's pool read it in chunks.
#[derive(Debug)]
pub struct FileSerializer {
    chunk_size: usize,
    pool: Arc<Pool>,
    slot: Option<TransferSlot>,
    reader: Option<Arc<Transfer<ReadState>>>,
    /// Bytes taken from the reader and not yet all in the write buffer.
    staged: Vec<u8>,
    pos: usize,
    /// Content bytes still to come; `None` before the header.
    remaining: Option<u64>,
}

impl FileSerializer {
    fn start(&mut self, path: &Path) -> Result<(), SerializeError> {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| {
                SerializeError::Io(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{}: no UTF-8 file name", path.display()),
                ))
            })?
            .to_owned();
        if name.len() > MAX_NAME_LEN {
            return Err(SerializeError::Io(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("file name longer than {MAX_NAME_LEN} bytes"),
            )));
        }
        self.reader = Some(Transfer::new(ReadState {
            path: path.to_owned(),
            name,
            chunk_size: self.chunk_size,
            file: None,
            left: None,
            chunks: VecDeque::new(),
            running: false,
            done: false,
            abandoned: false,
            waker: None,
        }));
        Ok(())
    }

    /// Queues a reading job unless one is queued or running, or none is
    /// needed.
    fn schedule(&self, state: &mut ReadState) {
        if state.running || state.done || state.chunks.len() >= CHANNEL_CHUNKS {
            return;
        }
        state.running = true;
        let transfer = self.reader.clone().expect("started");
        self.pool.submit(Box::new(move || read_job(&transfer)));
    }
}

impl Drop for FileSerializer {
    fn drop(&mut self) {
        if let Some(reader) = &self.reader {
            let mut state = lock(&reader.state);
            state.abandoned = true;
            // The file is closed by the job, or here.
            if !state.running {
                state.file = None;
            }
        }
    }
}

/// The reading job: a few chunks, then it returns (to be queued again
/// when the serializer has taken them). The state is unlocked while the
/// file is read, so the serializer never waits for the disk.
fn read_job(transfer: &Transfer<ReadState>) {
    let mut state = lock(&transfer.state);
    while !state.abandoned && !state.done && state.chunks.len() < CHANNEL_CHUNKS {
        let mut file = state.file.take();
        let mut left = state.left;
        let (path, name, chunk_size) = (state.path.clone(), state.name.clone(), state.chunk_size);
        drop(state);
        let chunk = read_next(&mut file, &mut left, &path, &name, chunk_size);
        state = lock(&transfer.state);
        state.file = file;
        state.left = left;
        state.done = matches!(chunk, ReadChunk::Failed(_)) || left == Some(0);
        state.chunks.push_back(chunk);
        wake(&mut state.waker);
    }
    if state.abandoned || state.done {
        state.file = None;
    }
    state.running = false;
    transfer.stopped.notify_all();
}

/// Reads what comes next: the header once the file is open, then chunks.
/// `left` is the content still to read, `None` before the file is open.
fn read_next(
    file: &mut Option<File>,
    left: &mut Option<u64>,
    path: &Path,
    name: &str,
    chunk_size: usize,
) -> ReadChunk {
    let Some(to_read) = *left else {
        return match open_for_sending(path) {
            Ok((opened, size, prefix)) => {
                let digits = size.to_string();
                let mut header =
                    format!("{} {name}{} {digits}", name.len(), digits.len()).into_bytes();
                // A file whose size was not known up front (such as one
                // under /proc) was read whole already: it goes with the
                // header.
                header.extend_from_slice(&prefix);
                let rest = size - prefix.len() as u64;
                *left = Some(rest);
                *file = opened;
                ReadChunk::Header(header, rest)
            }
            Err(e) => {
                ReadChunk::Failed(io::Error::new(e.kind(), format!("{}: {e}", path.display())))
            }
        };
    };
    let Some(f) = file else {
        return ReadChunk::Failed(io::Error::other("file closed"));
    };
    let want = (chunk_size as u64).min(to_read) as usize;
    let mut chunk = vec![0; want];
    let n = loop {
        match f.read(&mut chunk) {
            Ok(0) => {
                return ReadChunk::Failed(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("{} shrank while being sent", path.display()),
                ));
            }
            Ok(n) => break n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return ReadChunk::Failed(e),
        }
    };
    chunk.truncate(n);
    let rest = to_read - n as u64;
    *left = Some(rest);
    if rest == 0 {
        // The size was taken when the file was opened: a file that grew
        // since would go out cut short and be reported as sent.
        match f.read(&mut [0u8]) {
            Ok(0) => {}
            Ok(_) => {
                return ReadChunk::Failed(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{} grew while being sent", path.display()),
                ));
            }
            Err(e) => return ReadChunk::Failed(e),
        }
    }
    ReadChunk::Data(chunk)
}

/// The most read into memory of a file whose size is not known up front.
const UNSIZED_MAX: u64 = 1 << 20;

/// Opens a regular file for sending: the file (unless read whole), its
/// size, and what of it was read already. A file that reports size 0 may
/// still have contents (files under /proc do): it is read whole, up to
/// [`UNSIZED_MAX`], so that the size sent is the real one.
fn open_for_sending(path: &Path) -> io::Result<(Option<File>, u64, Vec<u8>)> {
    let mut file = File::open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    if meta.len() > 0 {
        return Ok((Some(file), meta.len(), Vec::new()));
    }
    let mut whole = Vec::new();
    (&mut file).take(UNSIZED_MAX + 1).read_to_end(&mut whole)?;
    if whole.len() as u64 > UNSIZED_MAX {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("reports no size and holds more than {UNSIZED_MAX} bytes"),
        ));
    }
    Ok((None, whole.len() as u64, whole))
}

impl Serializer for FileSerializer {
    type Message = PathBuf;

    fn get_bytes(
        &mut self,
        path: &PathBuf,
        out: &mut WriteBuf<'_>,
        waker: &Waker,
    ) -> Result<Encoded, SerializeError> {
        if self.slot.is_none() {
            match self.pool.acquire(waker) {
                Some(slot) => self.slot = Some(slot),
                None => return Ok(Encoded::Pending),
            }
        }
        if self.reader.is_none() {
            self.start(path)?;
        }
        loop {
            self.pos += out.put(&self.staged[self.pos..]);
            if self.pos < self.staged.len() {
                return Ok(Encoded::More);
            }
            if self.remaining == Some(0) {
                return Ok(Encoded::Done);
            }
            let reader = self.reader.clone().expect("started above");
            let mut state = lock(&reader.state);
            let Some(chunk) = state.chunks.pop_front() else {
                state.waker = Some(waker.clone());
                self.schedule(&mut state);
                return Ok(Encoded::Pending);
            };
            self.schedule(&mut state);
            drop(state);
            match chunk {
                ReadChunk::Header(header, rest) => {
                    self.staged = header;
                    self.remaining = Some(rest);
                }
                ReadChunk::Data(data) => {
                    let left = self.remaining.unwrap_or(0);
                    self.remaining = Some(left.saturating_sub(data.len() as u64));
                    self.staged = data;
                }
                ReadChunk::Failed(e) => return Err(SerializeError::Io(e)),
            }
            self.pos = 0;
        }
    }
}

// ----- receiving -------------------------------------------------------------

/// What the writing job reports when done.
type Saved = Result<PathBuf, io::Error>;

#[derive(Debug)]
struct WriteState {
    dir: PathBuf,
    name: String,
    temp: Option<PathBuf>,
    file: Option<File>,
    chunks: VecDeque<Vec<u8>>,
    /// Every chunk is handed over: publish once written.
    finish: bool,
    running: bool,
    abandoned: bool,
    /// The outcome, once published or failed.
    outcome: Option<Saved>,
    waker: Option<Waker>,
}

#[derive(Debug)]
enum RecvState {
    Name(LengthPrefixedDeserializer<String>),
    Size(LengthPrefixedDeserializer<String>),
    /// Waiting for a transfer slot.
    Slot(u64),
    Body {
        writer: Arc<Transfer<WriteState>>,
        _slot: TransferSlot,
        chunk: Vec<u8>,
        remaining: u64,
    },
    Finished,
}

/// Receives one file into the directory.
#[derive(Debug)]
pub struct FileDeserializer {
    directory: PathBuf,
    chunk_size: usize,
    max_file_size: u64,
    pool: Arc<Pool>,
    state: RecvState,
    name: String,
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// The prefix of the receiver's temporary files: `.pike-part.<pid>.<n>`,
/// whatever the file's name, so that no valid name is pushed over the
/// file system's limit and stale ones are known by their pattern.
const TEMP_PREFIX: &str = ".pike-part.";

fn temp_name(dir: &Path) -> PathBuf {
    dir.join(format!(
        "{TEMP_PREFIX}{}.{}",
        std::process::id(),
        TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ))
}

impl FileDeserializer {
    fn start_body(&mut self, size: u64, waker: &Waker) -> Result<bool, ProtocolError> {
        let Some(slot) = self.pool.acquire(waker) else {
            self.state = RecvState::Slot(size);
            return Ok(false);
        };
        let writer = Transfer::new(WriteState {
            dir: self.directory.clone(),
            name: self.name.clone(),
            temp: None,
            file: None,
            chunks: VecDeque::new(),
            finish: false,
            running: false,
            abandoned: false,
            outcome: None,
            waker: None,
        });
        self.state = RecvState::Body {
            writer,
            _slot: slot,
            chunk: Vec::new(),
            remaining: size,
        };
        if size == 0 {
            self.schedule_finish();
        }
        Ok(true)
    }

    fn schedule(pool: &Pool, writer: &Arc<Transfer<WriteState>>, state: &mut WriteState) {
        if !state.running {
            state.running = true;
            let writer = writer.clone();
            pool.submit(Box::new(move || write_job(&writer)));
        }
    }

    fn schedule_finish(&mut self) {
        if let RecvState::Body { writer, .. } = &self.state {
            let mut state = lock(&writer.state);
            state.finish = true;
            Self::schedule(&self.pool, writer, &mut state);
        }
    }
}

impl Drop for FileDeserializer {
    fn drop(&mut self) {
        let RecvState::Body { writer, .. } = &self.state else {
            return;
        };
        // Cut off (or the file was published and its path not taken):
        // leave nothing that looks like the file. A running job stops
        // after its chunk and removes the temporary file; wait for it, so
        // that it is gone when the connection's end is reported.
        let mut state = lock(&writer.state);
        state.abandoned = true;
        while state.running {
            state = writer.stopped.wait(state);
        }
        discard(&mut state);
    }
}

/// Closes and removes the temporary file, if any.
fn discard(state: &mut WriteState) {
    state.file = None;
    if let Some(temp) = state.temp.take() {
        let _ = std::fs::remove_file(temp);
    }
}

/// The writing job: writes the chunks handed over, then returns; when the
/// last is written, gives the file its name.
fn write_job(transfer: &Transfer<WriteState>) {
    let mut state = lock(&transfer.state);
    loop {
        if state.abandoned || state.outcome.is_some() {
            break;
        }
        if state.temp.is_none() {
            let temp = temp_name(&state.dir);
            match File::create_new(&temp) {
                Ok(f) => {
                    state.file = Some(f);
                    state.temp = Some(temp);
                }
                Err(e) => {
                    state.outcome = Some(Err(e));
                    break;
                }
            }
        }
        if let Some(chunk) = state.chunks.pop_front() {
            // Room for another chunk: the deserializer may go on.
            wake(&mut state.waker);
            // Unlocked while writing: the deserializer never waits for
            // the disk.
            let mut file = state.file.take().expect("created above");
            drop(state);
            let written = file.write_all(&chunk);
            state = lock(&transfer.state);
            state.file = Some(file);
            if let Err(e) = written {
                discard(&mut state);
                state.outcome = Some(Err(e));
                break;
            }
            continue;
        }
        if state.finish {
            state.file = None;
            let temp = state.temp.take().expect("created above");
            let result = publish(&temp, &state.dir, &state.name);
            if result.is_err() {
                let _ = std::fs::remove_file(&temp);
            }
            state.outcome = Some(result);
        }
        break;
    }
    if state.outcome.is_some() {
        wake(&mut state.waker);
    }
    state.running = false;
    transfer.stopped.notify_all();
}

/// Gives the temporary file its final name, never replacing a file:
/// `name`, else `stem_(1).ext`, `stem_(2).ext`, …
fn publish(temp: &Path, dir: &Path, name: &str) -> Saved {
    let (stem, ext) = match name.rfind('.') {
        Some(i) if i > 0 => (&name[..i], &name[i..]),
        _ => (name, ""),
    };
    for n in 0u64.. {
        let candidate = if n == 0 {
            dir.join(name)
        } else {
            dir.join(format!("{stem}_({n}){ext}"))
        };
        // A hard link fails if the name exists, atomically.
        match std::fs::hard_link(temp, &candidate) {
            Ok(()) => {
                std::fs::remove_file(temp)?;
                return Ok(candidate);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    unreachable!("some name is free")
}

/// A name that cannot leave the directory: one plain component.
fn check_name(name: &str) -> Result<(), ProtocolError> {
    let unsafe_name = name.is_empty()
        || name == "."
        || name == ".."
        || name.contains(['/', '\\', '\0'])
        || Path::new(name).is_absolute();
    if unsafe_name {
        Err(ProtocolError::UnsafeFileName(name.to_owned()))
    } else {
        Ok(())
    }
}

impl Deserializer for FileDeserializer {
    type Message = PathBuf;

    fn put_bytes(
        &mut self,
        data: &[u8],
        waker: &Waker,
    ) -> Result<(usize, Decoded<PathBuf>), ProtocolError> {
        let mut used = 0;
        loop {
            match &mut self.state {
                RecvState::Name(field) => {
                    let (n, status) = field.put_bytes(&data[used..], waker)?;
                    used += n;
                    let Decoded::Done(name) = status else {
                        return Ok((used, Decoded::NeedMore));
                    };
                    check_name(&name)?;
                    self.name = name;
                    self.state = RecvState::Size(size_field());
                }
                RecvState::Size(field) => {
                    let (n, status) = field.put_bytes(&data[used..], waker)?;
                    used += n;
                    let Decoded::Done(digits) = status else {
                        return Ok((used, Decoded::NeedMore));
                    };
                    let size: u64 =
                        if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
                            digits.parse().map_err(|_| ProtocolError::NumberOverflow)?
                        } else {
                            return Err(ProtocolError::InvalidNumber);
                        };
                    if size > self.max_file_size {
                        return Err(ProtocolError::TooLarge {
                            length: size,
                            limit: usize::try_from(self.max_file_size).unwrap_or(usize::MAX),
                        });
                    }
                    if !self.start_body(size, waker)? {
                        return Ok((used, Decoded::Pending));
                    }
                }
                RecvState::Slot(size) => {
                    let size = *size;
                    if !self.start_body(size, waker)? {
                        return Ok((used, Decoded::Pending));
                    }
                }
                RecvState::Body {
                    writer,
                    chunk,
                    remaining,
                    ..
                } => {
                    // Fill the chunk; hand it over when full or last.
                    let take = (*remaining)
                        .min((self.chunk_size - chunk.len()) as u64)
                        .min((data.len() - used) as u64) as usize;
                    if chunk.capacity() == 0 && take > 0 {
                        chunk.reserve_exact(self.chunk_size.min(*remaining as usize));
                    }
                    chunk.extend_from_slice(&data[used..used + take]);
                    used += take;
                    *remaining -= take as u64;
                    let ready =
                        chunk.len() == self.chunk_size || (*remaining == 0 && !chunk.is_empty());
                    let mut state = lock(&writer.state);
                    if let Some(Err(_)) = &state.outcome {
                        let Some(Err(e)) = state.outcome.take() else {
                            unreachable!("matched above")
                        };
                        return Err(ProtocolError::Other(Box::new(e)));
                    }
                    if ready {
                        if state.chunks.len() >= CHANNEL_CHUNKS {
                            // The job wakes us when it takes one.
                            state.waker = Some(waker.clone());
                            return Ok((used, Decoded::Pending));
                        }
                        state.chunks.push_back(std::mem::take(chunk));
                        state.finish = *remaining == 0;
                        Self::schedule(&self.pool, writer, &mut state);
                        continue;
                    }
                    if *remaining > 0 {
                        return Ok((used, Decoded::NeedMore));
                    }
                    // Everything handed over: wait for the rename.
                    let Some(result) = state.outcome.take() else {
                        state.waker = Some(waker.clone());
                        return Ok((used, Decoded::Pending));
                    };
                    drop(state);
                    self.state = RecvState::Finished;
                    let path = result.map_err(|e| ProtocolError::Other(Box::new(e)))?;
                    return Ok((used, Decoded::Done(path)));
                }
                RecvState::Finished => return Ok((used, Decoded::NeedMore)),
            }
        }
    }
}
