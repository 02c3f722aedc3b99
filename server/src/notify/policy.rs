//! The dispatcher's decisions, as plain functions: what a WeChat failure means, when to
//! try again, and whether a message is still true when its time comes.

use chrono::Duration;
use entity::visit_task::status;
use scheduler::events::TEMPLATE_VISIT_CANCELLED;

use crate::{
    api::{
        reports::{TEMPLATE_VISIT_DECLINED, TEMPLATE_VISIT_MOVE_REQUESTED},
        visits::TEMPLATE_CLAIM_RELEASED,
    },
    wechat::WeChatError,
};

use super::remind;

/// What a failed send means for the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// Busy, rate-limited, a concurrent send, a timeout, a 5xx: try again later.
    Transient,
    /// 43101: the person has no grant left for this template (used up or revoked).
    NoGrant,
    /// WeChat will never take this message as it is: our bug (a value breaking its
    /// rule, a wrong template id or page) or an openid that is not ours.
    Permanent,
}

pub fn classify(err: &WeChatError) -> Failure {
    match err {
        WeChatError::Transport(_) => Failure::Transient,
        WeChatError::Api { errcode, .. } => match errcode {
            43101 => Failure::NoGrant,
            // 47003 bad value, 40037 bad template id, 41030 bad page, 40003 bad openid,
            // 47001 malformed body, 43002/44002 our request shape.
            47003 | 40037 | 41030 | 40003 | 47001 | 43002 | 44002 => Failure::Permanent,
            // -1 busy, 45009 daily quota, 45011 minute quota, 43108 concurrent sends,
            // 40001/42001 a token still refused after one refresh, and anything new:
            // retrying costs little, and the attempts are bounded.
            _ => Failure::Transient,
        },
    }
}

/// How long to wait before attempt `attempt + 1`, after `attempt` failed tries (from 1):
/// `base`·2^(attempt−1), at most `max`, then scaled by `jitter` (0..1) into its upper half
/// so that messages failed together do not come back together.
pub fn retry_delay(attempt: i32, base_secs: i64, max_secs: i64, jitter: f64) -> Duration {
    let exp = (attempt.max(1) - 1).min(30) as u32;
    let full = base_secs
        .max(1)
        .saturating_mul(1i64 << exp)
        .min(max_secs.max(1));
    let ms = (full as f64 * 1000.0 * (0.5 + 0.5 * jitter.clamp(0.0, 1.0))) as i64;
    Duration::milliseconds(ms.max(1000))
}

/// A visit as it is now, seen from the message's recipient.
#[derive(Clone, Debug, PartialEq)]
pub struct VisitNow<'a> {
    pub status: &'a str,
    /// The recipient holds it (an active claim, or the cadre it is assigned to).
    pub recipient_holds: bool,
    /// The visit is no longer at the time the message was queued for.
    pub moved: bool,
}

