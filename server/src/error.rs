//! One error shape for every failure:
//! `{"code": "validation_failed", "message": "...", "field": "phone"}`.
//! Codes are stable English identifiers for programs; messages are for people.

use poem::{IntoResponse, Response, error::ResponseError, http::StatusCode};
use poem_openapi::{
    ApiResponse, Object,
    registry::{MetaMediaType, MetaResponse, MetaResponses, Registry},
    types::Type,
};
use sea_orm::{DbErr, SqlErr};
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{message}")]
    Validation { field: String, message: String },
    #[error("请先登录")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}不存在")]
    NotFound(&'static str),
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// A step the thing's current state does not allow (a visit reported twice): 409, with
    /// the current state in the body.
    #[error("{message}")]
    State {
        code: &'static str,
        message: String,
        state: String,
    },
    #[error("{0}")]
    TooManyRequests(String),
    #[error("{0}")]
    Upstream(String),
    #[error("服务暂不可用")]
    Internal(#[from] anyhow::Error),
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Validation {
            field: field.into(),
            message: message.into(),
        }
    }

    pub fn forbidden() -> Self {
        Self::Forbidden("无权访问".into())
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::Conflict {
            code,
            message: message.into(),
        }
    }

    /// 409 for a step `state` does not allow; the body carries the state.
    pub fn state(code: &'static str, state: impl Into<String>, message: impl Into<String>) -> Self {
        Self::State {
            code,
            message: message.into(),
            state: state.into(),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::Validation { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict { .. } | Self::State { .. } => StatusCode::CONFLICT,
            Self::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::Upstream(_) => StatusCode::BAD_GATEWAY,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::Validation { .. } => "validation_failed",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden(_) => "forbidden",
            Self::NotFound(_) => "not_found",
            Self::Conflict { code, .. } | Self::State { code, .. } => code,
            Self::TooManyRequests(_) => "too_many_requests",
            Self::Upstream(_) => "upstream_unavailable",
            Self::Internal(_) => "internal",
        }
    }
}

/// The body of every error response.
#[derive(Serialize, Object)]
pub struct ErrorBody {
    /// Stable machine code, e.g. `validation_failed`, `not_found`, `full`.
    pub code: String,
    /// For people; may be shown as is.
    pub message: String,
    /// The offending field of a request, for validation errors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The current state, when the request was refused because of it (409).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
}

pub fn error_response(
    status: StatusCode,
    code: &str,
    message: String,
    field: Option<&str>,
) -> Response {
    body_response(
        status,
        &ErrorBody {
            code: code.into(),
            message,
            field: field.map(Into::into),
            state: None,
        },
    )
}

fn body_response(status: StatusCode, body: &ErrorBody) -> Response {
    let body = serde_json::to_string(body).unwrap_or_default();
    Response::builder()
        .status(status)
        .content_type("application/json; charset=utf-8")
        .body(body)
}

impl poem::error::ResponseError for ApiError {
    fn status(&self) -> StatusCode {
        ApiError::status(self)
    }

    fn as_response(&self) -> Response {
        if let Self::Internal(err) = self {
            // The cause is for the log, never for the client.
            tracing::error!(error = ?err, "internal error");
        }
        let field = match self {
            Self::Validation { field, .. } => Some(field.clone()),
            _ => None,
        };
        let state = match self {
            Self::State { state, .. } => Some(state.clone()),
            _ => None,
        };
        body_response(
            self.status(),
            &ErrorBody {
                code: self.code().into(),
                message: self.to_string(),
                field,
                state,
            },
        )
    }
}

impl From<DbErr> for ApiError {
    fn from(err: DbErr) -> Self {
        match err.sql_err() {
            Some(SqlErr::UniqueConstraintViolation(_)) => {
                Self::conflict("already_exists", "记录已存在")
            }
            Some(SqlErr::ForeignKeyConstraintViolation(_)) => {
                Self::conflict("in_use", "记录仍被引用，无法完成操作")
            }
            _ => Self::Internal(err.into()),
        }
    }
}

/// Turns every error the framework raises (unknown route, bad parameter, body too large,
/// wrong content type) into the same JSON shape as ours.
pub async fn to_json_error(err: poem::Error) -> Response {
    if let Some(api) = err.downcast_ref::<ApiError>() {
        return api.as_response();
    }
    let status = err.status();
    if let Some(e) = err.downcast_ref::<poem_openapi::error::ParseParamError>() {
        return error_response(
            StatusCode::BAD_REQUEST,
            "invalid_parameter",
            format!("参数 {} 无效: {}", e.name, e.reason),
            Some(e.name),
        );
    }
    if let Some(e) = err.downcast_ref::<poem_openapi::error::ParsePathError>() {
        return error_response(
            StatusCode::BAD_REQUEST,
            "invalid_parameter",
            format!("路径参数 {} 无效: {}", e.name, e.reason),
            Some(e.name),
        );
    }
    let code = match status {
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::FORBIDDEN => "forbidden",
        s if s.is_client_error() => "bad_request",
        _ => "internal",
    };
    if status.is_server_error() {
        tracing::error!(error = %err, "unhandled error");
        return error_response(status, code, "服务暂不可用".into(), None);
    }
    error_response(status, code, err.to_string(), None)
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        poem::error::ResponseError::as_response(&self)
    }
}

impl ApiResponse for ApiError {
    fn meta() -> MetaResponses {
        let response = |status_range: &str, description| MetaResponse {
            description,
            status: None,
            status_range: Some(status_range.into()),
            content: vec![MetaMediaType {
                content_type: "application/json; charset=utf-8",
                schema: ErrorBody::schema_ref(),
            }],
            headers: vec![],
        };
        MetaResponses {
            responses: vec![
                response("4XX", "请求有误: 见 code 与 field"),
                response("5XX", "服务端错误"),
            ],
        }
    }

    fn register(registry: &mut Registry) {
        ErrorBody::register(registry);
    }
}
