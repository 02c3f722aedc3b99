//! End-to-end tests of the fake WeChat server over real HTTP: each test spawns its own
//! server on a free port and talks to it with reqwest. Scenario numbers refer to
//! WECHAT.md §9.

mod control;
mod helpers;
mod login;
mod subscribe;
mod tokens;
