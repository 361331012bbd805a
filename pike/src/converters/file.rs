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
//! (receiver) happen on a helper thread per transfer, never on the network
//! thread: the serializer and deserializer hand chunks over bounded channels
//! and wait for a callback when the other side is behind, so memory per
//! transfer stays bounded whatever the file size.
//!
//! The receiver writes to a hidden temporary name and renames when the last
//! byte is written, so a transfer cut off midway leaves no file that looks
//! complete (and the temporary file is removed). A name that exists gets
//! `_(1)`, `_(2)`, … before its extension. A name with a path separator, `.`,
//! `..`, a NUL or nothing at all is a protocol error: nothing is written
//! outside the directory.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Waker;
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender, TryRecvError, TrySendError};

use super::primitives::{LengthPrefixed, LengthPrefixedDeserializer};
use crate::converter::{Converter, Decoded, Deserializer, Encoded, Serializer, WriteBuf};
use crate::error::{ProtocolError, SerializeError};
use crate::sync::lock;

/// The default size of one chunk of file contents: 64 KiB.
pub const DEFAULT_CHUNK_SIZE: usize = 64 * 1024;
/// Chunks in flight between the network side and a helper thread.
const CHANNEL_CHUNKS: usize = 4;
/// The longest file name accepted, in bytes (as most file systems).
const MAX_NAME_LEN: usize = 255;

/// Sends files by path; saves received files into a directory and delivers
/// their saved paths.
#[derive(Debug, Clone)]
pub struct FileConverter {
    directory: PathBuf,
    chunk_size: usize,
    max_file_size: u64,
}

impl FileConverter {
    /// Received files are saved into `directory`, which must exist.
    pub fn new(directory: impl Into<PathBuf>) -> Self {
        Self {
            directory: directory.into(),
            chunk_size: DEFAULT_CHUNK_SIZE,
            max_file_size: u64::MAX,
        }
    }

    /// Sets the chunk size (default [`DEFAULT_CHUNK_SIZE`]). Memory per
    /// transfer is a small multiple of it.
    pub fn with_chunk_size(mut self, bytes: usize) -> Self {
        self.chunk_size = bytes.max(1);
        self
    }

    /// Refuses incoming files larger than `bytes` (default: no limit) before
    /// anything is written.
    pub fn with_max_file_size(mut self, bytes: u64) -> Self {
        self.max_file_size = bytes;
        self
    }

    /// Where received files are saved.
    pub fn directory(&self) -> &Path {
        &self.directory
    }
}

impl Converter for FileConverter {
    type Message = PathBuf;
    type Serializer = FileSerializer;
    type Deserializer = FileDeserializer;

