//! The fallbacks of the async machinery when no helper thread can start,
//! through a test-only switch that refuses them.

use super::CallFuture;
use crate::backend::tests::Elsewhere;
use crate::cancel::CancelToken;
use crate::stream::Relay;
use crate::sync::helpers::REFUSE_HELPERS;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

/// Runs `body` with every helper it starts refused.
fn without_helpers<R>(body: impl FnOnce() -> R) -> R {
    REFUSE_HELPERS.set(true);
    let result = body();
    REFUSE_HELPERS.set(false);
    result
}

#[test]
fn without_a_helper_a_future_is_ready_with_its_value() {
    let driver = crate::backend::adopt(Elsewhere);
    let mut future = pin!(without_helpers(|| CallFuture::start(
        &*driver,
        CancelToken::new(),
        || 42
    )));
    let poll = future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()));
    assert_eq!(poll, Poll::Ready(42));
}

#[test]
fn without_a_helper_a_relay_hands_out_every_item() {
    let mut relay = without_helpers(|| Relay::start(0..10u32, CancelToken::new()));
    assert_eq!(relay.size_hint(), (10, Some(10)));
    let polled: Vec<_> = std::iter::from_fn(|| match relay.poll_next(Waker::noop()) {
        Poll::Ready(item) => item,
        Poll::Pending => panic!("a relay without a helper never waits"),
    })
    .collect();
    assert_eq!(polled, (0..10).collect::<Vec<_>>());
    assert_eq!(relay.size_hint(), (0, Some(0)));
    let mut relay = without_helpers(|| Relay::start(0..3u32, CancelToken::new()));
    let pulled: Vec<_> = std::iter::from_fn(|| relay.next_blocking()).collect();
    assert_eq!(pulled, [0, 1, 2]);
}

#[test]
fn a_relay_on_a_helper_keeps_an_exact_size_hint() {
    let mut relay = Relay::start(0..5u32, CancelToken::new());
    assert_eq!(relay.size_hint(), (5, Some(5)));
    assert_eq!(relay.next_blocking(), Some(0));
    assert_eq!(relay.size_hint(), (4, Some(4)));
    let rest: Vec<_> = std::iter::from_fn(|| relay.next_blocking()).collect();
    assert_eq!(rest, [1, 2, 3, 4]);
}

#[test]
fn without_a_helper_a_pool_stream_still_yields_every_result() {
    use futures_core::Stream;
    let pool = crate::Pool::with_backend(Elsewhere);
    let mut stream = pool.imap(|x: u32| x * 2, 0..50u32).unwrap();
    let mut context = Context::from_waker(Waker::noop());
    let results = without_helpers(|| {
        std::iter::from_fn(
            || match std::pin::Pin::new(&mut stream).poll_next(&mut context) {
                Poll::Ready(item) => item,
                Poll::Pending => panic!("a stream without a helper never waits"),
            },
        )
        .collect::<Result<Vec<_>, _>>()
    });
    assert_eq!(results.unwrap(), (0..50).map(|x| x * 2).collect::<Vec<_>>());
}

#[test]
fn a_stream_polled_on_threads_keeps_its_exact_size_hint() {
    use futures_core::Stream;
    let pool = crate::Pool::builder()
        .kind(crate::BackendKind::Threads)
        .workers(2)
        .chunk_size(3)
        .build()
        .unwrap();
    let mut stream = pool.imap(|x: u32| x + 1, 0..20u32).unwrap();
    assert_eq!(Stream::size_hint(&stream), (20, Some(20)));
    let mut context = Context::from_waker(Waker::noop());
    let mut seen = Vec::new();
    while seen.len() < 20 {
        match std::pin::Pin::new(&mut stream).poll_next(&mut context) {
            Poll::Ready(Some(result)) => {
                seen.push(result.unwrap());
                assert_eq!(
                    Stream::size_hint(&stream),
                    (20 - seen.len(), Some(20 - seen.len()))
                );
            }
            Poll::Ready(None) => break,
            Poll::Pending => std::thread::yield_now(),
        }
    }
    assert_eq!(seen, (1..21).collect::<Vec<_>>());
}
