//! Weight matrices under 32 MiB (quantized and f16), and a prompt's keys and values beside them,
//! on transparent huge pages: arenas of 2 MiB-aligned mappings advised `MADV_HUGEPAGE` before
//! anything touches them, which [`super::alloc::HugePageAlloc`] serves the allocations made through
//! [`filled_vec`] (weights) and [`kv_copy`] (keys and values) from.
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
//! Weights are made here in place as they are quantized or read. f16 matrices copied in after the
//! load had stepped no faster (Round 22): the prompt's keys and values, left on 4 KiB pages, were
//! then read about a third slower than beside 4 KiB weights, which ate the layers' gain. So they
//! go on huge pages too, in a second arena ([`KV_ARENA`]), wherever the layers' weights are on
//! them (`KvCache::new`). In alternating pairs on that guest (Round 23; bloom-560m shape,
//! 700-token prompt, one path): f16 steps of 45.4–46.9 ms against 48.1–54.7 (5 pairs), q8_0
//! 29.1–34.3 against 30.1–34.0 (5 pairs, 4 faster; 28.0–30.6 against 34.0–42.8 in the 4 pairs
//! that first tried it). Beside f32 layers (4 KiB pages) they stepped no faster, so not there.
//!
//! Huge pages cost the load and the prefill on that guest: its host takes back every free 2 MiB
//! block (virtio free page reporting), so each huge page faulted in costs 5–8 ms against 0.3–0.4 ms
//! for one freed just before. bloom-560m loads about 1 s longer in q8_0 and 1.6–1.8 s longer in
//! f16, and a process's first 700-token prefill in f16 takes 0.4–0.5 s longer (its keys and
//! values' pages). Later ones reuse the kept mappings; after 10 s idle they took 2.7–3.4 s
//! against 3.0–3.6 s on 4 KiB pages and 3.5–4.0 s with nothing kept (Round 23).
//!
//! Blocks are bumped one after the other in a mapping; a mapping is unmapped when its last block is
//! freed, and the block on top is taken back at once (so a model dropped and loaded again reuses
//! the space). Only callers that know a buffer is a weight's final form ask for the weights' arena:
//! a temporary in it would pin its bytes until the whole mapping is free. The keys and values'
//! arena keeps up to [`KV_RETAIN`] bytes of emptied mappings for the next prompt, so a prefill after
//! a pause does not fault in fresh huge pages (5–8 ms each on that guest) where the last one's were.

use std::alloc::Layout;
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use super::alloc::{HUGE_PAGE, MAPPED_FROM};

/// Blocks from here up go to the weights' arena when asked for: smaller ones (biases, norms) are
/// read once a step in a few lines and gain nothing.
pub(super) const MIN: usize = 64 << 10;
/// Blocks from here up are mapped on their own by glibc and advised there ([`super::alloc`]).
pub(super) const MAX: usize = MAPPED_FROM;
/// One mapping of the weights' arena: room for at least two of its largest blocks.
const CHUNK: usize = 64 << 20;
/// Blocks from here up go to the keys and values' arena: a question's own few dozen positions
/// (about 200 KiB a layer at bloom-560m) stay in the heap, and cannot pin a mapping of the arena.
const KV_MIN: usize = 1 << 20;
/// One mapping of the keys and values' arena: its largest block fits, and one live block pins at
/// most this much.
const KV_CHUNK: usize = MAX;
/// Emptied mappings the keys and values' arena keeps for reuse, in bytes (glibc keeps as much of a
/// freed heap, `M_TRIM_THRESHOLD` in [`super::alloc`]).
const KV_RETAIN: usize = 256 << 20;
/// Mappings held at once: 16 GiB of quantized matrices under 32 MiB each (larger ones are mapped
/// on their own, see [`MAX`]), or 8 GiB of keys and values.
const SLOTS: usize = 256;

/// The arena an allocation asks for.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Want {
    Nothing,
    Weights,
    KeysValues,
}