    fn serializer(&self, _path: &PathBuf) -> FileSerializer {
        FileSerializer {
            chunk_size: self.chunk_size,
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
            state: RecvState::Name(name_field()),
            name: String::new(),
        }
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

/// Where a helper thread leaves the waker to call when it made progress.
#[derive(Debug, Default)]
struct WakeSlot(Mutex<Option<Waker>>);

impl WakeSlot {
    fn register(&self, waker: &Waker) {
        *lock(&self.0) = Some(waker.clone());
    }

    fn wake(&self) {
        let waker = lock(&self.0).take();
        if let Some(w) = waker {
            w.wake();
        }
    }
}

/// A helper thread and the ends of its channel, joined on drop.
#[derive(Debug)]
struct Helper<T> {
    channel: Option<T>,
    slot: Arc<WakeSlot>,
    thread: Option<JoinHandle<()>>,
}

impl<T> Drop for Helper<T> {
    fn drop(&mut self) {
        // Closing the channel first makes the thread stop at once.
        self.channel = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

// ----- sending ---------------------------------------------------------------

/// What the reading thread hands to the serializer.
#[derive(Debug)]
enum ReadChunk {
    /// The file's name and size, staged as the wire header.
    Header(Vec<u8>, u64),
    Data(Vec<u8>),
    Failed(io::Error),
}

/// Streams one file: a helper thread reads it in chunks.
#[derive(Debug)]
pub struct FileSerializer {
    chunk_size: usize,
    reader: Option<Helper<Receiver<ReadChunk>>>,
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
        let (tx, rx) = crossbeam_channel::bounded(CHANNEL_CHUNKS);
        let slot = Arc::new(WakeSlot::default());
        let (path, chunk_size, thread_slot) = (path.to_owned(), self.chunk_size, slot.clone());
        let thread = std::thread::Builder::new()
            .name("pike-file-read".into())
            .spawn(move || read_file(&path, &name, chunk_size, &tx, &thread_slot))
            .map_err(SerializeError::Io)?;
        self.reader = Some(Helper {
            channel: Some(rx),
            slot,
            thread: Some(thread),
        });
        Ok(())
    }
}

/// The reading thread: header, then the contents in chunks, each followed
/// by a wake. Stops when the serializer goes away.
fn read_file(path: &Path, name: &str, chunk_size: usize, tx: &Sender<ReadChunk>, slot: &WakeSlot) {
    let send = |chunk| {
        let ok = tx.send(chunk).is_ok();
        slot.wake();
        ok
    };
    let opened = File::open(path).and_then(|f| {
        let meta = f.metadata()?;
        if !meta.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a regular file",
            ));
        }
        Ok((f, meta.len()))
    });
    let (mut file, size) = match opened {
        Ok(x) => x,
        Err(e) => {
            send(ReadChunk::Failed(io::Error::new(
                e.kind(),
                format!("{}: {e}", path.display()),
            )));
            return;
        }
    };
    let digits = size.to_string();
    let header = format!("{} {name}{} {digits}", name.len(), digits.len()).into_bytes();
    if !send(ReadChunk::Header(header, size)) {
        return;
    }
    let mut left = size;
    while left > 0 {
        let want = (chunk_size as u64).min(left) as usize;
        let mut chunk = vec![0; want];
        match file.read(&mut chunk) {
            Ok(0) => {
                send(ReadChunk::Failed(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("{} shrank while being sent", path.display()),
                )));
                return;
            }
            Ok(n) => {
                chunk.truncate(n);
                left -= n as u64;
                if !send(ReadChunk::Data(chunk)) {
                    return;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                send(ReadChunk::Failed(e));
                return;
            }
        }
    }
}

impl Serializer for FileSerializer {
    type Message = PathBuf;

