//! iCalendar (RFC 5545) text for the calendar feed a volunteer subscribes to on their
//! phone. Calendars sync to other companies' clouds, so an event names the kind of visit
//! and the village, never the family.

use chrono::{DateTime, NaiveDate, Utc};

/// One visit as a calendar event: a whole day (the planned day) or, without one, the
/// window.
pub struct Event {
    pub uid: String,
    pub summary: String,
    pub description: String,
    pub day: Option<NaiveDate>,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub updated: DateTime<Utc>,
}

pub fn calendar(name: &str, events: &[Event]) -> String {
    let mut out = String::new();
    let mut line = |s: String| fold(&mut out, &s);
    line("BEGIN:VCALENDAR".into());
    line("VERSION:2.0".into());
    line("PRODID:-//nuanxin//visits//ZH".into());
    line("CALSCALE:GREGORIAN".into());
    line(format!("X-WR-CALNAME:{}", escape(name)));
    line("X-WR-TIMEZONE:Asia/Shanghai".into());
    for e in events {
        line("BEGIN:VEVENT".into());
        line(format!("UID:{}", escape(&e.uid)));
        line(format!("DTSTAMP:{}", stamp(e.updated)));
        match e.day {
            Some(day) => {
                line(format!("DTSTART;VALUE=DATE:{}", day.format("%Y%m%d")));
                let next = day.succ_opt().unwrap_or(day);
                line(format!("DTEND;VALUE=DATE:{}", next.format("%Y%m%d")));
            }
            None => {
                line(format!("DTSTART:{}", stamp(e.start)));
                line(format!("DTEND:{}", stamp(e.end)));
            }
        }
        line(format!("SUMMARY:{}", escape(&e.summary)));
        line(format!("DESCRIPTION:{}", escape(&e.description)));
        line("END:VEVENT".into());
    }
    line("END:VCALENDAR".into());
    out
}

fn stamp(t: DateTime<Utc>) -> String {
    t.format("%Y%m%dT%H%M%SZ").to_string()
}

/// Text values: backslash, semicolon, comma and newlines escaped.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            ';' => out.push_str("\\;"),
            ',' => out.push_str("\\,"),
            '\n' => out.push_str("\\n"),
            '\r' => {}
            c => out.push(c),
        }
    }
    out
}

/// Appends a content line, folded at 75 octets without splitting a character, CRLF-ended.
fn fold(out: &mut String, line: &str) {
    let mut width = 0;
    for c in line.chars() {
        let n = c.len_utf8();
        if width + n > 75 {
            out.push_str("\r\n ");
            width = 1;
        }
        out.push(c);
        width += n;
    }
    out.push_str("\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn event() -> Event {
        Event {
            uid: "0192-abc@nuanxin".into(),
            summary: "入户走访 · 杨柳村".into(),
            description: "可在 12月1日 至 12月4日 之间走访; 详情请在小程序中查看".into(),
            day: NaiveDate::from_ymd_opt(2026, 12, 3),
            start: Utc.with_ymd_and_hms(2026, 11, 30, 16, 0, 0).unwrap(),
            end: Utc.with_ymd_and_hms(2026, 12, 4, 16, 0, 0).unwrap(),
            updated: Utc.with_ymd_and_hms(2026, 11, 24, 2, 0, 0).unwrap(),
        }
    }

    #[test]
    fn a_whole_day_event_with_escaped_text() {
        let ics = calendar("暖心走访", &[event()]);
        assert!(ics.starts_with("BEGIN:VCALENDAR\r\nVERSION:2.0\r\n"));
        assert!(ics.ends_with("END:VCALENDAR\r\n"));
        assert!(ics.contains("DTSTART;VALUE=DATE:20261203\r\nDTEND;VALUE=DATE:20261204\r\n"));
        assert!(ics.contains("UID:0192-abc@nuanxin\r\n"));
        assert!(ics.contains("DTSTAMP:20261124T020000Z\r\n"));
        // The semicolon in the text is escaped.
        let unfolded = ics.replace("\r\n ", "");
        assert!(unfolded.contains("之间走访\\; 详情"), "{unfolded}");
    }

    #[test]
    fn long_lines_fold_at_75_octets_between_characters() {
        let mut e = event();
        e.description = "关怀".repeat(60);
        let ics = calendar("暖心走访", &[e]);
        for line in ics.split("\r\n") {
            assert!(line.len() <= 75, "{} octets: {line}", line.len());
        }
        let unfolded = ics.replace("\r\n ", "");
        assert!(unfolded.contains(&format!("DESCRIPTION:{}", "关怀".repeat(60))));
    }

    #[test]
    fn without_a_day_the_window_is_used() {
        let mut e = event();
        e.day = None;
        let ics = calendar("x", &[e]);
        assert!(ics.contains("DTSTART:20261130T160000Z\r\nDTEND:20261204T160000Z\r\n"));
    }
}
