//! The allocator as a test binary's global allocator: every block has the
//! alignment and contents asked for, through page exhaustion, zeroing,
//! growth and shrinking, and frees from another thread.

use portcullis_alloc::Mimalloc;

#[global_allocator]
static GLOBAL: Mimalloc = Mimalloc;

#[derive(Clone, Copy)]
#[repr(align(32))]
struct A32([u8; 32]);

#[derive(Clone, Copy)]
#[repr(align(4096))]
struct A4096(#[allow(dead_code)] [u8; 4096]);

fn addr<T>(v: &[T]) -> usize {
    v.as_ptr() as usize
}

/// Blocks held many at a time, so that pages run out and new ones are
/// started: the case mimalloc's aligned fast path leaves to its slow one.
#[test]
fn held_blocks_of_every_size_have_their_alignment_and_contents() {
    for len in (1..=4200).step_by(7) {
        let held: Vec<Vec<u8>> = (0..64u8)
            .map(|i| {
                let mut v = Vec::with_capacity(len);
                v.resize(len, i);
                v
            })
            .collect();
        for (i, v) in (0u8..).zip(&held) {
            assert!(v.iter().all(|&b| b == i), "len {len}");
        }
    }
    for n in 1..=300 {
        let held: Vec<Vec<u128>> = (0..32u128).map(|i| vec![i; n]).collect();
        for (i, v) in (0u128..).zip(&held) {
            assert_eq!(addr(v) % 16, 0, "{n} x u128");
            assert!(v.iter().all(|&x| x == i));
        }
        let held: Vec<Vec<u64>> = (0..32u64).map(|i| vec![i; n]).collect();
        for v in &held {
            assert_eq!(addr(v) % 8, 0, "{n} x u64");
        }
        let held: Vec<Vec<A32>> = (0..8u8).map(|i| vec![A32([i; 32]); n]).collect();
        for v in &held {
            assert_eq!(addr(v) % 32, 0, "{n} x A32");
        }
    }
    for n in 1..=4 {
        let v = vec![A4096([7; 4096]); n];
        assert_eq!(addr(&v) % 4096, 0);
    }
    // A one-byte block is a real, distinct allocation.
    let ones: Vec<Box<u8>> = (0..1000).map(|i| Box::new(i as u8)).collect();
    for (i, b) in ones.iter().enumerate() {
        assert_eq!(**b, i as u8);
    }
}

#[test]
fn zeroed_blocks_are_zero() {
    for len in (1..=20_000).step_by(97) {
        // Dirty some blocks of this size first, so zeroing is seen.
        drop(vec![0xAAu8; len]);
        let v = vec![0u8; len];
        assert!(v.iter().all(|&b| b == 0), "len {len}");
        drop(vec![u128::MAX; len / 16 + 1]);
        let w = vec![0u128; len / 16 + 1];
        assert_eq!(addr(&w) % 16, 0);
        assert!(w.iter().all(|&x| x == 0));
    }
}

/// Layouts no Rust type has (a size that is not a multiple of the
/// alignment), which only an aligned entry point can serve: a 48-byte
/// block at 32 is one mimalloc's plain 48-byte blocks would often miss.
#[test]
#[allow(unsafe_code)]
fn raw_layouts_of_every_size_and_alignment_are_honoured() {
    use std::alloc::{GlobalAlloc as _, Layout};
    for align in [1, 2, 4, 8, 16, 32, 64, 128, 4096] {
        for size in (1..=5000).step_by(3).chain([8, 16, 24, 48, 80, 1536, 8192]) {
            let layout = Layout::from_size_align(size, align).unwrap();
            let held: Vec<*mut u8> = (0..48u8)
                .map(|i| {
                    // SAFETY: the layout's size is not zero.
                    let p = unsafe { GLOBAL.alloc(layout) };
                    assert!(!p.is_null());
                    assert_eq!(p as usize % align, 0, "size {size} align {align}");
                    // SAFETY: `p` is a live block of `size` bytes.
                    unsafe { p.write_bytes(i, size) };
                    p
                })
                .collect();
            for (i, &p) in (0u8..).zip(&held) {
                // SAFETY: `p` is a live block of `size` initialised bytes.
                let block = unsafe { std::slice::from_raw_parts(p, size) };
                assert!(block.iter().all(|&b| b == i), "size {size} align {align}");
                // SAFETY: `p` came from `GLOBAL.alloc(layout)`.
                unsafe { GLOBAL.dealloc(p, layout) };
            }
        }
    }
}

/// Reallocation that crosses between the entry points: a block made by the
/// aligned path (8 bytes at 16: the plain path's 8-byte blocks are only
/// 8-aligned, so mimalloc may hand out an interior pointer) grown through
/// the plain path, and a plain block shrunk below its alignment.
#[test]
#[allow(unsafe_code)]
fn raw_reallocation_across_entry_points_keeps_contents_and_alignment() {
    use std::alloc::{GlobalAlloc as _, Layout};
    for align in [8, 16, 32] {
        for _ in 0..200 {
            let first = Layout::from_size_align(8, align).unwrap();
            // SAFETY: non-zero size.
            let mut p = unsafe { GLOBAL.alloc(first) };
            assert!(!p.is_null());
            // SAFETY: `p` is a live block of 8 bytes.
            unsafe { p.write_bytes(0x5A, 8) };
            let mut size = 8;
            for new_size in [32, 4096, 24, 8, 100, 16, 8] {
                let layout = Layout::from_size_align(size, align).unwrap();
                // SAFETY: `p` is live with `layout`; `new_size` is not zero.
                p = unsafe { GLOBAL.realloc(p, layout, new_size) };
                assert!(!p.is_null());
                assert_eq!(p as usize % align, 0, "{size} -> {new_size} at {align}");
                let kept = size.min(new_size);
                // SAFETY: the first `kept` bytes were initialised before.
                let block = unsafe { std::slice::from_raw_parts(p, kept) };
                assert!(block.iter().all(|&b| b == 0x5A), "{size} -> {new_size}");
                // SAFETY: `p` is a live block of `new_size` bytes.
                unsafe { p.write_bytes(0x5A, new_size) };
                size = new_size;
            }
            // SAFETY: `p` is live with this layout.
            unsafe { GLOBAL.dealloc(p, Layout::from_size_align(size, align).unwrap()) };
        }
    }
}

/// Growing and shrinking keeps the contents and the alignment, also when
/// a block moves between plain and aligned entry points.
#[test]
fn reallocation_keeps_contents_and_alignment() {
    let mut bytes: Vec<u8> = Vec::new();
    let mut wide: Vec<u128> = Vec::new();
    let mut big: Vec<A32> = Vec::new();
    for i in 0..20_000u32 {
        bytes.push(i as u8);
        wide.push(u128::from(i));
        if i % 8 == 0 {
            big.push(A32([i as u8; 32]));
        }
        assert_eq!(addr(&wide) % 16, 0);
        assert_eq!(addr(&big) % 32, 0);
    }
    for cut in [15_000, 4_000, 700, 33, 1] {
        bytes.truncate(cut);
        bytes.shrink_to_fit();
        wide.truncate(cut);
        wide.shrink_to_fit();
        big.truncate(cut / 8 + 1);
        big.shrink_to_fit();
        assert_eq!(addr(&wide) % 16, 0);
        assert_eq!(addr(&big) % 32, 0);
        assert!(bytes.iter().enumerate().all(|(i, &b)| b == i as u8));
        assert!(wide.iter().enumerate().all(|(i, &x)| x == i as u128));
        assert!(big
            .iter()
            .enumerate()
            .all(|(i, a)| a.0 == [(i * 8) as u8; 32]));
    }
}

/// Blocks made on one thread and freed on another (as the audit writer
/// frees records made on a worker) are reused soundly.
#[test]
fn blocks_freed_on_another_thread_are_reused() {
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u128>>(64);
    let freer = std::thread::spawn(move || {
        let mut n = 0usize;
        for v in rx {
            assert!(v.iter().all(|&x| x == v.len() as u128));
            n += 1;
        }
        n
    });
    for round in 0..20_000usize {
        let len = round % 200 + 1;
        let v = vec![len as u128; len];
        assert_eq!(addr(&v) % 16, 0);
        tx.send(v).unwrap();
    }
    drop(tx);
    assert_eq!(freer.join().unwrap(), 20_000);
}
