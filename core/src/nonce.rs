//! The nonce book of one account: which nonce the next transaction takes, which nonces are
//! reserved and not yet broadcast, and which were given back, so that concurrent sends take
//! consecutive nonces, a nonce is never given to two transactions, and no gap is left behind.
//!
//! Sends are pipelined: a nonce is reserved in a short critical section, the signature is
//! made outside it (many at once), and the signed transactions are broadcast in nonce order.
//! The book is asked for the node's count once, when the account is first used; after that
//! its own count is the truth, because a node's pending count can lag (a load balancer, a
//! node still importing) and would make two transactions share a nonce. What it learns from
//! the node later only ever moves it forward: a count of mined transactions above its own
//! (another sender used the account), or a "nonce too low" for one of its own. A transaction
//! the node lost is not given a new nonce: the tracker broadcasts it again.
//!
//! A nonce whose transaction was never broadcast (its signature failed, or the node refused
//! it and proved it does not have it) is given back. The last one handed out simply lowers
//! the count; any other is a hole, which the next reservation takes first, and which the
//! front end fills itself if nobody does: later transactions wait behind it.

use std::collections::BTreeSet;

/// What the book knows of one account.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NonceState {
    /// The next nonce never handed out; `None` until the node's count is known.
    next: Option<u64>,
    /// Handed out and neither broadcast nor given back yet.
    outstanding: BTreeSet<u64>,
    /// Below `next`, given back: taken first by the next reservation.
    holes: BTreeSet<u64>,
}

/// A nonce a client named in its request, against the book.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Named {
    /// The next nonce, or a hole: reserved for this request like any other.
    Reserved,
    /// A nonce this account already used: a replacement of that transaction, never mined
    /// beside it. Broadcast at once, outside the order.
    Replacement,
    /// Reserved by a request whose transaction is not broadcast yet: a replacement now would
    /// be overtaken by it.
    Waiting,
    /// Above the next nonce: it would wait behind a gap that nothing fills.
    Gap { next: u64 },
}

impl NonceState {
    /// Whether the node's count has been taken ([`NonceState::start`]).
    pub fn started(&self) -> bool {
        self.next.is_some()
    }

    /// Takes the node's count of the account's transactions when the book first needs it.
    /// Later calls change nothing: the book's own count is the truth from then on.
    pub fn start(&mut self, node_count: u64) {
        self.start_after(node_count, &BTreeSet::new());
    }

    /// As [`NonceState::start`], after a restart: `tracked` are the nonces of transactions
    /// this service broadcast and still watches. A node's count leaves out what it dropped or
    /// holds back, so the count starts after the highest tracked one, and the nonces between
    /// the node's count and it that nothing tracks are holes (filled, never left as gaps).
    pub fn start_after(&mut self, node_count: u64, tracked: &BTreeSet<u64>) {
        if self.next.is_some() {
            return;
        }
        let after = tracked
            .last()
            .and_then(|top| top.checked_add(1))
            .unwrap_or(0)
            .max(node_count);
        self.holes
            .extend((node_count..after).filter(|nonce| !tracked.contains(nonce)));
        self.next = Some(after);
    }

    /// Reserves the nonce of the next transaction: the lowest hole, else the next count.
    /// `None` before [`NonceState::start`].
    pub fn reserve(&mut self) -> Option<u64> {
        let nonce = match self.holes.pop_first() {
            Some(hole) => hole,
            None => {
                let next = self.next?;
                self.next = Some(next.checked_add(1)?);
                next
            }
        };
        self.outstanding.insert(nonce);
        Some(nonce)
    }

    /// Reserves `nonce`, named by a client, if it is the next one or a hole. `None` before
    /// [`NonceState::start`].
    pub fn reserve_named(&mut self, nonce: u64) -> Option<Named> {
        let next = self.next?;
        Some(if self.holes.remove(&nonce) {
            self.outstanding.insert(nonce);
            Named::Reserved
        } else if nonce == next {
            self.next = Some(next.checked_add(1)?);
            self.outstanding.insert(nonce);
            Named::Reserved
        } else if self.outstanding.contains(&nonce) {
            Named::Waiting
        } else if nonce < next {
            Named::Replacement
        } else {
            Named::Gap { next }
        })
    }

    /// Holds `nonce`, reserved for this process in a store shared with other replicas (which
    /// keeps the count and the holes): here only to keep this process's broadcasts in nonce
    /// order. Released by [`NonceState::broadcast`].
    pub fn adopt(&mut self, nonce: u64) {
        self.outstanding.insert(nonce);
    }

    /// The transaction with `nonce` was handed to the node (whatever it answered): the
    /// nonce is spent.
    pub fn broadcast(&mut self, nonce: u64) {
        self.outstanding.remove(&nonce);
    }

