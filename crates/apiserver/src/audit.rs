//! The audit log: one JSON line per request (user, verb, resource, name, response code,
//! latency), rotated by size.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::Serialize;

/// Rotate when the file passes this size.
const MAX_BYTES: u64 = 64 << 20;

/// Rotated files kept (`audit.log.1` ... `audit.log.N`).
const KEEP: usize = 3;

/// One audited request.
#[derive(Clone, Debug, Serialize)]
pub struct AuditEntry {
    /// When it completed (RFC 3339).
    pub timestamp: String,
    /// Who (empty if unauthenticated).
    pub user: String,
    /// Their groups.
    pub groups: Vec<String>,
    /// Kubernetes verb, or the HTTP method for non-resource paths.
    pub verb: String,
    /// Resource, or the path for non-resource requests.
    pub resource: String,
    /// Subresource.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subresource: Option<String>,
    /// Namespace.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Object name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// HTTP status code.
    pub code: u16,
    /// Milliseconds from request to response headers.
    pub latency_ms: f64,
}

struct Sink {
    file: std::fs::File,
    size: u64,
}

/// An audit log file.
pub struct AuditLog {
    path: PathBuf,
    sink: Mutex<Option<Sink>>,
}

impl AuditLog {
    /// Opens (appending) or creates the log.
    pub fn open(path: &Path) -> std::io::Result<AuditLog> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let log = AuditLog {
            path: path.to_path_buf(),
            sink: Mutex::new(None),
        };
        *log.sink.lock().unwrap_or_else(|p| p.into_inner()) = Some(log.open_sink()?);
        Ok(log)
    }

    fn open_sink(&self) -> std::io::Result<Sink> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        let size = file.metadata()?.len();
        Ok(Sink { file, size })
    }

    fn rotate(&self) -> std::io::Result<Sink> {
        for n in (1..KEEP).rev() {
            let from = self.path.with_extension(format!("log.{n}"));
            let to = self.path.with_extension(format!("log.{}", n + 1));
            let _ = std::fs::rename(from, to);
        }
        std::fs::rename(&self.path, self.path.with_extension("log.1"))?;
        self.open_sink()
    }

    /// Appends one entry (failures are logged, never fail the request).
    pub fn record(&self, entry: &AuditEntry) {
        let Ok(mut line) = serde_json::to_vec(entry) else {
            return;
        };
        line.push(b'\n');
        let mut sink = self.sink.lock().unwrap_or_else(|p| p.into_inner());
        if sink
            .as_ref()
            .is_some_and(|s| s.size + line.len() as u64 > MAX_BYTES)
        {
            match self.rotate() {
                Ok(fresh) => *sink = Some(fresh),
                Err(e) => tracing::warn!(error = %e, "rotating the audit log failed"),
            }
        }
        if let Some(s) = sink.as_mut() {
            match s.file.write_all(&line) {
                Ok(()) => s.size += line.len() as u64,
                Err(e) => tracing::warn!(error = %e, "writing the audit log failed"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_json_lines() {
        let dir = std::env::temp_dir().join(format!("hanode-audit-{}", rand::random::<u32>()));
        let log = AuditLog::open(&dir.join("audit.log")).expect("open");
        let entry = AuditEntry {
            timestamp: "2026-01-01T00:00:00Z".into(),
            user: "admin".into(),
            groups: vec!["system:masters".into()],
            verb: "create".into(),
            resource: "pods".into(),
            subresource: None,
            namespace: Some("default".into()),
            name: Some("p".into()),
            code: 201,
            latency_ms: 1.5,
        };
        log.record(&entry);
        log.record(&entry);
        let text = std::fs::read_to_string(dir.join("audit.log")).expect("read");
        assert_eq!(text.lines().count(), 2);
        let first: serde_json::Value =
            serde_json::from_str(text.lines().next().expect("line")).expect("json");
        assert_eq!(first["verb"], "create");
        assert_eq!(first["code"], 201);
        let _ = std::fs::remove_dir_all(dir);
    }
}
