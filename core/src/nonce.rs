//! The nonce manager of one account: which nonce the next transaction takes, so that
//! concurrent sends from one account take consecutive nonces and a nonce is never given to
//! two different transactions.
//!
//! The front end holds one [`NonceState`] per account behind a lock for the whole of
//! assign, sign and broadcast, and asks the node for the account's pending count each time
//! (a cheap call). The state remembers what this process handed out, and the hash of each
//! transaction it signed; the node says what it has seen. A node count above ours wins
//! (another sender used the account: "nonce too low" would follow). A count below ours is
//! never taken on the node's word alone: a node whose count lags (a load balancer, a node
//! still importing) would make two transactions share a nonce. It is taken only as far as
//! the node proves our transactions gone, looked up by hash (`eth_getTransactionByHash`
//! answers nothing: it restarted or dropped them), newest first, so the gap they leave does
//! not stall every later transaction.

use std::collections::BTreeMap;

use kms_eth_signer::B256;

/// How many signed transactions the state remembers (the newest); an older one left out
/// cannot be proved gone, so the state then keeps its own count.
const REMEMBERED: usize = 4096;

/// What the manager knows of one account.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NonceState {
    next: Option<u64>,
    /// The transactions this process signed and broadcast (or may have), by nonce.
    sent: BTreeMap<u64, B256>,
}

/// A nonce handed out, and whether the node's count disagreed with ours first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Assigned {
    pub nonce: u64,
    pub resync: Option<Resync>,
}

/// How the node's pending count disagreed with the manager's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resync {
    /// The node has seen more transactions than this process sent: someone else sends from
    /// the account too. Its count was taken.
    Ahead { ours: u64, node: u64 },
    /// The node has seen fewer, and proved the transactions from `from` on gone (it does not
    /// know their hashes): their nonces are used again, from `from`.
    Behind { ours: u64, node: u64, from: u64 },
    /// The node has seen fewer, but still knows our newest transaction: its count lags, and
    /// ours was kept.
    Lagging { ours: u64, node: u64 },
}