thread_local! {
    /// Set by [`with_capacity`] around the one allocation it makes; no destructor, so readable
    /// from the allocator at any time.
    static WANTED: Cell<Want> = const { Cell::new(Want::Nothing) };
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

impl Chunks {
    /// Bytes of the emptied mappings kept for reuse (mapped, no live block).
    fn kept(&self) -> usize {
        self.slots.iter().filter(|c| c.len > 0 && c.live == 0).map(|c| c.len).sum()
    }
}

/// Mappings and the blocks bumped in them. The allocator uses [`ARENA`] and [`KV_ARENA`]; the
/// tests make their own, so other tests' blocks (made meanwhile) cannot move what they check.
pub(super) struct Arena {
    /// Blocks of `min..MAX` bytes are taken.
    min: usize,
    /// Bytes of one mapping (at least [`MAX`]).
    chunk: usize,
    /// Bytes of emptied mappings kept instead of unmapped.
    retain: usize,
    chunks: Mutex<Chunks>,
    /// Mappings held: 0 lets every free of a block not from here skip the lock.
    held: AtomicUsize,
    /// The lowest start and highest end of the mappings made so far (never narrowed): the frees of
    /// a prefill's heap buffers fall outside and skip the lock too.
    lo: AtomicUsize,
    hi: AtomicUsize,
}

/// The arena [`super::alloc::HugePageAlloc`] serves [`filled_vec`]'s buffers (weights) from.
pub(super) static ARENA: Arena = Arena::new(MIN, CHUNK, 0);

/// The arena [`super::alloc::HugePageAlloc`] serves [`kv_copy`]'s buffers (a prompt's keys and
/// values) from.
pub(super) static KV_ARENA: Arena = Arena::new(KV_MIN, KV_CHUNK, KV_RETAIN);

/// `n` copies of `value`, on huge pages where the global allocator is [`super::alloc::HugePageAlloc`]
/// and the buffer is from [`MIN`] to [`MAX`] bytes; an ordinary vector otherwise.
pub(crate) fn filled_vec<T: Clone>(n: usize, value: T) -> Vec<T> {
    let mut v = with_capacity(n, Want::Weights);
    v.resize(n, value);
    v
}

/// An empty vector with room for `n` values, on the weights' arena as [`filled_vec`]'s.
pub(crate) fn weight_capacity<T>(n: usize) -> Vec<T> {
    with_capacity(n, Want::Weights)
}

/// A copy of `values` (keys or values of a prompt) on huge pages where the global allocator is
/// [`super::alloc::HugePageAlloc`] and the copy is from [`KV_MIN`] to [`MAX`] bytes; an ordinary
/// vector otherwise.
pub(crate) fn kv_copy(values: &[f32]) -> Vec<f32> {
    let mut v = with_capacity(values.len(), Want::KeysValues);
    v.extend_from_slice(values);
    v
}

/// Whether the weights' arena gave the block of `bytes` at `p`.
pub(crate) fn holds_weight(p: *const u8, bytes: usize) -> bool {
    ARENA.takes(bytes) && ARENA.owns(p)
}

fn with_capacity<T>(n: usize, want: Want) -> Vec<T> {
    WANTED.with(|w| w.set(want));
    let v = Vec::with_capacity(n);
    WANTED.with(|w| w.set(Want::Nothing));
    v
}

/// The arena the allocation being made should come from, if any.
pub(super) fn wanted(size: usize) -> Option<&'static Arena> {
    let arena = match WANTED.with(|w| w.get()) {
        Want::Nothing => return None,
        Want::Weights => &ARENA,
        Want::KeysValues => &KV_ARENA,
    };
    arena.takes(size).then_some(arena)
}

/// The arena that gave the block of `size` bytes at `p`, if one did.
pub(super) fn owner(p: *const u8, size: usize) -> Option<&'static Arena> {
    [&ARENA, &KV_ARENA].into_iter().find(|a| a.takes(size) && a.owns(p))
}

impl Arena {
    pub(super) const fn new(min: usize, chunk: usize, retain: usize) -> Self {
        assert!(chunk >= MAX && min < MAX);
        Self {
            min,
            chunk,
            retain,
            chunks: Mutex::new(Chunks { slots: [EMPTY; SLOTS], current: None }),
            held: AtomicUsize::new(0),
            lo: AtomicUsize::new(usize::MAX),
            hi: AtomicUsize::new(0),
        }
    }

    /// Whether a block of `bytes` is one this arena takes.
    pub(super) fn takes(&self, bytes: usize) -> bool {
        (self.min..MAX).contains(&bytes)
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
        // An emptied mapping kept for reuse (its pages already faulted in), else a fresh one.
        if let Some(i) = chunks.slots.iter().position(|c| c.len > 0 && c.live == 0) {
            chunks.slots[i] = Chunk { top: layout.size(), live: 1, ..chunks.slots[i] };
            chunks.current = Some(i);
            return chunks.slots[i].base as *mut u8;
        }
        let Some(i) = chunks.slots.iter().position(|c| c.len == 0) else { return std::ptr::null_mut() };
        let Some(base) = map_chunk(self.chunk) else { return std::ptr::null_mut() };
        chunks.slots[i] = Chunk { base, len: self.chunk, top: layout.size(), live: 1 };
        chunks.current = Some(i);
        self.lo.fetch_min(base, Ordering::Release);
        self.hi.fetch_max(base + self.chunk, Ordering::Release);
        self.held.fetch_add(1, Ordering::Release);
        base as *mut u8
    }

