//! A worker's counters: single writer, plain `u64`s on the packet path ([`Counts`]), published
//! once per loop turn into a shared block of relaxed atomics ([`SharedCounters`]) that the
//! binary reads at export time. No atomic read-modify-write and no lock per packet.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

macro_rules! counters {
    ($($(#[$doc:meta])* $name:ident,)*) => {
        /// The worker-local counts (the single writer's copy).
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
        #[non_exhaustive]
        pub struct Counts {
            $($(#[$doc])* pub $name: u64,)*
        }

        /// The published copy, read by other threads.
        #[derive(Debug, Default)]
        pub struct SharedCounters {
            $($name: AtomicU64,)*
            pinned: AtomicBool,
        }

        impl SharedCounters {
            /// Publishes the worker's counts (called by the worker once per loop turn).
            pub(crate) fn publish(&self, c: &Counts) {
                $(self.$name.store(c.$name, Ordering::Relaxed);)*
            }

            /// A snapshot of the last published counts (each field consistent on its own).
            #[must_use]
            pub fn snapshot(&self) -> Counts {
                Counts { $($name: self.$name.load(Ordering::Relaxed),)* }
            }
        }
    };
}

counters! {
    /// Datagrams received on session sockets.
    rx_packets,
    /// Their bytes.
    rx_bytes,
    /// Datagrams sent.
    tx_packets,
    /// Their bytes.
    tx_bytes,
    /// Datagrams the session core dropped (reasons are in each leg's stats).
    dropped,
    /// Forwards that could not be sent (socket buffer full, unreachable, no RTCP socket).
    send_errors,
    /// Receive errors other than WouldBlock.
    recv_errors,
    /// Events dropped because the event channel was full.
    events_dropped,
    /// Sockets whose per-turn receive budget ran out with data left (drained next turn).
    budget_exhausted,
    /// Loop turns.
    turns,
    /// Turns longer than the stall budget (the stall detector).
    stalls,
    /// The longest turn so far, in microseconds.
    longest_turn_us,
    /// Sessions alive.
    sessions,
    /// Port pairs in use.
    port_pairs_in_use,
}

impl SharedCounters {
    /// Whether the worker thread was pinned to the core it was asked for.
    #[must_use]
    pub fn pinned(&self) -> bool {
        self.pinned.load(Ordering::Relaxed)
    }

    pub(crate) fn set_pinned(&self, pinned: bool) {
        self.pinned.store(pinned, Ordering::Relaxed);
    }
}
