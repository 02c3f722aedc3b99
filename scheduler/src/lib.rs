//! The scheduler: the Chinese calendar, care rules and the planning of visits as pure
//! logic over plain data (`calendar`, `rules`, `plan`), and around it the thin database
//! layer that writes the plans as visit tasks (`generate`) and runs the jobs once per
//! period under a leader lease (`jobs`, `lease`).

pub mod assign;
pub mod calendar;
pub mod events;
pub mod generate;
pub mod geo;
pub mod jobs;
pub mod lease;
pub mod plan;
pub mod rules;
pub mod surge;

pub use calendar::{
    CalendarError, CalendarKind, Festival, LunarDate, MAX_YEAR, MIN_YEAR, birthday_in_year,
    birthdays_jsonl, festival_dates, festivals_between, festivals_jsonl, leap_month,
    lunar_to_solar, month_days, next_birthday_on_or_after, solar_to_lunar,
};
