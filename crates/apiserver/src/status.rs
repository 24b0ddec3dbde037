//! Kubernetes `Status` errors, and THE table that maps store errors to HTTP status codes and
//! reasons. kubectl prints `.message` and matches on `reason`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use hanode_kv::KvError;

/// One field error of a 422 Invalid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cause {
    /// Machine reason (`FieldValueRequired`, `FieldValueInvalid`, ...).
    pub reason: &'static str,
    /// Human message (`Required value`).
    pub message: String,
    /// JSON path of the field (`spec.containers[0].image`).
    pub field: String,
}

/// An API error: HTTP code, `reason`, message and optional details.
#[derive(Clone, Debug)]
pub struct ApiError {
    /// HTTP status code.
    pub code: StatusCode,
    /// Kubernetes reason.
    pub reason: &'static str,
    /// What went wrong and, where it helps, what to do.
    pub message: String,
    /// `details` of the Status.
    pub details: Option<Value>,
}

impl ApiError {
    fn new(code: StatusCode, reason: &'static str, message: String) -> ApiError {
        ApiError {
            code,
            reason,
            message,
            details: None,
        }
    }

    fn with_details(mut self, details: Value) -> ApiError {
        self.details = Some(details);
        self
    }

    /// 400.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "BadRequest", message.into())
    }

    /// 401.
    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "Unauthorized", message.into())
    }

    /// 403.
    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "Forbidden", message.into())
    }

    /// 404 for an object: `pods "p" not found`.
    pub fn not_found(resource: &str, group: &str, name: &str) -> ApiError {
        let qualified = qualified(resource, group);
        ApiError::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("{qualified} \"{name}\" not found"),
        )
        .with_details(json!({"name": name, "group": group, "kind": resource}))
    }

    /// 404 with a message of the caller's.
    pub fn not_found_message(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "NotFound", message.into())
    }

    /// 404 for a path no handler serves.
    pub fn no_route(path: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("the server could not find the requested resource ({path})"),
        )
    }

    /// 405.
    pub fn method_not_allowed(message: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            message.into(),
        )
    }

    /// 409 AlreadyExists.
    pub fn already_exists(resource: &str, group: &str, name: &str) -> ApiError {
        let qualified = qualified(resource, group);
        ApiError::new(
            StatusCode::CONFLICT,
            "AlreadyExists",
            format!("{qualified} \"{name}\" already exists"),
        )
        .with_details(json!({"name": name, "group": group, "kind": resource}))
    }

    /// 409 Conflict on a stale resourceVersion.
    pub fn conflict(resource: &str, group: &str, name: &str) -> ApiError {
        let qualified = qualified(resource, group);
        ApiError::new(
            StatusCode::CONFLICT,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {qualified} \"{name}\": the object has been modified; \
                 please apply your changes to the latest version and try again"
            ),
        )
        .with_details(json!({"name": name, "group": group, "kind": resource}))
    }

    /// 410 Expired.
    pub fn expired(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::GONE, "Expired", message.into())
    }

    /// 413.
    pub fn too_large(limit_bytes: usize) -> ApiError {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLarge",
            format!(
                "Request entity too large: the body is larger than the limit of {limit_bytes} bytes; split the object or keep bulk data out of the API"
            ),
        )
    }

    /// 415.
    pub fn unsupported_media_type(message: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            message.into(),
        )
    }

    /// 422 Invalid with field causes.
    pub fn invalid(kind: &str, group: &str, name: &str, causes: Vec<Cause>) -> ApiError {
        let summary = causes
            .iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect::<Vec<_>>()
            .join(", ");
        let causes_json: Vec<Value> = causes
            .iter()
            .map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field}))
            .collect();
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid",
            format!("{kind} \"{name}\" is invalid: {summary}"),
        )
        .with_details(json!({"name": name, "group": group, "kind": kind, "causes": causes_json}))
    }

    /// 500.
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            message.into(),
        )
    }

    /// 503.
    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            message.into(),
        )
    }

    /// The Status object.
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code.as_u16(),
        });
        if let Some(details) = &self.details {
            status["details"] = details.clone();
        }
        status
    }
}

fn qualified(resource: &str, group: &str) -> String {
    if group.is_empty() {
        resource.to_string()
    } else {
        format!("{resource}.{group}")
    }
}

impl From<KvError> for ApiError {
    fn from(error: KvError) -> ApiError {
        match &error {
            KvError::NoLeader | KvError::Timeout | KvError::Stopped | KvError::Unhealthy => ApiError::unavailable(
                format!("the store cannot serve the request right now ({error}); retry, or use another server"),
            ),
            KvError::Compacted { compact_revision } => {
                ApiError::expired(format!("too old resource version (the store is compacted to {compact_revision})"))
            }
            KvError::FutureRevision => ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "Timeout",
                "Too large resource version: the store has not reached it yet".into(),
            ),
            KvError::NoSpace => ApiError::new(
                StatusCode::INSUFFICIENT_STORAGE,
                "InternalError",
                "the store is out of space (NOSPACE alarm): delete data, compact and defragment, then disarm the alarm"
                    .into(),
            ),
            KvError::RequestTooLarge => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "RequestEntityTooLarge",
                "the object is larger than the store accepts (1.5 MiB)".into(),
            ),
            _ => ApiError::internal(format!("store error: {error}")),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.code, Json(self.to_status())).into_response()
    }
}

/// Result alias for handlers.
pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_read_like_kubernetes() {
        let e = ApiError::not_found("pods", "", "nope");
        assert_eq!(e.to_status()["message"], "pods \"nope\" not found");
        assert_eq!(e.to_status()["code"], 404);
        let e = ApiError::already_exists("deployments", "apps", "web");
        assert_eq!(
            e.to_status()["message"],
            "deployments.apps \"web\" already exists"
        );
        let e = ApiError::invalid(
            "Pod",
            "",
            "bad1",
            vec![Cause {
                reason: "FieldValueRequired",
                message: "Required value".into(),
                field: "spec.containers[0].image".into(),
            }],
        );
        assert_eq!(
            e.to_status()["message"],
            "Pod \"bad1\" is invalid: spec.containers[0].image: Required value"
        );
        assert_eq!(
            ApiError::from(KvError::NoLeader).code,
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
}
