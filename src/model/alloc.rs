//! How the C allocator treats the large buffers of a model: its weights, and the big short-lived
//! buffers of a forward pass.
//!
//! glibc hands out every block above its mmap threshold (128 KiB, adapting upward to 32 MiB only
//! after such blocks are freed) as fresh pages from the kernel and unmaps them on free. A 700-token
//! prefill allocates a few dozen 3–11 MiB activation buffers per layer, so each one was faulted in
//! page by page, zeroed by the kernel and charged to the memory cgroup again: about a tenth of the
//! prefill's time went to page faults. Kept in the heap instead, freed buffers are reused as they are.
//!
//! Blocks of 32 MiB and more (the embedding and LM head; at bloom-7b1 every f32 or f16 weight
//! matrix), which glibc maps on their own, are asked to use transparent huge pages (see
//! [`HugePageAlloc`]); so are the smaller quantized and f16 matrices and a prompt's keys and values
//! beside them, which it serves from arenas of advised mappings (`super::huge_arena`).

use std::alloc::{GlobalAlloc, Layout, System};

use super::huge_arena;

/// glibc's largest mmap threshold: blocks from here on are mapped on their own.
pub(super) const MAPPED_FROM: usize = 32 << 20;

/// A transparent huge page on x86-64 and most aarch64 kernels.
pub(super) const HUGE_PAGE: usize = 2 << 20;

/// Serves blocks up to glibc's largest mmap threshold (32 MiB) from the heap and keeps freed memory
/// for reuse. Weights and other larger blocks are still mapped, so the peak memory is unchanged
/// where it matters. Call once, early in `main`; elsewhere (other allocators, other systems) a no-op.
pub fn keep_freed_buffers() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; it is called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MAPPED_FROM as libc::c_int);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 256 << 20);
    }
}

/// A copy of `values` where a loader puts a weight's final form (the weights' huge-page arena,
/// under [`HugePageAlloc`]): for benches that time kernels on weights laid out as a model's are.
pub fn weight_copy<T: Clone>(values: &[T]) -> Vec<T> {
    let mut v = huge_arena::weight_capacity(values.len());
    v.extend_from_slice(values);
    v
}

/// The system allocator, with every block of [`MAPPED_FROM`] bytes or more advised to use
/// transparent huge pages (`madvise(MADV_HUGEPAGE)`, before anything touches it), and the smaller
/// weight buffers asked for through `huge_arena::filled_vec` served from that arena. Use it as the
/// binary's `#[global_allocator]`.
///
/// Why: each 4 KiB page of a weight is a page fault when the weight is loaded (about 2.6 µs each on
/// a KVM guest: 0.7 s for bloom-560m's 1 GB f32 LM head alone) and a TLB miss at every decode step
/// that reads it. Measured on a 2-core Zen 3 guest, bloom-560m shape in f32 (`bench`):
/// - loaded in 1.07–1.38 s against 1.34–3.72 s (8 alternating pairs);
/// - a whole run took 304 000 minor faults against 619 000, and page clearing fell from 6% of a
///   700-token prefill's samples to 0.2%;
/// - the decode steps did not move clearly (one path shorter in 3 of 4 pairs, 8 paths longer in 6
///   of 8 by a paired median of 1.06, though the 8-row LM head alone was faster in 5 of 5).
///
/// Kernels set to `never` ignore the advice; those set to `always` give huge pages anyway. Only the
/// whole 2 MiB pages inside a block are advised. glibc serves such a block from its heap when a
/// freed chunk there fits it; the advice then stays with those pages for whatever reuses them.
pub struct HugePageAlloc;

impl HugePageAlloc {
    /// Advises the whole huge pages of `[p, p + size)` when the block is at least [`MAPPED_FROM`]
    /// bytes. The advice is best effort: an error (an old kernel, no THP) changes nothing.
    fn advise(p: *mut u8, size: usize) {
        #[cfg(target_os = "linux")]
        if !p.is_null() && size >= MAPPED_FROM {
            let start = (p as usize).next_multiple_of(HUGE_PAGE);
            let end = (p as usize + size) & !(HUGE_PAGE - 1);
            if end > start {
                // SAFETY: [start, end) lies inside the block just allocated, which this caller owns;
                // MADV_HUGEPAGE changes how its pages are backed, never their contents.
                unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE) };
            }
        }
        #[cfg(not(target_os = "linux"))]
        let _ = (p, size);
    }
}

