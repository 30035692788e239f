//! Stage settings checked when a pipeline is built: counts of 0, and settings an operator
//! would ignore, panic at the caller's line instead of being clamped or silently dropped.

use std::time::Duration;

use weft_pipeline::{ErrorPolicy, Pipeline, Stage};

#[test]
#[should_panic(expected = "Stage::workers must be at least 1")]
fn zero_workers_panics() {
    let _ = Stage::<u32>::new("s").workers(0);
}

#[test]
#[should_panic(expected = "Stage::buffer must be at least 1")]
fn zero_buffer_panics() {
    let _ = Stage::<u32>::new("s").buffer(0);
}

#[test]
#[should_panic(expected = "chunk_size must be at least 1")]
fn zero_chunk_size_panics() {
    let _ = Pipeline::from_iter(0..1u32).chunk_size(0);
}

#[test]
#[should_panic(expected = "max_items of at least 1")]
fn zero_batch_size_panics() {
    let _ = Pipeline::from_iter(0..1u32).batch("b", 0, Duration::from_millis(1));
}

#[test]
#[should_panic(expected = "at least 1 branch")]
fn zero_branches_panics() {
    let _ = Pipeline::from_iter(0..1u32).broadcast("tee", 0, |_, b| b);
}

#[test]
#[should_panic(expected = "`then` has no blocking variant")]
fn blocking_then_is_rejected_at_build() {
    let _ = Pipeline::from_iter(0..1u32).then(Stage::new("io").blocking(), |x| async move { x });
}

#[test]
#[should_panic(expected = "`batch` runs one item at a time")]
fn workers_on_batch_are_rejected_at_build() {
    let _ =
        Pipeline::from_iter(0..1u32).batch(Stage::new("b").workers(2), 4, Duration::from_millis(1));
}

#[test]
#[should_panic(expected = "`throttle` runs no closure that can fail")]
fn an_error_policy_on_throttle_is_rejected_at_build() {
    let stage = Stage::new("t").on_error(ErrorPolicy::skip());
    let _ = Pipeline::from_iter(0..1u32).throttle(stage, 1, Duration::from_millis(1));
}
