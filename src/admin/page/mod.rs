//! The status page: static HTML, CSS and JavaScript compiled into the
//! binary. It loads nothing from elsewhere, holds no secret (an admin token
//! is typed in by the operator and kept in the browser's sessionStorage),
//! and draws everything from `GET /stats`.

const INDEX: &str = include_str!("index.html");
const STYLE: &str = include_str!("status.css");
const SCRIPT: &str = include_str!("status.js");
const ICON: &str = include_str!("favicon.svg");

/// The content type and body of a page file, by path.
pub fn asset(path: &str) -> Option<(&'static str, &'static str)> {
    match path {
        "/" | "/index.html" => Some(("text/html; charset=utf-8", INDEX)),
        "/status.css" => Some(("text/css; charset=utf-8", STYLE)),
        "/status.js" => Some(("text/javascript; charset=utf-8", SCRIPT)),
        "/favicon.svg" | "/favicon.ico" => Some(("image/svg+xml", ICON)),
        _ => None,
    }
}