/// Why a message about a visit is no longer worth sending, if it is not. `visit` is None
/// when the message names no visit or the visit is gone.
pub fn stale_because(
    template: &str,
    names_visit: bool,
    visit: Option<&VisitNow>,
) -> Option<String> {
    let visit = match (names_visit, visit) {
        (false, _) => return None,
        (true, None) => return Some("the visit no longer exists".into()),
        (true, Some(v)) => v,
    };
    match template {
        // The news is the cancellation itself: still true.
        TEMPLATE_VISIT_CANCELLED => None,
        TEMPLATE_CLAIM_RELEASED if visit.recipient_holds => {
            Some("the volunteer holds the visit again".into())
        }
        TEMPLATE_VISIT_DECLINED | TEMPLATE_VISIT_MOVE_REQUESTED => {
            if [
                status::CANCELLED,
                status::MISSED,
                status::REPORTED,
                status::CONFIRMED,
            ]
            .contains(&visit.status)
            {
                Some(format!("the visit is {} now", visit.status))
            } else if !visit.recipient_holds {
                Some("the recipient no longer holds the visit".into())
            } else {
                None
            }
        }
        t if remind::TEMPLATES.contains(&t) => reminder_stale_because(t, visit),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------
// Reminders and alerts (`notify::remind`).

/// Why a reminder or alert about a visit is no longer true: a holder's confirmation and
/// reminders once they no longer hold it or it is no longer ahead (done, cancelled,
/// missed); the family's "who is coming" and day-before once it is no longer ahead; "please
/// confirm" and the coordinators' "unconfirmed" once it is confirmed (or otherwise closed).
pub fn reminder_stale_because(template: &str, visit: &VisitNow) -> Option<String> {
    let ahead = [status::OPEN, status::CLAIMED].contains(&visit.status);
    let now_is = || Some(format!("the visit is {} now", visit.status));
    let moved = || Some("the visit was moved: its messages for the new time replace it".into());
    if remind::HOLDER_REMINDERS.contains(&template) {
        if !visit.recipient_holds {
            return Some("the recipient no longer holds the visit".into());
        }
        if !ahead {
            return now_is();
        }
        if visit.moved {
            return moved();
        }
    } else if remind::FAMILY_REMINDERS.contains(&template) {
        if !ahead {
            return now_is();
        }
        if visit.moved {
            return moved();
        }
    } else if [remind::PLEASE_CONFIRM, remind::VISIT_UNCONFIRMED].contains(&template)
        && visit.status != status::REPORTED
    {
        return now_is();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(errcode: i64) -> WeChatError {
        WeChatError::Api {
            errcode,
            errmsg: String::new(),
        }
    }

    #[test]
    fn wechat_answers_are_retried_fatal_or_a_missing_grant() {
        for code in [-1, 45009, 45011, 43108, 40001, 42001, 99999] {
            assert_eq!(classify(&api(code)), Failure::Transient, "{code}");
        }
        for code in [47003, 40037, 41030, 40003] {
            assert_eq!(classify(&api(code)), Failure::Permanent, "{code}");
        }
        assert_eq!(classify(&api(43101)), Failure::NoGrant);
        assert_eq!(
            classify(&WeChatError::Transport("timed out".into())),
            Failure::Transient
        );
    }

    #[test]
    fn delays_double_up_to_the_cap_and_jitter_stays_in_the_upper_half() {
        let secs = |attempt, jitter| retry_delay(attempt, 30, 3600, jitter).num_seconds();
        assert_eq!(secs(1, 1.0), 30);
        assert_eq!(secs(2, 1.0), 60);
        assert_eq!(secs(3, 1.0), 120);
        assert_eq!(secs(1, 0.0), 15);
        assert_eq!(secs(20, 1.0), 3600);
        assert_eq!(secs(i32::MAX, 1.0), 3600);
        assert_eq!(secs(0, 1.0), 30);
        for j in [0.0, 0.3, 0.99] {
            let d = secs(4, j);
            assert!((120..=240).contains(&d), "{d}");
        }
        // Never a busy loop, whatever the settings.
        assert!(retry_delay(1, 0, 0, 0.0) >= Duration::seconds(1));
    }

    #[test]
    fn a_message_about_a_visit_is_checked_against_the_visit_now() {
        let held = |s| VisitNow {
            status: s,
            recipient_holds: true,
            moved: false,
        };
        let let_go = |s| VisitNow {
            status: s,
            recipient_holds: false,
            moved: false,
        };
        let stale = |t: &str, v: &VisitNow| stale_because(t, true, Some(v));

        assert_eq!(stale(TEMPLATE_VISIT_CANCELLED, &let_go("cancelled")), None);
        assert_eq!(stale(TEMPLATE_CLAIM_RELEASED, &let_go("open")), None);
        assert!(stale(TEMPLATE_CLAIM_RELEASED, &held("claimed")).is_some());
        for t in [TEMPLATE_VISIT_DECLINED, TEMPLATE_VISIT_MOVE_REQUESTED] {
            assert_eq!(stale(t, &held("claimed")), None);
            assert_eq!(stale(t, &held("open")), None);
            for s in ["cancelled", "missed", "reported", "confirmed"] {
                let why = stale(t, &held(s)).unwrap();
                assert!(why.contains(s), "{why}");
            }
            assert!(stale(t, &let_go("claimed")).is_some());
        }
        assert!(stale_because(TEMPLATE_VISIT_CANCELLED, true, None).is_some());
        assert_eq!(stale_because("something_new", false, None), None);
    }

    #[test]
    fn reminders_are_checked_against_the_visit_and_who_holds_it() {
        let v = |status, holds| VisitNow {
            status,
            recipient_holds: holds,
            moved: false,
        };
        let stale = |t: &str, v: &VisitNow| stale_because(t, true, Some(v));
        for t in remind::HOLDER_REMINDERS {
            assert_eq!(stale(t, &v("claimed", true)), None);
            assert_eq!(stale(t, &v("open", true)), None);
            assert!(
                stale(t, &v("claimed", false))
                    .unwrap()
                    .contains("no longer holds")
            );
            for s in ["in_progress", "reported", "cancelled", "missed"] {
                assert!(stale(t, &v(s, true)).unwrap().contains(s));
            }
        }
        for t in remind::FAMILY_REMINDERS {
            assert_eq!(stale(t, &v("claimed", false)), None);
            assert!(stale(t, &v("cancelled", false)).is_some());
        }
        // Queued for a time the visit is no longer at.
        let moved = VisitNow {
            moved: true,
            ..v("claimed", true)
        };
        for t in remind::HOLDER_REMINDERS
            .iter()
            .chain(&remind::FAMILY_REMINDERS)
        {
            assert!(stale(t, &moved).unwrap().contains("moved"), "{t}");
        }
        assert_eq!(stale(remind::VISIT_MISSED, &moved), None);
        assert_eq!(stale(remind::PLEASE_CONFIRM, &v("reported", false)), None);
        assert!(stale(remind::PLEASE_CONFIRM, &v("confirmed", false)).is_some());
        assert!(stale(remind::VISIT_UNCONFIRMED, &v("confirmed", false)).is_some());
        assert_eq!(stale(remind::VISIT_MISSED, &v("missed", false)), None);
        assert_eq!(stale(remind::RISK_SIGNS, &v("confirmed", false)), None);
    }
}
