//! The nuanxin server: the HTTP API, authentication and access control, and the commands
//! of the `nuanxin` binary. `app::Application` starts it (tests use port 0).

pub mod api;
pub mod app;
pub mod assignments;
pub mod audit;
pub mod auth;
pub mod cache;
pub mod cli;
pub mod config;
pub mod content_check;
pub mod crypto;
pub mod db;
pub mod demo;
pub mod eligibility;
pub mod error;
pub mod feed_index;
pub mod geo;
pub mod h5;
pub mod ics;
pub mod input;
pub mod jobs;
pub mod list_cache;
pub mod metrics;
pub mod notify;
pub mod oversight;
pub mod report;
pub mod visits;
pub mod wechat;
