//! Quantized weight matrices under 32 MiB on transparent huge pages: an arena of 2 MiB-aligned
//! 64 MiB mappings advised `MADV_HUGEPAGE` before anything touches them, which
//! [`super::alloc::HugePageAlloc`] serves the allocations made through [`filled_vec`] from.
//!
//! Why: glibc keeps blocks under 32 MiB in its heap (see [`super::alloc::keep_freed_buffers`]), on
//! 4 KiB pages, and a q8_0 decode step read bloom-560m's layer matrices (1–4 MB each) about a
//! fifth slower than its LM head, which is on huge pages. With the layers in this arena, in 4
//! alternating pairs on a 2-vCPU Sapphire Rapids KVM guest (BENCHMARKS.md, Round 22), a one-path
//! q8_0 step took 29.1–34.3 ms against 34.5–36.8 ms, the layers' products 12.0–14.2 ms against
//! 15.9–17.3.
//! Advising the heap itself instead gave a prefill's activation buffers huge pages too and slowed
//! the load and the prefill by 15–30% (Round 20), so only weights made here go on them.
//!
//! Only quantized blocks are made here, in place as they are quantized. f16 matrices copied in
//! after the load stepped no faster in the same pairs, and the copy and the fresh huge pages made
//! the load 2 s longer there: that guest's host takes back every free 2 MiB block (virtio free
//! page reporting), so each huge page faulted in costs 5–8 ms against 0.3–0.4 ms for one freed
//! just before. Quantized loads pay the same per page: about 1 s more for bloom-560m's 321 MB of
//! layers there.
//!
//! Blocks are bumped one after the other in a mapping; a mapping is unmapped when its last block is
//! freed, and the block on top is taken back at once (so a model dropped and loaded again reuses
//! the space). Only callers that know a buffer is a weight's final form ask for the arena: a
//! temporary in it would pin its bytes until the whole mapping is free.

use std::alloc::Layout;
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use super::alloc::{HUGE_PAGE, MAPPED_FROM};

/// Blocks from here up go to the arena when asked for: smaller ones (biases, norms) are read once
/// a step in a few lines and gain nothing.
pub(super) const MIN: usize = 64 << 10;
/// Blocks from here up are mapped on their own by glibc and advised there ([`super::alloc`]).
pub(super) const MAX: usize = MAPPED_FROM;
/// One mapping of the arena: room for at least two of its largest blocks.
const CHUNK: usize = 64 << 20;
/// Mappings held at once: 16 GiB of quantized matrices under 32 MiB each (larger ones are mapped
/// on their own, see [`MAX`]).
const SLOTS: usize = 256;

thread_local! {
    /// Set by [`with_capacity`] around the one allocation it makes; no destructor, so readable
    /// from the allocator at any time.
    static WANTED: Cell<bool> = const { Cell::new(false) };
}

/// One mapping: `[base, base + len)`, blocks bumped up to `top`, `live` of them not yet freed.
#[derive(Clone, Copy)]
struct Chunk {
    base: usize,
    len: usize,
    top: usize,
    live: usize,
}

const EMPTY: Chunk = Chunk { base: 0, len: 0, top: 0, live: 0 };

struct Chunks {
    slots: [Chunk; SLOTS],
    /// The slot blocks are bumped in.
    current: Option<usize>,
}

/// Mappings and the blocks bumped in them. The allocator uses the one [`ARENA`]; the tests make
/// their own, so other tests' weights (made in [`ARENA`] meanwhile) cannot move what they check.
pub(super) struct Arena {
    chunks: Mutex<Chunks>,
    /// Mappings held: 0 lets every free of a block not from here skip the lock.
    held: AtomicUsize,
    /// The lowest start and highest end of the mappings made so far (never narrowed): the frees of
    /// a prefill's heap buffers fall outside and skip the lock too.
    lo: AtomicUsize,
    hi: AtomicUsize,
}

/// The arena [`super::alloc::HugePageAlloc`] serves [`filled_vec`]'s buffers from.
pub(super) static ARENA: Arena = Arena::new();

/// `n` copies of `value`, on huge pages where the global allocator is [`super::alloc::HugePageAlloc`]
/// and the buffer is from [`MIN`] to [`MAX`] bytes; an ordinary vector otherwise.
pub(crate) fn filled_vec<T: Clone>(n: usize, value: T) -> Vec<T> {
    let mut v = with_capacity(n);
    v.resize(n, value);
    v
}

