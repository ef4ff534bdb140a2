//! Portcullis's global allocator: mimalloc, asked for an alignment only
//! when its ordinary blocks might lack it.
//!
//! Rust gives every allocation an alignment. The `mimalloc` crate passes
//! it on to `mi_malloc_aligned`, whose fast path covers only blocks of at
//! most 1 KiB taken from a page with a free block at hand; every other
//! request (all larger ones, and a small one whose page just ran out)
//! takes mimalloc's generic aligned path, which over-allocates by
//! `align - 1` bytes unless the size class is a power of two: a slower
//! call, and often a block of the next size class. A proxied request makes
//! several such allocations (HTTP read buffers, header maps, request
//! futures); see docs/benchmarks.md, "Allocator".
//!
//! mimalloc's plain `mi_malloc` already aligns every block to 16 bytes
//! (`MI_MAX_ALIGN_SIZE`) except its 8-byte ones, which are 8-aligned: its
//! size classes above 8 bytes are multiples of 16 and each page's first
//! block is 16-aligned. So a request whose alignment is at most 16 and at
//! most its size is served by the plain entry points; any other goes to
//! the aligned ones, as before.

use core::alloc::{GlobalAlloc, Layout};
use core::ffi::c_void;

use libmimalloc_sys as ffi;

/// The alignment of every mimalloc block of at least this many bytes
/// (mimalloc's `MI_MAX_ALIGN_SIZE`), and more than that of any smaller
/// block it would serve a request of that alignment from.
const PLAIN_ALIGN: usize = 16;

/// mimalloc as the global allocator, with the plain entry points wherever
/// they give the alignment asked for.
#[derive(Clone, Copy, Debug, Default)]
pub struct Mimalloc;

/// Whether mimalloc's unaligned entry points give `size` bytes at `align`:
/// an alignment of at most 16 bytes and at most the size (a block at least
/// as large as the alignment has it; the smallest, 8-byte blocks are
/// 8-aligned).
#[inline]
const fn plain(size: usize, align: usize) -> bool {
    align <= PLAIN_ALIGN && align <= size
}

// The `unsafe` of this crate is all here: the calls into mimalloc, with
// the contracts `GlobalAlloc` gives and asks for.
#[allow(unsafe_code)]
// SAFETY: every pointer returned is null or a block from mimalloc of at
// least `layout.size()` bytes aligned to `layout.align()` (see `plain`,
// and mimalloc's aligned entry points for the rest); `dealloc` and
// `realloc` get only pointers this allocator returned, which `mi_free` and
// `mi_realloc*` accept whichever entry point made them.
unsafe impl GlobalAlloc for Mimalloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the entry points are mimalloc's allocating pair.
        unsafe { alloc_with(layout, ffi::mi_malloc, ffi::mi_malloc_aligned) }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the entry points are mimalloc's zeroing pair.
        unsafe { alloc_with(layout, ffi::mi_zalloc, ffi::mi_zalloc_aligned) }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: `ptr` came from this allocator (the caller's contract),
        // so from mimalloc, whose `mi_free` takes blocks of every entry
        // point, aligned ones included.
        unsafe { ffi::mi_free(ptr.cast::<c_void>()) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let align = layout.align();
        if plain(new_size, align) {
            // SAFETY: `ptr` is a live mimalloc block (the caller's
            // contract). `mi_realloc` keeps it when it still fits, which
            // keeps its alignment, or moves the contents to a plain block,
            // which has `align` (see `plain`).
            unsafe { ffi::mi_realloc(ptr.cast::<c_void>(), new_size).cast() }
        } else {
            // SAFETY: as above; `align` is a power of two.
            unsafe { ffi::mi_realloc_aligned(ptr.cast::<c_void>(), new_size, align).cast() }
        }
    }
}

/// A block for `layout` from `plain_fn` where its blocks have the
/// alignment (see [`plain`]), else from `aligned_fn`.
///
/// # Safety
///
/// `plain_fn` and `aligned_fn` must be mimalloc's unaligned and aligned
/// entry points of one kind (allocating, or allocating zeroed).
#[allow(unsafe_code)]
#[inline(always)]
unsafe fn alloc_with(
    layout: Layout,
    plain_fn: unsafe extern "C" fn(usize) -> *mut c_void,
    aligned_fn: unsafe extern "C" fn(usize, usize) -> *mut c_void,
) -> *mut u8 {
    let (size, align) = (layout.size(), layout.align());
    if plain(size, align) {
        // SAFETY: any size may be asked of mimalloc.
        unsafe { plain_fn(size).cast() }
    } else {
        // SAFETY: `align` is a power of two (a `Layout` invariant).
        unsafe { aligned_fn(size, align).cast() }
    }
}

#[cfg(test)]
mod tests {
    use super::plain;

    #[test]
    fn only_alignments_every_fitting_block_has_take_the_plain_path() {
        assert!(plain(1, 1));
        assert!(plain(8, 8));
        assert!(plain(24, 8));
        assert!(plain(16, 16));
        assert!(plain(1536, 8));
        assert!(plain(8192, 16));
        // an 8-byte block is only 8-aligned
        assert!(!plain(8, 16));
        assert!(!plain(1, 2));
        // more than mimalloc's blocks promise
        assert!(!plain(64, 32));
        assert!(!plain(4096, 4096));
    }
}
