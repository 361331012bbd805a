//! A growing array whose places are found without a lock: the home of
//! every connection, found by its id.
//!
//! A [`Slab`] hands out places by index and takes them back; its pages are
//! made as it grows (page `k` holds `BASE << k` places) and never move or
//! go away while it lives, so a place found once stays valid for the
//! slab's lifetime. Finding a place is a look at its page's
//! [`OnceLock`] (one `Acquire` load) and an index into it; handing one out
//! or back takes the free list's lock, which nothing else takes.
//!
//! # Invariants
//!
//! * A page is made whole (every place in it) before it is published, by
//!   its `OnceLock`; no hand-written synchronisation is involved, so there
//!   is nothing here for `loom` to check.
//! * An index is handed out at most once until it is given back.
//! * What a place holds, and whether an id still names it, is the
//!   caller's business (the directory keeps a generation in each place).

use std::sync::OnceLock;

use crate::sync::{Mutex, Rank, lock};

/// How many places the first page holds.
const BASE: usize = 32;
/// Pages: enough for every index below `u32::MAX`.
const PAGES: usize = 28;

/// Which page holds `index`, and where in it.
fn locate(index: usize) -> (usize, usize) {
    let j = index / BASE + 1;
    let page = (usize::BITS - 1 - j.leading_zeros()) as usize;
    (page, index - BASE * ((1 << page) - 1))
}

/// How many places page `page` holds.
fn page_len(page: usize) -> usize {
    BASE << page
}

/// Indices handed back, and the first never handed out.
#[derive(Debug, Default)]
struct Free {
    free: Vec<usize>,
    next: usize,
}

/// A growing array of `T`, each place made with `T::default()` when its
/// page is.
pub(crate) struct Slab<T> {
    pages: [OnceLock<Box<[T]>>; PAGES],
    free: Mutex<Free>,
}

impl<T> std::fmt::Debug for Slab<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slab").finish_non_exhaustive()
    }
}

impl<T: Default> Slab<T> {
    pub(crate) fn new() -> Self {
        Self {
            pages: std::array::from_fn(|_| OnceLock::new()),
            free: Mutex::new(Rank::Places, Free::default()),
        }
    }

    /// Hands out a place: one given back (the most recent first), or a new
    /// one. `None` once every index below `u32::MAX` is out.
    pub(crate) fn take(&self) -> Option<(usize, &T)> {
        let mut free = lock(&self.free);
        let index = match free.free.pop() {
            Some(index) => index,
            None => {
                let index = free.next;
                let (page, _) = locate(index);
                if page >= PAGES || index >= u32::MAX as usize - 1 {
                    return None;
                }
                self.pages[page]
                    .get_or_init(|| (0..page_len(page)).map(|_| T::default()).collect());
                free.next += 1;
                index
            }
        };
        drop(free);
        Some((index, self.get(index).expect("its page is made")))
    }

    /// Takes a place back, to be handed out again.
    pub(crate) fn give_back(&self, index: usize) {
        let mut free = lock(&self.free);
        debug_assert!(index < free.next && !free.free.contains(&index));
        free.free.push(index);
    }
}

impl<T> Slab<T> {
    /// The place at `index`, if its page is made (it may be free: what it
    /// holds says).
    pub(crate) fn get(&self, index: usize) -> Option<&T> {
        let (page, offset) = locate(index);
        self.pages.get(page)?.get()?.get(offset)
    }

    /// Every place ever handed out (free or not), by index.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (usize, &T)> {
        let high = lock(&self.free).next;
        (0..high).filter_map(|i| Some((i, self.get(i)?)))
    }
}

#[cfg(all(test, not(pike_loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn every_index_has_one_place_and_pages_follow_each_other() {
        let mut seen = 0;
        for page in 0..4 {
            for offset in 0..page_len(page) {
                assert_eq!(locate(seen), (page, offset));
                seen += 1;
            }
        }
        let last = BASE * ((1 << PAGES) - 1) - 1;
        assert_eq!(locate(last).0, PAGES - 1);
        assert!(last >= u32::MAX as usize - 1);
    }

    #[test]
    fn places_are_handed_out_once_and_again_after_coming_back() {
        let slab: Slab<AtomicUsize> = Slab::new();
        let mut taken: Vec<usize> = (0..100).map(|_| slab.take().unwrap().0).collect();
        taken.sort_unstable();
        assert_eq!(taken, (0..100).collect::<Vec<_>>());
        slab.get(70).unwrap().store(7, Ordering::Relaxed);
        slab.give_back(70);
        let (again, place) = slab.take().unwrap();
        assert_eq!(again, 70);
        // What a place holds is its user's: the slab does not reset it.
        assert_eq!(place.load(Ordering::Relaxed), 7);
        assert_eq!(slab.iter().count(), 100);
        assert!(slab.get(100).is_some(), "its page is made");
        assert!(slab.get(10_000).is_none(), "no page");
        assert!(slab.get(usize::MAX).is_none());
        assert!(slab.get(u32::MAX as usize).is_none());
    }
}
