//! Responses from hosts where the proxy injected a secret are scrubbed of that secret before
//! the box reads them: an upstream that echoes request headers (or a token in an error page)
//! must not hand the box what it was never given. Each occurrence is overwritten with `*` of
//! the same length, so `Content-Length` stays true. Compressed bodies are not inspected.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};

use crate::upstream::{Body, BoxError};

pub(crate) struct Scrub {
    inner: Body,
    needles: Arc<[Vec<u8>]>,
    /// Bytes held back because a secret may continue in the next frame (longest secret − 1).
    hold: usize,
    carry: Vec<u8>,
    trailers: Option<http::HeaderMap>,
    ended: bool,
}

impl Scrub {
    pub(crate) fn new(inner: Body, needles: Vec<Vec<u8>>) -> Self {
        let hold = needles
            .iter()
            .map(Vec::len)
            .max()
            .unwrap_or(1)
            .saturating_sub(1);
        Scrub {
            inner,
            needles: needles.into(),
            hold,
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
                        let emit = this.carry.len().saturating_sub(this.hold);
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
}
