//! The Chinese lunisolar calendar as the scheduler needs it: solar ⇄ lunar conversion,
//! festival dates and birthday conventions, for lunar years [`MIN_YEAR`]..=[`MAX_YEAR`].
//!
//! The astronomy comes from `tyme4rs`, but no tyme4rs type leaves this module: it panics on
//! input it does not like and takes about 80 µs per conversion, so we ask it once per lunar
//! year for the month start dates, keep them in a lazily filled table and answer everything
//! else from that table with plain date arithmetic. Every public function validates its
//! input and returns an error instead of panicking.

use std::fmt;
use std::io::{self, BufRead, Write};
use std::sync::OnceLock;

use chrono::{Datelike, Days, NaiveDate, Weekday};
use serde::Serialize;
use serde_json::Value;

/// First supported lunar year (and Gregorian year for festivals).
pub const MIN_YEAR: i32 = 1900;
/// Last supported lunar year (and Gregorian year for festivals).
pub const MAX_YEAR: i32 = 2100;

/// A date of the Chinese calendar. `leap` marks the intercalary (闰) month that follows the
/// regular month of the same number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LunarDate {
    /// Lunar year: the one that starts on 春节 of the Gregorian year of the same number.
    pub year: i32,
    /// 1..=12
    pub month: u32,
    /// 1..=30
    pub day: u32,
    pub leap: bool,
}

/// Which calendar a birthday is kept by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CalendarKind {
    Solar,
    Lunar,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CalendarError {
    #[error("year {0} is outside the supported range {MIN_YEAR}..={MAX_YEAR}")]
    YearOutOfRange(i32),
    #[error("date {0} is outside the supported range (lunar years {MIN_YEAR}..={MAX_YEAR})")]
    DateOutOfRange(NaiveDate),
    #[error("month {0} is out of range 1..=12")]
    MonthOutOfRange(u32),
    #[error("day {0} is out of range 1..=30 (a lunar month has at most 30 days)")]
    LunarDayOutOfRange(u32),
    #[error("day {day} is out of range 1..={max} for solar month {month}")]
    SolarDayOutOfRange { month: u32, day: u32, max: u32 },
    #[error("lunar year {year} has no leap month {month} ({})", leap_note(*.leap_month))]
    NoSuchLeapMonth {
        year: i32,
        month: u32,
        /// The leap month that year does have, if any.
        leap_month: Option<u32>,
    },
    #[error(
        "lunar {}month {month} of {year} has only {days} days, so it has no day {day}",
        if *.leap { "leap " } else { "" }
    )]
    DayNotInMonth {
        year: i32,
        month: u32,
        leap: bool,
        day: u32,
        days: u32,
    },
    #[error("a solar date cannot be in a leap month")]
    LeapInSolar,
}

fn leap_note(leap_month: Option<u32>) -> String {
    match leap_month {
        Some(m) => format!("its leap month is {m}"),
        None => "it has no leap month".to_string(),
    }
}

// ---------------------------------------------------------------------------------------
// The per-lunar-year table

/// The table also holds the lunar year before `MIN_YEAR`: its 腊八 can fall in January of
/// Gregorian `MIN_YEAR`. That year is not part of the public range.
const TABLE_FIRST: i32 = MIN_YEAR - 1;
const TABLE_LEN: usize = (MAX_YEAR - TABLE_FIRST + 1) as usize;

/// Filled one lunar year at a time on first use, so a process that only looks at a few
/// years never pays for the whole range.
static TABLES: [OnceLock<YearTable>; TABLE_LEN] = [const { OnceLock::new() }; TABLE_LEN];

/// One lunar year, months in calendar order (a leap month right after its regular month).
struct YearTable {
    /// The number of the leap month, 0 when the year has none.
    leap_month: u32,
    /// 12 or 13.
    month_count: usize,
    /// `starts[i]` is day 1 of the i-th month; `starts[month_count]` is the next 春节, so
    /// month lengths are differences. Unused slots repeat the last value.
    starts: [NaiveDate; 14],
    /// 清明 of the Gregorian year with the same number (always inside this lunar year).
    qingming: NaiveDate,
}

impl YearTable {
    /// Position of (month, leap) in `starts`, or None if the year has no such month.
    fn index_of(&self, month: u32, leap: bool) -> Option<usize> {
        if !(1..=12).contains(&month) || (leap && self.leap_month != month) {
            return None;
        }
        let after_leap = self.leap_month != 0 && (leap || month > self.leap_month);
        Some(month as usize - 1 + usize::from(after_leap))
    }

    /// Inverse of `index_of`.
    fn month_at(&self, index: usize) -> (u32, bool) {
        let i = index as u32;
        match self.leap_month {
            0 => (i + 1, false),
            l if i < l => (i + 1, false),
            l if i == l => (l, true),
            _ => (i, false),
        }
    }

    fn days(&self, index: usize) -> u32 {
        (self.starts[index + 1] - self.starts[index]).num_days() as u32
    }

    fn new_year(&self) -> NaiveDate {
        self.starts[0]
    }

    fn end(&self) -> NaiveDate {
        self.starts[self.month_count]
    }
}

/// Month starts where we deliberately differ from tyme4rs 1.5.0: (its date, ours).
///
/// Lunar 2057 month 9: the new moon falls seconds before midnight Beijing time (23:59:49 on
/// 09-28 by ephem). lunardate, sxtwl and ephem all put 初一 on 09-28, tyme4rs alone on
/// 09-29; the margin is inside the uncertainty of ΔT that far ahead, so we follow the
/// majority (it moves 重阳 2057 to 10-06). See tests/calendar_reference.rs.
const MONTH_START_OVERRIDES: [(NaiveDate, NaiveDate); 1] = [(ymd(2057, 9, 29), ymd(2057, 9, 28))];

const fn ymd(year: i32, month: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(year, month, day).expect("valid constant date")
}

