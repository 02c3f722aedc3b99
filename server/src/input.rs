//! Request bodies and their validation.
//!
//! `Input<T>` documents `T`'s schema in OpenAPI like `Json<T>`, but parses with serde so
//! that a wrong type, a missing field or an unknown enum value is reported with the path of
//! the offending field, and then runs `T::validate` for rules the types cannot express.

use poem::{FromRequest, Request, RequestBody};
use poem_openapi::{
    impl_apirequest_for_payload,
    payload::{ParsePayload, Payload},
    registry::{MetaSchemaRef, Registry},
    types::Type,
};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

pub trait Validate {
    fn validate(&self) -> Result<(), ApiError> {
        Ok(())
    }
}

pub struct Input<T>(pub T);

impl<T: Type> Payload for Input<T> {
    const CONTENT_TYPE: &'static str = "application/json; charset=utf-8";

    fn check_content_type(content_type: &str) -> bool {
        matches!(content_type.parse::<mime::Mime>(), Ok(m) if m.type_() == "application"
            && (m.subtype() == "json" || m.suffix().is_some_and(|s| s == "json")))
    }

    fn schema_ref() -> MetaSchemaRef {
        T::schema_ref()
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}

impl<T: Type + DeserializeOwned + Validate + Send> ParsePayload for Input<T> {
    const IS_REQUIRED: bool = true;

    async fn from_request(request: &Request, body: &mut RequestBody) -> poem::Result<Self> {
        let data = Vec::<u8>::from_request(request, body).await?;
        Ok(Self(parse_json(&data)?))
    }
}

impl_apirequest_for_payload!(Input<T>, T: Type + DeserializeOwned + Validate + Send);

/// Parses a JSON body, naming the offending field on failure, then validates it.
pub fn parse_json<T: DeserializeOwned + Validate>(data: &[u8]) -> Result<T, ApiError> {
    if data.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::field("body", "请求体不能为空"));
    }
    let de = &mut serde_json::Deserializer::from_slice(data);
    let value: T = serde_path_to_error::deserialize(de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            return ApiError::field("body", format!("JSON 格式错误: {inner}"));
        }
        let field = if path == "." {
            // serde reports a missing field at the parent; its name is in the message.
            missing_field_name(&inner.to_string()).unwrap_or_else(|| "body".into())
        } else {
            path
        };
        ApiError::field(field, format!("字段无效: {inner}"))
    })?;
    value.validate()?;
    Ok(value)
}

fn missing_field_name(msg: &str) -> Option<String> {
    let rest = msg.strip_prefix("missing field `")?;
    Some(rest[..rest.find('`')?].to_string())
}

// Small checks used by many `validate` implementations. Each names its field.

pub fn text(field: &str, value: &str, min: usize, max: usize) -> Result<(), ApiError> {
    let n = value.trim().chars().count();
    if n < min {
        return Err(ApiError::field(field, format!("{field} 不能为空")));
    }
    if n > max {
        return Err(ApiError::field(
            field,
            format!("{field} 不能超过 {max} 个字"),
        ));
    }
    Ok(())
}

pub fn opt_text(field: &str, value: Option<&str>, max: usize) -> Result<(), ApiError> {
    value.map_or(Ok(()), |v| text(field, v, 0, max))
}

/// A mainland mobile number (11 digits starting with 1) or a landline with area code.
pub fn phone(field: &str, value: &str) -> Result<(), ApiError> {
    let v = value.trim();
    let mobile = v.len() == 11 && v.starts_with('1') && v.bytes().all(|b| b.is_ascii_digit());
    let landline = (10..=13).contains(&v.len())
        && v.starts_with('0')
        && v.bytes().all(|b| b.is_ascii_digit() || b == b'-');
    if mobile || landline {
        Ok(())
    } else {
        Err(ApiError::field(field, "电话号码格式不正确"))
    }
}

pub fn opt_phone(field: &str, value: Option<&str>) -> Result<(), ApiError> {
    value.map_or(Ok(()), |v| phone(field, v))
}

pub fn range<T: PartialOrd + std::fmt::Display>(
    field: &str,
    value: T,
    min: T,
    max: T,
) -> Result<(), ApiError> {
    if value < min || value > max {
        return Err(ApiError::field(
            field,
            format!("{field} 应在 {min} 到 {max} 之间"),
        ));
    }
    Ok(())
}

/// Latitude and longitude come together or not at all, and must be on Earth.
pub fn location(field: &str, lat: Option<f64>, lng: Option<f64>) -> Result<(), ApiError> {
    match (lat, lng) {
        (None, None) => Ok(()),
        (Some(lat), Some(lng)) => {
            range(&format!("{field}.lat"), lat, -90.0, 90.0)?;
            range(&format!("{field}.lng"), lng, -180.0, 180.0)
        }
        _ => Err(ApiError::field(field, "经纬度须同时提供")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    struct Person {
        name: String,
        #[allow(dead_code)]
        age: u8,
        #[allow(dead_code)]
        address: Option<Address>,
    }
    #[derive(Deserialize, Debug)]
    struct Address {
        #[allow(dead_code)]
        lat: f64,
    }
    impl Validate for Person {
        fn validate(&self) -> Result<(), ApiError> {
            text("name", &self.name, 1, 4)
        }
    }

    fn field_of(json: &str) -> String {
        match parse_json::<Person>(json.as_bytes()) {
            Err(ApiError::Validation { field, .. }) => field,
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn names_the_offending_field() {
        assert_eq!(field_of(r#"{"name":"王芳","age":"x"}"#), "age");
        assert_eq!(field_of(r#"{"name":"王芳","age":300}"#), "age");
        assert_eq!(field_of(r#"{"name":"王芳"}"#), "age");
        assert_eq!(
            field_of(r#"{"name":"王芳","age":3,"address":{"lat":"n"}}"#),
            "address.lat"
        );
        assert_eq!(field_of(r#"{"name":"王芳","age":3,"extra":1}"#), "extra");
        assert_eq!(field_of(r#"{"name":"王芳王芳王","age":3}"#), "name");
        assert_eq!(field_of(r#"{"name":"#), "body");
        assert_eq!(field_of("  "), "body");
    }

    #[test]
    fn accepts_good_input() {
        let p: Person = parse_json(r#"{"name":"王芳","age":61}"#.as_bytes()).unwrap();
        assert_eq!(p.name, "王芳");
    }

    #[test]
    fn phones() {
        assert!(phone("p", "13800138000").is_ok());
        assert!(phone("p", "0551-6512345").is_ok());
        assert!(phone("p", "1380013800").is_err());
        assert!(phone("p", "abc").is_err());
    }

    #[test]
    fn locations_come_in_pairs() {
        assert!(location("home", Some(31.8), Some(117.2)).is_ok());
        assert!(location("home", Some(31.8), None).is_err());
        assert!(location("home", Some(91.0), Some(0.0)).is_err());
    }
}
