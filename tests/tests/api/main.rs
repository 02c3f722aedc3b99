//! End-to-end tests of the API: the real server, real HTTP, a fresh database per test.
//! Run on SQLite by default; with DATABASE_URL and REDIS_URL set, on PostgreSQL and Redis.

mod access;
mod assignments;
mod auth;
mod calendar_feed;
mod care_rules;
mod claim_storm;
mod coverage;
mod delivery;
mod events;
mod families;
mod filings;
mod gifts;
mod health;
mod health_readings;
mod help;
mod jobs;
mod notify;
mod planning;
mod regions;
mod register;
mod reminders;
mod replanning;
mod reports;
mod staff;
mod surge;
mod visits;
mod volunteers;
mod wechat;
mod wishes;
mod workload;