    /// The reserved `nonce` was never broadcast (its signature failed, or the node refused
    /// it and does not have it): the last one handed out lowers the count, any other becomes
    /// a hole. Returns whether it left a hole.
    pub fn give_back(&mut self, nonce: u64) -> bool {
        if !self.outstanding.remove(&nonce) {
            return false;
        }
        if self.next == nonce.checked_add(1) {
            self.next = Some(nonce);
            // Holes just below it are now the top of the count too.
            while let Some(&top) = self.holes.last() {
                if Some(top + 1) != self.next {
                    break;
                }
                self.holes.pop_last();
                self.next = Some(top);
            }
            return false;
        }
        self.holes.insert(nonce)
    }

    /// The node has `count` transactions of the account (mined, or pending after a "nonce
    /// too low"): every nonce below it is used, by us or another sender. The count moves up
    /// to it, and holes below it are gone. It never moves down on the node's word.
    pub fn used_up_to(&mut self, count: u64) {
        if let Some(next) = self.next {
            self.next = Some(next.max(count));
        }
        self.holes.retain(|hole| *hole >= count);
    }

    /// Nonces in `from..to` (below the count) that nothing holds: neither reserved nor, as
    /// `held` says, broadcast and watched. The node has mined up to `from` and holds a
    /// transaction at `to`: what is between is a gap (a transaction lost before it was
    /// tracked, or signed for a client who never broadcast it), made holes to be filled.
    pub fn gaps(&mut self, from: u64, to: u64, held: impl Fn(u64) -> bool) -> usize {
        let to = self.next.map_or(from, |next| to.min(next));
        let before = self.holes.len();
        for nonce in from..to {
            if !self.outstanding.contains(&nonce) && !held(nonce) {
                self.holes.insert(nonce);
            }
        }
        self.holes.len() - before
    }

