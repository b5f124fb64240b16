//! A stream with a few bytes already read from it (to tell HTTP/2 from HTTP/1, see
//! `server::preface`) served again before the rest. A leaf: the WebSocket transport
//! unwraps it to reach the socket underneath.

use std::io::IoSlice;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The most bytes put back (the length of the HTTP/2 connection preface).
pub const MAX_PREFIX: usize = 24;

/// A stream with a few already-read bytes served before the rest of it.
#[derive(Debug)]
pub struct Prefixed<S> {
    prefix: [u8; MAX_PREFIX],
    start: usize,
    end: usize,
    inner: S,
}

impl<S> Prefixed<S> {
    /// `inner` with `prefix` (at most [`MAX_PREFIX`] bytes; more are cut) read first.
    pub fn new(prefix: &[u8], inner: S) -> Prefixed<S> {
        let end = prefix.len().min(MAX_PREFIX);
        let mut kept = [0; MAX_PREFIX];
        kept[..end].copy_from_slice(&prefix[..end]);
        Prefixed {
            prefix: kept,
            start: 0,
            end,
            inner,
        }
    }

    /// The stream underneath and the put-back bytes not yet read from it.
    pub fn into_parts(self) -> (S, Vec<u8>) {
        (self.inner, self.prefix[self.start..self.end].to_vec())
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if this.start < this.end {
            let n = buf.remaining().min(this.end - this.start);
            buf.put_slice(&this.prefix[this.start..this.start + n]);
            this.start += n;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn put_back_bytes_come_first_and_the_unread_rest_is_handed_over() {
        let mut stream = Prefixed::new(b"GET /", &b" HTTP/1.1"[..]);
        let mut first = [0u8; 3];
        stream.read_exact(&mut first).await.unwrap();
        assert_eq!(&first, b"GET");
        let (inner, unread) = stream.into_parts();
        assert_eq!(unread, b" /");
        assert_eq!(inner, b" HTTP/1.1");

        let (_, unread) = Prefixed::new(&[], ()).into_parts();
        assert!(unread.is_empty());
        let (_, unread) = Prefixed::new(&[7; MAX_PREFIX + 5], ()).into_parts();
        assert_eq!(unread.len(), MAX_PREFIX);
    }
}
