//! The control socket: a Unix domain socket (mode 0600) through which `status` and `cutover`
//! talk to a running daemon. One JSON request line, one JSON answer line. No TCP listener.
//!
//! Requests: `{"cmd":"status"}` answers the status document; `{"cmd":"stop"}` asks the daemon
//! to stop cleanly and answers `{"ok":true}`; `{"cmd":"resync","table":"s.t"}` queues a table to
//! be copied again; `{"cmd":"validate","table":null|"s.t","full":bool,"repair":bool}` validates
//! and answers `{"results":[...]}`. Errors answer `{"error":"..."}`.

use crate::daemon::Shared;
use crate::error::Error;
use std::path::Path;
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

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
    tokio::spawn(async move {
        loop {
            let stop = shared.sleep_or_stop(std::time::Duration::from_secs(3600));
            tokio::select! {
                accepted = listener.accept() => {
                    if let Ok((stream, _)) = accepted {
                        let sh = shared.clone();
                        tokio::spawn(async move { let _ = answer(sh, stream).await; });
                    }
                }
                stopping = stop => if stopping { break },
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
    let req: serde_json::Value = serde_json::from_str(line.trim()).unwrap_or_default();
    let reply = match req["cmd"].as_str() {
        Some("status") => {
            match crate::daemon::status::build(
                &shared.store,
                Some(&crate::daemon::status::DaemonView::of(&shared)),
            ) {
                Ok(s) => serde_json::to_value(s).unwrap_or_default(),
                Err(e) => serde_json::json!({"error": e.to_string()}),
            }
        }
        Some("stop") => {
            shared.request_stop();
            serde_json::json!({"ok": true})
        }
        Some("resync") => match req["table"].as_str() {
            Some(t) => match crate::daemon::resync::request(&shared, t) {
                Ok(()) => serde_json::json!({"ok": true}),
                Err(e) => serde_json::json!({"error": e.to_string()}),
            },
            None => serde_json::json!({"error": "resync needs a table"}),
        },
        Some("validate") => {
            let parsed: Result<crate::validate::live::Request, _> =
                serde_json::from_value(req.clone());
            match parsed {
                Ok(r) => match crate::validate::live::run(&shared, &r).await {
                    Ok(results) => serde_json::json!({"results": results}),
                    Err(e) => serde_json::json!({"error": e.to_string()}),
                },
                Err(e) => serde_json::json!({"error": format!("bad validate request: {e}")}),
            }
        }
        _ => serde_json::json!({"error": "unknown request; known: status, stop, resync, validate"}),
    };
    w.write_all(format!("{reply}\n").as_bytes()).await?;
    w.shutdown().await
}

/// Sends one request to a running daemon; `None` when no daemon answers.
pub async fn request(path: &Path, cmd: &str) -> Option<serde_json::Value> {
    send(
        path,
        serde_json::json!({"cmd": cmd}),
        std::time::Duration::from_secs(10),
    )
    .await
}

/// Sends a request document and waits up to `wait` for the answer; `None` when no daemon
/// answers.
pub async fn send(
    path: &Path,
    req: serde_json::Value,
    wait: std::time::Duration,
) -> Option<serde_json::Value> {
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
