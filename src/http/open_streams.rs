//! Counting what is open on one HTTP/2 connection (requests until their response body is
//! sent, WebSocket sessions until they end), so that an idle connection can be told from
//! one that carries long-lived streams: only the first may be closed for idleness.

use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use hyper::Request;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::sync::watch;

/// The count of one connection's open streams; watched by the connection's idle timer.
#[derive(Debug, Clone)]
pub struct OpenStreams {
    count: Arc<watch::Sender<usize>>,
}

impl Default for OpenStreams {
    fn default() -> OpenStreams {
        OpenStreams {
            count: Arc::new(watch::Sender::new(0)),
        }
    }
}

impl OpenStreams {
    /// Counts one more open stream until the returned hold (and every clone) is dropped.
    pub fn hold(&self) -> Held {
        self.count.send_modify(|n| *n += 1);
        Held {
            count: self.count.clone(),
        }
    }

    /// Follows the count.
    pub fn watch(&self) -> watch::Receiver<usize> {
        self.count.subscribe()
    }
}

/// One open stream, counted while this value (or a clone, each counted) lives. HTTP/2
/// connections put one in every request's extensions.
#[derive(Debug)]
pub struct Held {
    count: Arc<watch::Sender<usize>>,
}

impl Clone for Held {
    fn clone(&self) -> Held {
        self.count.send_modify(|n| *n += 1);
        Held {
            count: self.count.clone(),
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.count.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// The upgrade future of a request, and the hold on its stream the connection gave it (on
/// HTTP/2): a WebSocket session keeps the hold until it ends, so the connection under it is
/// never closed as idle.
pub fn upgrade_on(mut request: Request<Incoming>) -> (hyper::upgrade::OnUpgrade, Option<Held>) {
    let held = request.extensions_mut().remove::<Held>();
    (hyper::upgrade::on(request), held)
}

/// A response body that keeps its stream counted as open until it is sent (or dropped).
#[derive(Debug)]
pub struct HeldBody<B> {
    inner: B,
    _held: Held,
}

impl<B> HeldBody<B> {
    /// `inner`, counted by `held` while it is sent.
    pub fn new(inner: B, held: Held) -> HeldBody<B> {
        HeldBody { inner, _held: held }
    }
}

impl<B: HttpBody + Unpin> HttpBody for HeldBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_and_their_clones_are_counted_until_dropped() {
        let streams = OpenStreams::default();
        let watch = streams.watch();
        let first = streams.hold();
        let copy = first.clone();
        let second = streams.hold();
        assert_eq!(*watch.borrow(), 3);
        drop(first);
        drop(second);
        assert_eq!(*watch.borrow(), 1);
        drop(copy);
        assert_eq!(*watch.borrow(), 0);
    }
}
