//! `wechat-fake`: runs the fake WeChat platform server on its own, for local development
//! of the backend and the mini-program.

use clap::Parser;
use miniapp_stub::{FakeConfig, app};
use poem::Server;
use poem::listener::TcpListener;
use tracing_subscriber::EnvFilter;

/// A fake WeChat platform server (jscode2session, access tokens, subscribe messages).
///
/// Point the backend's WeChat API base URL at it. Tests drive it through the control
/// routes under /__fake/ (login codes, subscribe credits, templates, clock offset, faults,
/// random fault rates, outbox, sends per person and template, stats, reset). State lives
/// in memory and is lost on exit.
#[derive(Parser, Debug)]
#[command(name = "wechat-fake", version)]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "WECHAT_FAKE_ADDR", default_value = "127.0.0.1:9090")]
    addr: String,
    /// AppID the fake accepts [default: wxdemo0000000000].
    #[arg(long, env = "WECHAT_FAKE_APPID")]
    appid: Option<String>,
    /// AppSecret the fake accepts [default: demo-secret].
    #[arg(long, env = "WECHAT_FAKE_SECRET")]
    secret: Option<String>,
    /// A page subscribe messages may open (repeat the flag for several); replaces the
    /// default list (pages/index/index, pages/visit/detail, ...).
    #[arg(long = "page")]
    pages: Vec<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();

    let args = Args::parse();
    let defaults = FakeConfig::default();
    let config = FakeConfig {
        appid: args.appid.unwrap_or(defaults.appid),
        secret: args.secret.unwrap_or(defaults.secret),
        pages: if args.pages.is_empty() {
            defaults.pages
        } else {
            args.pages
        },
    };
    tracing::info!(addr = %args.addr, appid = %config.appid, "starting fake WeChat server");
    Server::new(TcpListener::bind(args.addr))
        .run_with_graceful_shutdown(
            app(config),
            async {
                let _ = tokio::signal::ctrl_c().await;
            },
            None,
        )
        .await?;
    Ok(())
}
