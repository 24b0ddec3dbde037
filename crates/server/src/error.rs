//! Errors of the HTTPS API as Kubernetes `Status` objects, and THE table that maps store
//! errors to HTTP codes.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use hanode_kv::KvError;

/// An API error: HTTP code, Kubernetes reason, message.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub code: StatusCode,
    /// Kubernetes `reason` (`NotFound`, `Forbidden`, ...).
    pub reason: &'static str,
    /// What went wrong and what to do.
    pub message: String,
}

impl ApiError {
    /// 400.
    pub fn bad_request(message: String) -> Self {
        ApiError {
            code: StatusCode::BAD_REQUEST,
            reason: "BadRequest",
            message,
        }
    }

    /// 401.
    pub fn unauthorized(message: &str) -> Self {
        ApiError {
            code: StatusCode::UNAUTHORIZED,
            reason: "Unauthorized",
            message: message.into(),
        }
    }

    /// 403.
    pub fn forbidden(message: String) -> Self {
        ApiError {
            code: StatusCode::FORBIDDEN,
            reason: "Forbidden",
            message,
        }
    }

    /// 404.
    pub fn not_found(message: String) -> Self {
        ApiError {
            code: StatusCode::NOT_FOUND,
            reason: "NotFound",
            message,
        }
    }

    /// 503.
    pub fn unavailable(message: &str) -> Self {
        ApiError {
            code: StatusCode::SERVICE_UNAVAILABLE,
            reason: "ServiceUnavailable",
            message: message.into(),
        }
    }

    /// 500.
    pub fn internal(message: String) -> Self {
        ApiError {
            code: StatusCode::INTERNAL_SERVER_ERROR,
            reason: "InternalError",
            message,
        }
    }
}

impl From<KvError> for ApiError {
    fn from(error: KvError) -> Self {
        let message = error.to_string();
        let (code, reason) = match &error {
            KvError::NoLeader | KvError::Timeout | KvError::Stopped | KvError::Unhealthy => {
                (StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable")
            }
            KvError::MemberNotFound { .. }
            | KvError::KeyNotFound
            | KvError::LeaseNotFound { .. } => (StatusCode::NOT_FOUND, "NotFound"),
            KvError::MembershipRefused(_)
            | KvError::LearnerNotReady
            | KvError::MemberNotLearner
            | KvError::PeerUrlExists
            | KvError::LeaseExists { .. } => (StatusCode::CONFLICT, "Conflict"),
            KvError::Compacted { .. } => (StatusCode::GONE, "Expired"),
            KvError::NoSpace => (StatusCode::INSUFFICIENT_STORAGE, "InternalError"),
            KvError::RequestTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "RequestEntityTooLarge"),
            KvError::Unsupported(_) => (StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed"),
            KvError::FutureRevision
            | KvError::EmptyKey
            | KvError::DuplicateKey
            | KvError::TooManyOps
            | KvError::LeaseTtlTooLarge
            | KvError::InvalidArgument(_) => (StatusCode::BAD_REQUEST, "BadRequest"),
            KvError::Storage(_) => (StatusCode::INTERNAL_SERVER_ERROR, "InternalError"),
        };
        ApiError {
            code,
            reason,
            message,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code.as_u16(),
        });
        (self.code, Json(body)).into_response()
    }
}
