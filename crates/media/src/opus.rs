//! Opus at 48 kHz mono in 20 ms frames (the `opus` crate, which bundles libopus): in-band FEC
//! so a lost packet can be rebuilt from the next one, optional DTX, runtime bitrate and
//! expected-loss changes, and loss concealment on the decoding side.

use crate::{Error, Result};

/// Samples in one 20 ms frame at 48 kHz.
pub const FRAME_SAMPLES: usize = 960;
/// Largest packet we produce (RFC 6716 allows 1275 bytes per frame).
const MAX_PACKET: usize = 1275;

fn codec_err(what: &'static str) -> impl FnOnce(opus::Error) -> Error {
    move |e| Error::Codec {
        codec: "Opus",
        what,
        detail: e.to_string(),
    }
}

/// Encoder settings.
#[derive(Debug, Clone, Copy)]
pub struct OpusConfig {
    /// Target bitrate, bit/s (6,000–510,000).
    pub bitrate_bps: i32,
    /// In-band forward error correction (LBRR): each packet carries a coarse copy of the
    /// previous frame.
    pub fec: bool,
    /// Loss the encoder should expect, percent (drives how much FEC it spends).
    pub expected_loss_pct: u8,
    /// Discontinuous transmission: near-empty packets during silence.
    pub dtx: bool,
}

impl Default for OpusConfig {
    /// 32 kbit/s voice, FEC on for 10% loss, DTX off.
    fn default() -> Self {
        Self {
            bitrate_bps: 32_000,
            fec: true,
            expected_loss_pct: 10,
            dtx: false,
        }
    }
}

/// One encoded 20 ms frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpusPacket {
    /// The packet.
    pub data: Vec<u8>,
    /// A DTX packet (silence; a receiver may treat its absence as silence too).
    pub dtx: bool,
}

/// Opus encoder, 48 kHz mono, 20 ms frames.
pub struct OpusEncoder {
    inner: opus::Encoder,
    config: OpusConfig,
    buf: Vec<u8>,
}

impl std::fmt::Debug for OpusEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpusEncoder")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl OpusEncoder {
    /// Opens an encoder for voice.
    pub fn new(config: OpusConfig) -> Result<Self> {
        let mut inner = opus::Encoder::new(48_000, opus::Channels::Mono, opus::Application::Voip)
            .map_err(codec_err("opening the encoder"))?;
        inner
            .set_inband_fec(config.fec)
            .map_err(codec_err("setting FEC"))?;
        inner
            .set_dtx(config.dtx)
            .map_err(codec_err("setting DTX"))?;
        let mut enc = Self {
            inner,
            config,
            buf: vec![0; MAX_PACKET],
        };
        enc.set_bitrate_bps(config.bitrate_bps)?;
        enc.set_expected_loss_pct(config.expected_loss_pct)?;
        Ok(enc)
    }

    /// Encodes one 20 ms frame of [`FRAME_SAMPLES`] samples in −1..1.
    pub fn encode(&mut self, pcm: &[f32]) -> Result<OpusPacket> {
        if pcm.len() != FRAME_SAMPLES {
            return Err(Error::Invalid(format!(
                "an Opus frame is {FRAME_SAMPLES} samples (20 ms at 48 kHz), not {}",
                pcm.len()
            )));
        }
        let n = self
            .inner
            .encode_float(pcm, &mut self.buf)
            .map_err(codec_err("encoding"))?;
        let dtx = self.config.dtx && self.inner.get_in_dtx().unwrap_or(false);
        Ok(OpusPacket {
            data: self.buf[..n].to_vec(),
            dtx,
        })
    }

    /// Changes the target bitrate from the next frame on.
    pub fn set_bitrate_bps(&mut self, bps: i32) -> Result<()> {
        if !(6_000..=510_000).contains(&bps) {
            return Err(Error::Invalid(format!(
                "Opus bitrate {bps} bit/s is outside 6,000..510,000"
            )));
        }
        self.inner
            .set_bitrate(opus::Bitrate::Bits(bps))
            .map_err(codec_err("setting the bitrate"))?;
        self.config.bitrate_bps = bps;
        Ok(())
    }

    /// Tells the encoder how much loss to expect (0–100%), which sizes its FEC.
    pub fn set_expected_loss_pct(&mut self, pct: u8) -> Result<()> {
        let pct = pct.min(100);
        self.inner
            .set_packet_loss_perc(i32::from(pct))
            .map_err(codec_err("setting the expected loss"))?;
        self.config.expected_loss_pct = pct;
        Ok(())
    }

    /// The settings in force.
    pub fn config(&self) -> OpusConfig {
        self.config
    }
}

/// Opus decoder, 48 kHz mono.
pub struct OpusDecoder {
    inner: opus::Decoder,
}

impl std::fmt::Debug for OpusDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OpusDecoder")
    }
}

impl OpusDecoder {
    /// Opens a decoder.
    pub fn new() -> Result<Self> {
        let inner = opus::Decoder::new(48_000, opus::Channels::Mono)
            .map_err(codec_err("opening the decoder"))?;
        Ok(Self { inner })
    }

    fn run(&mut self, packet: &[u8], fec: bool, what: &'static str) -> Result<Vec<f32>> {
        let mut out = vec![0f32; FRAME_SAMPLES];
        let n = self
            .inner
            .decode_float(packet, &mut out, fec)
            .map_err(codec_err(what))?;
        out.truncate(n);
        Ok(out)
    }

    /// Decodes one packet into 20 ms of samples.
    pub fn decode(&mut self, packet: &[u8]) -> Result<Vec<f32>> {
        if packet.is_empty() {
            return Err(Error::Invalid("an empty Opus packet".into()));
        }
        self.run(packet, false, "decoding")
    }

    /// Rebuilds the frame lost just before `next` from the FEC data `next` carries (falls back
    /// to concealment inside libopus when `next` has none). Decode `next` itself afterwards.
    pub fn recover(&mut self, next: &[u8]) -> Result<Vec<f32>> {
        self.run(next, true, "recovering a lost frame")
    }

    /// Conceals a lost frame with nothing to rebuild it from (packet loss concealment).
    pub fn conceal(&mut self) -> Result<Vec<f32>> {
        self.run(&[], false, "concealing a lost frame")
    }
}