    /// The lowest nonce that holds back later broadcasts: a hole, or a reservation whose
    /// transaction is not yet signed (`ready` says which are). Broadcasts go in nonce order,
    /// so a transaction is broadcast only once everything below it is.
    pub fn in_order<'a>(
        &'a self,
        ready: impl Fn(u64) -> bool + 'a,
    ) -> impl Iterator<Item = u64> + 'a {
        let hole = self.holes.first().copied();
        self.outstanding
            .iter()
            .copied()
            .take_while(move |nonce| hole.is_none_or(|hole| *nonce < hole))
            .take_while(move |nonce| ready(*nonce))
    }

    /// The holes, lowest first.
    pub fn holes(&self) -> impl Iterator<Item = u64> + '_ {
        self.holes.iter().copied()
    }

    /// Whether `nonce` is still a hole.
    pub fn is_hole(&self, nonce: u64) -> bool {
        self.holes.contains(&nonce)
    }

    /// The next nonce never handed out, once started.
    pub fn next(&self) -> Option<u64> {
        self.next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn started(at: u64) -> NonceState {
        let mut state = NonceState::default();
        state.start(at);
        state
    }

    #[test]
    fn nothing_is_reserved_before_the_nodes_count_is_known() {
        let mut state = NonceState::default();
        assert_eq!(state.reserve(), None);
        assert_eq!(state.reserve_named(0), None);
        state.start(7);
        state.start(1); // the node's word later changes nothing
        assert_eq!(state.reserve(), Some(7));
    }

    #[test]
    fn concurrent_reservations_take_consecutive_nonces() {
        let mut state = started(3);
        let nonces: Vec<u64> = (0..5).map(|_| state.reserve().unwrap()).collect();
        assert_eq!(nonces, [3, 4, 5, 6, 7]);
        assert_eq!(state.next(), Some(8));
    }

    #[test]
    fn broadcasts_go_in_nonce_order_and_wait_for_unsigned_ones() {
        let mut state = started(0);
        for _ in 0..4 {
            state.reserve();
        }
        // 1 and 3 are signed, 0 is not: nothing goes.
        let ready = |n: u64| n == 1 || n == 3;
        assert_eq!(state.in_order(ready).count(), 0);
        // 0 and 1 are signed: both go, 3 waits for 2.
        let ready = |n: u64| n != 2;
        assert_eq!(state.in_order(ready).collect::<Vec<_>>(), [0, 1]);
        state.broadcast(0);
        state.broadcast(1);
        assert_eq!(state.in_order(|_| true).collect::<Vec<_>>(), [2, 3]);
    }

    #[test]
    fn the_last_nonce_given_back_lowers_the_count_without_a_hole() {
        let mut state = started(10);
        let nonce = state.reserve().unwrap();
        assert!(!state.give_back(nonce));
        assert_eq!(state.next(), Some(10));
        assert_eq!(state.reserve(), Some(10));
    }

    #[test]
    fn a_nonce_given_back_below_others_is_a_hole_taken_first_and_holding_back_later_ones() {
        let mut state = started(0);
        for _ in 0..3 {
            state.reserve();
        }
        assert!(state.give_back(1), "1 is below 2: a hole");
        assert_eq!(state.holes().collect::<Vec<_>>(), [1]);
        // 0 may go; 2 waits behind the hole.
        assert_eq!(state.in_order(|_| true).collect::<Vec<_>>(), [0]);
        // The next reservation fills it.
        assert_eq!(state.reserve(), Some(1));
        assert!(!state.is_hole(1));
        assert_eq!(state.in_order(|_| true).collect::<Vec<_>>(), [0, 1, 2]);
        assert_eq!(state.reserve(), Some(3));
    }

    #[test]
    fn giving_back_the_top_also_folds_the_holes_below_it() {
        let mut state = started(0);
        for _ in 0..3 {
            state.reserve();
        }
        state.give_back(1);
        state.give_back(2);
        assert_eq!(state.next(), Some(1), "1 and 2 were the top: no hole left");
        assert_eq!(state.holes().count(), 0);
        assert_eq!(state.reserve(), Some(1));
    }

    #[test]
    fn a_nonce_is_given_back_once() {
        let mut state = started(0);
        state.reserve();
        state.reserve();
        state.broadcast(0);
        assert!(!state.give_back(0), "a broadcast nonce is spent");
        assert_eq!(state.holes().count(), 0);
    }

    #[test]
    fn named_nonces_are_reserved_replacements_or_refused_gaps() {
        let mut state = started(5);
        assert_eq!(state.reserve_named(5), Some(Named::Reserved));
        assert_eq!(state.reserve_named(9), Some(Named::Gap { next: 6 }));
        assert_eq!(state.next(), Some(6), "a named gap does not move the count");
        assert_eq!(state.reserve_named(2), Some(Named::Replacement));
        assert_eq!(
            state.reserve_named(5),
            Some(Named::Waiting),
            "not broadcast yet"
        );
        state.broadcast(5);
        assert_eq!(state.reserve_named(5), Some(Named::Replacement));
        state.reserve();
        state.reserve();
        state.give_back(6);
        assert_eq!(state.reserve_named(6), Some(Named::Reserved), "a hole");
    }

    #[test]
    fn the_nodes_count_only_moves_the_book_forward() {
        let mut state = started(4);
        state.reserve();
        state.reserve();
        state.reserve();
        state.give_back(5);
        // Another sender's transactions took 4..=8.
        state.used_up_to(9);
        assert_eq!(state.next(), Some(9));
        assert_eq!(
            state.holes().count(),
            0,
            "the hole was used by the other sender"
        );
        // A lagging count changes nothing.
        state.used_up_to(2);
        assert_eq!(state.next(), Some(9));
    }

    #[test]
    fn a_restart_starts_after_what_it_tracks_and_fills_what_it_does_not() {
        let mut state = NonceState::default();
        // The node counts 3; the service still watches 3 and 5 (4 was lost).
        state.start_after(3, &BTreeSet::from([3, 5]));
        assert_eq!(state.next(), Some(6));
        assert_eq!(state.holes().collect::<Vec<_>>(), [4]);
        assert_eq!(state.reserve(), Some(4));
        assert_eq!(state.reserve(), Some(6));
    }

    #[test]
    fn a_replacement_of_a_nonce_still_waiting_for_its_turn_is_refused() {
        let mut state = started(0);
        state.reserve();
        assert_eq!(state.reserve_named(0), Some(Named::Waiting));
        state.broadcast(0);
        assert_eq!(state.reserve_named(0), Some(Named::Replacement));
    }

    #[test]
    fn a_gap_below_a_held_transaction_becomes_holes() {
        let mut state = started(0);
        for _ in 0..5 {
            state.reserve();
        }
        state.broadcast(0);
        state.broadcast(1);
        state.broadcast(3);
        // Mined up to 1; 1 and 3 are held by the node; 2 is still reserved (not signed yet).
        assert_eq!(state.gaps(1, 3, |n| n == 1 || n == 3), 0);
        // 1 was broadcast but is not held: a gap.
        state.broadcast(2);
        assert_eq!(state.gaps(1, 3, |n| n == 2 || n == 3), 1);
        assert_eq!(state.holes().collect::<Vec<_>>(), [1]);
    }

    #[test]
    fn the_count_stops_at_the_last_nonce() {
        let mut state = started(u64::MAX);
        assert_eq!(state.reserve(), None, "2^64-1 is never a valid nonce");
    }
}
