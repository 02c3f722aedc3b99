//! What each message says: a title and body for the in-app inbox, and the values of a
//! WeChat subscribe message, fitted to the rules of each template key (WECHAT.md §3.1).
//!
//! Messages can show on a locked phone screen, so they never carry a family's name,
//! category (失独, 伤残…), illness or address, and never a person's full name ("王*").
//! The payloads queued today hold a visit id and a date, nothing more.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use scheduler::events::TEMPLATE_VISIT_CANCELLED;
use serde_json::Value;
use uuid::Uuid;

use super::remind;
use crate::{
    api::{
        reports::{TEMPLATE_VISIT_DECLINED, TEMPLATE_VISIT_MOVE_REQUESTED},
        visits::TEMPLATE_CLAIM_RELEASED,
    },
    assignments::TEMPLATE_VISIT_ASSIGNED,
};

/// The messages held back by a person's daily cap, in one, the next morning.
pub const DIGEST: &str = "digest";
/// Good wishes: never sent to a bereaved family on its sensitive days.
pub const FESTIVAL_GREETING: &str = "festival_greeting";
pub const BIRTHDAY_GREETING: &str = "birthday_greeting";
pub const EVENT_INVITATION: &str = "event_invitation";
/// An event someone signed up for or was invited to: a new day or place, or cancelled.
pub const EVENT_CHANGED: &str = "event_changed";
pub const EVENT_CANCELLED: &str = "event_cancelled";
/// Coordinators: a volunteer declined a visit assigned to them.
pub const ASSIGNMENT_DECLINED: &str = "assignment_declined";
/// Someone a coordinator asked to see a wish through.
pub const WISH_ASSIGNED: &str = "wish_assigned";
/// Coordinators: a township's volunteers will not cover the festival season.
pub const SURGE_WARNING: &str = "surge_warning";

/// The templates messages are queued with.
pub const KNOWN: [&str; 31] = [
    TEMPLATE_VISIT_CANCELLED,
    TEMPLATE_CLAIM_RELEASED,
    TEMPLATE_VISIT_ASSIGNED,
    TEMPLATE_VISIT_DECLINED,
    TEMPLATE_VISIT_MOVE_REQUESTED,
    // Reminders and alerts (`notify::remind`).
    remind::CLAIM_CONFIRMED,
    remind::EVENING_BEFORE,
    remind::HOURS_BEFORE,
    remind::NEW_VISITS,
    remind::VISIT_MOVED,
    remind::VISIT_COMING,
    remind::FAMILY_DAY_BEFORE,
    remind::PLEASE_CONFIRM,
    remind::WISH_ANSWERED,
    remind::HELP_RECEIVED,
    remind::VISITS_UNCLAIMED,
    remind::VISIT_MISSED,
    remind::VISIT_UNCONFIRMED,
    remind::LOW_RATING,
    remind::RISK_SIGNS,
    remind::WISHES_UNANSWERED,
    remind::HELP_EMERGENCY,
    DIGEST,
    FESTIVAL_GREETING,
    BIRTHDAY_GREETING,
    EVENT_INVITATION,
    EVENT_CHANGED,
    EVENT_CANCELLED,
    ASSIGNMENT_DECLINED,
    WISH_ASSIGNED,
    SURGE_WARNING,
];

/// How a message speaks: as usual, or gently, on a bereaved family's sensitive day.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tone {
    Usual,
    Gentle,
}

/// What a WeChat template's keys can carry (`notify.templates.*.keys`).
pub const SLOTS: [&str; 4] = ["title", "date", "note", "status"];

/// One message, rendered.
#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    /// For the inbox.
    pub title: String,
    pub body: String,
    /// The visit it is about, for the app to open.
    pub visit_id: Option<Uuid>,
    /// For WeChat: a short heading, the day, a note, a status of a few characters.
    pub heading: &'static str,
    pub date: NaiveDate,
    pub note: &'static str,
    pub status: &'static str,
}

/// Renders a queued message. `queued_on` stands in for a date the payload lacks.
pub fn render(template: &str, payload: &Value, queued_on: NaiveDate) -> Message {
    render_with(template, payload, queued_on, Tone::Usual)
}

