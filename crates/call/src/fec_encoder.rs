//! FlexFEC-03 repair packets (draft-ietf-payload-flexible-fec-scheme-03, flexible mask) whose
//! masks rebuild two lost packets of a block as often as XOR can.
//!
//! A repair packet is the XOR of the media packets its mask names, so it rebuilds one of them
//! when all the others arrived; a receiver then tries the other repair packets again with the
//! rebuilt packet in hand (rtc's decoder does). rtc 0.21.1's encoder interleaves its masks:
//! with `m` repair packets, repair `i` covers packets `i`, `i + m`, ..., so two losses in the
//! same residue class are lost for good: with two repair packets on a block of ten, 25 of
//! the 45 ways to lose two are rebuilt (56%), with three 33, with four 37.
//!
//! Here each media packet is given a code, a non-empty set of the block's repair packets (the
//! `m`-bit numbers 1 to 2^m - 1, lightest first), and neighbours get different codes. Two lost
//! packets with different codes are always rebuilt: some repair packet covers one and not the
//! other, it rebuilds that one, and then any repair packet covering the other has one loss
//! left. With two repair packets the three codes share ten packets 4/3/3: 33 of the 45 pairs
//! rebuilt (73%); with three, seven codes: 42 of 45 (93%); from four on, every pair of a block
//! of ten or fewer.

use bytes::Bytes;
use rtc::rtp::{self, header::Header};
use rtc::shared::marshal::Marshal;

/// The fixed RTP header every media packet starts with; what follows it (CSRCs, extensions,
/// payload) is protected as payload.
const RTP_HEADER: usize = 12;
/// The repair header up to and including the first mask word (draft-03, one SSRC, F = 0).
const HEADER: usize = 20;
/// The second mask word, for blocks longer than 15 packets.
const MASK2: usize = 4;
/// The most media packets two mask words describe (15 + 31).
pub const MAX_BLOCK: usize = 46;

/// Which repair packets cover media packet `index` of a block with `repairs` of them: bit `r`
/// set means repair `r` covers it. Codes run lightest first (one repair, then two, ...) and
/// cycle, so neighbours differ whenever there are two codes or more.
pub fn code(index: usize, repairs: usize) -> u64 {
    let repairs = repairs.min(16) as u32;
    let codes = (1u64 << repairs) - 1;
    // The n-th non-zero code in order of weight, then value.
    let mut n = index as u64 % codes;
    for weight in 1..=repairs {
        for value in 1..=codes {
            if value.count_ones() == weight {
                if n == 0 {
                    return value;
                }
                n -= 1;
            }
        }
    }
    unreachable!("fewer codes than counted")
}

/// Builds repair packets on one repair stream (its payload type, SSRC and sequence numbers).
#[derive(Debug)]
pub struct RepairEncoder {
    payload_type: u8,
    ssrc: u32,
    sequence_number: u16,
}

impl RepairEncoder {
    /// A repair stream starting at `sequence_number`.
    pub fn new(payload_type: u8, ssrc: u32, sequence_number: u16) -> Self {
        Self {
            payload_type,
            ssrc,
            sequence_number,
        }
    }