    fn get_bytes(
        &mut self,
        path: &PathBuf,
        out: &mut WriteBuf<'_>,
        waker: &Waker,
    ) -> Result<Encoded, SerializeError> {
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
            let reader = self.reader.as_ref().expect("started above");
            let rx = reader.channel.as_ref().expect("open while serializing");
            let chunk = match rx.try_recv() {
                Ok(chunk) => chunk,
                Err(TryRecvError::Empty) => {
                    // Register, then look again: the chunk may have come
                    // between the two.
                    reader.slot.register(waker);
                    match rx.try_recv() {
                        Ok(chunk) => chunk,
                        Err(TryRecvError::Empty) => return Ok(Encoded::Pending),
                        Err(TryRecvError::Disconnected) => return Err(reader_gone()),
                    }
                }
                Err(TryRecvError::Disconnected) => return Err(reader_gone()),
            };
            match chunk {
                ReadChunk::Header(header, size) => {
                    self.staged = header;
                    self.remaining = Some(size);
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

fn reader_gone() -> SerializeError {
    SerializeError::Io(io::Error::other("file reader stopped"))
}

// ----- receiving -------------------------------------------------------------

/// What the writing thread reports when done.
type Saved = Result<PathBuf, io::Error>;

#[derive(Debug)]
enum RecvState {
    Name(LengthPrefixedDeserializer<String>),
    Size(LengthPrefixedDeserializer<String>),
    Body {
        writer: Helper<Sender<Vec<u8>>>,
        saved: Receiver<Saved>,
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
    state: RecvState,
    name: String,
}

impl FileDeserializer {
    fn start_body(&mut self, size: u64) -> Result<(), ProtocolError> {
        let (tx, rx) = crossbeam_channel::bounded::<Vec<u8>>(CHANNEL_CHUNKS);
        let (saved_tx, saved_rx) = crossbeam_channel::bounded(1);
        let slot = Arc::new(WakeSlot::default());
        let (dir, name, thread_slot) = (self.directory.clone(), self.name.clone(), slot.clone());
        let thread = std::thread::Builder::new()
            .name("pike-file-write".into())
            .spawn(move || {
                let result = write_file(&dir, &name, size, &rx, &thread_slot);
                // Only a finished transfer is reported; a cut one is gone.
                if let Some(result) = result {
                    let _ = saved_tx.send(result);
                }
                thread_slot.wake();
            })
            .map_err(|e| ProtocolError::Other(Box::new(e)))?;
        self.state = RecvState::Body {
            writer: Helper {
                channel: Some(tx),
                slot,
                thread: Some(thread),
            },
            saved: saved_rx,
            chunk: Vec::new(),
            remaining: size,
        };
        Ok(())
    }
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// The writing thread: a temporary file, renamed once complete. Returns
/// `None` if the transfer was cut off (the temporary file is removed).
fn write_file(
    dir: &Path,
    name: &str,
    size: u64,
    rx: &Receiver<Vec<u8>>,
    slot: &WakeSlot,
) -> Option<Saved> {
    let temp = dir.join(format!(
        ".{name}.{}-{}.pike-part",
        std::process::id(),
        TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let mut file = match File::create_new(&temp) {
        Ok(f) => f,
        Err(e) => return Some(Err(e)),
    };
    let mut written = 0u64;
    while written < size {
        let Ok(chunk) = rx.recv() else {
            // Cut off midway: leave nothing that looks like the file.
            drop(file);
            let _ = std::fs::remove_file(&temp);
            return None;
        };
        // The deserializer may wait for room in the channel.
        slot.wake();
        if let Err(e) = file.write_all(&chunk) {
            drop(file);
            let _ = std::fs::remove_file(&temp);
            return Some(Err(e));
        }
        written += chunk.len() as u64;
    }
    drop(file);
    let result = publish(&temp, dir, name);
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    Some(result)
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
                    self.start_body(size)?;
                }
                RecvState::Body {
                    writer,
                    saved,
                    chunk,
                    remaining,
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
                    if ready {
                        let tx = writer.channel.as_ref().expect("open while receiving");
                        match tx.try_send(std::mem::take(chunk)) {
                            Ok(()) => continue,
                            Err(TrySendError::Full(back)) => {
                                *chunk = back;
                                writer.slot.register(waker);
                                // Room may have come between the two.
                                match tx.try_send(std::mem::take(chunk)) {
                                    Ok(()) => continue,
                                    Err(TrySendError::Full(back)) => {
                                        *chunk = back;
                                        return Ok((used, Decoded::Pending));
                                    }
                                    Err(TrySendError::Disconnected(_)) => return Err(writer_gone()),
                                }
                            }
                            Err(TrySendError::Disconnected(_)) => return Err(writer_gone()),
                        }
                    }
                    if *remaining > 0 {
                        return Ok((used, Decoded::NeedMore));
                    }
                    // Everything handed over: wait for the rename.
                    let result = match saved.try_recv() {
                        Ok(result) => result,
                        Err(_) => {
                            writer.slot.register(waker);
                            match saved.try_recv() {
                                Ok(result) => result,
                                Err(TryRecvError::Empty) => return Ok((used, Decoded::Pending)),
                                Err(TryRecvError::Disconnected) => return Err(writer_gone()),
                            }
                        }
                    };
                    self.state = RecvState::Finished;
                    let path = result.map_err(|e| ProtocolError::Other(Box::new(e)))?;
                    return Ok((used, Decoded::Done(path)));
                }
                RecvState::Finished => return Ok((used, Decoded::NeedMore)),
            }
        }
    }
}

fn writer_gone() -> ProtocolError {
    ProtocolError::Other(Box::new(io::Error::other("file writer stopped")))
}
