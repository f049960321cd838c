//! The nonce manager of one account: which nonce the next transaction takes, so that
//! concurrent sends from one account take consecutive nonces and a nonce is never given to
//! two different transactions.
//!
//! The front end holds one [`NonceState`] per account behind a lock for the whole of
//! assign, sign and broadcast, and asks the node for the account's pending count each time
//! (a cheap call). The state remembers what this process handed out; the node says what it
//! has seen. When they disagree the node wins, and the disagreement is counted as a
//! resynchronisation: a count above ours means another sender used the account ("nonce
//! too low" would follow); a count below ours means the node lost transactions we sent (it
//! restarted, or dropped them), and the gap they leave would stall every later one.

/// What the manager knows of one account.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NonceState {
    next: Option<u64>,
}

/// A nonce handed out, and whether the node's count had to correct ours first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Assigned {
    pub nonce: u64,
    pub resync: Option<Resync>,
}

/// Why the manager took the node's count instead of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resync {
    /// The node has seen more transactions than this process sent: someone else sends from
    /// the account too.
    Ahead { ours: u64, node: u64 },
    /// The node has seen fewer: transactions this process sent are gone from it.
    Behind { ours: u64, node: u64 },
}

impl NonceState {
    /// The nonce for the next transaction, given the node's pending transaction count.
    pub fn assign(&mut self, node_pending: u64) -> Assigned {
        let resync = match self.next {
            Some(ours) if ours < node_pending => Some(Resync::Ahead {
                ours,
                node: node_pending,
            }),
            Some(ours) if ours > node_pending => Some(Resync::Behind {
                ours,
                node: node_pending,
            }),
            _ => None,
        };
        self.next = Some(node_pending);
        Assigned {
            nonce: node_pending,
            resync,
        }
    }

    /// The transaction with `nonce` was broadcast, or may have been (its outcome is not
    /// known): either way the nonce is spent, and the next one follows it.
    pub fn spent(&mut self, nonce: u64) {
        self.next = Some(self.next.map_or(nonce + 1, |next| next.max(nonce + 1)));
    }

    /// The node refused the transaction with `nonce` outright: the nonce was not used and
    /// the next transaction may take it.
    pub fn refused(&mut self, nonce: u64) {
        if self.next.is_some_and(|next| next > nonce) {
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

    #[test]
    fn consecutive_sends_take_consecutive_nonces_without_a_resync() {
        let mut state = NonceState::default();
        for expected in 0..5 {
            // The node's pending count follows every broadcast.
            let assigned = state.assign(expected);
            assert_eq!(
                assigned,
                Assigned {
                    nonce: expected,
                    resync: None
                }
            );
            state.spent(expected);
        }
        assert_eq!(state.next(), Some(5));
    }

    #[test]
    fn the_node_wins_when_the_counts_disagree_and_it_is_counted() {
        let mut state = NonceState::default();
        state.assign(3);
        state.spent(3);
        // Someone else sent two transactions from the account.
        assert_eq!(
            state.assign(6),
            Assigned {
                nonce: 6,
                resync: Some(Resync::Ahead { ours: 4, node: 6 })
            }
        );
        state.spent(6);
        // The node restarted and lost everything after nonce 4.
        assert_eq!(
            state.assign(4),
            Assigned {
                nonce: 4,
                resync: Some(Resync::Behind { ours: 7, node: 4 })
            }
        );
    }

    #[test]
    fn a_refused_nonce_is_free_again_and_a_spent_one_never_is() {
        let mut state = NonceState::default();
        let first = state.assign(0).nonce;
        state.refused(first);
        assert_eq!(state.assign(0).nonce, 0);
        state.spent(0);
        // A late refusal of an earlier nonce does not move the counter back past a spent one.
        state.refused(5);
        assert_eq!(state.next(), Some(1));
    }
}