    /// `repairs` repair packets protecting `block`, a run of consecutive media packets of one
    /// SSRC (the masks count from its first sequence number). Nothing for an empty block, a
    /// block with a gap or another SSRC in it, or one longer than [`MAX_BLOCK`].
    pub fn encode(&mut self, block: &[rtp::Packet], repairs: usize) -> Vec<rtp::Packet> {
        let Some(first) = block.first() else {
            return Vec::new();
        };
        let run = block.windows(2).all(|w| {
            w[1].header.ssrc == w[0].header.ssrc
                && w[1].header.sequence_number == w[0].header.sequence_number.wrapping_add(1)
        });
        if !run || block.len() > MAX_BLOCK || repairs == 0 {
            return Vec::new();
        }
        let Ok(wire) = block
            .iter()
            .map(Marshal::marshal)
            .collect::<Result<Vec<_>, _>>()
        else {
            return Vec::new();
        };
        let repairs = repairs.min(block.len());
        let codes: Vec<u64> = (0..block.len()).map(|i| code(i, repairs)).collect();
        let mask_len = if block.len() > 15 {
            HEADER + MASK2
        } else {
            HEADER
        };
        (0..repairs)
            .filter_map(|r| {
                let covered: Vec<usize> = (0..block.len())
                    .filter(|&i| codes[i] >> r & 1 == 1)
                    .collect();
                let longest = covered.iter().map(|&i| wire[i].len() - RTP_HEADER).max()?;
                let mut payload = vec![0u8; mask_len + longest];
                for &i in &covered {
                    xor_into(&mut payload, mask_len, &wire[i]);
                }
                // Version bits are not recovered (always 2); R = 0, F = 0: flexible mask.
                payload[0] &= 0x3f;
                payload[8] = 1; // SSRCCount
                payload[12..16].copy_from_slice(&first.header.ssrc.to_be_bytes());
                payload[16..18].copy_from_slice(&first.header.sequence_number.to_be_bytes());
                write_mask(&mut payload, &covered, block.len() > 15);
                let packet = rtp::Packet {
                    header: Header {
                        version: 2,
                        payload_type: self.payload_type,
                        sequence_number: self.sequence_number,
                        timestamp: block[covered[0]].header.timestamp,
                        ssrc: self.ssrc,
                        ..Default::default()
                    },
                    payload: Bytes::from(payload),
                };
                self.sequence_number = self.sequence_number.wrapping_add(1);
                Some(packet)
            })
            .collect()
    }
}

/// XORs one marshalled media packet into a repair payload: its first header bytes into the
/// recovery fields (with the length of what follows the fixed header in place of the
/// sequence number, which the mask implies), the rest into the repair data after `mask_len`.
fn xor_into(payload: &mut [u8], mask_len: usize, packet: &[u8]) {
    let length = ((packet.len() - RTP_HEADER) as u16).to_be_bytes();
    payload[0] ^= packet[0];
    payload[1] ^= packet[1];
    payload[2] ^= length[0];
    payload[3] ^= length[1];
    for at in 4..8 {
        payload[at] ^= packet[at];
    }
    for (out, byte) in payload[mask_len..].iter_mut().zip(&packet[RTP_HEADER..]) {
        *out ^= byte;
    }
}