// SAFETY: every call is System's, whose contract is kept; the advice only changes page backing.
unsafe impl GlobalAlloc for HugePageAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if let Some(arena) = huge_arena::wanted(layout.size()) {
            let p = arena.alloc(layout);
            if !p.is_null() {
                return p;
            }
        }
        // SAFETY: forwarded with the caller's guarantees.
        let p = unsafe { System.alloc(layout) };
        Self::advise(p, layout.size());
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees. A fresh mapping is zero without being
        // touched, so the advice still comes before the first fault.
        let p = unsafe { System.alloc_zeroed(layout) };
        Self::advise(p, layout.size());
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if let Some(arena) = huge_arena::owner(ptr, layout.size()) {
            return arena.free(ptr, layout.size());
        }
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if let Some(arena) = huge_arena::owner(ptr, layout.size()) {
            // Out of the arena: whatever grows or shrinks a weight's buffer is no longer its final form.
            // SAFETY: the caller guarantees `new_size` is non-zero and fits `layout.align()`.
            let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
            // SAFETY: forwarded with the caller's guarantees.
            let p = unsafe { System.alloc(new_layout) };
            if !p.is_null() {
                // SAFETY: both blocks hold at least the smaller size; they are distinct allocations.
                unsafe { std::ptr::copy_nonoverlapping(ptr, p, layout.size().min(new_size)) };
                arena.free(ptr, layout.size());
            }
            return p;
        }
        // SAFETY: forwarded with the caller's guarantees.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if new_size > layout.size() {
            Self::advise(p, new_size);
        }
        p
    }
}

/// The `VmFlags` of the mapping holding `addr`, from `/proc/self/smaps`.
#[cfg(all(test, target_os = "linux"))]
pub(crate) fn vm_flags(addr: usize) -> Option<String> {
    let smaps = std::fs::read_to_string("/proc/self/smaps").ok()?;
    let mut inside = false;
    for line in smaps.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        if let Some(flags) = line.strip_prefix("VmFlags:") {
            if inside {
                return Some(flags.trim().to_string());
            }
        } else if let Some((a, b)) = first.split_once('-').filter(|_| !first.ends_with(':')) {
            let (a, b) = (usize::from_str_radix(a, 16).ok()?, usize::from_str_radix(b, 16).ok()?);
            inside = (a..b).contains(&addr);
        }
    }
    None
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn a_block_glibc_maps_on_its_own_is_advised_to_use_huge_pages_and_a_small_one_is_not() {
        let big = Layout::from_size_align(MAPPED_FROM + 3 * HUGE_PAGE, 64).unwrap();
        let small = Layout::from_size_align(1 << 20, 64).unwrap();
        // SAFETY: non-zero sizes; freed below with the same layouts.
        let (b, s) = unsafe { (HugePageAlloc.alloc_zeroed(big), HugePageAlloc.alloc(small)) };
        assert!(!b.is_null() && !s.is_null());
        // A whole huge page inside the big block: its mapping carries the advice ("hg").
        let inside = (b as usize).next_multiple_of(HUGE_PAGE) + HUGE_PAGE;
        let flags = vm_flags(inside).expect("the block's mapping is listed in smaps");
        let small_flags = vm_flags(s as usize).expect("the small block's mapping is listed in smaps");
        // SAFETY: allocated above with these layouts.
        unsafe {
            // Still zero where it was advised, and writable.
            assert_eq!(*b.add(inside - b as usize), 0);
            *b.add(inside - b as usize) = 7;
            HugePageAlloc.dealloc(b, big);
            HugePageAlloc.dealloc(s, small);
        }
        if !std::path::Path::new("/sys/kernel/mm/transparent_hugepage").exists() {
            eprintln!("this kernel has no transparent huge pages: the advice cannot show");
            return;
        }
        assert!(flags.split_whitespace().any(|f| f == "hg"), "big block not advised: {flags}");
        assert!(!small_flags.split_whitespace().any(|f| f == "hg"), "small block advised: {small_flags}");
    }
}
