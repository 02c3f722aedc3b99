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
        #[arg(long, default_value_t = 0)]
        families: usize,
        /// Also add this many volunteers (for benchmarks of the feed).
        #[arg(long, default_value_t = 0)]
        volunteers: usize,
    },
    /// Run only the scheduled jobs (planning, missed visits) and the notification
    /// dispatcher, without the API: for deployments that keep them apart from the API
    /// instances.
    Jobs,
    /// Plan every family's visits once now and print the figures.
    Plan {
        /// First day of the horizon (default: today in the deployment's time zone).
        #[arg(long)]
        from: Option<chrono::NaiveDate>,
        /// Days ahead (default: the configured horizon, 60).
        #[arg(long)]
        days: Option<u64>,
        /// Families per batch, each written in its own transaction (default 1000).
        #[arg(long)]
        batch: Option<std::num::NonZeroUsize>,
    },
    /// Propose holders now for every visit due (as the `assign` job does) and print the
    /// figures, with the time spent loading, computing and writing.
    Assign {
        /// Visits starting within this many days (default: `assign.lead_days`).
        #[arg(long)]
        lead_days: Option<i64>,
        /// Left to claims this many hours after publication (default: `assign.claim_hours`).
        #[arg(long)]
        claim_hours: Option<i64>,
    },
    /// The Chinese calendar, for people who check dates by hand.
    Calendar {
        #[command(subcommand)]
        command: CalendarCommand,
    },
}

#[derive(Subcommand)]
enum CalendarCommand {
    /// Print every festival date (元旦 春节 元宵 清明 端午 七夕 中秋 重阳 腊八 除夕 母亲节 父亲节
    /// 国庆) falling in the Gregorian years given, one JSON object per line:
    /// {"kind":"春节","year":2026,"date":"2026-02-17"}
    Festivals {
        #[arg(long)]
        from: i32,
        #[arg(long)]
        to: i32,
    },
    /// Read lunar birthdays on standard input, one per line ({"lunar":"2030-06-30","leap":true}),
    /// and print the solar date each is kept on in that lunar year, with the usual conventions
    /// (a 30th in a 29-day month is kept on the 29th; a leap-month birthday in the regular month
    /// in years without that leap month). A bad line prints {"line":N,"error":"..."}.
    Birthdays,
}

/// Logging and the TLS stack, once per process.
pub fn init() {
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
}

/// `nuanxin [command]`.
pub async fn run() -> anyhow::Result<()> {
    let command = Cli::parse()
        .command
        .unwrap_or(Command::Serve { addr: None });
    execute(command).await
}

/// The scheduled jobs until Ctrl-C or SIGTERM (`nuanxin jobs`, and the `nuanxin-jobs`
/// binary).
pub async fn jobs() -> anyhow::Result<()> {
    execute(Command::Jobs).await
}

async fn execute(command: Command) -> anyhow::Result<()> {
    // The calendar tools need no configuration or database.
    if let Command::Calendar { command } = command {
        return calendar(command);
    }
    let mut config = Config::load()?;
    match command {
        Command::Serve { addr } => {
            if let Some(addr) = addr {
                config.addr = addr;
            }
            let app = Application::build(config).await?;
            let port = app.port();
            tracing::info!(port, "serving: API docs at /docs, OpenAPI at /openapi.json");
            app.run_until(async {
                stop_requested().await;
            })
            .await?;
        }
        Command::Migrate => {
            let db = crate::db::connect(&config.database_url, config.database_pool).await?;
            crate::db::migrate(&db).await?;
            tracing::info!("migrations applied");
        }
        Command::Seed {
            families,
            volunteers,
        } => {
            let state = AppState::new(config).await?;
            let started = std::time::Instant::now();
            demo::seed(&state, families).await?;
            if volunteers > 0 {
                demo::seed_volunteers(&state, volunteers).await?;
            }
            tracing::info!(
                families,
                volunteers,
                seconds = started.elapsed().as_secs_f64(),
                "seeded"
            );
        }
        Command::Jobs => {
            let state = std::sync::Arc::new(AppState::new(config).await?);
            state.load_demo_data_if_wanted().await?;
            let jobs = crate::jobs::start(&state).await?;
            // Help requests a dead API process left are taken over here too.
            let help = crate::notify::emergency::Watch::start(state.clone());
            stop_requested().await;
            help.stop();
            jobs.shutdown().await;
        }
        Command::Plan { from, days, batch } => {
            let state = AppState::new(config).await?;
            state.load_demo_data_if_wanted().await?;
            let from = from.unwrap_or_else(|| state.today());
            let mut opts = state.plan_options(from);
            if let Some(days) = days {
                opts.to = from
                    .checked_add_days(chrono::Days::new(days))
                    .unwrap_or(from);
            }
            if let Some(batch) = batch {
                opts.batch = batch.get();
            }
            let started = std::time::Instant::now();
            let stats = scheduler::generate::generate(&state.db, &opts).await?;
            let mut out = serde_json::to_value(&stats)?;
            out["seconds"] = serde_json::json!(started.elapsed().as_secs_f64());
            println!("{out}");
        }
        Command::Assign {
            lead_days,
            claim_hours,
        } => {
            let state = AppState::new(config).await?;
            let mut c = state.config.assign.clone();
            c.lead_days = lead_days.unwrap_or(c.lead_days);
            c.claim_hours = claim_hours.unwrap_or(c.claim_hours);
            let started = std::time::Instant::now();
            let all = crate::auth::Scope::All;
            let stats = crate::assignments::run(
                &state.db,
                &c,
                state.tz,
                crate::assignments::Due::In(&all),
                chrono::Utc::now(),
            )
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
            let mut out = serde_json::to_value(&stats)?;
            out["seconds"] = serde_json::json!(started.elapsed().as_secs_f64());
            println!("{out}");
        }
        Command::Calendar { .. } => {}
    }
    Ok(())
}

/// Ctrl-C, or SIGTERM (how service managers and container runtimes stop a process): the
/// server drains its connections and the jobs hand their lease over at once.
async fn stop_requested() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

fn calendar(command: CalendarCommand) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    match command {
        CalendarCommand::Festivals { from, to } => {
            scheduler::calendar::festivals_jsonl(from, to, &mut out)?
        }
        CalendarCommand::Birthdays => {
            scheduler::calendar::birthdays_jsonl(std::io::stdin().lock(), &mut out)?
        }
    }
    out.flush()?;
    Ok(())
}
