//! How the C allocator treats the large, short-lived buffers of a forward pass.
//!
//! glibc hands out every block above its mmap threshold (128 KiB, adapting upward to 32 MiB only
//! after such blocks are freed) as fresh pages from the kernel and unmaps them on free. A 700-token
//! prefill allocates a few dozen 3–11 MiB activation buffers per layer, so each one was faulted in
//! page by page, zeroed by the kernel and charged to the memory cgroup again: about a tenth of the
//! prefill's time went to page faults. Kept in the heap instead, freed buffers are reused as they are.

/// Serves blocks up to glibc's largest mmap threshold (32 MiB) from the heap and keeps freed memory
/// for reuse. Weights and other larger blocks are still mapped, so the peak memory is unchanged
/// where it matters. Call once, early in `main`; elsewhere (other allocators, other systems) a no-op.
pub fn keep_freed_buffers() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; it is called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 256 << 20);
    }
}
