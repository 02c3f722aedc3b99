//! The `nuanxin` command line.

use clap::{Parser, Subcommand};

use crate::{
    app::{AppState, Application},
    config::Config,
    demo,
};

#[derive(Parser)]
#[command(
    name = "nuanxin",
    version,
    about = "暖心: care visits for special families — API server and tools"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the API server (the default). Migrates the database and, on first start, loads
    /// demo data into an empty SQLite database (see `demo_data`).
    Serve {
        /// Address to listen on (also NUANXIN_ADDR); default 127.0.0.1:8080.
        #[arg(long)]
        addr: Option<String>,
    },
    /// Apply database migrations and exit.
    Migrate,
    /// Add N generated families (with the demo regions, staff and volunteers if missing),
    /// for benchmarks: `nuanxin seed --families 100000`.
    Seed {
        #[arg(long)]
        families: usize,
    },
}

pub async fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut config = Config::load()?;
    match cli.command.unwrap_or(Command::Serve { addr: None }) {
        Command::Serve { addr } => {
            if let Some(addr) = addr {
                config.addr = addr;
            }
            let app = Application::build(config).await?;
            let port = app.port();
            tracing::info!(port, "serving: API docs at /docs, OpenAPI at /openapi.json");
            app.run_until(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await?;
        }
        Command::Migrate => {
            let db = crate::db::connect(&config.database_url).await?;
            crate::db::migrate(&db).await?;
            tracing::info!("migrations applied");
        }
        Command::Seed { families } => {
            let state = AppState::new(config).await?;
            let started = std::time::Instant::now();
            demo::seed(&state, families).await?;
            tracing::info!(
                families,
                seconds = started.elapsed().as_secs_f64(),
                "seeded"
            );
        }
    }
    Ok(())
}
