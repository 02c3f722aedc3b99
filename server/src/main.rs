#[tokio::main]
async fn main() -> anyhow::Result<()> {
    server::cli::init();
    server::cli::run().await
}
