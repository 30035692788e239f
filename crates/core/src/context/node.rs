//! The private core behind [`Context`](super::Context): a tree of cancellation nodes.
//!
//! A `Context` is a light handle (two `Arc`s) over a `Node` and an optional chain of values,
//! the way tokio-util's `CancellationToken` is a handle over its `TreeNode`.
//!
//! # Invariants
//!
//! 1. A node's `token` is a child token of its parent's token, or a fresh root token for
//!    `background()` and `without_cancel()`. Cancelling a node's token therefore cancels
//!    every node below it, synchronously and before `cancel` returns, and never one above it.
//! 2. Whoever cancels a node sets its `reason` (once) *before* cancelling its token. So a node
//!    whose token is cancelled has a reason on itself or on an ancestor whose token is cancelled.
//! 3. `deadline` is the effective deadline, `min(own_deadline, parent.deadline)`, fixed at
//!    creation. The nearest node (self first, then upward) whose `own_deadline` equals it is the
//!    deadline's *owner*; expiry cancels the owner, so everything below the owner ends with it,
//!    with the owner's `deadline_cause` (Go's `WithDeadlineCause`) or else `DeadlineExceeded`
//!    as the cause.
//! 4. Deadlines are lazy: no task or timer exists per node. A deadline is noticed by whoever
//!    looks (`is_done`, `err`, `cause`, or a polled `Done` future, which races the token against
//!    a `Sleep`), and the first to notice expires the owner (invariant 2 then holds for it).
//!    Every reason records *when* the node ended (a deadline's reason records the deadline), so
//!    a deadline that passed unobserved before some cancel still wins, as Go's timer would have.
//!
//! There are no locks here beyond the token tree's own (tokio-util locks parent before child)
//! and the `OnceLock`s, which never block while another lock is held.

use std::sync::{Arc, OnceLock};

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::error::{Cause, ContextError};

#[derive(Debug, Clone)]
pub(crate) struct Reason {
    pub(crate) err: ContextError,
    pub(crate) cause: Cause,
    /// When the node ended: the cancel's time, or the deadline itself for an expiry.
    at: Instant,
}

#[derive(Debug)]
pub(crate) struct Node {
    pub(crate) token: CancellationToken,
    parent: Option<Arc<Node>>,
    own_deadline: Option<Instant>,
    /// The cause recorded when `own_deadline` ends this node; `None` means `DeadlineExceeded`.
    deadline_cause: Option<Cause>,
    pub(crate) deadline: Option<Instant>,
    reason: OnceLock<Reason>,
}

impl Node {
    /// A node that nothing above can cancel.
    pub(crate) fn root() -> Arc<Node> {
        Arc::new(Node {
            token: CancellationToken::new(),
            parent: None,
            own_deadline: None,
            deadline_cause: None,
            deadline: None,
            reason: OnceLock::new(),
        })
    }

    /// A node cancelled with `self`, with an optional deadline of its own and the cause that
    /// deadline ends it with.
    pub(crate) fn child(
        self: &Arc<Self>,
        own_deadline: Option<Instant>,
        deadline_cause: Option<Cause>,
    ) -> Arc<Node> {
        let deadline = match (own_deadline, self.deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        Arc::new(Node {
            token: self.token.child_token(),
            parent: Some(Arc::clone(self)),
            own_deadline,
            deadline_cause,
            deadline,
            reason: OnceLock::new(),
        })
    }

    fn deadline_passed(&self) -> bool {
        self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    /// Cancels this node and its subtree, unless it is already done.
    pub(crate) fn cancel(&self, err: ContextError, cause: Cause) {
        if self.token.is_cancelled() {
            return;
        }
        // A deadline that has passed ended the context first, even if nobody looked yet.
        if self.deadline_passed() {
            self.expire();
            return;
        }
        // Invariant 2: reason first, then the token. A concurrent canceller may win the
        // `set`; the first reason stays, as Go keeps the first cancel's cause.
        let _ = self.reason.set(Reason {
            err,
            cause,
            at: Instant::now(),
        });
        self.token.cancel();
    }

    /// The owner of this node's deadline (invariant 3), or `None` without a deadline.
    fn deadline_owner(&self) -> Option<&Node> {
        let deadline = self.deadline?;
        let mut node = self;
        loop {
            if node.own_deadline == Some(deadline) {
                return Some(node);
            }
            match &node.parent {
                Some(parent) => node = parent,
                // Unreachable by invariant 3, but `self` is the safe fallback.
                None => return Some(self),
            }
        }
    }

    /// The reason the owner's deadline ends it with.
    fn deadline_reason(&self) -> Reason {
        let cause = self
            .deadline_cause
            .clone()
            .unwrap_or_else(|| Cause::from(ContextError::DeadlineExceeded));
        Reason {
            err: ContextError::DeadlineExceeded,
            cause,
            at: self.own_deadline.unwrap_or_else(Instant::now),
        }
    }

    /// Ends the owner of this node's deadline (invariant 3) with `DeadlineExceeded`.
    pub(crate) fn expire(&self) {
        let Some(node) = self.deadline_owner() else {
            return;
        };
        if node.token.is_cancelled() {
            return;
        }
        let _ = node.reason.set(node.deadline_reason());
        node.token.cancel();
    }

    pub(crate) fn is_done(&self) -> bool {
        self.token.is_cancelled() || self.deadline_passed()
    }

    /// Why this node is done, or `None` while it is not.
    pub(crate) fn reason(&self) -> Option<Reason> {
        if !self.token.is_cancelled() {
            if !self.deadline_passed() {
                return None;
            }
            self.expire();
        }
        // Invariant 2: the canceller is this node or an ancestor with a cancelled token. The
        // nearest one ended first: a cancel that reaches an already cancelled node records
        // nothing there.
        let mut node = Some(self);
        let mut found = None;
        while let Some(n) = node {
            if n.token.is_cancelled()
                && let Some(reason) = n.reason.get()
            {
                found = Some(reason);
                break;
            }
            node = n.parent.as_deref();
        }
        match found {
            // Our own deadline (or an ancestor's below the canceller) passed before that
            // cancel, unobserved: the deadline ended this context first, as Go's timer would have.
            Some(reason) if self.deadline.is_some_and(|d| d <= reason.at) => {
                self.deadline_owner().map(Node::deadline_reason)
            }
            Some(reason) => Some(reason.clone()),
            // Only reachable if the token was cancelled behind our back (never done by weft).
            None => Some(Reason {
                err: ContextError::Cancelled,
                cause: Cause::from(ContextError::Cancelled),
                at: Instant::now(),
            }),
        }
    }
}
