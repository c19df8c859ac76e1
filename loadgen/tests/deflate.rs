//! permessage-deflate from the load generator's side, against a foreign server: Python's
//! `websockets` (which compresses by default), started here on 127.0.0.1 port 0. The zero-alloc
//! client offers the extension with `--deflate`, compresses every message and inflates every
//! echo; summary.json records what was agreed and the bytes on the wire against the payload.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{out_dir, read_results, run_loadgen, serial};

const LIMIT: Duration = Duration::from_secs(60);

/// Python's websockets echo server with permessage-deflate (`factory` is the Python expression
/// of its ServerPerMessageDeflateFactory), killed when dropped.
struct PythonServer {
    child: Child,
    port: u16,
}

impl PythonServer {
    fn start(factory: &str) -> Self {
        let py = std::env::var("WSBENCH_PYTHON").unwrap_or_else(|_| "python3".into());
        let script = format!(
            r#"
import asyncio, json, sys
from websockets.asyncio.server import serve
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory
async def echo(ws):
    async for m in ws:
        await ws.send(m)
async def main():
    async with serve(echo, "127.0.0.1", 0, extensions=[{factory}], compression=None, max_size=None) as s:
        print(json.dumps({{"port": s.sockets[0].getsockname()[1]}}), flush=True)
        await asyncio.Future()
asyncio.run(main())
"#
        );
        let mut child = Command::new(py).args(["-c", &script]).stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("the Python server said {line:?}: {e}"));
        Self { child, port: v["port"].as_u64().unwrap() as u16 }
    }
}

impl Drop for PythonServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
#[cfg_attr(not(python_websockets), ignore = "Python cannot import websockets, which this check needs (pip install websockets==17.4; set WSBENCH_PYTHON)")]
fn the_zero_alloc_client_compresses_against_python_websockets() {
    let _serial = serial();
    for (factory, extra, agreed) in [
        (
            "ServerPerMessageDeflateFactory()",
            &[][..],
            "permessage-deflate; server_max_window_bits=15; client_max_window_bits=15",
        ),
        // The server asks for a small client window and no context; we ask it for a small one.
        (
            "ServerPerMessageDeflateFactory(client_max_window_bits=10, client_no_context_takeover=True)",
            &["--deflate-server-max-window-bits", "11", "--deflate-server-no-context-takeover"][..],
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=11; client_max_window_bits=10",
        ),
    ] {
        let server = PythonServer::start(factory);
        let url = format!("ws://127.0.0.1:{}/", server.port);
        let dir = out_dir("deflate-python");
        let mut args = vec!["--url", &url, "--engine", "zero-alloc", "--deflate", "--connections", "2", "--in-flight", "4", "--size", "2KiB", "--duration", "1s", "--warmup", "300ms", "--out", dir.to_str().unwrap()];
        args.extend_from_slice(extra);
        let (status, _, stderr) = run_loadgen(&args, LIMIT);
        assert_eq!(status.code(), Some(0), "{factory}: {stderr}");
        let r = read_results(&dir);
        r.assert_consistent();
        let s = &r.summary;
        assert!(s.messages.received > 100, "{factory}: {:?}", s.messages);
        assert_eq!((s.messages.corrupted, s.messages.lost, s.messages.errors), (0, 0, 0), "{factory}");
        let d = s.setup.deflate.as_ref().expect("--deflate records a deflate block");
        assert_eq!(d.agreements.get(agreed), Some(&2), "{factory}: {:?}", d.agreements);
        // Every message went out compressed and every echo came back compressed.
        assert!(d.messages_out >= s.messages.sent && d.messages_in >= s.messages.received, "{d:?} {:?}", s.messages);
        assert_eq!(d.payload_bytes_out, d.messages_out * 2048);
        let ratio = d.ratio_out.expect("a ratio");
        assert!(ratio > 0.0 && ratio < 0.5, "wsbench's filler compresses well: {ratio}");
        assert_eq!(s.worker_allocations_per_message, Some(0.0), "{factory}: the compressing client allocated per message");
        assert_eq!(s.config.deflate.map(|c| c.server_no_context_takeover), Some(!extra.is_empty()));
    }
}

#[test]
fn only_the_zero_alloc_client_offers_deflate() {
    let (status, _, stderr) = run_loadgen(&["--url", "ws://127.0.0.1:9/", "--engine", "tungstenite", "--deflate"], LIMIT);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--engine zero-alloc"), "{stderr}");
    let (status, _, stderr) = run_loadgen(&["--url", "ws://127.0.0.1:9/", "--engine", "zero-alloc", "--deflate", "--deflate-client-max-window-bits", "8"], LIMIT);
    assert_eq!(status.code(), Some(2), "{stderr}");
}
