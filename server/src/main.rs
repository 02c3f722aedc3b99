#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sqlx=warn,sea_orm=warn".into()),
        )
        // Standard output is for what commands print (the calendar tools); logs go to stderr.
        .with_writer(std::io::stderr)
        .init();
    // One TLS stack (rustls with ring) for every outbound call.
    let _ = rustls::crypto::ring::default_provider().install_default();
    server::cli::run().await
}
