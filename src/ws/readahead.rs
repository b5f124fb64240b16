//! A read-ahead buffer for the WebSocket socket that exists only while data is waiting:
//! the socket is read in large chunks (few system calls for big messages), and the buffer
//! is given back as soon as it is drained, so an idle connection holds no read memory.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Bytes read from the socket at once when the caller asks for less.
const CHUNK: usize = 64 * 1024;

/// Wraps a stream; reads go through a lazily allocated buffer, writes go straight through.
#[derive(Debug)]
pub struct ReadAhead<S> {
    inner: S,
    buf: Vec<u8>,
    start: usize,
}

impl<S> ReadAhead<S> {
    /// Wraps `inner`.
    pub fn new(inner: S) -> ReadAhead<S> {
        ReadAhead {
            inner,
            buf: Vec::new(),
            start: 0,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for ReadAhead<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.start == this.buf.len() {
            if out.remaining() >= CHUNK {
                return Pin::new(&mut this.inner).poll_read(cx, out);
            }
            let mut buf = std::mem::take(&mut this.buf);
            buf.resize(CHUNK, 0);
            let mut read = ReadBuf::new(&mut buf);
            match Pin::new(&mut this.inner).poll_read(cx, &mut read) {
                Poll::Ready(Ok(())) => {
                    let filled = read.filled().len();
                    buf.truncate(filled);
                    this.buf = buf;
                    this.start = 0;
                }
                // Nothing arrived: the buffer is dropped, so waiting costs no memory.
                other => return other,
            }
        }
        let available = &this.buf[this.start..];
        let n = available.len().min(out.remaining());
        out.put_slice(&available[..n]);
        this.start += n;
        if this.start == this.buf.len() {
            this.buf = Vec::new();
            this.start = 0;
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for ReadAhead<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, data)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn small_reads_come_from_one_large_read() {
        let (mut client, server) = tokio::io::duplex(1 << 20);
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        client.write_all(&data).await.unwrap();
        drop(client);
        let mut reader = ReadAhead::new(server);
        let mut got = Vec::new();
        let mut small = [0u8; 100];
        loop {
            let n = reader.read(&mut small).await.unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&small[..n]);
        }
        assert_eq!(got, data);
        assert_eq!(reader.buf.capacity(), 0, "drained buffer is released");
    }
}
