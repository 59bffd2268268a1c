//! Chat and files between a browser guest and a native host, both ways, on the data-channel
//! format the desktop app speaks: messages arrive with receipts, files arrive whole and
//! SHA-256-verified, the page offers a received file for saving (and writes nothing itself).

#[path = "common/guest.rs"]
mod guest;

use std::time::Duration;

use bytes::Bytes;
use confer_call::call::CallEvent;
use confer_media::VideoCodec;
use guest::{Browser, Which};

/// 300 kB that a truncated or reordered transfer cannot match by chance.
fn content(len: usize) -> Vec<u8> {
    (0..len).map(|i| ((i * 31 + i / 251) % 256) as u8).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_and_files_go_both_ways_between_the_browser_and_the_native_app() {
    chat_and_files(Which::Chromium, "guest-chat").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_and_files_go_both_ways_between_firefox_and_the_native_app() {
    chat_and_files(Which::Firefox, "guest-chat-firefox").await;
}

async fn chat_and_files(which: Which, room: &str) {
    let _alone = guest::ONE_AT_A_TIME.lock().await;
    let (mut scene, _, _) = guest::connected(which, room, VideoCodec::Vp8).await;
    let page = &scene.page;
    let wait = Duration::from_secs(10);

    // Native → browser chat, with the browser's receipt.
    let sent = scene
        .host
        .send_chat("Hello from the clinic — 你好")
        .expect("chat");
    let received = guest::host_event(&mut scene.host, wait, |e| match e {
        CallEvent::ChatDelivered { id } => Some(id),
        _ => None,
    })
    .await;
    assert_eq!(received, sent, "the browser acknowledged the message");
    let shown = page
        .eval("confer.state.chat.map((m) => `${m.mine}:${m.text}`)")
        .await
        .expect("chat");
    assert_eq!(
        shown,
        serde_json::json!(["false:Hello from the clinic — 你好"])
    );

    // Browser → native chat, typed and sent with the form; the receipt shows on the page.
    page.eval(
        "document.getElementById('chat-toggle').click(); \
         document.getElementById('chat-input').value = 'Hi, I can hear you'; \
         document.getElementById('chat-form').requestSubmit(); true",
    )
    .await
    .expect("type and send");
    let text = guest::host_event(&mut scene.host, wait, |e| match e {
        CallEvent::Chat { text, .. } => Some(text),
        _ => None,
    })
    .await;
    assert_eq!(text, "Hi, I can hear you");
    page.wait_until("confer.state.chat.some((m) => m.mine && m.delivered)", wait)
        .await
        .expect("the receipt reached the page");
    let receipt = page
        .eval("document.querySelector('#messages li.mine .receipt').textContent")
        .await
        .expect("receipt");
    assert_eq!(receipt, "✓ delivered");

    // Native → browser file: verified, offered for saving under its name.
    let data = content(300_000);
    let id = scene
        .host
        .send_file("report.pdf", Bytes::from(data.clone()));
    let verified = guest::host_event(&mut scene.host, wait, |e| match e {
        CallEvent::TransferDone { id: done, verified } if done == id => Some(verified),
        _ => None,
    })
    .await;
    assert!(verified, "the browser checked the hash");
    let file = page
        .eval(&format!(
            "(async () => {{ const f = confer.state.files.get({id}); \
             const bytes = new Uint8Array(await f.blob.arrayBuffer()); \
             const link = document.querySelector('#files li[data-id=\"{id}\"] a'); \
             return {{ done: f.done, size: bytes.length, sum: bytes.reduce((a, b) => (a * 31 + b) % 1000003, 0), \
             save: link.download, text: link.textContent }}; }})()"
        ))
        .await
        .expect("file on the page");
    let sum = data
        .iter()
        .fold(0u64, |a, &b| (a * 31 + u64::from(b)) % 1_000_003);
    assert_eq!(file["done"], "received, verified", "{file}");
    assert_eq!(file["size"], 300_000, "{file}");
    assert_eq!(file["sum"], sum, "the same bytes: {file}");
    assert_eq!(
        (file["save"].as_str(), file["text"].as_str()),
        (Some("report.pdf"), Some("Save"))
    );

    // Browser → native file, picked with the file input.
    page.eval(
        "(() => { const bytes = new Uint8Array(300000).map((_, i) => (i * 31 + Math.floor(i / 251)) % 256); \
         const dt = new DataTransfer(); dt.items.add(new File([bytes], 'scan.png')); \
         const input = document.getElementById('file-input'); input.files = dt.files; \
         input.dispatchEvent(new Event('change')); return true; })()",
    )
    .await
    .expect("pick a file");
    let (name, got, verified) = guest::host_event(&mut scene.host, wait, |e| match e {
        CallEvent::FileReceived {
            name,
            data,
            verified,
            ..
        } => Some((name, data, verified)),
        _ => None,
    })
    .await;
    assert_eq!(name, "scan.png");
    assert!(verified, "the hash the browser computed matched");
    assert_eq!(got.as_ref(), data.as_slice(), "byte for byte");
    page.wait_until("[...confer.state.files.values()].some((f) => f.name === 'scan.png' && f.done === 'delivered, verified')", wait)
        .await
        .expect("the page saw the host's verification");
    // The chat panel as a phone shows it.
    if let Some(chromium) = page.chromium() {
        chromium.set_viewport(390, 844).await.expect("viewport");
        guest::shoot(page, "5-chat-phone").await;
    }
    scene.end().await;
}