/// Renders a message in a tone. The gentle one, for a day of grief, heads every message
/// "暖心关怀" and drops exclamations: the facts stay, nothing reads like a greeting.
/// (Good wishes themselves are not sent on such days at all.)
pub fn render_with(template: &str, payload: &Value, queued_on: NaiveDate, tone: Tone) -> Message {
    let mut m = render_usual(template, payload, queued_on);
    if tone == Tone::Gentle {
        m.heading = "暖心关怀";
        m.body = m.body.replace('！', "。");
        if m.title == "暖心通知" {
            m.title = "暖心关怀".into();
            m.body = "您有一条消息，方便时请在暖心小程序中查看。我们一直在您身边。".into();
        }
    }
    m
}

fn render_usual(template: &str, payload: &Value, queued_on: NaiveDate) -> Message {
    let date = payload
        .get("date")
        .and_then(Value::as_str)
        .and_then(|d| d.parse().ok())
        .unwrap_or(queued_on);
    let visit_id = payload
        .get("task_id")
        .and_then(Value::as_str)
        .and_then(|id| id.parse().ok());
    let day = date.format("%-m月%-d日").to_string();
    if let Some((title, body, heading, note, status)) = reminder_text(template, payload, &day) {
        return Message {
            title: title.into(),
            body,
            visit_id,
            heading,
            date,
            note,
            status,
        };
    }
    let (title, body, heading, note, status) = match template {
        TEMPLATE_VISIT_CANCELLED => (
            "走访已取消",
            format!("您负责的{day}的走访已取消，无需前往。谢谢您的关心。"),
            "走访取消通知",
            "无需前往，谢谢您的关心",
            "已取消",
        ),
        TEMPLATE_CLAIM_RELEASED => (
            "走访安排有调整",
            format!("协调员调整了{day}的走访安排，您无需再前往。如有疑问，请联系协调员。"),
            "走访安排调整",
            "您无需再前往此次走访",
            "已调整",
        ),
        TEMPLATE_VISIT_ASSIGNED => (
            "新的走访安排",
            format!("协调员为您安排了{day}的走访，请在小程序中接受或婉拒。"),
            "走访安排通知",
            "请在小程序中接受或婉拒",
            "待确认",
        ),
        TEMPLATE_VISIT_DECLINED => (
            "家庭这次不便接待",
            format!("您负责的{day}的走访，家庭表示这次不便接待。请先不要前往，协调员会与您联系。"),
            "走访变动提醒",
            "家庭这次不便接待，请先不要前往",
            "待协调",
        ),
        TEMPLATE_VISIT_MOVE_REQUESTED => (
            "家庭希望改期",
            format!("您负责的{day}的走访，家庭希望换个时间。协调员会与您确认新的安排。"),
            "走访改期提醒",
            "家庭希望换个时间，请等待协调员安排",
            "待改期",
        ),
        DIGEST => (
            "新消息汇总",
            "您有几条新消息，请在暖心小程序的“消息”中查看。".to_string(),
            "新消息汇总",
            "请在小程序的消息中查看",
            "待查看",
        ),
        FESTIVAL_GREETING => (
            "节日问候",
            "祝您节日快乐，身体健康！暖心志愿者一直在您身边。".to_string(),
            "节日问候",
            "祝您节日快乐，身体健康",
            "节日快乐",
        ),
        BIRTHDAY_GREETING => (
            "生日祝福",
            "祝您生日快乐，健康长寿！".to_string(),
            "生日祝福",
            "祝您生日快乐，健康长寿",
            "生日快乐",
        ),
        EVENT_INVITATION => (
            "活动邀请",
            format!("诚邀您参加{day}的活动，详情请在暖心小程序中查看。"),
            "活动邀请",
            "详情请在小程序中查看",
            "诚邀参加",
        ),
        EVENT_CHANGED => (
            "活动变更",
            format!("您参加的活动时间或地点有变动，现定于{day}举行，详情请在暖心小程序中查看。"),
            "活动变更",
            "详情请在小程序中查看",
            "有变动",
        ),
        EVENT_CANCELLED => (
            "活动取消",
            format!("原定于{day}举行的活动已取消，给您带来不便，敬请谅解。"),
            "活动取消",
            "详情请在小程序中查看",
            "已取消",
        ),
        ASSIGNMENT_DECLINED => (
            "走访安排被婉拒",
            format!("志愿者婉拒了{day}的走访安排，请在小程序中查看新的建议或另行安排。"),
            "走访安排变动",
            "请在小程序中重新安排",
            "待安排",
        ),
        WISH_ASSIGNED => (
            "心愿请您跟进",
            format!("协调员于{day}请您跟进一条家庭心愿，详情请在暖心小程序中查看。"),
            "心愿跟进",
            "详情请在小程序中查看",
            "待跟进",
        ),
        SURGE_WARNING => (
            "节日走访人手预警",
            format!(
                "{}：{day}起的春节慰问季预计需走访{}人次，志愿者可承担约{}人次，缺口{}人次。请提前招募或调配志愿者。",
                payload
                    .get("region")
                    .and_then(Value::as_str)
                    .unwrap_or("您负责的地区"),
                payload.get("required").and_then(Value::as_u64).unwrap_or(0),
                payload.get("capacity").and_then(Value::as_u64).unwrap_or(0),
                payload
                    .get("shortfall")
                    .and_then(Value::as_u64)
                    .unwrap_or(0),
            ),
            "节日人手预警",
            "志愿者人手不足，请提前安排",
            "待安排",
        ),
        _ => (
            "暖心通知",
            "您有一条新消息，请在暖心小程序中查看。".to_string(),
            "暖心通知",
            "请在小程序中查看",
            "新消息",
        ),
    };
    Message {
        title: title.into(),
        body,
        visit_id,
        heading,
        date,
        note,
        status,
    }
}

