//! The control socket: a Unix domain socket (mode 0600) through which `status` and `cutover`
//! talk to a running daemon. One JSON request line, one JSON answer line. No TCP listener.
//!
//! Requests: `{"cmd":"status"}` answers the status document; `{"cmd":"stop"}` asks the daemon
//! to stop cleanly and answers `{"ok":true}`; `{"cmd":"resync","table":"s.t"}` queues a table to
//! be copied again; `{"cmd":"validate","table":null|"s.t","full":bool,"repair":bool}` validates
//! and answers `{"results":[...]}`. Errors answer `{"error":"..."}`.

use crate::daemon::Shared;
use crate::error::Error;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

/// A request line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Request {
    /// The status document.
    Status,
    /// Stop cleanly.
    Stop,
    /// Copy a table again.
    Resync {
        /// `schema.table` as status prints it.
        table: String,
    },
    /// Validate now.
    Validate(crate::daemon::validation::Request),
}

/// An answer line.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Reply {
    /// The status document.
    Status(Box<crate::daemon::status::Status>),
    /// Done.
    Ok {
        /// Always true.
        ok: bool,
    },
    /// A validation's results.
    Results {
        /// One per table.
        results: Vec<crate::daemon::validation::TableResult>,
    },
    /// Why the request failed.
    Error {
        /// The reason.
        error: String,
    },
}

impl Reply {
    fn error(e: impl std::fmt::Display) -> Reply {
        Reply::Error {
            error: e.to_string(),
        }
    }
}

/// Serves the socket until the daemon stops. A stale socket file is replaced.
pub async fn serve(shared: Arc<Shared>, path: &Path) -> Result<(), Error> {
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let _ = std::fs::remove_file(path);
    let listener = UnixListener::bind(path).map_err(|e| {
        Error::Fatal(format!(
            "control.socket: cannot listen on {}: {e}",
            path.display()
        ))
    })?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(|e| {
            Error::Fatal(format!(
                "control.socket: cannot restrict {}: {e}",
                path.display()
            ))
        })?;
    }
    let path = path.to_path_buf();
    shared.clone().lifecycle.tasks.spawn(async move {
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    if let Ok((stream, _)) = accepted {
                        let sh = shared.clone();
                        shared.lifecycle.tasks.spawn(async move { let _ = answer(sh, stream).await; });
                    }
                }
                _ = shared.lifecycle.stopped() => break,
            }
        }
        let _ = std::fs::remove_file(&path);
    });
    Ok(())
}

async fn answer(shared: Arc<Shared>, stream: UnixStream) -> std::io::Result<()> {
    let (r, mut w) = stream.into_split();
    let mut line = String::new();
    BufReader::new(r).read_line(&mut line).await?;
    let reply = match serde_json::from_str::<Request>(line.trim()) {
        Err(e) => Reply::error(format!(
            "bad request ({e}); known: status, stop, resync, validate"
        )),
        Ok(Request::Status) => match crate::daemon::status::build(
            &shared.store,
            Some(&crate::daemon::status::DaemonView::of(&shared)),
        ) {
            Ok(s) => Reply::Status(Box::new(s)),
            Err(e) => Reply::error(e),
        },
        Ok(Request::Stop) => {
            shared.request_stop();
            Reply::Ok { ok: true }
        }
        Ok(Request::Resync { table }) => match crate::daemon::resync::request(&shared, &table) {
            Ok(()) => Reply::Ok { ok: true },
            Err(e) => Reply::error(e),
        },
        Ok(Request::Validate(r)) => match crate::daemon::validation::run(&shared, &r).await {
            Ok(results) => Reply::Results { results },
            Err(e) => Reply::error(e),
        },
    };
    let reply = serde_json::to_string(&reply).unwrap_or_default();
    w.write_all(format!("{reply}\n").as_bytes()).await?;
    w.shutdown().await
}

/// Sends one request to a running daemon, waiting up to 10 s; `None` when no daemon answers.
pub async fn request(path: &Path, req: &Request) -> Option<serde_json::Value> {
    send(path, req, std::time::Duration::from_secs(10)).await
}

/// Sends a request document and waits up to `wait` for the answer; `None` when no daemon
/// answers.
pub async fn send(
    path: &Path,
    req: &Request,
    wait: std::time::Duration,
) -> Option<serde_json::Value> {
    let req = serde_json::to_string(req).ok()?;
    let stream = tokio::time::timeout(std::time::Duration::from_secs(2), UnixStream::connect(path))
        .await
        .ok()?
        .ok()?;
    let (r, mut w) = stream.into_split();
    w.write_all(format!("{req}\n").as_bytes()).await.ok()?;
    let mut line = String::new();
    tokio::time::timeout(wait, BufReader::new(r).read_line(&mut line))
        .await
        .ok()?
        .ok()?;
    serde_json::from_str(line.trim()).ok()
}

#[cfg(test)]
mod tests {
    use super::Request;

    #[test]
    fn requests_are_the_documented_lines() {
        let cases = [
            (Request::Status, r#"{"cmd":"status"}"#),
            (Request::Stop, r#"{"cmd":"stop"}"#),
            (
                Request::Resync {
                    table: "dbo.t".into(),
                },
                r#"{"cmd":"resync","table":"dbo.t"}"#,
            ),
        ];
        for (req, line) in cases {
            assert_eq!(serde_json::to_string(&req).unwrap(), line);
            assert_eq!(serde_json::from_str::<Request>(line).unwrap(), req);
        }
        let v: Request =
            serde_json::from_str(r#"{"cmd":"validate","table":null,"full":true,"repair":false}"#)
                .unwrap();
        match v {
            Request::Validate(r) => assert!(r.full && !r.repair && r.table.is_none()),
            other => panic!("{other:?}"),
        }
        assert!(serde_json::from_str::<Request>(r#"{"cmd":"explode"}"#).is_err());
        assert!(serde_json::from_str::<Request>(r#"{"cmd":"resync"}"#).is_err());
    }
}