/// The table of a lunar year in `TABLE_FIRST..=MAX_YEAR`, None outside it.
fn table(year: i32) -> Option<&'static YearTable> {
    if !(TABLE_FIRST..=MAX_YEAR).contains(&year) {
        return None;
    }
    Some(TABLES[(year - TABLE_FIRST) as usize].get_or_init(|| build_table(year)))
}

/// The only place that calls tyme4rs. `year` is always inside the fixed table range, where
/// tyme4rs is defined; a test builds every year, so the `expect`s cannot fire in use.
fn build_table(year: i32) -> YearTable {
    use tyme4rs::tyme::lunar::{LunarMonth, LunarYear};
    use tyme4rs::tyme::solar::{SolarDay, SolarTerm};

    fn to_naive(d: SolarDay) -> NaiveDate {
        NaiveDate::from_ymd_opt(
            d.get_year() as i32,
            d.get_month() as u32,
            d.get_day() as u32,
        )
        .expect("tyme4rs returned a valid Gregorian date")
    }

    let lunar_year = LunarYear::new(year as isize).expect("year inside the table range");
    let months = lunar_year.get_months();
    let next_new_year = LunarMonth::new(year as isize + 1, 1).expect("month 1 always exists");
    let mut starts = [NaiveDate::MIN; 14];
    for (slot, month) in starts.iter_mut().zip(months.iter()) {
        *slot = to_naive(month.get_first_julian_day().get_solar_day());
    }
    let month_count = months.len();
    let end = to_naive(next_new_year.get_first_julian_day().get_solar_day());
    for slot in &mut starts[month_count..] {
        *slot = end;
    }
    for (from, to) in MONTH_START_OVERRIDES {
        for slot in starts.iter_mut().filter(|s| **s == from) {
            *slot = to;
        }
    }
    // tyme4rs numbers solar terms from 冬至 (index 0, which lies in December of year - 1);
    // index 7 is 清明 of `year`.
    let qingming = to_naive(SolarTerm::from_index(year as isize, 7).get_solar_day());
    YearTable {
        leap_month: lunar_year.get_leap_month() as u32,
        month_count,
        starts,
        qingming,
    }
}

fn check_year(year: i32) -> Result<&'static YearTable, CalendarError> {
    if (MIN_YEAR..=MAX_YEAR).contains(&year) {
        table(year).ok_or(CalendarError::YearOutOfRange(year))
    } else {
        Err(CalendarError::YearOutOfRange(year))
    }
}

fn add_days(date: NaiveDate, days: u32) -> NaiveDate {
    // Only called with offsets inside a lunar month of a table year: cannot overflow.
    date.checked_add_days(Days::new(u64::from(days)))
        .unwrap_or(date)
}

// ---------------------------------------------------------------------------------------
// Conversion

/// The leap month of a lunar year, None if it has none or the year is outside the range.
pub fn leap_month(year: i32) -> Option<u32> {
    let t = check_year(year).ok()?;
    (t.leap_month != 0).then_some(t.leap_month)
}

/// Days (29 or 30) in a lunar month; None if that month does not exist that year or the
/// year is outside the range.
pub fn month_days(year: i32, month: u32, leap: bool) -> Option<u32> {
    let t = check_year(year).ok()?;
    t.index_of(month, leap).map(|i| t.days(i))
}

/// The exact solar date of a lunar date. Unlike a birthday, nothing is moved: day 30 of a
/// 29-day month or a leap month the year lacks is an error.
pub fn lunar_to_solar(date: LunarDate) -> Result<NaiveDate, CalendarError> {
    let LunarDate {
        year,
        month,
        day,
        leap,
    } = date;
    let t = check_year(year)?;
    if !(1..=12).contains(&month) {
        return Err(CalendarError::MonthOutOfRange(month));
    }
    if !(1..=30).contains(&day) {
        return Err(CalendarError::LunarDayOutOfRange(day));
    }
    let index = t
        .index_of(month, leap)
        .ok_or(CalendarError::NoSuchLeapMonth {
            year,
            month,
            leap_month: leap_month(year),
        })?;
    let days = t.days(index);
    if day > days {
        return Err(CalendarError::DayNotInMonth {
            year,
            month,
            leap,
            day,
            days,
        });
    }
    Ok(add_days(t.starts[index], day - 1))
}

/// The lunar date of a solar date between 春节 of `MIN_YEAR` and the last day of lunar
/// `MAX_YEAR`.
///
/// Returns a `Result` (not a bare `LunarDate`) because a `NaiveDate` can lie far outside
/// the years any lunar table covers, and this module never panics.
pub fn solar_to_lunar(date: NaiveDate) -> Result<LunarDate, CalendarError> {
    let out_of_range = CalendarError::DateOutOfRange(date);
    // Lunar year Y starts between 21 January and 20 February of Gregorian year Y, so the
    // date lies in lunar year Y or Y - 1 (January 2101 still belongs to lunar 2100).
    let year = match table(date.year()) {
        Some(t) if date >= t.new_year() => date.year(),
        _ => date.year() - 1,
    };
    let t = check_year(year).map_err(|_| out_of_range.clone())?;
    if date < t.new_year() || date >= t.end() {
        return Err(out_of_range);
    }
    // At most 13 months: a linear scan is as fast as anything else here.
    let index = (0..t.month_count)
        .rfind(|&i| t.starts[i] <= date)
        .unwrap_or(0);
    let (month, leap) = t.month_at(index);
    let day = (date - t.starts[index]).num_days() as u32 + 1;
    Ok(LunarDate {
        year,
        month,
        day,
        leap,
    })
}

// ---------------------------------------------------------------------------------------
// Festivals

