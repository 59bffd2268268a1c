//! A patient joins from the browser: Chromium or Firefox ESR on the guest page (its fake
//! camera and microphone) calls a native Confer host through a real confer-signal on
//! loopback. Media flows both ways and is checked where it lands: the host's marked frames are
//! read back from the page's remote video in order, the browser's getStats shows video decoded
//! and audio packets received, the browser's camera reaches the native peer decoded, and both
//! sides read the same verification code. The same over https from a server with a
//! certificate of its own making (the desktop app's on a LAN).

#[path = "common/guest.rs"]
mod guest;

use std::time::Duration;

use confer_browser::Chromium;
use confer_call::call::{CallConfig, CallHandle};
use confer_call::link::Link;
use confer_media::VideoCodec;
use guest::{Browser, Which};

pub async fn media_both_ways(which: Which, room: &str, codec: VideoCodec, codec_name: &str) {
    let _alone = guest::ONE_AT_A_TIME.lock().await;
    let (mut scene, host_code, page_code) = guest::connected(which, room, codec).await;
    assert_eq!(host_code, page_code, "the verification codes match");
    assert_eq!(host_code.len(), 7, "{host_code}");
    let shown = scene
        .page
        .eval("document.getElementById('sas-code').textContent")
        .await
        .expect("code");
    assert_eq!(shown, host_code.as_str(), "the page shows the code");

    guest::watch_marks(&scene.page).await;
    let (frames, stats) = guest::host_receives(&mut scene.host, Duration::from_secs(3)).await;

    // Native → browser: the host's frames, decoded by Chromium, marks in order.
    let marks = guest::marks(&scene.page).await;
    let page = guest::page_stats(&scene.page).await;
    eprintln!("page stats: {page}");
    eprintln!(
        "browser read {} marks; first {:?}",
        marks.len(),
        &marks[..marks.len().min(3)]
    );
    assert!(marks.len() >= 45, "{} marked frames in 3 s", marks.len());
    assert!(
        marks.windows(2).all(|w| w[1].0 >= w[0].0),
        "frame ids never go backwards"
    );
    let distinct = marks.windows(2).filter(|w| w[1].0 > w[0].0).count() + 1;
    assert!(distinct >= 45, "{distinct} distinct frames");
    assert!(
        marks.iter().all(|m| m.2 == 640),
        "640 wide: {:?}",
        marks.first()
    );
    assert!(page["framesDecoded"].as_u64().unwrap_or(0) >= 60, "{page}");
    assert!(
        page["audioPacketsReceived"].as_u64().unwrap_or(0) >= 100,
        "{page}"
    );
    assert!(page["sendKbps"].as_f64().unwrap_or(0.0) > 100.0, "{page}");
    assert_eq!(page["codecReceived"], codec_name, "{page}");
    let quality = scene
        .page
        .eval("document.getElementById('quality').textContent")
        .await
        .expect("quality");
    assert!(
        quality
            .as_str()
            .unwrap_or_default()
            .starts_with("Connection"),
        "{quality}"
    );

    // Browser → native: Chromium's fake camera, decoded by the host.
    let stats = stats.expect("host stats");
    eprintln!("host: {} frames, last stats {stats:?}", frames.len());
    assert!(
        frames.len() >= 45,
        "{} browser frames decoded by the host in 3 s",
        frames.len()
    );
    assert!(
        frames.iter().all(|&(w, h)| w >= 320 && h >= 180),
        "{:?}",
        frames.last()
    );
    assert_eq!(stats.codec_received, Some(codec));
    scene.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_guest_and_a_native_host_see_and_hear_each_other_in_vp8() {
    media_both_ways(Which::Chromium, "guest-vp8", VideoCodec::Vp8, "VP8").await;
}

/// Firefox as a second, independent implementation. VP8 only: Firefox's H.264 is Cisco's
/// OpenH264 plugin, which it downloads at first use, and this machine cannot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_firefox_guest_and_a_native_host_see_and_hear_each_other_in_vp8() {
    media_both_ways(Which::Firefox, "guest-firefox", VideoCodec::Vp8, "VP8").await;
}

/// Whether this Chromium can send and receive constrained-baseline H.264 in packetization
/// mode 1 (what Confer offers); if not, why.
async fn chromium_h264() -> Result<(), String> {
    let page = confer_browser::Chromium::launch("data:text/html,<title>caps</title>", &[])
        .await
        .map_err(|e| e.to_string())?;
    let found = page
        .eval(
            "['sender','receiver'].every((side) => (side === 'sender' ? RTCRtpSender : RTCRtpReceiver)\
             .getCapabilities('video').codecs.some((c) => c.mimeType === 'video/H264' \
             && /packetization-mode=1/.test(c.sdpFmtpLine ?? '') && /profile-level-id=42/.test(c.sdpFmtpLine ?? '')))",
        )
        .await
        .map_err(|e| e.to_string())?;
    if found == true {
        Ok(())
    } else {
        Err(format!(
            "Chromium {} offers no baseline H.264 (mode 1) to both send and receive",
            confer_browser::binary()
        ))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_guest_and_a_native_host_in_h264_when_chromium_offers_it() {
    if let Err(why) = chromium_h264().await {
        eprintln!("skipped: {why}");
        return;
    }
    media_both_ways(Which::Chromium, "guest-h264", VideoCodec::H264, "H264").await;
}

/// The desktop app hosting on a LAN: its server speaks https with a certificate it made
/// itself, which the invite link names (`&cert=`) for the app and the browser ignores. The
/// browser is started with `--ignore-certificate-errors`, standing in for the guest who
/// continues past the warning page such a certificate brings up (a person's click; the page
/// cannot be clicked through over DevTools). The native host checks the certificate by the
/// link's hash.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_guest_joins_over_https_with_a_certificate_the_host_made() {
    let _alone = guest::ONE_AT_A_TIME.lock().await;
    let room = "guest-lan";
    let (handle, _server, base, sha256) = guest::call_common::start_self_signed().await;
    let invite = Link::for_token(&base, room, &guest::guest_token(&handle, room, None))
        .expect("link")
        .with_certificate(sha256);
    let page = guest::Page::Chromium(
        Chromium::launch(&invite.to_string(), &["--ignore-certificate-errors"])
            .await
            .expect("chromium"),
    );
    page.eval(confer_browser::MARKS_JS).await.expect("marks");
    page.wait_until(confer_browser::GUEST_READY_JS, Duration::from_secs(10))
        .await
        .expect("the device check opened over https");
    assert_eq!(
        page.eval("location.protocol").await.expect("protocol"),
        "https:"
    );

    let mut host = CallHandle::join(CallConfig {
        trust: invite.trust(None),
        ..guest::host_config(&handle, room, VideoCodec::Vp8)
    })
    .await
    .expect("the host joins over wss, the certificate checked by its hash");
    guest::join(&page, "Pat Guest").await;
    let code = guest::wait_connected(&mut host).await;
    page.wait_until(
        &format!("confer.state.sas === {code:?}"),
        Duration::from_secs(15),
    )
    .await
    .expect("connected, the same code on both sides");
    guest::watch_marks(&page).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let marks = guest::marks(&page).await;
    assert!(marks.len() >= 30, "{} marked frames in 2 s", marks.len());
    host.hang_up();
    drop(page);
    handle.shutdown().await;
}
