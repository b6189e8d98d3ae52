//! The binary's allocator: mimalloc, asked for plain blocks where it can and told to give
//! freed memory back to the system soon.
//!
//! Hardening allocates and frees many small JSON values; mimalloc does that far faster than
//! the system allocator. By default (mimalloc 3) it keeps freed pages for a second before
//! returning them; in that time a large template's tree, allocated on one thread, cannot use
//! the pages just freed on another (the reviews moved to the spool to make room for it, see
//! `cdk_harden::report::store`). Returning them after 2 ms: at 1,000 stages the peak is about
//! 47 MiB (10 ms: 51; a second: 85) for about 2% more time than with 10 ms.

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

use libmimalloc_sys as mi;

#[global_allocator]
static ALLOCATOR: Allocator = Allocator;

/// mimalloc, asked for plain blocks where a plain block is aligned enough (every block is
/// aligned to a machine word); `mimalloc::MiMalloc` asks for every block by its alignment,
/// which takes mimalloc's slower aligned path for all of them.
struct Allocator;

/// The alignment every mimalloc block has: a machine word.
const WORD: usize = std::mem::size_of::<usize>();

// SAFETY: each method hands the request to mimalloc, by alignment where a word is not enough;
// every block, plain or aligned, is freed by `mi_free`.
unsafe impl GlobalAlloc for Allocator {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.align() <= WORD {
            mi::mi_malloc(layout.size()).cast()
        } else {
            mi::mi_malloc_aligned(layout.size(), layout.align()).cast()
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.align() <= WORD {
            mi::mi_zalloc(layout.size()).cast()
        } else {
            mi::mi_zalloc_aligned(layout.size(), layout.align()).cast()
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        mi::mi_free(ptr.cast::<c_void>());
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if layout.align() <= WORD {
            mi::mi_realloc(ptr.cast::<c_void>(), new_size).cast()
        } else {
            mi::mi_realloc_aligned(ptr.cast::<c_void>(), new_size, layout.align()).cast()
        }
    }
}

/// mimalloc's `mi_option_purge_delay` (its place in `mi_option_e`, `mimalloc.h`).
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Milliseconds before freed memory goes back to the system.
const PURGE_AFTER_MS: std::os::raw::c_long = 2;

/// Sets the allocator's options. Call first thing in `main`, before any thread starts:
/// mimalloc's option setters are not thread-safe.
pub fn tune() {
    // SAFETY: sets one integer option; no other thread exists yet.
    unsafe { libmimalloc_sys::mi_option_set(PURGE_DELAY, PURGE_AFTER_MS) };
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Option 15 is the purge delay: it has the default mimalloc 3 gives it (1,000 ms), and it
    /// takes our value.
    #[test]
    fn issue_8_the_purge_delay_option_is_the_one_set() {
        // SAFETY: the test harness allocates through mimalloc; these read and write one
        // integer option, and this is the only test that touches options.
        unsafe {
            assert_eq!(libmimalloc_sys::mi_option_get(PURGE_DELAY), 1000);
            tune();
            assert_eq!(libmimalloc_sys::mi_option_get(PURGE_DELAY), PURGE_AFTER_MS);
        }
    }
}
