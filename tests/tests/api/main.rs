//! End-to-end tests of the API: the real server, real HTTP, a fresh database per test.
//! Run on SQLite by default; with DATABASE_URL and REDIS_URL set, on PostgreSQL and Redis.

mod access;
mod auth;
mod care_rules;
mod families;
mod health;
mod jobs;
mod planning;
mod regions;
mod register;
mod replanning;
mod staff;
mod volunteers;
mod wechat;
