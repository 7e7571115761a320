//! The one place where failures become HTTP answers: status, JSON body, retry headers.
//!
//! Bad data is always 4xx (a sender retries 5xx forever); overload is 429 with `Retry-After`
//! so the sender backs off and retries; internal details are not leaked.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    BadRequest(String),
    Unauthorized,
    NotFound(String),
    /// Refused on purpose (a forged, expired or used callback token).
    Forbidden(String),
    /// The request conflicts with the resource's state (plan already decided, expired).
    Conflict(String),
    PayloadTooLarge(String),
    RequestTimeout(String),
    UnsupportedMediaType(String),
    /// Not accepted now, retry later (429 with `Retry-After`): what is full, in words.
    Overloaded {
        retry_after_seconds: u32,
        reason: String,
    },
    Unavailable(String),
    /// A config reload refused its files (500, as Prometheus answers `/-/reload`).
    ReloadFailed(String),
}

#[derive(Serialize)]
struct Body<'a> {
    error: &'a str,
    status: u16,
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Overloaded { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::ReloadFailed(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn message(&self) -> String {
        match self {
            Self::BadRequest(m)
            | Self::NotFound(m)
            | Self::Forbidden(m)
            | Self::Conflict(m)
            | Self::PayloadTooLarge(m)
            | Self::RequestTimeout(m)
            | Self::UnsupportedMediaType(m)
            | Self::Unavailable(m)
            | Self::ReloadFailed(m) => m.clone(),
            Self::Unauthorized => "authentication required".into(),
            Self::Overloaded {
                retry_after_seconds,
                reason,
            } => {
                format!("overloaded: {reason}; retry after {retry_after_seconds}s")
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = self.message();
        let mut resp = (
            status,
            axum::Json(Body {
                error: &message,
                status: status.as_u16(),
            }),
        )
            .into_response();
        match &self {
            Self::Overloaded {
                retry_after_seconds,
                ..
            } => {
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_seconds));
            }
            Self::Unauthorized => {
                resp.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"sre-agent\""),
                );
            }
            _ => {}
        }
        resp
    }
}
