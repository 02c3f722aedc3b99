//! `nuanxin calendar …` prints exactly what people who check dates by hand expect.

use std::{
    io::Write,
    process::{Command, Stdio},
};

fn nuanxin(args: &[&str], stdin: &str) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_nuanxin"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("nuanxin runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn festivals_are_printed_one_json_object_per_line() {
    let out = nuanxin(
        &["calendar", "festivals", "--from", "2025", "--to", "2027"],
        "",
    );
    for line in [
        r#"{"kind":"春节","year":2025,"date":"2025-01-29"}"#,
        r#"{"kind":"春节","year":2026,"date":"2026-02-17"}"#,
        r#"{"kind":"春节","year":2027,"date":"2027-02-06"}"#,
        r#"{"kind":"中秋","year":2025,"date":"2025-10-06"}"#,
        r#"{"kind":"清明","year":2026,"date":"2026-04-05"}"#,
        r#"{"kind":"重阳","year":2026,"date":"2026-10-18"}"#,
        r#"{"kind":"除夕","year":2026,"date":"2026-02-16"}"#,
    ] {
        assert!(out.lines().any(|l| l == line), "missing {line}");
    }
    // Every line is one of the 13 festivals, in date order.
    let dates: Vec<&str> = out.lines().map(|l| &l[l.len() - 12..l.len() - 2]).collect();
    assert!(dates.windows(2).all(|w| w[0] <= w[1]));
    assert!((38..=40).contains(&out.lines().count()));
}

#[test]
fn lunar_birthdays_are_converted_and_bad_lines_named() {
    let input = "{\"lunar\":\"2025-06-30\",\"leap\":true}\n{\"lunar\":\"2026-06-10\",\"leap\":true}\nnot json\n{\"lunar\":\"2026-02-31\"}\n{\"lunar\":\"2026-01-01\"}\n";
    let out = nuanxin(&["calendar", "birthdays"], input);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 5);
    // 闰六月 2025 has 29 days: a birthday on the 30th is kept on the 29th (2025-08-22).
    assert_eq!(
        lines[0],
        r#"{"lunar":"2025-06-30","leap":true,"solar":"2025-08-22"}"#
    );
    // 2026 has no 闰六月: kept in the regular sixth month.
    assert!(
        lines[1].starts_with(r#"{"lunar":"2026-06-10","leap":true,"solar":"2026-07-"#),
        "{}",
        lines[1]
    );
    assert!(lines[2].starts_with(r#"{"line":3,"error":"#));
    assert!(lines[3].starts_with(r#"{"line":4,"error":"#) && lines[3].contains("31"));
    assert_eq!(
        lines[4],
        r#"{"lunar":"2026-01-01","leap":false,"solar":"2026-02-17"}"#
    );
}
