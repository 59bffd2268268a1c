//! confer-netsim: calls over a bad network, in user space (the kernel's netem is not
//! available on these machines). Test and benchmark infrastructure, not shipped.
//!
//! - [`impair`]: what happens to each packet of one direction: a cut, random or bursty
//!   (Gilbert-Elliott) loss, a rate cap with a drop-tail queue, delay with jitter, optional
//!   reordering. Deterministic under a seed, with counters of everything it did.
//! - [`relay`]: a UDP relay that every media packet of a call passes through, per direction,
//!   changeable during the call.
//! - [`proxy`]: a signaling proxy in front of confer-signal that moves the participants' ICE
//!   candidates onto the relay, so unmodified peers (Confer or a browser) are impaired.

#![forbid(unsafe_code)]

pub mod coturn;
pub mod impair;
pub mod proxy;
pub mod relay;

pub use impair::{Impairment, Loss};
pub use proxy::SignalProxy;
pub use relay::{Direction, PacketMatch, Relay, Side};