/// The data of a WeChat subscribe message: each configured key (`slot → key`) gets its
/// slot's value fitted to the key's type.
pub fn wechat_data(message: &Message, keys: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    keys.iter()
        .map(|(slot, key)| {
            let value = match slot.as_str() {
                "date" => Slot::Date(message.date),
                "title" => Slot::Text(message.heading),
                "note" => Slot::Text(message.note),
                _ => Slot::Text(message.status),
            };
            (key.clone(), fit(key, value))
        })
        .collect()
}

/// The parameters of the SMS templates (`${title}：${date}，${note}`): short, masked like
/// the WeChat values.
pub fn sms_params(message: &Message) -> Value {
    serde_json::json!({
        "title": shorten(&one_line(message.heading), 10),
        "date": message.date.format("%-m月%-d日").to_string(),
        "note": shorten(&one_line(message.note), 20),
    })
}

/// The type of a template key, from its name without the trailing digits (`thing1`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    /// ≤ 20 characters of anything printable.
    Thing,
    /// ≤ 5 Chinese characters.
    Phrase,
    /// ≤ 10 Chinese characters, or ≤ 20 letters; no digits.
    Name,
    /// A 24-hour time, may have a date before it; `~` ranges.
    Time,
    /// A date, may have a time after it.
    Date,
    /// ≤ 32 ASCII letters, digits and symbols.
    CharacterString,
}

/// The kinds of key we can fill; None for the others (amount, phone_number, enum…).
pub fn key_kind(key: &str) -> Option<KeyKind> {
    match key.trim_end_matches(|c: char| c.is_ascii_digit()) {
        "thing" => Some(KeyKind::Thing),
        "phrase" => Some(KeyKind::Phrase),
        "name" => Some(KeyKind::Name),
        "time" => Some(KeyKind::Time),
        "date" => Some(KeyKind::Date),
        "character_string" => Some(KeyKind::CharacterString),
        _ => None,
    }
}

/// Whether a slot's value can be fitted to a key of this kind: dates need a key that
/// takes a date, and text cannot go into a date or time key.
pub fn slot_fits(slot: &str, kind: KeyKind) -> bool {
    match slot {
        "date" => !matches!(kind, KeyKind::Phrase | KeyKind::Name),
        _ => !matches!(kind, KeyKind::Time | KeyKind::Date),
    }
}

/// A value before it is fitted to a key.
#[derive(Clone, Copy, Debug)]
pub enum Slot<'a> {
    Text(&'a str),
    /// A whole day.
    Date(NaiveDate),
}