/// The festivals volunteers visit on, in the order used for sorting and output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Festival {
    NewYear,
    SpringFestival,
    Lantern,
    Qingming,
    DragonBoat,
    Qixi,
    MidAutumn,
    DoubleNinth,
    Laba,
    NewYearsEve,
    MothersDay,
    FathersDay,
    NationalDay,
}

impl Festival {
    pub const ALL: [Festival; 13] = [
        Festival::NewYear,
        Festival::SpringFestival,
        Festival::Lantern,
        Festival::Qingming,
        Festival::DragonBoat,
        Festival::Qixi,
        Festival::MidAutumn,
        Festival::DoubleNinth,
        Festival::Laba,
        Festival::NewYearsEve,
        Festival::MothersDay,
        Festival::FathersDay,
        Festival::NationalDay,
    ];

    pub fn chinese_name(self) -> &'static str {
        match self {
            Festival::NewYear => "元旦",
            Festival::SpringFestival => "春节",
            Festival::Lantern => "元宵",
            Festival::Qingming => "清明",
            Festival::DragonBoat => "端午",
            Festival::Qixi => "七夕",
            Festival::MidAutumn => "中秋",
            Festival::DoubleNinth => "重阳",
            Festival::Laba => "腊八",
            Festival::NewYearsEve => "除夕",
            Festival::MothersDay => "母亲节",
            Festival::FathersDay => "父亲节",
            Festival::NationalDay => "国庆",
        }
    }

    /// The ASCII identifier, as spelled in the enum.
    pub fn ascii_name(self) -> &'static str {
        match self {
            Festival::NewYear => "NewYear",
            Festival::SpringFestival => "SpringFestival",
            Festival::Lantern => "Lantern",
            Festival::Qingming => "Qingming",
            Festival::DragonBoat => "DragonBoat",
            Festival::Qixi => "Qixi",
            Festival::MidAutumn => "MidAutumn",
            Festival::DoubleNinth => "DoubleNinth",
            Festival::Laba => "Laba",
            Festival::NewYearsEve => "NewYearsEve",
            Festival::MothersDay => "MothersDay",
            Festival::FathersDay => "FathersDay",
            Festival::NationalDay => "NationalDay",
        }
    }

    /// Accepts the Chinese name (`春节`) or the ASCII identifier (`SpringFestival`, any case),
    /// ignoring surrounding whitespace.
    pub fn parse(s: &str) -> Option<Festival> {
        let s = s.trim();
        Festival::ALL
            .into_iter()
            .find(|f| f.chinese_name() == s || f.ascii_name().eq_ignore_ascii_case(s))
    }
}

impl fmt::Display for Festival {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.chinese_name())
    }
}

/// A lunar date inside the table range (including `TABLE_FIRST`), None if it does not exist.
fn lunar_day(year: i32, month: u32, day: u32) -> Option<NaiveDate> {
    let t = table(year)?;
    let index = t.index_of(month, false)?;
    (day <= t.days(index)).then(|| add_days(t.starts[index], day - 1))
}

/// Every date of `festival` in Gregorian `year`, in order. Most festivals give one date;
/// 腊八 (lunar 12-08) gives zero, one or two. Years outside `MIN_YEAR..=MAX_YEAR` give none.
pub fn festival_dates(festival: Festival, year: i32) -> Vec<NaiveDate> {
    let Some(t) = check_year(year).ok() else {
        return Vec::new();
    };
    let date = match festival {
        Festival::NewYear => NaiveDate::from_ymd_opt(year, 1, 1),
        Festival::NationalDay => NaiveDate::from_ymd_opt(year, 10, 1),
        Festival::MothersDay => NaiveDate::from_weekday_of_month_opt(year, 5, Weekday::Sun, 2),
        Festival::FathersDay => NaiveDate::from_weekday_of_month_opt(year, 6, Weekday::Sun, 3),
        Festival::Qingming => Some(t.qingming),
        // Lunar year Y starts in late January or February of Gregorian Y, so these lunar
        // dates of year Y all fall in Gregorian Y.
        Festival::SpringFestival => lunar_day(year, 1, 1),
        Festival::Lantern => lunar_day(year, 1, 15),
        Festival::DragonBoat => lunar_day(year, 5, 5),
        Festival::Qixi => lunar_day(year, 7, 7),
        Festival::MidAutumn => lunar_day(year, 8, 15),
        Festival::DoubleNinth => lunar_day(year, 9, 9),
        // The last day of the lunar year that ends just before this Gregorian year's 春节
        // (day 29 or 30 of month 12, or of a leap 12th month should a year have one).
        Festival::NewYearsEve => t.new_year().pred_opt(),
        // Lunar 12-08 of year Y-1 falls in January of Y or late December of Y-1; that of
        // year Y in December of Y or January of Y+1. So Y can have none, one or two.
        Festival::Laba => {
            return [year - 1, year]
                .into_iter()
                .filter_map(|y| lunar_day(y, 12, 8))
                .filter(|d| d.year() == year)
                .collect();
        }
    };
    date.into_iter().collect()
}

/// Every date of the given festivals in Gregorian years `from..=to` (clamped to the
/// supported range), sorted by date and, on the same date, by the order of `Festival::ALL`.
pub fn festivals_between(from: i32, to: i32, set: &[Festival]) -> Vec<(Festival, NaiveDate)> {
    let mut all = Vec::new();
    for year in from.max(MIN_YEAR)..=to.min(MAX_YEAR) {
        for &festival in set {
            all.extend(
                festival_dates(festival, year)
                    .into_iter()
                    .map(|d| (festival, d)),
            );
        }
    }
    all.sort_by_key(|&(festival, date)| (date, festival));
    all.dedup();
    all
}

// ---------------------------------------------------------------------------------------
// Birthdays

