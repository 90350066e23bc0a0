//! Responses from hosts where the proxy injected a secret are scrubbed of that secret before
//! the box reads them: an upstream that echoes request headers (or a token in an error page)
//! must not hand the box what it was never given. Each occurrence is overwritten with `*` of
//! the same length, so `Content-Length` stays true. The proxy asks those hosts for
//! uncompressed answers (it drops `Accept-Encoding`); a body compressed all the same is not
//! inspected.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};

use crate::upstream::{Body, BoxError};

pub(crate) struct Scrub {
    inner: Body,
    needles: Arc<[Vec<u8>]>,
    /// Bytes held back because a secret may continue in the next frame: only a tail that is
    /// the start of a secret, so a stream (SSE) is never held up by bytes that cannot be one.
    carry: Vec<u8>,
    trailers: Option<http::HeaderMap>,
    ended: bool,
}

impl Scrub {
    pub(crate) fn new(inner: Body, needles: Vec<Vec<u8>>) -> Self {
        Scrub {
            inner,
            needles: needles.into_iter().filter(|n| !n.is_empty()).collect(),
            carry: Vec::new(),
            trailers: None,
            ended: false,
        }
    }

    fn mask(&mut self) {
        for n in self.needles.iter() {
            let starts: Vec<usize> = memchr::memmem::find_iter(&self.carry, n).collect();
            for s in starts {
                self.carry[s..s + n.len()].fill(b'*');
            }
        }
    }
}

/// The length of the longest tail of `data` that a secret starts with (and that is shorter
/// than the secret): what must wait for the next frame.
fn partial_tail(data: &[u8], needles: &[Vec<u8>]) -> usize {
    needles
        .iter()
        .map(|n| {
            let window = (n.len() - 1).min(data.len());
            let tail = &data[data.len() - window..];
            // Only places holding the secret's first byte can start it; the earliest that
            // matches to the end is the longest such tail.
            memchr::memchr_iter(n[0], tail)
                .find(|&i| n.starts_with(&tail[i..]))
                .map_or(0, |i| window - i)
        })
        .max()
        .unwrap_or(0)
}

impl HttpBody for Scrub {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        loop {
            if this.ended {
                if !this.carry.is_empty() {
                    this.mask();
                    let rest = std::mem::take(&mut this.carry);
                    return Poll::Ready(Some(Ok(Frame::data(Bytes::from(rest)))));
                }
                return Poll::Ready(this.trailers.take().map(|t| Ok(Frame::trailers(t))));
            }
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => this.ended = true,
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => {
                        this.carry.extend_from_slice(&data);
                        this.mask();
                        let emit = this.carry.len() - partial_tail(&this.carry, &this.needles);
                        if emit > 0 {
                            let out: Vec<u8> = this.carry.drain(..emit).collect();
                            return Poll::Ready(Some(Ok(Frame::data(Bytes::from(out)))));
                        }
                    }
                    Err(frame) => {
                        // Trailers end the body: flush what is held first.
                        this.trailers = frame.into_trailers().ok();
                        this.ended = true;
                    }
                },
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ended && self.carry.is_empty() && self.trailers.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        let inner = self.inner.size_hint();
        let held = self.carry.len() as u64;
        let mut hint = SizeHint::new();
        hint.set_lower(inner.lower() + held);
        if let Some(u) = inner.upper() {
            hint.set_upper(u + held);
        }
        hint
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use super::*;
    use http_body_util::BodyExt;

    struct Frames(VecDeque<&'static str>);

    impl HttpBody for Frames {
        type Data = Bytes;
        type Error = BoxError;
        fn poll_frame(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
            let next = self.get_mut().0.pop_front();
            Poll::Ready(next.map(|s| Ok(Frame::data(Bytes::from(s)))))
        }
    }

    #[tokio::test]
    async fn masks_secrets_split_across_frames() {
        let frames = Frames(["abc sec", "ret-12", "3 and secret-123", "!"].into());
        let out = Scrub::new(frames.boxed(), vec![b"secret-123".to_vec()])
            .collect()
            .await
            .unwrap()
            .to_bytes();
        assert_eq!(&out[..], b"abc ********** and **********!");
    }

    #[tokio::test]
    async fn a_frame_that_cannot_hold_the_start_of_a_secret_is_not_held() {
        // An SSE event must reach the reader at once, not when the next one comes.
        let mut body = Scrub::new(
            Frames(["event: endpoint\ndata: /m\n\n", "x"].into()).boxed(),
            vec![b"secret-123".to_vec()],
        );
        let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(&first[..], b"event: endpoint\ndata: /m\n\n");
        // A tail that may begin a secret waits.
        let mut body = Scrub::new(
            Frames(["data: sec", "ret-123"].into()).boxed(),
            vec![b"secret-123".to_vec()],
        );
        let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(&first[..], b"data: ");
        assert_eq!(partial_tail(b"abc se", &[b"secret".to_vec()]), 2);
        assert_eq!(partial_tail(b"abc\n", &[b"secret".to_vec()]), 0);
    }
}
