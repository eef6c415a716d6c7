//! Proves: a malformed frame (an unknown kind, a body cut short, bytes that
//! are not the protocol at all) gets an `Error` frame with the protocol's
//! 8xxx code and closes that connection, while another connection opened
//! before keeps working.

mod support;

use std::net::SocketAddr;

use eddy_proto::{FRAME_BYTES_CAP, Frame, Request, Response, encode_frame};
use eddy_server::ServerConfig;
use support::{Client, Server};

/// Sends `bytes` on a fresh connection (after a handshake if `hello`) and
/// returns the code of the `Error` it gets, checking that the connection
/// is closed after it.
async fn error_code_for(addr: SocketAddr, hello: bool, bytes: &[u8]) -> u16 {
    let mut c = if hello {
        Client::connect(addr).await.0
    } else {
        Client::connect_raw(addr).await
    };
    c.send_bytes(bytes).await;
    let (_, response) = c.recv_response().await;
    let Response::Error(e) = response else {
        panic!("expected an Error, got {response:?}");
    };
    assert!(c.recv().await.is_none(), "the connection is closed");
    e.code
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_frame_closes_only_its_connection() {
    let server = Server::start(ServerConfig::default()).await;
    let (mut good, _) = Client::connect(server.addr).await;

    // Unknown kind 0x7f, empty body.
    let mut unknown = 10u32.to_le_bytes().to_vec();
    unknown.extend_from_slice(&[0x7f, 0]);
    unknown.extend_from_slice(&9u64.to_le_bytes());
    assert_eq!(error_code_for(server.addr, true, &unknown).await, 8003);

    // A DescribeTopic whose name runs past the end of its frame: the
    // length field says one byte less, and that byte is not sent.
    let mut cut = Vec::new();
    let describe = Frame::new(
        4,
        Request::DescribeTopic {
            name: "orders".into(),
        },
    );
    encode_frame(&describe, FRAME_BYTES_CAP, &mut cut).expect("encode");
    let length = u32::from_le_bytes([cut[0], cut[1], cut[2], cut[3]]) - 1;
    cut[..4].copy_from_slice(&length.to_le_bytes());
    cut.pop();
    assert_eq!(error_code_for(server.addr, true, &cut).await, 8005);

    // Not the protocol at all: "GET " read as a length is far above the
    // 64 KiB allowed before the handshake.
    let http = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_eq!(error_code_for(server.addr, false, http).await, 8001);

    // A request before the Hello.
    let mut ping = Vec::new();
    encode_frame(&Frame::new(1, Request::Ping), FRAME_BYTES_CAP, &mut ping).expect("encode");
    assert_eq!(error_code_for(server.addr, false, &ping).await, 8012);

    // The connection opened first never noticed.
    assert_eq!(good.call(77, Request::Ping).await, Response::Pong);
    drop(good);
    server.shutdown().await;
}