/// A value WeChat accepts for `key`: shortened (with "…" where the type allows it), never
/// empty, always a string. Nothing is ever refused.
pub fn fit(key: &str, value: Slot) -> String {
    let kind = key_kind(key).unwrap_or(KeyKind::Thing);
    let text = match value {
        Slot::Date(d) => match kind {
            // A time needs a clock: the whole day.
            KeyKind::Time => return format!("{} 00:00~23:59", chinese_date(d)),
            KeyKind::CharacterString => return d.format("%Y-%m-%d").to_string(),
            KeyKind::Date | KeyKind::Thing => return chinese_date(d),
            _ => chinese_date(d),
        },
        Slot::Text(t) => t.to_string(),
    };
    let text = one_line(&text);
    let fitted = match kind {
        KeyKind::Thing | KeyKind::Date | KeyKind::Time => shorten(&text, 20),
        KeyKind::Phrase => text.chars().filter(|c| is_chinese(*c)).take(5).collect(),
        KeyKind::Name => {
            let name: String = text.chars().filter(|c| !c.is_ascii_digit()).collect();
            let max = if name.chars().any(is_chinese) { 10 } else { 20 };
            shorten(name.trim(), max)
        }
        KeyKind::CharacterString => text
            .chars()
            .filter(|c| c.is_ascii_graphic())
            .take(32)
            .collect(),
    };
    if fitted.trim().is_empty() {
        // An empty value is refused (47003): say something neutral instead.
        match kind {
            KeyKind::CharacterString => "-".into(),
            KeyKind::Name => "暖心".into(),
            _ => "请查看".into(),
        }
    } else {
        fitted
    }
}

/// A name as it may appear on a locked screen: the surname only ("王*").
pub fn masked_name(full: &str) -> String {
    match full.trim().chars().next() {
        Some(first) => format!("{first}*"),
        None => "*".into(),
    }
}

fn chinese_date(d: NaiveDate) -> String {
    d.format("%Y年%-m月%-d日").to_string()
}

/// Control characters (line breaks…) become spaces; WeChat refuses them.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_string()
}

/// At most `max` characters; a longer text keeps `max - 1` and ends with "…".
fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out = out.trim_end().to_string();
    out.push('…');
    out
}

fn is_chinese(c: char) -> bool {
    matches!(c,
        '\u{4e00}'..='\u{9fff}' | '\u{3400}'..='\u{4dbf}' | '\u{f900}'..='\u{faff}'
        | '\u{20000}'..='\u{2ebef}')
}

// ---------------------------------------------------------------------------------------
// Reminders and alerts (`notify::remind`): volunteers, families, coordinators.

type Text = (
    &'static str,
    String,
    &'static str,
    &'static str,
    &'static str,
);