impl NonceState {
    /// Our transactions that the node's pending count `node_pending` does not account for,
    /// newest first, with the hash of each this process remembers. Before [`assign`], the
    /// front end looks them up in this order and stops at the first the node knows (or that
    /// has no hash, or whose lookup fails); the lowest nonce it found unknown, with every one
    /// above it, is what the node proved gone.
    ///
    /// [`assign`]: NonceState::assign
    pub fn unaccounted(&self, node_pending: u64) -> impl Iterator<Item = (u64, Option<B256>)> + '_ {
        let ours = self.next.unwrap_or(0);
        (node_pending..ours)
            .rev()
            .map(|nonce| (nonce, self.sent.get(&nonce).copied()))
    }

    /// The nonce for the next transaction, given the node's pending count and the lowest
    /// nonce from which on the node proved our transactions gone (see
    /// [`NonceState::unaccounted`]; `None` if it proved none gone).
    pub fn assign(&mut self, node_pending: u64, gone_from: Option<u64>) -> Assigned {
        let (nonce, resync) = match self.next {
            None => (node_pending, None),
            Some(ours) if ours == node_pending => (ours, None),
            Some(ours) if ours < node_pending => (
                node_pending,
                Some(Resync::Ahead {
                    ours,
                    node: node_pending,
                }),
            ),
            Some(ours) => match gone_from.filter(|from| (node_pending..ours).contains(from)) {
                Some(from) => (
                    from,
                    Some(Resync::Behind {
                        ours,
                        node: node_pending,
                        from,
                    }),
                ),
                None => (
                    ours,
                    Some(Resync::Lagging {
                        ours,
                        node: node_pending,
                    }),
                ),
            },
        };
        // Transactions proved gone are forgotten: their nonces are handed out again.
        self.sent.retain(|sent, _| *sent < nonce);
        self.next = Some(nonce);
        Assigned { nonce, resync }
    }

    /// The transaction `hash` with `nonce` is about to be broadcast, or was, or may have
    /// been: either way the nonce is spent, and the next one follows it. Called before the
    /// broadcast, so that a request cut off during it leaves the nonce spent. A nonce spent
    /// before (a client's retry with the nonce of a transaction whose outcome it was not
    /// told) keeps its first transaction's hash.
    pub fn spent(&mut self, nonce: u64, hash: B256) {
        self.next = Some(self.next.map_or(nonce + 1, |next| next.max(nonce + 1)));
        self.sent.entry(nonce).or_insert(hash);
        while self.sent.len() > REMEMBERED {
            self.sent.pop_first();
        }
    }

    /// The node refused the transaction `hash` with `nonce` and proved it does not have
    /// it: the nonce is free again if this transaction was the one that spent it and the
    /// last one handed out (an earlier one stays spent: later transactions follow it).
    pub fn refused(&mut self, nonce: u64, hash: B256) {
        if self.sent.get(&nonce) != Some(&hash) {
            return;
        }
        self.sent.remove(&nonce);
        if self.next == nonce.checked_add(1) {
            self.next = Some(nonce);
        }
    }

    /// The next nonce this process would hand out, if it has handed out any.
    pub fn next(&self) -> Option<u64> {
        self.next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(n: u64) -> B256 {
        let mut hash = [0; 32];
        hash[..8].copy_from_slice(&n.to_be_bytes());
        hash
    }

    #[test]
    fn consecutive_sends_take_consecutive_nonces_without_a_resync() {
        let mut state = NonceState::default();
        for expected in 0..5 {
            // The node's pending count follows every broadcast.
            assert_eq!(state.unaccounted(expected).count(), 0);
            let assigned = state.assign(expected, None);
            assert_eq!(
                assigned,
                Assigned {
                    nonce: expected,
                    resync: None
                }
            );
            state.spent(expected, hash(expected));
        }
        assert_eq!(state.next(), Some(5));
    }

    #[test]
    fn a_node_ahead_of_us_wins() {
        let mut state = NonceState::default();
        state.assign(3, None);
        state.spent(3, hash(3));
        // Someone else sent two transactions from the account.
        assert_eq!(
            state.assign(6, None),
            Assigned {
                nonce: 6,
                resync: Some(Resync::Ahead { ours: 4, node: 6 })
            }
        );
    }

    #[test]
    fn a_lagging_count_never_gives_a_nonce_twice() {
        let mut state = NonceState::default();
        // The node's pending count stays at 20 while our transactions are accepted.
        assert_eq!(state.assign(20, None).nonce, 20);
        state.spent(20, hash(20));
        // The front end looks up 20 first: the node knows it, so nothing is proved gone.
        assert_eq!(
            state.unaccounted(20).collect::<Vec<_>>(),
            vec![(20, Some(hash(20)))]
        );
        assert_eq!(
            state.assign(20, None),
            Assigned {
                nonce: 21,
                resync: Some(Resync::Lagging { ours: 21, node: 20 })
            }
        );
        state.spent(21, hash(21));
        assert_eq!(state.assign(20, None).nonce, 22);
    }

    #[test]
    fn nonces_are_taken_back_only_as_far_as_the_node_proved_them_gone() {
        let mut state = NonceState::default();
        state.assign(0, None);
        for nonce in 0..7 {
            state.spent(nonce, hash(nonce));
        }
        // The node restarted and knows only nonces 0..4; newest first, it does not know 6
        // and 5, and knows 4: 5 and 6 are gone.
        assert_eq!(
            state.unaccounted(4).map(|(n, _)| n).collect::<Vec<_>>(),
            vec![6, 5, 4]
        );
        assert_eq!(
            state.assign(4, Some(5)),
            Assigned {
                nonce: 5,
                resync: Some(Resync::Behind {
                    ours: 7,
                    node: 4,
                    from: 5
                })
            }
        );
        // The forgotten transactions are not looked up again.
        state.spent(5, hash(50));
        assert_eq!(
            state.unaccounted(4).collect::<Vec<_>>(),
            vec![(5, Some(hash(50))), (4, Some(hash(4)))]
        );
        // Everything down to the node's count proved gone: its count is taken.
        assert_eq!(state.assign(4, Some(4)).nonce, 4);
        // A claim outside the disagreement proves nothing.
        state.spent(4, hash(4));
        assert_eq!(state.assign(2, Some(9)).nonce, 5);
    }

    #[test]
    fn a_nonce_without_a_remembered_hash_cannot_be_proved_gone() {
        let mut state = NonceState::default();
        state.assign(0, None);
        for nonce in 0..(REMEMBERED as u64 + 2) {
            state.spent(nonce, hash(nonce));
        }
        let unaccounted: Vec<_> = state.unaccounted(0).collect();
        assert_eq!(
            unaccounted.last(),
            Some(&(0, None)),
            "the oldest is forgotten"
        );
        assert_eq!(
            unaccounted[0],
            (REMEMBERED as u64 + 1, Some(hash(REMEMBERED as u64 + 1)))
        );
    }

    #[test]
    fn a_refused_nonce_is_free_again_and_a_spent_one_never_is() {
        let mut state = NonceState::default();
        let first = state.assign(0, None).nonce;
        state.spent(first, hash(0));
        state.refused(first, hash(0));
        assert_eq!(state.assign(0, None).nonce, 0);
        state.spent(0, hash(0));
        state.spent(1, hash(1));
        // A refusal of an earlier nonce does not move the counter back past a spent one.
        state.refused(0, hash(0));
        assert_eq!(state.next(), Some(2));
        state.refused(5, hash(5));
        assert_eq!(state.next(), Some(2));
        // A retry with nonce 1, refused, does not free the nonce its first transaction spent.
        state.spent(1, hash(11));
        state.refused(1, hash(11));
        assert_eq!(state.next(), Some(2));
        assert_eq!(
            state.unaccounted(1).collect::<Vec<_>>(),
            vec![(1, Some(hash(1)))]
        );
    }
}