fn solar_month_max_days(month: u32) -> u32 {
    match month {
        2 => 29,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// The date a birthday is kept in `year` (the Gregorian year for `Solar`, the lunar year
/// for `Lunar`), with the usual conventions:
/// - lunar day 30 is kept on day 29 when that year's month has only 29 days;
/// - a leap-month birthday is kept in the leap month when the year has that leap month,
///   otherwise in the regular month of the same number;
/// - solar 02-29 is kept on 02-28 in common years.
pub fn birthday_in_year(
    calendar: CalendarKind,
    month: u32,
    day: u32,
    leap: bool,
    year: i32,
) -> Result<NaiveDate, CalendarError> {
    let t = check_year(year)?;
    if !(1..=12).contains(&month) {
        return Err(CalendarError::MonthOutOfRange(month));
    }
    match calendar {
        CalendarKind::Solar => {
            if leap {
                return Err(CalendarError::LeapInSolar);
            }
            let max = solar_month_max_days(month);
            if !(1..=max).contains(&day) {
                return Err(CalendarError::SolarDayOutOfRange { month, day, max });
            }
            // Only 02-29 of a common year can fail here: keep it on 02-28.
            NaiveDate::from_ymd_opt(year, month, day)
                .or_else(|| NaiveDate::from_ymd_opt(year, 2, 28))
                .ok_or(CalendarError::YearOutOfRange(year))
        }
        CalendarKind::Lunar => {
            if !(1..=30).contains(&day) {
                return Err(CalendarError::LunarDayOutOfRange(day));
            }
            let index = t
                .index_of(month, leap)
                .or_else(|| t.index_of(month, false))
                .ok_or(CalendarError::MonthOutOfRange(month))?;
            Ok(add_days(t.starts[index], day.min(t.days(index)) - 1))
        }
    }
}

/// The day in the Gregorian month `year`-`month` on which a birthday is kept, if it is kept
/// in that month (conventions as in [`birthday_in_year`]): what groups the families of a
/// collective birthday (集体庆生). A lunar birthday of a lunar year's last months is kept in
/// January or February of the next Gregorian year, so both lunar years are looked at.
pub fn birthday_in_month(
    calendar: CalendarKind,
    birth_month: u32,
    day: u32,
    leap: bool,
    year: i32,
    month: u32,
) -> Option<NaiveDate> {
    let years = match calendar {
        CalendarKind::Solar => vec![year],
        CalendarKind::Lunar => vec![year - 1, year],
    };
    years
        .into_iter()
        .filter_map(|y| birthday_in_year(calendar, birth_month, day, leap, y).ok())
        .find(|d| d.year() == year && d.month() == month)
}

/// The first day on or after `from` on which the birthday is kept (conventions as in
/// [`birthday_in_year`]).
///
/// Returns a `Result` because the birthday may be invalid (month 13…) or the next
/// occurrence may lie past `MAX_YEAR`.
pub fn next_birthday_on_or_after(
    calendar: CalendarKind,
    month: u32,
    day: u32,
    leap: bool,
    from: NaiveDate,
) -> Result<NaiveDate, CalendarError> {
    let year = match calendar {
        CalendarKind::Solar => from.year(),
        CalendarKind::Lunar => solar_to_lunar(from)?.year,
    };
    // The birthday of (lunar) year `year` lies inside that year, so if it has passed, the
    // next one is the following year's.
    let this_year = birthday_in_year(calendar, month, day, leap, year)?;
    if this_year >= from {
        Ok(this_year)
    } else {
        birthday_in_year(calendar, month, day, leap, year + 1)
    }
}

// ---------------------------------------------------------------------------------------
// Line-oriented I/O for `nuanxin calendar`

// Field order of these structs is the key order of the output lines.
#[derive(Serialize)]
struct FestivalLine {
    kind: &'static str,
    year: i32,
    date: String,
}

#[derive(Serialize)]
struct BirthdayLine {
    lunar: String,
    leap: bool,
    solar: String,
}

#[derive(Serialize)]
struct ErrorLine {
    line: usize,
    error: String,
}

fn write_json_line(out: &mut impl Write, value: &impl Serialize) -> io::Result<()> {
    serde_json::to_writer(&mut *out, value)?;
    out.write_all(b"\n")
}

/// Writes every festival of every Gregorian year `from..=to` as JSON lines like
/// `{"kind":"春节","year":2026,"date":"2026-02-17"}`, sorted by date, then by the order of
/// [`Festival::ALL`]. A range outside the supported years, or `from > to`, is an
/// `InvalidInput` error and nothing is written.
pub fn festivals_jsonl(from: i32, to: i32, out: &mut impl Write) -> io::Result<()> {
    for year in [from, to] {
        check_year(year).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    }
    if from > to {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("from year {from} is after to year {to}"),
        ));
    }
    for (festival, date) in festivals_between(from, to, &Festival::ALL) {
        let line = FestivalLine {
            kind: festival.chinese_name(),
            year: date.year(),
            date: date.format("%Y-%m-%d").to_string(),
        };
        write_json_line(out, &line)?;
    }
    Ok(())
}

/// Reads lines like `{"lunar":"2030-06-30","leap":true}` (`leap` optional, default false)
/// and writes `{"lunar":"2030-06-30","leap":true,"solar":"2030-08-28"}`: the solar date on
/// which that lunar birthday is kept in that lunar year. A bad line becomes
/// `{"line":N,"error":"…"}` (N counts from 1, blank lines included) and the rest go on;
/// blank lines are skipped. Only I/O errors stop it.
pub fn birthdays_jsonl(mut input: impl BufRead, out: &mut impl Write) -> io::Result<()> {
    let mut buf = Vec::new();
    let mut line_no = 0;
    loop {
        buf.clear();
        if input.read_until(b'\n', &mut buf)? == 0 {
            return Ok(());
        }
        line_no += 1;
        // Read bytes, not `lines()`, so one line of bad UTF-8 is reported, not fatal.
        let Ok(text) = std::str::from_utf8(&buf) else {
            let error = "line is not valid UTF-8".to_string();
            write_json_line(
                out,
                &ErrorLine {
                    line: line_no,
                    error,
                },
            )?;
            continue;
        };
        let text = text.trim();
        if text.is_empty() {
            continue;
        }
        match birthday_line(text) {
            Ok((lunar, leap, solar)) => {
                let solar = solar.format("%Y-%m-%d").to_string();
                write_json_line(out, &BirthdayLine { lunar, leap, solar })?;
            }
            Err(error) => write_json_line(
                out,
                &ErrorLine {
                    line: line_no,
                    error,
                },
            )?,
        }
    }
}

