//! The database entities, one module per table, and the domain enums they use.

pub mod app_user;
pub mod audit_log;
pub mod calendar_link;
pub mod care_rule;
pub mod consent;
pub mod enums;
pub mod event;
pub mod event_invitation;
pub mod event_signup;
pub mod family;
pub mod family_member;
pub mod help_request;
pub mod invite_code;
pub mod job_lease;
pub mod job_run;
pub mod notification;
pub mod pairing;
pub mod refresh_token;
pub mod region;
pub mod role_grant;
pub mod service_hours;
pub mod sms_message;
pub mod subscription_quota;
pub mod task_claim;
pub mod team;
pub mod visit_checkin;
pub mod visit_code;
pub mod visit_record;
pub mod visit_request;
pub mod visit_task;
pub mod volunteer;
pub mod wish;
pub mod wish_answer;

pub use enums::*;
