//! File transfer over the data channel: an offer (name, size, SHA-256) as a text message,
//! then binary chunks tagged with the transfer id, sent with back-pressure (the sender waits
//! while more than [`HIGH_WATER`] bytes are in flight), verified against the hash on arrival,
//! cancellable from either side, refused above a size limit. Files live in memory: nothing is
//! written to disk unless the user saves it.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use sha2::{Digest, Sha256};

use crate::peer::Peer;

/// Bytes per chunk (below SCTP's comfortable message size for browsers too).
pub const CHUNK: usize = 16 * 1024;
/// The sender pauses while this much is queued in the data channel.
pub const HIGH_WATER: usize = 1024 * 1024;
/// Default largest file accepted.
pub const DEFAULT_LIMIT: u64 = 100 * 1024 * 1024;

/// Hex SHA-256.
pub fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A binary chunk: the transfer id (8 bytes, big endian), then the data.
pub fn chunk_frame(id: u64, data: &[u8]) -> BytesMut {
    let mut frame = BytesMut::with_capacity(8 + data.len());
    frame.put_u64(id);
    frame.extend_from_slice(data);
    frame
}

/// Splits a binary chunk into its transfer id and data.
pub fn parse_chunk(frame: &[u8]) -> Option<(u64, &[u8])> {
    let id = u64::from_be_bytes(frame.get(..8)?.try_into().ok()?);
    Some((id, &frame[8..]))
}

/// Sends `data` as transfer `id` (the offer has been sent); calls `progress` with bytes sent.
/// Returns `false` if cancelled or the channel failed.
pub async fn send_chunks(
    peer: Arc<Peer>,
    id: u64,
    data: Bytes,
    cancelled: Arc<AtomicBool>,
    mut progress: impl FnMut(u64),
) -> bool {
    let mut sent = 0usize;
    for chunk in data.chunks(CHUNK) {
        while peer.data_outstanding().await > HIGH_WATER {
            if cancelled.load(Ordering::Relaxed) {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        if cancelled.load(Ordering::Relaxed) || !peer.send_binary(chunk_frame(id, chunk)).await {
            return false;
        }
        sent += chunk.len();
        progress(sent as u64);
    }
    true
}

/// An incoming transfer being assembled.
#[derive(Debug)]
pub struct Incoming {
    /// File name as offered.
    pub name: String,
    /// Size as offered.
    pub size: u64,
    /// Hash as offered.
    pub sha256: String,
    /// What has arrived.
    pub data: BytesMut,
}

/// What a chunk did to an incoming transfer.
#[derive(Debug, PartialEq, Eq)]
pub enum ChunkOutcome {
    /// No such transfer (cancelled, refused, or never offered).
    Unknown,
    /// More than the offered size: the transfer is dropped.
    Overflow,
    /// Progress: bytes so far.
    Progress(u64),
    /// Complete; whether the hash matched.
    Complete(bool),
}

/// Incoming transfers by id.
#[derive(Debug, Default)]
pub struct Receiver {
    open: HashMap<u64, Incoming>,
}

impl Receiver {
    /// Accepts an offer (the caller checked the size limit).
    pub fn offer(&mut self, id: u64, name: String, size: u64, sha256: String) {
        self.open.insert(
            id,
            Incoming {
                name,
                size,
                sha256,
                data: BytesMut::with_capacity(size.min(DEFAULT_LIMIT) as usize),
            },
        );
    }

    /// Drops a transfer (cancelled by the sender).
    pub fn cancel(&mut self, id: u64) -> Option<Incoming> {
        self.open.remove(&id)
    }

    /// Adds a chunk.
    pub fn chunk(&mut self, id: u64, data: &[u8]) -> ChunkOutcome {
        let Some(t) = self.open.get_mut(&id) else {
            return ChunkOutcome::Unknown;
        };
        if t.data.len() as u64 + data.len() as u64 > t.size {
            self.open.remove(&id);
            return ChunkOutcome::Overflow;
        }
        t.data.extend_from_slice(data);
        if (t.data.len() as u64) < t.size {
            return ChunkOutcome::Progress(t.data.len() as u64);
        }
        let ok = sha256_hex(&t.data) == t.sha256;
        ChunkOutcome::Complete(ok)
    }

    /// The offered size of an open transfer.
    pub fn size_of(&self, id: u64) -> Option<u64> {
        self.open.get(&id).map(|t| t.size)
    }

    /// Takes a completed transfer out.
    pub fn take(&mut self, id: u64) -> Option<Incoming> {
        self.open.remove(&id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_round_trip_and_a_file_completes_only_with_the_right_hash() {
        let frame = chunk_frame(0xDEAD_BEEF, b"abc");
        assert_eq!(parse_chunk(&frame), Some((0xDEAD_BEEF, &b"abc"[..])));
        assert_eq!(parse_chunk(b"short"), None);

        let file = vec![7u8; CHUNK * 2 + 5];
        let mut r = Receiver::default();
        r.offer(1, "a.bin".into(), file.len() as u64, sha256_hex(&file));
        let mut outcomes: Vec<ChunkOutcome> = file.chunks(CHUNK).map(|c| r.chunk(1, c)).collect();
        assert_eq!(outcomes.pop(), Some(ChunkOutcome::Complete(true)));
        assert_eq!(outcomes[0], ChunkOutcome::Progress(CHUNK as u64));
        assert_eq!(r.take(1).expect("done").data.len(), file.len());

        // A corrupted byte fails the hash; extra bytes overflow; unknown ids are ignored.
        r.offer(2, "b".into(), 4, sha256_hex(b"abcd"));
        assert_eq!(r.chunk(2, b"abce"), ChunkOutcome::Complete(false));
        r.offer(3, "c".into(), 2, sha256_hex(b"ab"));
        assert_eq!(r.chunk(3, b"abc"), ChunkOutcome::Overflow);
        assert_eq!(r.chunk(9, b"x"), ChunkOutcome::Unknown);
    }
}