/// One input line of `birthdays_jsonl`: (the `lunar` text, leap, solar date) or what is
/// wrong with it.
fn birthday_line(text: &str) -> Result<(String, bool, NaiveDate), String> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| format!("line is not valid JSON: {e}"))?;
    let Value::Object(fields) = value else {
        return Err(r#"expected a JSON object like {"lunar":"2030-06-30","leap":false}"#.into());
    };
    if let Some(key) = fields.keys().find(|k| *k != "lunar" && *k != "leap") {
        return Err(format!(
            r#"unknown field "{key}" (expected "lunar" and optionally "leap")"#
        ));
    }
    let lunar = match fields.get("lunar") {
        Some(Value::String(s)) => s,
        Some(_) => return Err(r#"field "lunar" must be a string "YYYY-MM-DD""#.into()),
        None => return Err(r#"missing field "lunar""#.into()),
    };
    let leap = match fields.get("leap") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(r#"field "leap" must be true or false"#.into()),
    };
    let (year, month, day) = parse_ymd(lunar)
        .ok_or_else(|| format!(r#"lunar date "{lunar}" is not in YYYY-MM-DD form"#))?;
    let solar = birthday_in_year(CalendarKind::Lunar, month, day, leap, year)
        .map_err(|e| format!(r#"lunar date "{lunar}": {e}"#))?;
    Ok((lunar.clone(), leap, solar))
}

/// Strict `YYYY-MM-DD` (4, 2 and 2 ASCII digits); range checks are left to the caller so
/// its errors can name the bad part.
fn parse_ymd(s: &str) -> Option<(i32, u32, u32)> {
    let mut parts = s.split('-');
    let (y, m, d) = (parts.next()?, parts.next()?, parts.next()?);
    let digits = |p: &str, n: usize| p.len() == n && p.bytes().all(|b| b.is_ascii_digit());
    if parts.next().is_some() || !digits(y, 4) || !digits(m, 2) || !digits(d, 2) {
        return None;
    }
    Some((y.parse().ok()?, m.parse().ok()?, d.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn birthdays_of_a_gregorian_month_in_their_own_calendar() {
        let d = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).unwrap();
        use CalendarKind::*;
        // Lunar 正月初一 2026 is 17 February 2026; 腊月廿三 of lunar 2025 is 10 February 2026 (a 29-day 腊月).
        assert_eq!(
            birthday_in_month(Lunar, 1, 1, false, 2026, 2),
            Some(d(2026, 2, 17))
        );
        assert_eq!(
            birthday_in_month(Lunar, 12, 23, false, 2026, 2),
            Some(d(2026, 2, 10))
        );
        assert_eq!(birthday_in_month(Lunar, 12, 23, false, 2026, 1), None);
        // Lunar 八月十五 2026 is 25 September.
        assert_eq!(
            birthday_in_month(Lunar, 8, 15, false, 2026, 9),
            Some(d(2026, 9, 25))
        );
        assert_eq!(
            birthday_in_month(Solar, 2, 29, false, 2026, 2),
            Some(d(2026, 2, 28))
        );
        assert_eq!(birthday_in_month(Solar, 3, 1, false, 2026, 2), None);
    }

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    fn one(festival: Festival, year: i32) -> NaiveDate {
        let dates = festival_dates(festival, year);
        assert_eq!(dates.len(), 1, "{festival} {year}: {dates:?}");
        dates[0]
    }

    #[test]
    fn known_points() {
        assert_eq!(one(Festival::SpringFestival, 2025), d(2025, 1, 29));
        assert_eq!(one(Festival::SpringFestival, 2026), d(2026, 2, 17));
        assert_eq!(one(Festival::SpringFestival, 2027), d(2027, 2, 6));
        assert_eq!(one(Festival::MidAutumn, 2025), d(2025, 10, 6));
        assert_eq!(one(Festival::MidAutumn, 2026), d(2026, 9, 25));
        assert_eq!(one(Festival::Qingming, 2026), d(2026, 4, 5));
        assert_eq!(one(Festival::DoubleNinth, 2026), d(2026, 10, 18));
        assert_eq!(leap_month(2025), Some(6));
        let leap_six = LunarDate {
            year: 2025,
            month: 6,
            day: 1,
            leap: true,
        };
        assert_eq!(lunar_to_solar(leap_six), Ok(d(2025, 7, 25)));
        assert_eq!(solar_to_lunar(d(2025, 7, 25)), Ok(leap_six));
    }

    #[test]
    fn other_festivals_of_2026() {
        assert_eq!(one(Festival::NewYear, 2026), d(2026, 1, 1));
        assert_eq!(one(Festival::Lantern, 2026), d(2026, 3, 3));
        assert_eq!(one(Festival::DragonBoat, 2026), d(2026, 6, 19));
        assert_eq!(one(Festival::Qixi, 2026), d(2026, 8, 19));
        assert_eq!(one(Festival::NewYearsEve, 2026), d(2026, 2, 16));
        assert_eq!(one(Festival::MothersDay, 2026), d(2026, 5, 10));
        assert_eq!(one(Festival::FathersDay, 2026), d(2026, 6, 21));
        assert_eq!(one(Festival::NationalDay, 2026), d(2026, 10, 1));
        assert_eq!(one(Festival::MothersDay, 2025), d(2025, 5, 11));
        assert_eq!(one(Festival::FathersDay, 2025), d(2025, 6, 15));
    }

    #[test]
    fn laba_can_occur_twice_or_not_at_all() {
        // Lunar 2021's 12-08 and lunar 2022's 12-08 both fall in 2022, so 2023 has none.
        assert_eq!(
            festival_dates(Festival::Laba, 2022),
            vec![d(2022, 1, 10), d(2022, 12, 30)]
        );
        assert_eq!(festival_dates(Festival::Laba, 2023), vec![]);
        assert_eq!(festival_dates(Festival::Laba, 2024), vec![d(2024, 1, 18)]);
    }

    #[test]
    fn new_years_eve_is_the_29th_or_the_30th() {
        let eve_2024 = one(Festival::NewYearsEve, 2024);
        assert_eq!(eve_2024, d(2024, 2, 9));
        assert_eq!(solar_to_lunar(eve_2024).unwrap().day, 30);
        let eve_2025 = one(Festival::NewYearsEve, 2025);
        assert_eq!(eve_2025, d(2025, 1, 28));
        let lunar = solar_to_lunar(eve_2025).unwrap();
        assert_eq!((lunar.year, lunar.month, lunar.day), (2024, 12, 29));
    }

    #[test]
    fn festivals_outside_the_range_are_empty() {
        assert!(festival_dates(Festival::NewYear, MIN_YEAR - 1).is_empty());
        assert!(festival_dates(Festival::SpringFestival, MAX_YEAR + 1).is_empty());
        // Both ends are fully covered, 腊八 included.
        assert_eq!(festival_dates(Festival::Laba, MIN_YEAR).len(), 1);
        assert_eq!(festival_dates(Festival::NewYearsEve, MAX_YEAR).len(), 1);
    }

    #[test]
    fn festival_names_round_trip() {
        let names = [
            "元旦",
            "春节",
            "元宵",
            "清明",
            "端午",
            "七夕",
            "中秋",
            "重阳",
            "腊八",
            "除夕",
            "母亲节",
            "父亲节",
            "国庆",
        ];
        for (festival, name) in Festival::ALL.into_iter().zip(names) {
            assert_eq!(festival.chinese_name(), name);
            assert_eq!(Festival::parse(name), Some(festival));
            assert_eq!(Festival::parse(festival.ascii_name()), Some(festival));
            assert_eq!(
                Festival::parse(&festival.ascii_name().to_lowercase()),
                Some(festival)
            );
        }
        assert_eq!(Festival::parse("圣诞"), None);
        assert_eq!(Festival::parse(""), None);
    }

    #[test]
    fn festivals_between_sorts_by_date_then_list_order() {
        // 2020: 中秋 falls on 国庆.
        let list = festivals_between(2020, 2020, &[Festival::NationalDay, Festival::MidAutumn]);
        assert_eq!(
            list,
            vec![
                (Festival::MidAutumn, d(2020, 10, 1)),
                (Festival::NationalDay, d(2020, 10, 1))
            ]
        );
        let all = festivals_between(2025, 2026, &Festival::ALL);
        assert!(all.windows(2).all(|w| (w[0].1, w[0].0) < (w[1].1, w[1].0)));
        assert_eq!(all.first(), Some(&(Festival::NewYear, d(2025, 1, 1))));
        // Clamped, not an error, and no endless loop.
        assert_eq!(
            festivals_between(i32::MIN, i32::MAX, &[Festival::NewYear]).len(),
            (MAX_YEAR - MIN_YEAR + 1) as usize
        );
        assert!(festivals_between(2030, 2020, &Festival::ALL).is_empty());
    }

    #[test]
    fn conversion_errors_name_the_problem() {
        let lunar = |year, month, day, leap| LunarDate {
            year,
            month,
            day,
            leap,
        };
        assert_eq!(
            lunar_to_solar(lunar(2026, 6, 1, true)),
            Err(CalendarError::NoSuchLeapMonth {
                year: 2026,
                month: 6,
                leap_month: None
            })
        );
        assert_eq!(
            lunar_to_solar(lunar(2025, 5, 1, true))
                .unwrap_err()
                .to_string(),
            "lunar year 2025 has no leap month 5 (its leap month is 6)"
        );
        // 2025 month 2 has 29 days.
        assert_eq!(month_days(2025, 2, false), Some(29));
        assert_eq!(
            lunar_to_solar(lunar(2025, 2, 30, false)),
            Err(CalendarError::DayNotInMonth {
                year: 2025,
                month: 2,
                leap: false,
                day: 30,
                days: 29
            })
        );
        assert_eq!(
            lunar_to_solar(lunar(2025, 13, 1, false)),
            Err(CalendarError::MonthOutOfRange(13))
        );
        assert_eq!(
            lunar_to_solar(lunar(2025, 1, 31, false)),
            Err(CalendarError::LunarDayOutOfRange(31))
        );
        assert_eq!(
            lunar_to_solar(lunar(2101, 1, 1, false)),
            Err(CalendarError::YearOutOfRange(2101))
        );
        assert_eq!(
            lunar_to_solar(lunar(MIN_YEAR - 1, 12, 8, false)),
            Err(CalendarError::YearOutOfRange(MIN_YEAR - 1))
        );
        assert_eq!(
            solar_to_lunar(d(1900, 1, 30)),
            Err(CalendarError::DateOutOfRange(d(1900, 1, 30)))
        );
        assert!(solar_to_lunar(d(1900, 1, 31)).is_ok());
        // The last lunar year ends in January 2101.
        let last = table(MAX_YEAR).unwrap().end().pred_opt().unwrap();
        assert_eq!(last.year(), MAX_YEAR + 1);
        let lunar = solar_to_lunar(last).unwrap();
        assert_eq!((lunar.year, lunar.month), (MAX_YEAR, 12));
        assert_eq!(lunar_to_solar(lunar), Ok(last));
        assert_eq!(
            solar_to_lunar(last.succ_opt().unwrap()),
            Err(CalendarError::DateOutOfRange(last.succ_opt().unwrap()))
        );
        assert!(solar_to_lunar(NaiveDate::MAX).is_err());
        assert!(solar_to_lunar(NaiveDate::MIN).is_err());
        assert_eq!(leap_month(2026), None);
        assert_eq!(leap_month(3000), None);
        assert_eq!(month_days(2025, 6, true), Some(29));
        assert_eq!(month_days(2025, 7, true), None);
        assert_eq!(month_days(2025, 0, false), None);
    }

    #[test]
    fn lunar_birthday_on_the_30th_moves_to_the_29th() {
        // 2025 month 1 has 30 days, month 2 has 29.
        let b = |month, year| birthday_in_year(CalendarKind::Lunar, month, 30, false, year);
        assert_eq!(b(1, 2025), Ok(d(2025, 2, 27)));
        assert_eq!(b(2, 2025), Ok(d(2025, 3, 28)));
        assert_eq!(solar_to_lunar(d(2025, 3, 28)).unwrap().day, 29);
    }

    #[test]
    fn leap_month_birthday_falls_back_to_the_regular_month() {
        let b = |leap, year| birthday_in_year(CalendarKind::Lunar, 6, 10, leap, year);
        // 2025 has 闰六月: a leap birthday is kept in it, a regular one in the regular month.
        assert_eq!(b(true, 2025), Ok(d(2025, 8, 3)));
        assert_eq!(b(false, 2025), Ok(d(2025, 7, 4)));
        // 2026 has no leap month: the regular 六月.
        assert_eq!(b(true, 2026), Ok(d(2026, 7, 23)));
        assert_eq!(b(true, 2026), b(false, 2026));
    }

    #[test]
    fn solar_birthdays() {
        let b = |month, day, year| birthday_in_year(CalendarKind::Solar, month, day, false, year);
        assert_eq!(b(2, 29, 2025), Ok(d(2025, 2, 28)));
        assert_eq!(b(2, 29, 2028), Ok(d(2028, 2, 29)));
        assert_eq!(b(10, 31, 2026), Ok(d(2026, 10, 31)));
        assert_eq!(
            b(2, 30, 2028),
            Err(CalendarError::SolarDayOutOfRange {
                month: 2,
                day: 30,
                max: 29
            })
        );
        assert_eq!(
            b(4, 31, 2026).unwrap_err().to_string(),
            "day 31 is out of range 1..=30 for solar month 4"
        );
        assert_eq!(
            birthday_in_year(CalendarKind::Solar, 5, 1, true, 2026),
            Err(CalendarError::LeapInSolar)
        );
    }

    #[test]
    fn next_birthday() {
        let next =
            |kind, month, day, from| next_birthday_on_or_after(kind, month, day, false, from);
        let lunar = CalendarKind::Lunar;
        assert_eq!(next(lunar, 1, 1, d(2026, 1, 1)), Ok(d(2026, 2, 17)));
        assert_eq!(next(lunar, 1, 1, d(2026, 2, 17)), Ok(d(2026, 2, 17)));
        assert_eq!(next(lunar, 1, 1, d(2026, 2, 18)), Ok(d(2027, 2, 6)));
        // In January 2026 the lunar year is still 2025: its 腊月 birthday comes first.
        assert_eq!(next(lunar, 12, 8, d(2026, 1, 2)), Ok(d(2026, 1, 26)));
        let solar = CalendarKind::Solar;
        assert_eq!(next(solar, 2, 29, d(2025, 3, 1)), Ok(d(2026, 2, 28)));
        assert_eq!(next(solar, 2, 29, d(2027, 3, 1)), Ok(d(2028, 2, 29)));
        assert_eq!(next(solar, 12, 31, d(2026, 12, 31)), Ok(d(2026, 12, 31)));
        assert_eq!(
            next(solar, 1, 1, d(MAX_YEAR, 1, 2)),
            Err(CalendarError::YearOutOfRange(MAX_YEAR + 1))
        );
        assert_eq!(
            next(lunar, 13, 1, d(2026, 1, 2)),
            Err(CalendarError::MonthOutOfRange(13))
        );
    }

    #[test]
    fn festivals_jsonl_lines() {
        let mut out = Vec::new();
        festivals_jsonl(2026, 2026, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 13);
        assert_eq!(
            lines[0],
            r#"{"kind":"元旦","year":2026,"date":"2026-01-01"}"#
        );
        assert_eq!(
            lines[1],
            r#"{"kind":"腊八","year":2026,"date":"2026-01-26"}"#
        );
        assert_eq!(
            lines[2],
            r#"{"kind":"除夕","year":2026,"date":"2026-02-16"}"#
        );
        assert_eq!(
            lines[3],
            r#"{"kind":"春节","year":2026,"date":"2026-02-17"}"#
        );
        assert_eq!(
            lines[11],
            r#"{"kind":"国庆","year":2026,"date":"2026-10-01"}"#
        );
        assert_eq!(
            lines[12],
            r#"{"kind":"重阳","year":2026,"date":"2026-10-18"}"#
        );

        let mut out = Vec::new();
        festivals_jsonl(2022, 2023, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.matches(r#""kind":"腊八","year":2022"#).count(), 2);
        assert_eq!(text.matches(r#""kind":"腊八","year":2023"#).count(), 0);
        // 2022 has two 腊八, 2023 none.
        assert_eq!(text.lines().count(), 14 + 12);

        for (from, to) in [(2026, 2025), (1899, 2000), (2000, 2101)] {
            let mut out = Vec::new();
            let err = festivals_jsonl(from, to, &mut out).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
            assert!(out.is_empty());
        }
    }

    fn run_birthdays(input: &str) -> Vec<String> {
        let mut out = Vec::new();
        birthdays_jsonl(input.as_bytes(), &mut out).unwrap();
        String::from_utf8(out)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn birthdays_jsonl_applies_the_conventions() {
        let out = run_birthdays(
            "{\"lunar\":\"2030-06-30\",\"leap\":true}\n\
             \n\
             {\"lunar\":\"2025-06-10\",\"leap\":true}\r\n\
             {\"leap\":false,\"lunar\":\"2026-01-01\"}\n\
             {\"lunar\":\"2026-01-01\"}",
        );
        assert_eq!(
            out,
            [
                // 2030 has no leap month and its 六月 has 29 days.
                r#"{"lunar":"2030-06-30","leap":true,"solar":"2030-07-29"}"#,
                r#"{"lunar":"2025-06-10","leap":true,"solar":"2025-08-03"}"#,
                r#"{"lunar":"2026-01-01","leap":false,"solar":"2026-02-17"}"#,
                r#"{"lunar":"2026-01-01","leap":false,"solar":"2026-02-17"}"#,
            ]
        );
    }

    #[test]
    fn birthdays_jsonl_reports_bad_lines_and_goes_on() {
        let input = [
            "not json",
            r#"{"lunar":"2030/06/30"}"#,
            r#"{"lunar":"2030-13-01"}"#,
            "",
            r#"{"lunar":"2030-06-31"}"#,
            r#"{"lunar":"2200-01-01"}"#,
            r#"{"lunar":"2030-01-01","leap":"yes"}"#,
            r#"{"lunar":"2030-01-01","laep":true}"#,
            r#"{"leap":true}"#,
            r#"{"lunar":20300101}"#,
            r#"["2030-01-01"]"#,
            r#"{"lunar":"2030-01-00"}"#,
            r#"{"lunar":"2030-01-01"}"#,
        ]
        .join("\n");
        let out = run_birthdays(&input);
        let expected = [
            (
                1,
                "line is not valid JSON: expected ident at line 1 column 2",
            ),
            (2, r#"lunar date "2030/06/30" is not in YYYY-MM-DD form"#),
            (
                3,
                r#"lunar date "2030-13-01": month 13 is out of range 1..=12"#,
            ),
            (
                5,
                r#"lunar date "2030-06-31": day 31 is out of range 1..=30 (a lunar month has at most 30 days)"#,
            ),
            (
                6,
                r#"lunar date "2200-01-01": year 2200 is outside the supported range 1900..=2100"#,
            ),
            (7, r#"field "leap" must be true or false"#),
            (
                8,
                r#"unknown field "laep" (expected "lunar" and optionally "leap")"#,
            ),
            (9, r#"missing field "lunar""#),
            (10, r#"field "lunar" must be a string "YYYY-MM-DD""#),
            (
                11,
                r#"expected a JSON object like {"lunar":"2030-06-30","leap":false}"#,
            ),
            (
                12,
                r#"lunar date "2030-01-00": day 0 is out of range 1..=30 (a lunar month has at most 30 days)"#,
            ),
        ];
        assert_eq!(out.len(), expected.len() + 1);
        for (line, (n, error)) in out.iter().zip(expected) {
            let want = serde_json::to_string(&ErrorLine {
                line: n,
                error: error.to_string(),
            })
            .unwrap();
            assert_eq!(line, &want);
            assert!(line.starts_with(&format!(r#"{{"line":{n},"error":""#)));
        }
        assert_eq!(
            out.last().unwrap(),
            r#"{"lunar":"2030-01-01","leap":false,"solar":"2030-02-03"}"#
        );
    }

    #[test]
    fn birthdays_jsonl_survives_invalid_utf8() {
        let mut out = Vec::new();
        let input: &[u8] = b"\xff\xfe\n{\"lunar\":\"2026-01-01\"}\n";
        birthdays_jsonl(input, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "{\"line\":1,\"error\":\"line is not valid UTF-8\"}\n\
             {\"lunar\":\"2026-01-01\",\"leap\":false,\"solar\":\"2026-02-17\"}\n"
        );
    }

    #[test]
    fn every_table_year_builds_consistently() {
        // Also proves the `expect`s in `build_table` hold over the whole range.
        for year in TABLE_FIRST..=MAX_YEAR {
            let t = table(year).unwrap();
            assert!(t.month_count == 12 || t.month_count == 13);
            assert_eq!(t.month_count == 13, t.leap_month != 0, "{year}");
            for i in 0..t.month_count {
                assert!(matches!(t.days(i), 29 | 30), "{year} month index {i}");
                assert_eq!(t.index_of(t.month_at(i).0, t.month_at(i).1), Some(i));
            }
            if year < MAX_YEAR {
                assert_eq!(t.end(), table(year + 1).unwrap().new_year(), "{year}");
            }
            assert_eq!(t.new_year().year(), year);
            assert!(t.qingming > t.new_year() && t.qingming < t.end());
        }
    }

    #[test]
    fn hundred_thousand_conversions() {
        // Not timed: it only makes sure 100k look-ups (the scheduler's load) run through
        // the cached tables without trouble.
        let start = d(1950, 1, 1);
        let mut checksum = 0u64;
        for i in 0..100_000u64 {
            let date = start + Days::new(i * 7 % 54_000);
            let lunar = solar_to_lunar(date).unwrap();
            assert_eq!(lunar_to_solar(lunar), Ok(date));
            let next = next_birthday_on_or_after(
                CalendarKind::Lunar,
                lunar.month,
                lunar.day,
                lunar.leap,
                date,
            )
            .unwrap();
            assert_eq!(next, date);
            checksum += u64::from(lunar.day);
        }
        assert!(checksum > 0);
    }
}
