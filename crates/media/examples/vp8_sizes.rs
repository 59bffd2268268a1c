//! Prints VP8 frame sizes for the pattern at a given size and bitrate (a manual check of rate
//! control): `cargo run -p confer-media --example vp8_sizes -- 1280 720 300`.
use confer_media::VideoEncoder;
use confer_media::pattern::PatternSource;
use confer_media::vp8::{Vp8Config, Vp8Encoder};

fn main() {
    let args: Vec<u32> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let (w, h, kbps) = match args[..] {
        [w, h, k] => (w, h, k),
        _ => (1280, 720, 300),
    };
    let src = PatternSource::new(w, h).expect("pattern");
    let mut enc = Vp8Encoder::new(Vp8Config::new(w, h, kbps)).expect("encoder");
    let mut sizes = Vec::new();
    for n in 0..120u32 {
        let f = enc
            .encode(&src.frame(n, u64::from(n) * 33_333), false)
            .expect("encode");
        sizes.push(f.map_or(0, |f| f.data.len()));
    }
    let tail: usize = sizes[30..].iter().sum();
    println!("sizes: {:?}", &sizes[..40]);
    println!(
        "{w}x{h} @ {kbps}: {:.0} kbit/s over the last 3 s",
        tail as f64 * 8.0 / 3.0 / 1000.0
    );
}
