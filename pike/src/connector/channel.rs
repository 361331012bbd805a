//! The event queue from the network thread to the application: one
//! producer, any number of consumers, handed over in batches.
//!
//! A general-purpose channel pays a few atomic operations per item on both
//! sides. Pike's producer finds events in bursts (every message parsed out
//! of one read), so this queue takes a whole burst under one lock, and
//! [`Receiver::recv_batch`] gives many to one consumer under one lock. A
//! consumer sleeps on a condition variable, which is only signalled when
//! someone waits.
//!
//! Consumers are woken one at a time: a burst wakes one sleeper, and each
//! consumer that takes items and leaves some behind wakes the next. The
//! producer (the network thread) so makes at most one wake-up call per
//! burst however many consumers sleep, and is not pre-empted by a crowd of
//! threads it woke at once; a consumer that comes back for more before the
//! next one is up takes the items itself, with no sleeper woken for
//! nothing.
//!
//! Semantics follow `crossbeam-channel`'s, which it replaced: each item goes
//! to exactly one consumer, in order; once the [`Sender`] is dropped,
//! consumers get what is left and then `Disconnected`; once every
//! [`Receiver`] is dropped, sending fails and hands the items back.
//!
//! # Invariants
//!
//! * One producer (the loop); items leave in the order they came, each to
//!   exactly one consumer.
//! * Lock order: the queue's lock is taken last (a connection's slot may be
//!   held while sending); nothing else is locked under it, and sleepers and
//!   async tasks are woken after it is let go.
//! * A sleeper is signalled only if one waits and items are there; async
//!   tasks waiting for items are woken when items come.

use std::collections::VecDeque;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

#[cfg(any(test, pike_loom))]
pub(crate) use crossbeam_channel::RecvTimeoutError;
pub(crate) use crossbeam_channel::TryRecvError;

use crate::memory::ChunkQueue;
use crate::sync::{Condvar, Mutex, MutexGuard, Rank, lock};

struct Inner<T> {
    state: Mutex<State<T>>,
    available: Condvar,
}

struct State<T> {
    items: ChunkQueue<T>,
    sender: bool,
    receivers: usize,
    /// Consumers asleep on `available`.
    waiting: usize,
    /// A sleeper has been signalled and has not come back yet.
    waking: bool,
    /// Async consumers waiting for an item (see [`Receiver::poll_recv`]).
    tasks: Vec<Waker>,
}

impl<T> State<T> {
    /// Whether to signal one sleeper (after unlocking): items wait for one
    /// and none is on its way.
    fn wake_one(&mut self) -> bool {
        let wake = self.waiting > 0 && !self.waking && !self.items.is_empty();
        self.waking |= wake;
        wake
    }
}

/// The producing end; there is one. Dropping it disconnects the queue.
pub(crate) struct Sender<T>(Arc<Inner<T>>);

/// A consuming end; clone it for more consumers.
pub(crate) struct Receiver<T>(Arc<Inner<T>>);

/// A queue with no bound (the network thread bounds what it produces).
pub(crate) fn unbounded<T>() -> (Sender<T>, Receiver<T>) {
    let inner = Arc::new(Inner {
        state: Mutex::new(
            Rank::Events,
            State {
                items: ChunkQueue::default(),
                sender: true,
                receivers: 1,
                waiting: 0,
                waking: false,
                tasks: Vec::new(),
            },
        ),
        available: Condvar::new(),
    });
    (Sender(inner.clone()), Receiver(inner))
}

impl<T> Inner<T> {
    /// Unlocks, then signals a sleeper if [`State::wake_one`] says so, and
    /// wakes the async consumers if items wait.
    fn signal(&self, mut state: MutexGuard<'_, State<T>>) {
        let wake = state.wake_one();
        let tasks = if state.items.is_empty() {
            Vec::new()
        } else {
            std::mem::take(&mut state.tasks)
        };
        drop(state);
        if wake {
            self.available.notify_one();
        }
        for task in tasks {
            task.wake();
        }
    }
}

impl<T> Sender<T> {
    /// Queues one item; hands it back if no receiver is left.
    pub(crate) fn send(&self, item: T) -> Result<(), T> {
        let mut state = lock(&self.0.state);
        if state.receivers == 0 {
            return Err(item);
        }
        state.items.push_back(item);
        self.0.signal(state);
        Ok(())
    }

    /// Queues every item of `items`, in order, leaving it empty. If no
    /// receiver is left, nothing is queued and `items` is left as it was.
    ///
    /// The batch becomes a chunk of the queue as it is, so that no item
    /// is moved at all; `items` then gets an emptied chunk's allocation for
    /// the next batch (see [`ChunkQueue`]).
    pub(crate) fn send_all(&self, items: &mut VecDeque<T>) -> Result<(), ()> {
        self.send_chunks(&mut Vec::new(), items)
    }
}

