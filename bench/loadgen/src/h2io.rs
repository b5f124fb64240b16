//! One HTTP/2 stream as a byte stream, for WebSocket framing on an extended CONNECT
//! stream (RFC 8441). Shared by the load generator and the daemon's HTTP/2 tests (which
//! include this file by path), so it depends only on `h2`, `bytes` and `tokio`.

use bytes::Bytes;
use h2::{RecvStream, SendStream};
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// One HTTP/2 stream as a byte stream: reads take DATA frames and give their window back,
/// writes send DATA frames as the server's window allows.
pub struct StreamIo {
    send: SendStream<Bytes>,
    recv: RecvStream,
    pending: Bytes,
}

impl StreamIo {
    /// The stream whose request (or response) halves are `send` and `recv`.
    pub fn new(send: SendStream<Bytes>, recv: RecvStream) -> StreamIo {
        StreamIo {
            send,
            recv,
            pending: Bytes::new(),
        }
    }
}

impl AsyncRead for StreamIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.pending.is_empty() {
            match ready!(self.recv.poll_data(cx)) {
                None => return Poll::Ready(Ok(())),
                Some(Err(err)) => return Poll::Ready(Err(std::io::Error::other(err))),
                Some(Ok(chunk)) => {
                    let _ = self.recv.flow_control().release_capacity(chunk.len());
                    self.pending = chunk;
                }
            }
        }
        let n = buf.remaining().min(self.pending.len());
        let chunk = self.pending.split_to(n);
        buf.put_slice(&chunk);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for StreamIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        self.send.reserve_capacity(buf.len());
        loop {
            match ready!(self.send.poll_capacity(cx)) {
                None => return Poll::Ready(Err(std::io::ErrorKind::BrokenPipe.into())),
                Some(Err(err)) => return Poll::Ready(Err(std::io::Error::other(err))),
                Some(Ok(0)) => continue,
                Some(Ok(capacity)) => {
                    let n = capacity.min(buf.len());
                    let data = Bytes::copy_from_slice(&buf[..n]);
                    let sent = self.send.send_data(data, false);
                    return Poll::Ready(sent.map(|()| n).map_err(std::io::Error::other));
                }
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let _ = self.send.send_data(Bytes::new(), true);
        Poll::Ready(Ok(()))
    }
}
