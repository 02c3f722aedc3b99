//! The scheduler: the Chinese calendar, care rules and the generation of visits. Pure
//! logic over plain data; the server loads, calls and writes.

pub mod calendar;
pub mod plan;
pub mod rules;

pub use calendar::{
    CalendarError, CalendarKind, Festival, LunarDate, MAX_YEAR, MIN_YEAR, birthday_in_year,
    birthdays_jsonl, festival_dates, festivals_between, festivals_jsonl, leap_month,
    lunar_to_solar, month_days, next_birthday_on_or_after, solar_to_lunar,
};