/// Writes the mask naming `covered` (offsets from the base sequence number): 15 bits after
/// the k-bit of the first word, 31 after that of the second. The k-bit is set on the last.
fn write_mask(payload: &mut [u8], covered: &[usize], long: bool) {
    let (mut first, mut second) = (0u16, 0u32);
    for &i in covered {
        if i < 15 {
            first |= 1 << (14 - i);
        } else {
            second |= 1 << (30 - (i - 15));
        }
    }
    if long {
        payload[18..20].copy_from_slice(&first.to_be_bytes());
        payload[20..24].copy_from_slice(&(second | 1 << 31).to_be_bytes());
    } else {
        payload[18..20].copy_from_slice(&(first | 1 << 15).to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtc::interceptor::FlexFec03Decoder;

    const MEDIA: u32 = 0x1111;
    const REPAIR: u32 = 0x2222;

    /// A run of `count` packets from sequence number `first`, of different sizes, one with an
    /// extension and CSRCs (protected as payload).
    fn block(first: u16, count: usize) -> Vec<rtp::Packet> {
        (0..count)
            .map(|i| {
                let seq = first.wrapping_add(i as u16);
                let mut header = Header {
                    version: 2,
                    ssrc: MEDIA,
                    payload_type: 96,
                    sequence_number: seq,
                    timestamp: 90_000 + 3000 * (i as u32 / 3),
                    marker: i % 3 == 2,
                    ..Default::default()
                };
                if i == 1 {
                    header.csrc = vec![7, 8];
                    header
                        .set_extension(3, Bytes::from_static(&[1, 2, 3]))
                        .expect("extension");
                }
                rtp::Packet {
                    header,
                    payload: Bytes::from(
                        (0..200 + 37 * i)
                            .map(|b| (b * 31 + i) as u8)
                            .collect::<Vec<_>>(),
                    ),
                }
            })
            .collect()
    }

    /// Feeds a fresh decoder `block` without the packets in `lost`, then the repair packets:
    /// the packets it rebuilt.
    fn rebuilt(block: &[rtp::Packet], repairs: &[rtp::Packet], lost: &[usize]) -> Vec<rtp::Packet> {
        let mut decoder = FlexFec03Decoder::new(REPAIR, MEDIA);
        let mut out = Vec::new();
        for (i, p) in block.iter().enumerate() {
            if !lost.contains(&i) {
                out.extend(decoder.decode(p.clone()));
            }
        }
        for r in repairs {
            out.extend(decoder.decode(r.clone()));
        }
        out
    }

    #[test]
    fn codes_are_distinct_sets_lightest_first_and_neighbours_differ() {
        let codes: Vec<u64> = (0..8).map(|i| code(i, 3)).collect();
        assert_eq!(
            codes,
            [0b001, 0b010, 0b100, 0b011, 0b101, 0b110, 0b111, 0b001]
        );
        assert!((0..10).all(|i| code(i, 1) == 1));
        for repairs in 2..=6 {
            assert!((0..45).all(|i| code(i, repairs) != code(i + 1, repairs)));
        }
    }

    #[test]
    fn every_single_loss_is_rebuilt_exactly() {
        for (len, repairs) in [(4, 1), (10, 2), (10, 3), (7, 6), (20, 4), (46, 5)] {
            let media = block(65_530, len);
            let fec = RepairEncoder::new(125, REPAIR, 9).encode(&media, repairs);
            assert_eq!(fec.len(), repairs.min(len));
            for lost in 0..len {
                let got = rebuilt(&media, &fec, &[lost]);
                assert_eq!(got.len(), 1, "{len}/{repairs}: packet {lost}");
                assert_eq!(got[0].header, media[lost].header, "{len}/{repairs}: {lost}");
                assert_eq!(got[0].payload, media[lost].payload);
            }
        }
    }

    /// How many of the ways to lose two of a block of ten are rebuilt with `repairs`.
    fn pairs_rebuilt(repairs: usize) -> usize {
        let media = block(100, 10);
        let fec = RepairEncoder::new(125, REPAIR, 0).encode(&media, repairs);
        let mut count = 0;
        for a in 0..10 {
            for b in a + 1..10 {
                let got = rebuilt(&media, &fec, &[a, b]);
                if got.len() == 2 {
                    assert!(got.iter().all(|p| {
                        let i = usize::from(p.header.sequence_number - 100);
                        p.payload == media[i].payload && p.header == media[i].header
                    }));
                    count += 1;
                }
            }
        }
        count
    }

    #[test]
    fn two_losses_in_a_block_are_rebuilt_whenever_their_codes_differ() {
        // Interleaved masks (rtc's): 25, 33 and 37 of the 45 pairs.
        assert_eq!(pairs_rebuilt(1), 0);
        assert_eq!(pairs_rebuilt(2), 33);
        assert_eq!(pairs_rebuilt(3), 42);
        assert_eq!(pairs_rebuilt(4), 45);
    }

    #[test]
    fn repair_packets_number_their_own_stream() {
        let mut encoder = RepairEncoder::new(125, REPAIR, u16::MAX);
        let fec = encoder.encode(&block(0, 10), 2);
        let more = encoder.encode(&block(10, 10), 2);
        let seqs: Vec<u16> = fec
            .iter()
            .chain(&more)
            .map(|p| p.header.sequence_number)
            .collect();
        assert_eq!(seqs, [u16::MAX, 0, 1, 2]);
        assert!(
            fec.iter()
                .all(|p| p.header.ssrc == REPAIR && p.header.payload_type == 125)
        );
    }

    #[test]
    fn a_block_that_is_not_one_run_gets_nothing() {
        let mut encoder = RepairEncoder::new(125, REPAIR, 0);
        let mut gap = block(0, 6);
        gap.remove(3);
        assert!(encoder.encode(&gap, 2).is_empty());
        assert!(encoder.encode(&block(0, MAX_BLOCK + 1), 2).is_empty());
        assert!(encoder.encode(&[], 2).is_empty());
        assert!(encoder.encode(&block(0, 6), 0).is_empty());
    }
}
