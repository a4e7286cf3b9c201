//! [`Imap`] and [`ImapUnordered`] as [`futures_core::Stream`]s: polled
//! without blocking, on the engine itself where it can be polled (the
//! threads backend's chunks wake the stream), else through a [`Relay`].

use crate::error::Error;
use crate::stream::{Imap, ImapUnordered, Relay, Source};
use std::pin::Pin;
use std::task::{Context, Poll};

impl<I, O> Source<'static, I, O>
where
    I: Iterator<Item: Send + 'static> + Send + 'static,
    O: Send + 'static,
{
    /// `Stream::poll_next` for both streams. The first poll whose engine
    /// cannot be polled moves the stream to a helper that drives it, one
    /// result ahead, watching a token of its own that dropping cancels.
    fn poll_results(
        &mut self,
        context: &mut Context<'_>,
    ) -> Poll<Option<(usize, Result<O, Error>)>> {
        if let Source::Here(stream) = self {
            if let Some(polled) = stream.step(Some(context.waker())) {
                return polled;
            }
            let Source::Here(mut stream) = std::mem::replace(self, Source::Moving) else {
                unreachable!("matched above")
            };
            let token = stream.own_token();
            let results = std::iter::from_fn(move || stream.next_result());
            *self = Source::Relayed(Relay::start(results, token));
        }
        match self {
            Source::Relayed(relay) => relay.poll_next(context.waker()),
            _ => Poll::Ready(None),
        }
    }
}

impl<I, O> futures_core::Stream for Imap<'static, I, O>
where
    I: Iterator<Item: Send + 'static> + Send + 'static,
    O: Send + 'static,
{
    type Item = Result<O, Error>;

    /// Never blocks: see [`parpool::future`](crate::future). The same
    /// results, in the same order, as the `Iterator` side. Dropping the
    /// stream before its end cancels the chunks that have not started.
    fn poll_next(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut()
            .stream
            .poll_results(context)
            .map(|item| item.map(|(_, result)| result))
    }

    /// The iterator's [`size_hint`](Iterator::size_hint): exact when the
    /// input's is.
    fn size_hint(&self) -> (usize, Option<usize>) {
        Iterator::size_hint(self)
    }
}

impl<I, O> futures_core::Stream for ImapUnordered<'static, I, O>
where
    I: Iterator<Item: Send + 'static> + Send + 'static,
    O: Send + 'static,
{
    type Item = (usize, Result<O, Error>);

    /// Never blocks: see [`parpool::future`](crate::future).
    fn poll_next(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().stream.poll_results(context)
    }

    /// The iterator's [`size_hint`](Iterator::size_hint): exact when the
    /// input's is.
    fn size_hint(&self) -> (usize, Option<usize>) {
        Iterator::size_hint(self)
    }
}
