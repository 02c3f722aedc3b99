//! The H5 pages (`miniapp-stub/h5/`) at `/app`: the mini-program's screens as a mobile web
//! app, for phone browsers and the browser tests.
//!
//! The files are embedded in the binary (rust-embed), so `cargo run --release` from a
//! fresh clone and a release binary copied anywhere serve the same pages with nothing
//! beside them. In debug builds rust-embed reads the folder on every request instead, so
//! an edited page shows on reload without recompiling.

use poem::{
    Endpoint, EndpointExt, endpoint::EmbeddedFilesEndpoint, http::header, middleware::SetHeader,
};

#[derive(rust_embed::RustEmbed)]
#[folder = "../miniapp-stub/h5/"]
struct Pages;

/// The pages; nest under `/app`.
pub fn endpoint() -> impl Endpoint {
    EmbeddedFilesEndpoint::<Pages>::new().with(
        SetHeader::new()
            // Revalidate every time (the ETag makes that cheap): a phone must not keep
            // yesterday's scripts against today's API.
            .overriding(header::CACHE_CONTROL, "no-cache")
            // Scripts and data only from this server; no inline script, no framing.
            .overriding(
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
            )
            .overriding(header::REFERRER_POLICY, "no-referrer"),
    )
}