impl<T> Sender<T> {
    /// Queues the chunks of `full`, then `last`, in order, leaving both
    /// empty; as [`send_all`](Self::send_all) for each (a chunk is queued
    /// as it is). If no receiver is left, nothing is queued and both are
    /// left as they were.
    pub(crate) fn send_chunks(
        &self,
        full: &mut Vec<VecDeque<T>>,
        last: &mut VecDeque<T>,
    ) -> Result<(), ()> {
        if full.is_empty() && last.is_empty() {
            return Ok(());
        }
        let mut state = lock(&self.0.state);
        if state.receivers == 0 {
            return Err(());
        }
        for chunk in full.drain(..) {
            state.items.push_chunk(chunk);
        }
        state.items.append(last);
        self.0.signal(state);
        Ok(())
    }

    /// Gives back what a burst grew the queue to, if it is empty now (see
    /// [`trim_queue`](crate::memory::trim_queue)). The producer calls it
    /// now and then, not at every drain: a queue that empties and fills
    /// with every batch would be grown again each time.
    pub(crate) fn trim(&self) {
        lock(&self.0.state).items.trim();
    }

    /// The allocation of the queue, in items.
    pub(crate) fn capacity(&self) -> usize {
        lock(&self.0.state).items.capacity()
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let tasks = {
            let mut state = lock(&self.0.state);
            state.sender = false;
            std::mem::take(&mut state.tasks)
        };
        self.0.available.notify_all();
        for task in tasks {
            task.wake();
        }
    }
}

impl<T> Clone for Receiver<T> {
    fn clone(&self) -> Self {
        lock(&self.0.state).receivers += 1;
        Self(self.0.clone())
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        lock(&self.0.state).receivers -= 1;
    }
}

impl<T> std::fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver").finish_non_exhaustive()
    }
}

impl<T> std::fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender").finish_non_exhaustive()
    }
}

impl<T> Receiver<T> {
    /// Items queued now.
    pub(crate) fn len(&self) -> usize {
        lock(&self.0.state).items.len()
    }

    /// Blocks until an item comes or the queue is disconnected and empty.
    #[cfg(any(test, pike_loom))]
    pub(crate) fn recv(&self) -> Option<T> {
        let mut n = None;
        let got = self.recv_batch(1, None, |item| n = Some(item));
        got.ok().and(n)
    }

    pub(crate) fn try_recv(&self) -> Result<T, TryRecvError> {
        let mut state = lock(&self.0.state);
        match state.items.pop_front() {
            Some(item) => Ok(item),
            None if state.sender => Err(TryRecvError::Empty),
            None => Err(TryRecvError::Disconnected),
        }
    }

    #[cfg(any(test, pike_loom))]
    pub(crate) fn recv_timeout(&self, timeout: Duration) -> Result<T, RecvTimeoutError> {
        let mut n = None;
        match self.recv_batch(1, Some(timeout), |item| n = Some(item)) {
            Ok(_) => n.ok_or(RecvTimeoutError::Timeout),
            Err(()) => Err(RecvTimeoutError::Disconnected),
        }
    }

