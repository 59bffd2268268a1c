//! Prometheus metrics (`GET /metrics`, OpenMetrics text format).

use confer_protocol::ErrorCode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::{counter::Counter, family::Family, gauge::Gauge, histogram};
use prometheus_client::registry::{Registry, Unit};

/// Direction label of `confer_messages_total`.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum Direction {
    /// Client to server.
    In,
    /// Server to client.
    Out,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DirectionLabel {
    direction: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeLabel {
    code: &'static str,
}

/// All server metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Open WebSocket connections.
    pub connections: Gauge,
    /// Rooms with at least one seat.
    pub rooms: Gauge,
    messages_in: Counter,
    messages_out: Counter,
    errors: Family<CodeLabel, Counter>,
    /// Time from a `signal` arriving to its relay being written to the other socket.
    pub relay_latency: histogram::Histogram,
    /// Connections closed for policy violations (1008).
    pub policy_closes: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let connections = Gauge::default();
        let rooms = Gauge::default();
        let messages = Family::<DirectionLabel, Counter>::default();
        let errors = Family::<CodeLabel, Counter>::default();
        // 50 µs .. ~1.6 s
        let relay_latency =
            histogram::Histogram::new(histogram::exponential_buckets(0.000_05, 2.0, 16));
        let policy_closes = Counter::default();
        registry.register(
            "confer_connections",
            "Open WebSocket connections",
            connections.clone(),
        );
        registry.register(
            "confer_rooms",
            "Rooms with at least one seat",
            rooms.clone(),
        );
        registry.register(
            "confer_messages",
            "WebSocket messages by direction",
            messages.clone(),
        );
        registry.register("confer_errors", "Error replies by code", errors.clone());
        registry.register_with_unit(
            "confer_relay_latency",
            "Time from receiving a signal to writing it to the other participant",
            Unit::Seconds,
            relay_latency.clone(),
        );
        registry.register(
            "confer_policy_closes",
            "Connections closed with 1008 after repeated violations",
            policy_closes.clone(),
        );
        for code in ErrorCode::ALL {
            let _ = errors.get_or_create(&CodeLabel {
                code: code.as_str(),
            });
        }
        let label = |direction| DirectionLabel { direction };
        let messages_in = messages.get_or_create(&label("in")).clone();
        let messages_out = messages.get_or_create(&label("out")).clone();
        Self {
            registry,
            connections,
            rooms,
            messages_in,
            messages_out,
            errors,
            relay_latency,
            policy_closes,
        }
    }

    /// Counts `n` messages.
    pub fn messages(&self, direction: Direction, n: u64) {
        match direction {
            Direction::In => self.messages_in.inc_by(n),
            Direction::Out => self.messages_out.inc_by(n),
        };
    }

    /// Counts one error reply.
    pub fn error(&self, code: ErrorCode) {
        self.errors
            .get_or_create(&CodeLabel {
                code: code.as_str(),
            })
            .inc();
    }

    /// The text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}
