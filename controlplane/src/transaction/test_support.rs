//! Helpers shared by the unit tests of the transaction layer: run a pure state machine step
//! against a fresh [`Ctx`] and collect its actions, and parse test messages.

use bytes::Bytes;

use crate::config::{MessageLimits, TimerConfig};
use crate::sip::Message;

use super::{Action, Ctx};

/// Run `f` with a context for a reliable or unreliable transport and the default timers;
/// return its result and the actions it pushed.
pub(crate) fn run<T>(reliable: bool, f: impl FnOnce(&mut Ctx<'_>) -> T) -> (T, Vec<Action>) {
    let timers = TimerConfig::default();
    let mut out = Vec::new();
    let mut cx = Ctx {
        timers: &timers,
        reliable,
        out: &mut out,
    };
    let r = f(&mut cx);
    (r, out)
}

/// Parse a test message whose lines end with LF (or CRLF: printed messages already do).
pub(crate) fn parse(text: &str) -> Message {
    Message::parse_datagram(
        Bytes::from(text.replace("\r\n", "\n").replace('\n', "\r\n")),
        &MessageLimits::default(),
    )
    .expect("test message parses")
}