    /// Waits up to `timeout` (`None`: for ever) for at least one item, then
    /// passes up to `max` of those ready to `take`, in order, under one
    /// lock. Returns how many: 0 on timeout. Err once the queue is
    /// disconnected and empty.
    pub(crate) fn recv_batch(
        &self,
        max: usize,
        timeout: Option<Duration>,
        mut take: impl FnMut(T),
    ) -> Result<usize, ()> {
        // The clock is read only once there is something to wait for: a
        // poll (`Duration::ZERO`) that finds items, or none, never reads it.
        let mut deadline: Option<Option<Instant>> = None;
        let mut state = lock(&self.0.state);
        loop {
            if !state.items.is_empty() {
                let n = max.min(state.items.len());
                for _ in 0..n {
                    take(state.items.pop_front().expect("counted above"));
                }
                // Pass the wake-up on for what is left.
                self.0.signal(state);
                return Ok(n);
            }
            if !state.sender {
                return Err(());
            }
            if timeout == Some(Duration::ZERO) {
                return Ok(0);
            }
            let deadline = *deadline
                .get_or_insert_with(|| timeout.and_then(|t| Instant::now().checked_add(t)));
            state = match deadline {
                None => self.wait(state, None),
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        return Ok(0);
                    }
                    self.wait(state, Some(deadline - now))
                }
            };
        }
    }

    fn wait<'a>(
        &'a self,
        mut state: MutexGuard<'a, State<T>>,
        timeout: Option<Duration>,
    ) -> MutexGuard<'a, State<T>> {
        state.waiting += 1;
        let mut state = match timeout {
            None => self.0.available.wait(state),
            Some(t) => self.0.available.wait_timeout(state, t).0,
        };
        state.waiting -= 1;
        // Whoever comes back, signalled or timed out, looks at the items
        // and passes the wake-up on.
        state.waking = false;
        state
    }

    /// The next item if one is ready, `Ready(None)` once the queue is
    /// disconnected and empty; otherwise `cx`'s waker is woken when an
    /// item comes (or the sender goes). For async consumers.
    pub(crate) fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let mut state = lock(&self.0.state);
        if let Some(item) = state.items.pop_front() {
            // Pass the wake-up on for what is left.
            self.0.signal(state);
            return Poll::Ready(Some(item));
        }
        if !state.sender {
            return Poll::Ready(None);
        }
        if !state.tasks.iter().any(|t| t.will_wake(cx.waker())) {
            state.tasks.push(cx.waker().clone());
        }
        Poll::Pending
    }

    /// Takes everything queued now.
    pub(crate) fn take_all(&self) -> VecDeque<T> {
        lock(&self.0.state).items.take_all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WAIT: Duration = Duration::from_secs(10);

    #[test]
    fn items_come_out_in_order_then_disconnected() {
        let (tx, rx) = unbounded();
        tx.send(1).unwrap();
        tx.send_all(&mut VecDeque::from([2, 3, 4])).unwrap();
        let mut got = Vec::new();
        assert_eq!(rx.recv_batch(2, Some(WAIT), |i| got.push(i)), Ok(2));
        assert_eq!(rx.recv(), Some(3));
        drop(tx);
        assert_eq!(rx.recv_timeout(WAIT), Ok(4));
        assert_eq!(rx.recv_timeout(WAIT), Err(RecvTimeoutError::Disconnected));
        assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
        assert_eq!(rx.recv(), None);
        assert_eq!(got, [1, 2]);
    }

    #[test]
    fn sending_without_receivers_hands_everything_back() {
        let (tx, rx) = unbounded();
        let rx2 = rx.clone();
        drop(rx);
        tx.send(1).unwrap();
        drop(rx2);
        assert_eq!(tx.send(2), Err(2));
        let mut batch = VecDeque::from([3, 4]);
        assert_eq!(tx.send_all(&mut batch), Err(()));
        assert_eq!(batch, [3, 4]);
    }

    #[test]
    fn chunks_are_queued_in_order_as_they_are() {
        let (tx, rx) = unbounded();
        let mut full: Vec<VecDeque<u32>> = vec![(0..256).collect(), (256..512).collect()];
        let mut last: VecDeque<u32> = (512..600).collect();
        tx.send_chunks(&mut full, &mut last).unwrap();
        assert!(full.is_empty() && last.is_empty());
        tx.send(600).unwrap();
        // No item was moved to queue them: each chunk kept its allocation.
        assert!(lock(&rx.0.state).items.capacity() >= 600);
        let got: Vec<u32> = std::iter::from_fn(|| rx.try_recv().ok()).collect();
        assert!(got.into_iter().eq(0..601));
        drop(rx);
        let mut full = vec![VecDeque::from([1])];
        let mut last = VecDeque::from([2]);
        assert_eq!(tx.send_chunks(&mut full, &mut last), Err(()));
        assert_eq!((full.len(), last.len()), (1, 1));
    }

    #[test]
    fn timeouts_and_empty() {
        let (tx, rx) = unbounded::<u32>();
        assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
        let short = Duration::from_millis(20);
        assert_eq!(rx.recv_timeout(short), Err(RecvTimeoutError::Timeout));
        assert_eq!(rx.recv_batch(8, Some(short), |_| {}), Ok(0));
        // A timeout too large for an Instant waits for ever, like None.
        tx.send(7).unwrap();
        assert_eq!(rx.recv_timeout(Duration::MAX), Ok(7));
    }

    #[test]
    fn one_burst_wakes_every_sleeper_it_needs() {
        // Eight consumers asleep; one burst of eight items. The producer
        // signals one, and the wake-up must pass along until each holds an
        // item: none of them returns for more before all eight have one.
        const N: usize = 8;
        let (tx, rx) = unbounded::<usize>();
        let holding = Arc::new((std::sync::Mutex::new(0usize), std::sync::Condvar::new()));
        let consumers: Vec<_> = (0..N)
            .map(|_| {
                let rx = rx.clone();
                let holding = holding.clone();
                std::thread::spawn(move || {
                    let item = rx.recv_timeout(WAIT).expect("an item");
                    let (count, all) = &*holding;
                    let mut count = count.lock().unwrap();
                    *count += 1;
                    all.notify_all();
                    let (count, timeout) = all.wait_timeout_while(count, WAIT, |c| *c < N).unwrap();
                    assert!(!timeout.timed_out(), "only {} woke", *count);
                    item
                })
            })
            .collect();
        // Let every consumer fall asleep first.
        let deadline = Instant::now() + WAIT;
        while lock(&rx.0.state).waiting < N {
            assert!(Instant::now() < deadline, "consumers never slept");
            std::thread::yield_now();
        }
        tx.send_all(&mut (0..N).collect()).unwrap();
        let mut got: Vec<usize> = consumers.into_iter().map(|c| c.join().unwrap()).collect();
        got.sort_unstable();
        assert_eq!(got, (0..N).collect::<Vec<_>>());
    }

    #[test]
    fn a_drained_queue_gives_its_memory_back() {
        let (tx, rx) = unbounded::<[u64; 8]>();
        tx.send_all(&mut (0..100_000).map(|i| [i; 8]).collect())
            .unwrap();
        assert!(tx.capacity() >= 100_000);
        for _ in 0..99 {
            assert_eq!(rx.recv_batch(1000, Some(WAIT), |_| {}), Ok(1000));
        }
        tx.trim();
        assert!(tx.capacity() >= 100_000, "trimmed while not empty");
        assert_eq!(rx.recv_batch(1000, Some(WAIT), |_| {}), Ok(1000));
        // Empty: 64 bytes an item, at most 4 KiB kept.
        tx.trim();
        assert!(tx.capacity() <= 64, "kept room for {}", tx.capacity());
    }

    #[test]
    fn every_item_reaches_exactly_one_of_many_consumers() {
        let (tx, rx) = unbounded::<u64>();
        let consumers: Vec<_> = (0..4)
            .map(|i| {
                let rx = rx.clone();
                std::thread::spawn(move || {
                    let mut got = Vec::new();
                    loop {
                        // Mix the single and the batch forms.
                        let r = if i % 2 == 0 {
                            rx.recv_timeout(WAIT).map(|x| got.push(x)).map(|_| 1)
                        } else {
                            rx.recv_batch(16, Some(WAIT), |x| got.push(x))
                                .map_err(|()| RecvTimeoutError::Disconnected)
                        };
                        match r {
                            Ok(0) | Err(RecvTimeoutError::Timeout) => panic!("stalled"),
                            Ok(_) => {}
                            Err(RecvTimeoutError::Disconnected) => return got,
                        }
                    }
                })
            })
            .collect();
        drop(rx);
        let mut next = 0u64;
        for round in 0..2_000 {
            let mut batch: VecDeque<u64> = (next..next + round % 7).collect();
            next += round % 7;
            tx.send_all(&mut batch).unwrap();
        }
        drop(tx);
        let mut all: Vec<u64> = Vec::new();
        for c in consumers {
            let got = c.join().unwrap();
            // Each consumer sees its items in the order sent.
            assert!(got.windows(2).all(|w| w[0] < w[1]));
            all.extend(got);
        }
        all.sort_unstable();
        assert_eq!(all, (0..next).collect::<Vec<_>>());
    }
}

