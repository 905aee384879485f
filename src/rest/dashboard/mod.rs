//! The dashboard page (Settings -> Cloud Credentials), served at `/dashboard/` from assets
//! compiled into the binary: no CDN, no Node.js at run time, works offline. Plain JavaScript
//! modules and web standards over the gateway's own JSON API; no build step. Every answer carries
//! a strict Content-Security-Policy (scripts and styles from this origin only, no inline code,
//! no eval, no framing by other sites), and the page renders every server value as text.

use axum::Router;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

use crate::vault::Vault;

const INDEX_HTML: &str = include_str!("index.html");
const APP_JS: &str = include_str!("app.js");
const API_JS: &str = include_str!("api.js");
const VIEWS_JS: &str = include_str!("views.js");
const STYLE_CSS: &str = include_str!("style.css");

/// Only this origin's scripts, styles and API; nothing inline, no plugins, no framing.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'";

pub(super) fn routes() -> Router<Vault> {
    Router::new()
        .route("/dashboard", get(|| async { Redirect::permanent("/dashboard/") }))
        .route("/dashboard/", get(|| async { asset(INDEX_HTML, "text/html; charset=utf-8") }))
        .route("/dashboard/app.js", get(|| async { asset(APP_JS, "text/javascript; charset=utf-8") }))
        .route("/dashboard/api.js", get(|| async { asset(API_JS, "text/javascript; charset=utf-8") }))
        .route("/dashboard/views.js", get(|| async { asset(VIEWS_JS, "text/javascript; charset=utf-8") }))
        .route("/dashboard/style.css", get(|| async { asset(STYLE_CSS, "text/css; charset=utf-8") }))
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    let headers = [
        (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
        (header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP)),
        (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        (header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
        // The assets change with the binary: always revalidate (they are small).
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (HeaderName::from_static("cross-origin-opener-policy"), HeaderValue::from_static("same-origin")),
    ];
    (StatusCode::OK, headers, body).into_response()
}
