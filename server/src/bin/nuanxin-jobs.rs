//! The scheduled jobs alone, for deployments that run them apart from the API servers
//! (then set `NUANXIN_JOBS=false` on those): the same as `nuanxin jobs`.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    server::cli::init();
    server::cli::jobs().await
}