#[cfg(all(test, pike_loom))]
mod loom_tests {
    use super::*;

    /// Two consumers asleep, one burst of two: the wake-up passes from the
    /// first to the second, each gets one item, nobody sleeps for ever
    /// (loom fails a model in which a thread never wakes).
    #[test]
    fn loom_a_burst_reaches_every_sleeping_consumer() {
        loom::model(|| {
            let (tx, rx) = unbounded::<u32>();
            let consumers: Vec<_> = [rx.clone(), rx]
                .into_iter()
                .map(|rx| loom::thread::spawn(move || rx.recv()))
                .collect();
            tx.send_all(&mut VecDeque::from([1, 2])).unwrap();
            let mut got: Vec<_> = consumers.into_iter().map(|c| c.join().unwrap()).collect();
            got.sort_unstable();
            assert_eq!(got, [Some(1), Some(2)]);
        });
    }

    /// An item, then the producer gone: one consumer gets the item, the
    /// other the end; neither waits for ever.
    #[test]
    fn loom_the_end_reaches_every_consumer_after_the_last_item() {
        loom::model(|| {
            let (tx, rx) = unbounded::<u32>();
            let consumers: Vec<_> = [rx.clone(), rx]
                .into_iter()
                .map(|rx| loom::thread::spawn(move || rx.recv()))
                .collect();
            tx.send(7).unwrap();
            drop(tx);
            let mut got: Vec<_> = consumers.into_iter().map(|c| c.join().unwrap()).collect();
            got.sort_unstable();
            assert_eq!(got, [None, Some(7)]);
        });
    }
}
