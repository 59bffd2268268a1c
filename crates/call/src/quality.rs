//! The network-quality indicator for the UI: good, fair or poor, with the reason in plain
//! words, from one second of [`CallStats`].
//!
//! Thresholds are those of the usual guidance for interactive calls (ITU-T G.114 puts the
//! comfortable one-way delay under 150 ms, so a round trip over 300 ms is noticeable; a few
//! percent of loss is repaired or concealed, above 10% it shows and is heard). The worst
//! factor decides, and is named.

use serde::Serialize;

use crate::call::CallStats;

/// How the connection is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Level {
    /// Nothing to notice.
    Good,
    /// Noticeable: some delay, some repaired loss, a reduced picture.
    Fair,
    /// Disturbing: frozen or choppy picture, broken audio, long delay.
    Poor,
}

/// The indicator: a level and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NetworkQuality {
    /// The level.
    pub level: Level,
    /// The worst factor, in words for the user (empty when good).
    pub reason: String,
}

/// The indicator for one second of stats; `video_expected` is whether the other side's camera
/// is on (a camera turned off is not a network problem).
pub fn assess(s: &CallStats, video_expected: bool) -> NetworkQuality {
    let mut worst = (Level::Good, String::new());
    let mut consider = |level: Level, reason: String| {
        if level > worst.0 {
            worst = (level, reason);
        }
    };
    let loss = s.loss_pct;
    if loss > 10.0 {
        consider(Level::Poor, format!("{loss:.0}% of packets lost"));
    } else if loss > 3.0 {
        consider(Level::Fair, format!("{loss:.0}% of packets lost"));
    }
    if let Some(rtt) = s.rtt_ms {
        if rtt > 500.0 {
            consider(Level::Poor, format!("long delay ({rtt:.0} ms round trip)"));
        } else if rtt > 300.0 {
            consider(Level::Fair, format!("some delay ({rtt:.0} ms round trip)"));
        }
    }
    let jitter = s.jitter_ms;
    if jitter > 100.0 {
        consider(
            Level::Poor,
            format!("unsteady connection ({jitter:.0} ms jitter)"),
        );
    } else if jitter > 40.0 {
        consider(
            Level::Fair,
            format!("unsteady connection ({jitter:.0} ms jitter)"),
        );
    }
    // The other side's video, when it sends any.
    if video_expected && s.width > 0 {
        if s.fps_received < 8.0 {
            consider(
                Level::Poor,
                format!("video is choppy ({:.0} frames/s)", s.fps_received),
            );
        } else if s.fps_received < 20.0 {
            consider(
                Level::Fair,
                format!("video is reduced ({:.0} frames/s)", s.fps_received),
            );
        }
    }
    // What we may send: the congestion controller's verdict on the path.
    let bw = s.bandwidth_estimate_kbps;
    if bw > 0.0 {
        if bw < 150.0 {
            consider(Level::Poor, format!("little bandwidth ({bw:.0} kbit/s)"));
        } else if bw < 350.0 {
            consider(Level::Fair, format!("limited bandwidth ({bw:.0} kbit/s)"));
        }
    }
    NetworkQuality {
        level: worst.0,
        reason: worst.1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clean() -> CallStats {
        CallStats {
            rtt_ms: Some(40.0),
            jitter_ms: 3.0,
            fps_received: 30.0,
            width: 640,
            height: 360,
            bandwidth_estimate_kbps: 1000.0,
            ..CallStats::default()
        }
    }

    #[test]
    fn a_clean_call_is_good_with_no_reason() {
        assert_eq!(
            assess(&clean(), true),
            NetworkQuality {
                level: Level::Good,
                reason: String::new()
            }
        );
    }

    #[test]
    fn the_worst_factor_decides_and_is_named() {
        let fair = assess(
            &CallStats {
                loss_pct: 5.0,
                ..clean()
            },
            true,
        );
        assert_eq!(fair.level, Level::Fair);
        assert_eq!(fair.reason, "5% of packets lost");
        let poor = assess(
            &CallStats {
                loss_pct: 5.0,
                rtt_ms: Some(650.0),
                ..clean()
            },
            true,
        );
        assert_eq!(poor.level, Level::Poor);
        assert_eq!(poor.reason, "long delay (650 ms round trip)");
        let choppy = assess(
            &CallStats {
                fps_received: 4.0,
                ..clean()
            },
            true,
        );
        assert_eq!(
            (choppy.level, choppy.reason.as_str()),
            (Level::Poor, "video is choppy (4 frames/s)")
        );
        let narrow = assess(
            &CallStats {
                bandwidth_estimate_kbps: 250.0,
                ..clean()
            },
            true,
        );
        assert_eq!(narrow.level, Level::Fair);
    }

    #[test]
    fn no_video_from_the_other_side_is_not_a_network_problem() {
        // The last frame's size stays after the camera goes off.
        let camera_off = CallStats {
            fps_received: 0.0,
            ..clean()
        };
        assert_eq!(assess(&camera_off, false).level, Level::Good);
        assert_eq!(assess(&camera_off, true).level, Level::Poor);
    }
}