    /// Frees a block [`Arena::alloc`] gave (`size` bytes at `p`): the mapping goes when it was its
    /// last block, unless the arena keeps it for reuse; the top block's space is taken back.
    pub(super) fn free(&self, p: *mut u8, size: usize) {
        let mut chunks = self.lock();
        let Some(i) = slot_of(&chunks, p as usize) else { return };
        chunks.slots[i].live -= 1;
        let c = chunks.slots[i];
        let at = p as usize - c.base;
        // `kept` counts this mapping too once its last block is gone.
        if c.live == 0 && chunks.kept() <= self.retain {
            chunks.slots[i].top = 0;
            // Kept mappings are taken again whole by `alloc`, never bumped into as they are.
            if chunks.current == Some(i) {
                chunks.current = None;
            }
        } else if c.live == 0 {
            unmap_chunk(c.base, c.len);
            chunks.slots[i] = EMPTY;
            if chunks.current == Some(i) {
                chunks.current = None;
            }
            self.held.fetch_sub(1, Ordering::Release);
        } else if at + size == c.top {
            chunks.slots[i].top = at;
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

/// A fresh `chunk`-byte mapping starting on a huge page, advised to use huge pages.
#[cfg(target_os = "linux")]
fn map_chunk(chunk: usize) -> Option<usize> {
    let len = chunk + HUGE_PAGE;
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
    // The unaligned head and the tail past `chunk` go back at once.
    unmap_chunk(start, base - start);
    unmap_chunk(base + chunk, start + len - (base + chunk));
    // SAFETY: [base, base + chunk) is the mapping just made; the advice changes only its backing.
    unsafe { libc::madvise(base as *mut libc::c_void, chunk, libc::MADV_HUGEPAGE) };
    Some(base)
}

#[cfg(not(target_os = "linux"))]
fn map_chunk(_chunk: usize) -> Option<usize> {
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
        let arena = Arena::new(MIN, CHUNK, 0);
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
        let arena = Arena::new(MIN, CHUNK, 0);
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
        assert!(wanted(1 << 20).is_none(), "not asked for");
        WANTED.with(|w| w.set(Want::Weights));
        let sizes = [(MIN - 1, false), (MIN, true), (MAX - 1, true), (MAX, false)];
        let got: Vec<bool> = sizes.iter().map(|&(s, _)| wanted(s).is_some_and(|a| std::ptr::eq(a, &ARENA))).collect();
        WANTED.with(|w| w.set(Want::Nothing));
        assert_eq!(got, sizes.iter().map(|&(_, w)| w).collect::<Vec<_>>());
        // The helper gives the values asked for, from the arena where the size is one it takes.
        let v = filled_vec(MIN, 3u8);
        assert_eq!(v.iter().map(|&x| x as usize).sum::<usize>(), 3 * MIN);
        assert!(ARENA.owns(v.as_ptr()), "the unit tests run on HugePageAlloc (lib.rs)");
        assert!(!ARENA.owns(filled_vec(MIN / 2, 0u8).as_ptr()), "too small for the arena");
        assert!(wanted(1 << 20).is_none(), "the request ends with the allocation");
    }

    #[test]
    fn keys_and_values_of_a_megabyte_or_more_are_copied_onto_their_own_arena() {
        let values: Vec<f32> = (0..KV_MIN / 4).map(|i| i as f32).collect();
        let on = kv_copy(&values);
        assert_eq!(on, values);
        let p = on.as_ptr() as *const u8;
        assert!(KV_ARENA.owns(p) && !ARENA.owns(p));
        assert!(owner(p, on.len() * 4).is_some_and(|a| std::ptr::eq(a, &KV_ARENA)));
        let small = kv_copy(&values[..values.len() / 2]);
        assert!(!KV_ARENA.owns(small.as_ptr() as *const u8), "half a megabyte stays in the heap");
        assert_eq!(small[..], values[..values.len() / 2]);
    }

    #[test]
    fn an_emptied_mapping_is_kept_up_to_the_bound_and_taken_again_whole() {
        // Keeps one emptied 32 MiB mapping, not two.
        let arena = Arena::new(KV_MIN, KV_CHUNK, KV_CHUNK);
        let big = Layout::from_size_align(MAX - 1, 64).unwrap();
        let small = Layout::from_size_align(KV_MIN, 64).unwrap();
        let (a, b) = (arena.alloc(big), arena.alloc(big));
        assert!(!a.is_null() && !b.is_null() && a != b);
        assert_eq!(arena.held(), 2, "one block of just under 32 MiB fills a mapping");
        // SAFETY: the blocks are this test's, in bounds.
        unsafe { a.write_bytes(5, big.size()) };
        arena.free(a, big.size());
        arena.free(b, big.size());
        assert_eq!(arena.held(), 1, "the first emptied mapping kept, the second unmapped");
        assert!(arena.owns(a) && !arena.owns(b));
        // The kept mapping is taken again from its start, its pages as the last block left them.
        let c = arena.alloc(small);
        assert_eq!(c, a);
        // SAFETY: c is this test's block of `small.size()` bytes.
        assert_eq!(unsafe { *c.add(small.size() - 1) }, 5);
        let d = arena.alloc(small);
        assert_eq!(d as usize, c as usize + small.size(), "then bumped into as the current mapping");
        arena.free(d, small.size());
        arena.free(c, small.size());
        assert_eq!(arena.held(), 1, "kept again");
        // A block that finds no kept mapping opens a fresh one, and the kept one is still there.
        let e = arena.alloc(small);
        let f = arena.alloc(big);
        assert_eq!(e, a);
        assert!(!f.is_null() && f != a && arena.held() == 2);
        arena.free(e, small.size());
        arena.free(f, big.size());
        assert_eq!(arena.held(), 1);
    }
}
