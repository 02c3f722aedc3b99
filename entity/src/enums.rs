//! Domain enums shared by the database, the API and the scheduler. Stored as short English
//! codes; the Chinese label is what people see in registers and messages.

use poem_openapi::Enum;
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

macro_rules! domain_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $code:literal / $label:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Enum, Serialize, Deserialize)]
        #[sea_orm(rs_type = "String", db_type = "Text")]
        #[oai(rename_all = "snake_case")]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $(#[sea_orm(string_value = $code)] $variant,)+
        }

        impl $name {
            pub fn code(self) -> &'static str {
                match self { $(Self::$variant => $code,)+ }
            }
            /// The Chinese name used in registers and on screens.
            pub fn label(self) -> &'static str {
                match self { $(Self::$variant => $label,)+ }
            }
            /// Accepts the code or the Chinese label (registers are kept in Chinese).
            pub fn parse(s: &str) -> Option<Self> {
                let s = s.trim();
                $(if s == $code || s == $label { return Some(Self::$variant); })+
                None
            }
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];
        }
    };
}

domain_enum!(
    /// 市/县/乡/村
    RegionLevel {
        City = "city" / "市",
        County = "county" / "县",
        Township = "township" / "乡",
        Village = "village" / "村",
    }
);

impl RegionLevel {
    /// The level a child region of this one must have.
    pub fn child(self) -> Option<Self> {
        match self {
            Self::City => Some(Self::County),
            Self::County => Some(Self::Township),
            Self::Township => Some(Self::Village),
            Self::Village => None,
        }
    }
}

domain_enum!(Role {
    Admin = "admin" / "管理员",
    Coordinator = "coordinator" / "协会工作者",
    Cadre = "cadre" / "责任干部",
    Volunteer = "volunteer" / "志愿者",
    Family = "family" / "家庭成员",
});

domain_enum!(UserStatus {
    Pending = "pending" / "待审核",
    Active = "active" / "正常",
    Disabled = "disabled" / "停用",
});

domain_enum!(VolunteerStatus {
    Pending = "pending" / "待审核",
    Approved = "approved" / "已通过",
    Rejected = "rejected" / "未通过",
    Suspended = "suspended" / "暂停",
});

domain_enum!(
    /// The categories of DOMAIN.md.
    FamilyCategory {
        Bereaved = "bereaved" / "失独",
        DisabledChild = "disabled_child" / "伤残",
        SpecialSupport = "special_support" / "特扶",
        DaughtersOnly = "daughters_only" / "二女户",
        Hardship = "hardship" / "计生困难",
        EmptyNest = "empty_nest" / "空巢老人",
        LeftBehindChild = "left_behind_child" / "留守儿童",
    }
);

domain_enum!(FamilyStatus {
    Active = "active" / "在册",
    Paused = "paused" / "暂停",
    Closed = "closed" / "销册",
});

domain_enum!(MemberRelation {
    Father = "father" / "父亲",
    Mother = "mother" / "母亲",
    Child = "child" / "子女",
    Spouse = "spouse" / "配偶",
    Grandchild = "grandchild" / "孙辈",
    Other = "other" / "其他",
});

domain_enum!(
    /// The calendar a birthday is kept by.
    BirthCalendar {
        Solar = "solar" / "公历",
        Lunar = "lunar" / "农历",
    }
);

domain_enum!(
    /// Volunteer skills that visits may require.
    Skill {
        Counselling = "counselling" / "心理咨询",
        Health = "health" / "健康监测",
        Legal = "legal" / "法律援助",
        Companionship = "companionship" / "陪同聊天",
        Care = "care" / "生活照料",
    }
);

/// A list of strings kept as JSON (skills, services, risk signs).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, FromJsonQueryResult)]
pub struct StringList(pub Vec<String>);