/// Title, body, WeChat heading, note and status of a reminder or alert; None for the
/// other templates. `day` is the payload's date ("11月26日").
fn reminder_text(template: &str, payload: &Value, day: &str) -> Option<Text> {
    let s = |k: &str| payload.get(k).and_then(Value::as_str).unwrap_or_default();
    let n = |k: &str| payload.get(k).and_then(Value::as_i64).unwrap_or_default();
    let when = match s("when") {
        "" => day.to_string(),
        w => w.to_string(),
    };
    Some(match template {
        remind::CLAIM_CONFIRMED => (
            "认领成功",
            format!(
                "您已认领{when}的走访。前一天傍晚和出发前会再提醒您；如不能前往，请尽早在小程序中取消认领。"
            ),
            "走访认领成功",
            "出发前会再提醒您",
            "已认领",
        ),
        remind::EVENING_BEFORE => (
            "明天有走访",
            format!("提醒：您明天有一次走访（{when}），请提前安排好时间和路线。"),
            "走访提醒",
            "明天有走访，请提前安排",
            "待出发",
        ),
        remind::HOURS_BEFORE => (
            "走访就要开始了",
            format!("您负责的走访（{when}）就要开始了，请按时前往，到达后记得签到。"),
            "走访提醒",
            "走访就要开始了，请按时前往",
            "待出发",
        ),
        remind::VISIT_MOVED => (
            "走访时间有变",
            format!("您负责的走访改到了{when}，请按新的时间前往，之前的时间作废。"),
            "走访改期通知",
            "时间有调整，请按新时间前往",
            "已改期",
        ),
        remind::NEW_VISITS => {
            let nearest = payload
                .get("km")
                .and_then(Value::as_f64)
                .map(|km| format!("，最近的约{km}公里"))
                .unwrap_or_default();
            (
                "附近有新的走访",
                format!(
                    "今天新增{}次您可以认领的走访{nearest}，打开小程序看看吧。",
                    n("count")
                ),
                "新走访提醒",
                "附近有新的走访可以认领",
                "可认领",
            )
        }
        remind::VISIT_COMING => {
            let team = match s("team") {
                "" => String::new(),
                t => format!("（{t}）"),
            };
            // Sent again when a coordinator moves the visit: the new time replaces the old.
            if payload.get("moved").and_then(Value::as_bool) == Some(true) {
                (
                    "看望时间有变",
                    format!(
                        "志愿者{}{team}改在{when}上门看望您，之前说的时间不算了。如时间不方便，可以在小程序中改期。",
                        s("volunteer")
                    ),
                    "上门看望改期",
                    "志愿者改了上门时间",
                    "已改期",
                )
            } else {
                (
                    "有人来看望您",
                    format!(
                        "志愿者{}{team}将于{when}上门看望您。如时间不方便，可以在小程序中改期。",
                        s("volunteer")
                    ),
                    "上门看望提醒",
                    "志愿者将上门看望您",
                    "已安排",
                )
            }
        }
        remind::FAMILY_DAY_BEFORE => (
            "明天有人来看望您",
            format!("明天（{when}）志愿者会上门看望您。如不方便，可以在小程序中改期。"),
            "上门看望提醒",
            "明天志愿者会上门看望您",
            "明天上门",
        ),
        remind::PLEASE_CONFIRM => (
            "请确认这次走访",
            format!("志愿者已完成{when}的走访。请在小程序中确认，也可以给这次走访打个分。"),
            "走访确认",
            "请确认志愿者已来过",
            "待确认",
        ),
        remind::WISH_ANSWERED => (
            "您的心愿有回复了",
            "您在心愿墙上的心愿有了回复，请在小程序中查看。".to_string(),
            "心愿回复",
            "您的心愿有了回复",
            "已回复",
        ),
        remind::HELP_RECEIVED => (
            "求助已收到",
            "我们已收到您的求助，工作人员会尽快与您联系。情况危急请直接拨打120或110。".to_string(),
            "求助已收到",
            "工作人员会尽快与您联系",
            "已收到",
        ),
        remind::VISITS_UNCLAIMED => (
            "走访待认领",
            format!(
                "您负责的地区有{}次走访将在{}天内开始，仍缺志愿者，最早在{day}。请在工作台安排。",
                n("count"),
                n("days")
            ),
            "走访待认领",
            "有走访仍缺志愿者，请安排",
            "待安排",
        ),
        remind::VISIT_MISSED => (
            "走访未完成",
            format!("{when}的一次走访已过时间仍未完成，请在工作台查看并重新安排。"),
            "走访未完成",
            "请在工作台查看并安排",
            "未完成",
        ),
        remind::VISIT_UNCONFIRMED => (
            "走访待家庭确认",
            format!("{when}的一次走访已提交记录，家庭尚未确认，请跟进。"),
            "走访待确认",
            "家庭尚未确认，请跟进",
            "待确认",
        ),
        remind::LOW_RATING => (
            "家庭评价偏低",
            format!(
                "{when}的一次走访，家庭评了{}星，请在工作台查看。",
                n("rating")
            ),
            "走访评价提醒",
            "家庭评价偏低，请查看",
            "待查看",
        ),
        remind::RISK_SIGNS => (
            "走访发现需关注的情况",
            format!("{when}的一次走访记录了需要关注的情况，请尽快在工作台查看。"),
            "走访关注提醒",
            "走访发现需关注的情况",
            "请关注",
        ),
        remind::WISHES_UNANSWERED => (
            "心愿待回复",
            format!(
                "您负责的地区有{}条心愿超过{}天未回复，请在工作台查看。",
                n("count"),
                n("days")
            ),
            "心愿待回复",
            "有心愿尚未回复，请查看",
            "待回复",
        ),
        remind::HELP_EMERGENCY => (
            "紧急求助",
            "有家庭发出紧急求助，请立即在工作台查看并联系。".to_string(),
            "紧急求助",
            "请立即查看并联系",
            "紧急",
        ),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use miniapp_stub::ValueType;
    use serde_json::json;

    use super::*;

    /// The fake WeChat server's rules: an independent check of ours.
    fn accepted(key: &str, value: &str) -> bool {
        ValueType::of_key(key).is_some_and(|t| t.accepts(value, &[]))
    }

    const KEYS: [&str; 6] = [
        "thing1",
        "phrase2",
        "name3",
        "time4",
        "date5",
        "character_string6",
    ];

    #[test]
    fn long_values_are_shortened_with_an_ellipsis_never_refused() {
        let long = "请于本周内与家庭确认走访时间并提前告知所在村的责任干部";
        let thing = fit("thing1", Slot::Text(long));
        assert_eq!(thing.chars().count(), 20);
        assert!(thing.ends_with('…'), "{thing}");
        assert_eq!(fit("thing1", Slot::Text("走访提醒")), "走访提醒");
        assert_eq!(fit("phrase4", Slot::Text("已经取消了吗")), "已经取消了");
        assert_eq!(fit("phrase4", Slot::Text("OK 已取消")), "已取消");
        assert_eq!(fit("phrase4", Slot::Text("OK")), "请查看");
        assert_eq!(fit("thing1", Slot::Text("第一行\n第二行")), "第一行 第二行");
        assert_eq!(fit("name2", Slot::Text("志愿者王*")), "志愿者王*");
        assert_eq!(
            fit("name2", Slot::Text("欧阳志愿者服务队第二十三小组"))
                .chars()
                .count(),
            10
        );
    }

    #[test]
    fn dates_fit_date_time_and_text_keys() {
        let d = NaiveDate::from_ymd_opt(2026, 11, 26).unwrap();
        assert_eq!(fit("date2", Slot::Date(d)), "2026年11月26日");
        assert_eq!(fit("time2", Slot::Date(d)), "2026年11月26日 00:00~23:59");
        assert_eq!(fit("thing3", Slot::Date(d)), "2026年11月26日");
        assert_eq!(fit("character_string4", Slot::Date(d)), "2026-11-26");
        for key in KEYS {
            let v = fit(key, Slot::Date(d));
            assert!(accepted(key, &v), "{key} = {v:?}");
        }
    }

    #[test]
    fn every_fitted_value_obeys_the_fake_servers_rules() {
        let samples = [
            String::new(),
            " ".into(),
            "走访提醒".into(),
            "王*".into(),
            "a".repeat(40),
            "走".repeat(40),
            "志愿者王*，请于2026年11月26日上午10:00前到达".into(),
            "Tab\there\nand a very long English sentence without any Chinese at all".into(),
            "12345678901234567890123456789012345".into(),
            "😀 emoji and 汉字 mixed 123".into(),
        ];
        for key in KEYS {
            for s in &samples {
                let v = fit(key, Slot::Text(s));
                // Time and date keys only ever get dates from us; text into them is a
                // configuration error the start-up check cannot see, so only the others.
                if matches!(key_kind(key), Some(KeyKind::Time | KeyKind::Date)) {
                    continue;
                }
                assert!(accepted(key, &v), "{key} = {v:?} (from {s:?})");
            }
        }
    }

    #[test]
    fn every_template_renders_values_wechat_accepts_and_nothing_sensitive() {
        let day = NaiveDate::from_ymd_opt(2026, 1, 5).unwrap();
        let id = Uuid::now_v7();
        let keys: BTreeMap<String, String> = [
            ("title", "thing1"),
            ("date", "date2"),
            ("note", "thing3"),
            ("status", "phrase4"),
        ]
        .into_iter()
        .map(|(a, b)| (a.into(), b.into()))
        .collect();
        for template in KNOWN.iter().copied().chain(["something_new"]) {
            let m = render(
                template,
                &json!({"task_id": id, "date": "2026-11-26", "event": "death"}),
                day,
            );
            assert_eq!(m.date, NaiveDate::from_ymd_opt(2026, 11, 26).unwrap());
            // A few messages are about no particular day (a wish answered, help received).
            let dateless = [
                "something_new",
                remind::NEW_VISITS,
                remind::WISH_ANSWERED,
                remind::HELP_RECEIVED,
                remind::WISHES_UNANSWERED,
                remind::HELP_EMERGENCY,
                DIGEST,
                FESTIVAL_GREETING,
                BIRTHDAY_GREETING,
            ];
            assert!(m.body.contains("11月26日") || dateless.contains(&template));
            let data = wechat_data(&m, &keys);
            assert_eq!(data.len(), 4);
            for (key, value) in &data {
                assert!(accepted(key, value), "{template}: {key} = {value:?}");
            }
            let all = format!("{} {} {:?}", m.title, m.body, data);
            for word in ["失独", "伤残", "去世", "死亡", "病", "特扶"] {
                assert!(!all.contains(word), "{template} says {word}: {all}");
            }
            if template != "something_new" {
                assert_eq!(m.visit_id, Some(id));
            }
        }
        // No date in the payload: the day it was queued.
        assert_eq!(render(KNOWN[0], &json!({}), day).date, day);
    }

    #[test]
    fn on_a_sad_day_every_message_speaks_gently() {
        let day = NaiveDate::from_ymd_opt(2026, 4, 5).unwrap();
        for template in KNOWN.iter().copied().chain(["something_new"]) {
            let usual = render(template, &json!({}), day);
            let gentle = render_with(template, &json!({}), day, Tone::Gentle);
            assert_eq!(gentle.heading, "暖心关怀");
            assert!(!gentle.body.contains('！'), "{template}: {}", gentle.body);
            assert_eq!(gentle.date, usual.date);
        }
        let m = render_with("something_new", &json!({}), day, Tone::Gentle);
        assert_eq!(m.title, "暖心关怀");
    }

    #[test]
    fn sms_parameters_are_short_and_masked() {
        let day = NaiveDate::from_ymd_opt(2026, 11, 26).unwrap();
        for template in KNOWN {
            let p = sms_params(&render(template, &json!({}), day));
            assert!(p["title"].as_str().unwrap().chars().count() <= 10, "{p}");
            assert!(p["note"].as_str().unwrap().chars().count() <= 20, "{p}");
            assert_eq!(p["date"], "11月26日");
        }
    }

    #[test]
    fn names_show_the_surname_only() {
        assert_eq!(masked_name("王小明"), "王*");
        assert_eq!(masked_name(" 欧阳娜娜"), "欧*");
        assert_eq!(masked_name(""), "*");
        assert!(accepted(
            "name1",
            &fit("name1", Slot::Text(&masked_name("王小明")))
        ));
    }

    #[test]
    fn reminders_say_who_and_when_and_nothing_sensitive() {
        let day = NaiveDate::from_ymd_opt(2026, 11, 20).unwrap();
        let coming = render(
            remind::VISIT_COMING,
            &json!({"task_id": Uuid::now_v7(), "date": "2026-11-26", "when": "11月26日下午",
                    "volunteer": "王*", "team": "桃源镇暖心服务队"}),
            day,
        );
        assert_eq!(coming.title, "有人来看望您");
        assert!(
            coming
                .body
                .starts_with("志愿者王*（桃源镇暖心服务队）将于11月26日下午上门"),
            "{}",
            coming.body
        );
        let no_team = render(
            remind::VISIT_COMING,
            &json!({"date": "2026-11-26", "volunteer": "王*", "team": ""}),
            day,
        );
        assert!(
            no_team.body.starts_with("志愿者王*将于11月26日上门"),
            "{}",
            no_team.body
        );
        let digest = render(remind::NEW_VISITS, &json!({"count": 3, "km": 1.5}), day);
        assert!(digest.body.contains("3次") && digest.body.contains("1.5公里"));
        let low = render(
            remind::LOW_RATING,
            &json!({"date": "2026-11-26", "rating": 1}),
            day,
        );
        assert!(low.body.contains("1星"));
        let unclaimed = render(
            remind::VISITS_UNCLAIMED,
            &json!({"date": "2026-11-22", "count": 4, "days": 3}),
            day,
        );
        assert!(
            unclaimed.body.contains("4次走访将在3天内开始") && unclaimed.body.contains("11月22日")
        );
        for t in remind::TEMPLATES {
            assert!(KNOWN.contains(&t), "{t} is not in KNOWN");
            let m = render(t, &json!({"date": "2026-11-26"}), day);
            assert_ne!(m.title, "暖心通知", "{t} has no text");
        }
    }
}
