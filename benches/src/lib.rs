//! Criterion benchmarks of weft against its peers; see `benches/benches/*.rs` and BENCHMARKS.md.
//!
//! This crate is not published. Run everything with `cargo bench -p weft-benches`, or one file with
//! `cargo bench -p weft-benches --bench NAME`.

use std::time::Duration;

/// CPU time (user + system) of the whole process so far, from `getrusage`.
///
/// Shared by the examples that report CPU time beside wall time (`chan_drive`, `chan_latency`).
///
/// ```
/// let before = weft_benches::process_cpu_time();
/// let mut x = 0u64;
/// for i in 0..1_000_000u64 { x = x.wrapping_add(std::hint::black_box(i)); }
/// assert!(weft_benches::process_cpu_time() >= before);
/// # let _ = x;
/// ```
pub fn process_cpu_time() -> Duration {
    // SAFETY: `getrusage` only writes the struct we pass, which is valid for writes and fully
    // initialised (zeroed) beforehand; RUSAGE_SELF is a valid `who`.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    tv(usage.ru_utime) + tv(usage.ru_stime)
}
