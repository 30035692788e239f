//! Property test for the Context tree: for any tree and any sequence of cancellations and clock
//! advances, each node is done exactly when it or an ancestor was cancelled or its effective
//! deadline passed, and its error and cause come from whichever of those happened first.

use std::time::Duration;

use proptest::prelude::*;
use tokio::time::Instant;
use weft_core::context::{CancelFn, Context, ContextError};

#[derive(Debug, Clone)]
enum Op {
    /// Cancel node `i % n` with cause "c<i>".
    Cancel(usize),
    /// Advance the paused clock by this many milliseconds.
    Advance(u64),
    /// Compare every node with the model. Looking has a side effect worth testing around: it
    /// expires passed deadlines, so checks are interleaved at random rather than after each op.
    Check,
}

/// Node spec: parent index (into earlier nodes, or none = root child) and optional timeout (ms).
type Spec = (Option<usize>, Option<u64>);

fn specs() -> impl Strategy<Value = Vec<Spec>> {
    prop::collection::vec((any::<Option<usize>>(), prop::option::of(1_u64..50)), 1..12)
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(
        prop_oneof![
            (0_usize..64).prop_map(Op::Cancel),
            (0_u64..20).prop_map(Op::Advance),
            Just(Op::Check),
        ],
        0..16,
    )
}

/// The model: what should each node report?
struct Model {
    parent: Vec<Option<usize>>,
    deadline: Vec<Option<Instant>>,
    /// (time, kind, cause) of the event that ended each node by itself, if any.
    own_end: Vec<Option<(Instant, ContextError, String)>>,
}

impl Model {
    fn path(&self, mut i: usize) -> Vec<usize> {
        let mut p = vec![i];
        while let Some(parent) = self.parent[i] {
            p.push(parent);
            i = parent;
        }
        p
    }

    /// The earliest end on the path from `i` to the root: an explicit cancel recorded on a
    /// node, or a node's own deadline passing.
    fn expected(&self, i: usize, now: Instant) -> Option<(ContextError, String)> {
        let mut best: Option<(Instant, ContextError, String)> = None;
        for n in self.path(i) {
            if let Some((t, e, c)) = &self.own_end[n]
                && best.as_ref().is_none_or(|(bt, _, _)| t < bt)
            {
                best = Some((*t, *e, c.clone()));
            }
            if let Some(d) = self.deadline[n]
                && d <= now
                && best.as_ref().is_none_or(|(bt, _, _)| d < *bt)
            {
                best = Some((
                    d,
                    ContextError::DeadlineExceeded,
                    "context deadline exceeded".into(),
                ));
            }
        }
        best.map(|(_, e, c)| (e, c))
    }
}

fn check(specs: Vec<Spec>, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let root = Context::background();
        let start = Instant::now();
        let mut ctxs: Vec<(Context, CancelFn)> = Vec::new();
        let mut model = Model {
            parent: vec![],
            deadline: vec![],
            own_end: vec![],
        };
        for (parent, timeout) in specs {
            let parent = parent.and_then(|p| (!ctxs.is_empty()).then(|| p % ctxs.len()));
            let base = parent.map_or(&root, |p| &ctxs[p].0);
            let pair = match timeout {
                Some(ms) => base.with_timeout(Duration::from_millis(ms)),
                None => base.with_cancel(),
            };
            model.parent.push(parent);
            model
                .deadline
                .push(timeout.map(|ms| start + Duration::from_millis(ms)));
            model.own_end.push(None);
            ctxs.push(pair);
        }
        for op in ops.into_iter().chain([Op::Check]) {
            match &op {
                Op::Cancel(i) => {
                    let i = *i % ctxs.len();
                    let now = Instant::now();
                    let cause = format!("c{i}");
                    // Only the first end of a node counts, and a node already ended through an
                    // ancestor or a passed deadline ignores the cancel.
                    if model.expected(i, now).is_none() {
                        model.own_end[i] = Some((now, ContextError::Cancelled, cause.clone()));
                    }
                    ctxs[i].1.cancel_with(cause);
                }
                Op::Advance(ms) => tokio::time::advance(Duration::from_millis(*ms)).await,
                Op::Check => {}
            }
            if !matches!(op, Op::Check) {
                continue;
            }
            let now = Instant::now();
            for (i, (ctx, _)) in ctxs.iter().enumerate() {
                let want = model.expected(i, now);
                prop_assert_eq!(ctx.is_done(), want.is_some(), "node {} done", i);
                prop_assert_eq!(ctx.err(), want.as_ref().map(|w| w.0), "node {} err", i);
                prop_assert_eq!(
                    ctx.cause().map(|c| c.to_string()),
                    want.map(|w| w.1),
                    "node {} cause",
                    i
                );
            }
        }
        Ok(())
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn context_tree_matches_model(specs in specs(), ops in ops()) {
        check(specs, ops)?;
    }
}
