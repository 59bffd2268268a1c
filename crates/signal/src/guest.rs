//! The browser guest page (built from `ui/guest`, embedded at compile time by `build.rs`):
//! `GET /join/<room>` serves the page, `GET /guest/<file>` its script and style. The page
//! loads nothing from anywhere else, and its Content-Security-Policy says so.

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

include!(concat!(env!("OUT_DIR"), "/guest_files.rs"));

/// Only this server's own script, style and socket; no inline script, no frames, no forms.
/// (`'self'` in `connect-src` covers the same host's `ws:`/`wss:`, CSP level 3.)
pub(crate) const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data: blob:; media-src 'self' blob:; connect-src 'self'; \
     base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

fn file(path: &str) -> Option<&'static [u8]> {
    GUEST_FILES
        .iter()
        .find_map(|&(name, data)| (name == path).then_some(data))
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        _ => "application/octet-stream",
    }
}

fn respond(path: &str, cache: &'static str) -> Response {
    let Some(body) = file(path) else {
        return (StatusCode::NOT_FOUND, "not found").into_response();
    };
    let mut response = body.into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(path)),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    h.insert(
        "permissions-policy",
        HeaderValue::from_static("camera=(self), microphone=(self), geolocation=(), payment=()"),
    );
    response
}

/// The page of an invite link. The room and the token (in the fragment, never sent here) are
/// read by the page itself.
pub(crate) async fn page(Path(_room): Path<String>) -> Response {
    respond("index.html", "no-store")
}

/// The page's files; their names carry a hash of their contents, so they never change.
pub(crate) async fn asset(Path(path): Path<String>) -> Response {
    respond(&path, "public, max-age=31536000, immutable")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_and_its_files_are_embedded_and_refer_only_to_each_other() {
        let page = std::str::from_utf8(file("index.html").expect("page")).expect("utf-8");
        let mut refs = 0;
        for attr in ["src=\"", "href=\""] {
            for part in page.split(attr).skip(1) {
                let url = part.split('"').next().unwrap_or_default();
                let path = url.strip_prefix("/guest/").unwrap_or_else(|| {
                    panic!("{url}: the page may only load its own files from /guest/")
                });
                assert!(
                    file(path).is_some(),
                    "{path} is referenced but not embedded"
                );
                refs += 1;
            }
        }
        assert!(refs >= 2, "a script and a style sheet");
        assert!(
            !page.contains("<script>"),
            "no inline script (the CSP forbids it)"
        );
        assert_eq!(
            content_type("assets/x.js"),
            "text/javascript; charset=utf-8"
        );
    }
}