/// Whether a buffer of `bytes` is one the arena takes.
pub(crate) fn takes(bytes: usize) -> bool {
    (MIN..MAX).contains(&bytes)
}

fn with_capacity<T>(n: usize) -> Vec<T> {
    WANTED.with(|w| w.set(true));
    let v = Vec::with_capacity(n);
    WANTED.with(|w| w.set(false));
    v
}

/// Whether the allocation being made should come from the arena.
pub(super) fn wanted(size: usize) -> bool {
    takes(size) && WANTED.with(|w| w.get())
}

impl Arena {
    pub(super) const fn new() -> Self {
        Self {
            chunks: Mutex::new(Chunks { slots: [EMPTY; SLOTS], current: None }),
            held: AtomicUsize::new(0),
            lo: AtomicUsize::new(usize::MAX),
            hi: AtomicUsize::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Chunks> {
        self.chunks.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether `p` lies in one of this arena's mappings.
    pub(super) fn owns(&self, p: *const u8) -> bool {
        let p = p as usize;
        if self.held.load(Ordering::Acquire) == 0
            || p < self.lo.load(Ordering::Acquire)
            || p >= self.hi.load(Ordering::Acquire)
        {
            return false;
        }
        slot_of(&self.lock(), p).is_some()
    }

    /// A block for `layout`, or null where none can be had (no slot left, the mapping refused): the
    /// caller then asks the system allocator.
    pub(super) fn alloc(&self, layout: Layout) -> *mut u8 {
        let mut chunks = self.lock();
        let align = layout.align().max(64);
        if let Some(i) = chunks.current {
            let c = &mut chunks.slots[i];
            let at = c.top.next_multiple_of(align);
            if at + layout.size() <= c.len {
                c.top = at + layout.size();
                c.live += 1;
                return (c.base + at) as *mut u8;
            }
        }
        let Some(i) = chunks.slots.iter().position(|c| c.len == 0) else { return std::ptr::null_mut() };
        let Some(base) = map_chunk() else { return std::ptr::null_mut() };
        chunks.slots[i] = Chunk { base, len: CHUNK, top: layout.size(), live: 1 };
        chunks.current = Some(i);
        self.lo.fetch_min(base, Ordering::Release);
        self.hi.fetch_max(base + CHUNK, Ordering::Release);
        self.held.fetch_add(1, Ordering::Release);
        base as *mut u8
    }

    /// Frees a block [`Arena::alloc`] gave (`size` bytes at `p`): the mapping goes when it was its
    /// last block; the top block's space is taken back.
    pub(super) fn free(&self, p: *mut u8, size: usize) {
        let mut chunks = self.lock();
        let Some(i) = slot_of(&chunks, p as usize) else { return };
        let c = &mut chunks.slots[i];
        c.live -= 1;
        let at = p as usize - c.base;
        if c.live == 0 {
            unmap_chunk(c.base, c.len);
            *c = EMPTY;
            if chunks.current == Some(i) {
                chunks.current = None;
            }
            self.held.fetch_sub(1, Ordering::Release);
        } else if at + size == c.top {
            c.top = at;
        }
    }

    /// Mappings held.
    #[cfg(test)]
    fn held(&self) -> usize {
        self.held.load(Ordering::SeqCst)
    }
}

fn slot_of(chunks: &Chunks, p: usize) -> Option<usize> {
    chunks.slots.iter().position(|c| c.len > 0 && (c.base..c.base + c.len).contains(&p))
}

/// A fresh `CHUNK`-byte mapping starting on a huge page, advised to use huge pages.
#[cfg(target_os = "linux")]
fn map_chunk() -> Option<usize> {
    let len = CHUNK + HUGE_PAGE;
    // SAFETY: an anonymous private mapping at an address of the kernel's choosing touches nothing
    // that exists; the result is checked before use.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return None;
    }
    let (start, base) = (p as usize, (p as usize).next_multiple_of(HUGE_PAGE));
    // The unaligned head and the tail past `CHUNK` go back at once.
    unmap_chunk(start, base - start);
    unmap_chunk(base + CHUNK, start + len - (base + CHUNK));
    // SAFETY: [base, base + CHUNK) is the mapping just made; the advice changes only its backing.
    unsafe { libc::madvise(base as *mut libc::c_void, CHUNK, libc::MADV_HUGEPAGE) };
    Some(base)
}

#[cfg(not(target_os = "linux"))]
fn map_chunk() -> Option<usize> {
    None
}

#[cfg(target_os = "linux")]
fn unmap_chunk(base: usize, len: usize) {
    if len > 0 {
        // SAFETY: callers pass ranges of mappings this module made and no block still uses.
        unsafe { libc::munmap(base as *mut libc::c_void, len) };
    }
}

#[cfg(not(target_os = "linux"))]
fn unmap_chunk(_base: usize, _len: usize) {}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn blocks_share_a_huge_page_aligned_advised_mapping_that_goes_with_the_last() {
        let arena = Arena::new();
        let a_layout = Layout::from_size_align(3 << 20, 64).unwrap();
        let b_layout = Layout::from_size_align(100 << 10, 8).unwrap();
        let a = arena.alloc(a_layout);
        let b = arena.alloc(b_layout);
        assert!(!a.is_null() && !b.is_null());
        assert_eq!(arena.held(), 1, "both blocks in one new mapping");
        assert_eq!(a as usize % HUGE_PAGE, 0, "a fresh mapping starts on a huge page");
        assert_eq!(b as usize, a as usize + (3 << 20), "bumped right after the first");
        let outside = 0u8;
        assert!(arena.owns(a) && arena.owns(b) && !arena.owns(&outside));
        // SAFETY: both blocks are this test's, in bounds.
        unsafe {
            a.write_bytes(7, a_layout.size());
            b.write_bytes(9, b_layout.size());
            assert_eq!((*a.add(a_layout.size() - 1), *b), (7, 9));
        }
        let flags = crate::model::alloc::vm_flags(a as usize).expect("the mapping is in smaps");
        if std::path::Path::new("/sys/kernel/mm/transparent_hugepage").exists() {
            assert!(flags.split_whitespace().any(|f| f == "hg"), "not advised: {flags}");
        }
        // The top block's space is taken back: the next block goes where it was.
        arena.free(b, b_layout.size());
        let c = arena.alloc(b_layout);
        assert_eq!(c, b);
        arena.free(c, b_layout.size());
        arena.free(a, a_layout.size());
        assert_eq!(arena.held(), 0, "the mapping went with its last block");
        assert!(!arena.owns(a));
    }

    #[test]
    fn a_block_that_does_not_fit_the_mapping_opens_the_next() {
        let arena = Arena::new();
        let big = Layout::from_size_align(MAX - 1, 64).unwrap();
        let blocks: Vec<*mut u8> = (0..3).map(|_| arena.alloc(big)).collect();
        assert!(blocks.iter().all(|b| !b.is_null()));
        assert_eq!(arena.held(), 2, "two blocks of just under 32 MiB fill a 64 MiB mapping");
        assert_eq!(blocks[2] as usize % HUGE_PAGE, 0);
        // Freeing the first mapping's blocks unmaps it and leaves the second.
        arena.free(blocks[0], big.size());
        arena.free(blocks[1], big.size());
        assert_eq!(arena.held(), 1);
        assert!(!arena.owns(blocks[0]) && arena.owns(blocks[2]));
        arena.free(blocks[2], big.size());
        assert_eq!(arena.held(), 0);
    }

    #[test]
    fn only_buffers_asked_for_and_of_the_arena_s_sizes_are_wanted() {
        assert!(!wanted(1 << 20), "not asked for");
        WANTED.with(|w| w.set(true));
        let sizes = [(MIN - 1, false), (MIN, true), (MAX - 1, true), (MAX, false)];
        let got: Vec<bool> = sizes.iter().map(|&(s, _)| wanted(s)).collect();
        WANTED.with(|w| w.set(false));
        assert_eq!(got, sizes.iter().map(|&(_, w)| w).collect::<Vec<_>>());
        // The helper gives the values asked for, from the arena where the size is one it takes.
        let v = filled_vec(MIN, 3u8);
        assert_eq!(v.iter().map(|&x| x as usize).sum::<usize>(), 3 * MIN);
        assert!(ARENA.owns(v.as_ptr()), "the unit tests run on HugePageAlloc (lib.rs)");
        assert!(!ARENA.owns(filled_vec(MIN / 2, 0u8).as_ptr()), "too small for the arena");
        assert!(!wanted(1 << 20), "the request ends with the allocation");
    }
}
