//! The streams and sessions of a pool: [`imap`](PoolOf::imap),
//! [`imap_unordered`](PoolOf::imap_unordered) and [`session`](PoolOf::session),
//! and what they take from the pool.

use super::PoolOf;
use crate::backend::{Driver, SerialBackend};
use crate::carries::Carries;
use crate::carries::sealed::CodecFor;
use crate::error::Error;
use crate::job::{self, TypedStreamJob};
use crate::stream::{self, Imap, ImapUnordered, Session, StreamSettings};
use std::sync::Arc;

#[cfg(doc)]
use super::{LocalPool, Pool, PoolBuilder};

impl<C> PoolOf<C> {
    /// Applies `f` to the items of `input` lazily, in parallel, and returns
    /// an iterator of the results in input order; see [`Imap`].
    ///
    /// The input is pulled in chunks of [`chunk_size`](PoolBuilder::chunk_size)
    /// items (default [`STREAM_CHUNK_SIZE`](crate::STREAM_CHUNK_SIZE))
    /// only while fewer than [`in_flight`](PoolBuilder::in_flight) chunks are
    /// running or waiting to be handed out, so an input of any length (an
    /// iterator of 10^9 items, the lines of a file) is processed in constant
    /// memory. Dropping the iterator cancels the rest promptly.
    ///
    /// On the process backend the stream forks its workers once and sends
    /// them each chunk's items, encoded with postcard: that is why a
    /// [`Pool`]'s `T` must be `Serialize + DeserializeOwned` (on every
    /// backend, since the backend is chosen at run time; a [`LocalPool`]'s
    /// need not be). `f` must be `'static` because it keeps running while
    /// the iterator is alive; move what it needs into it (an `Arc` for
    /// shared data). To reuse the same workers for several streams or
    /// calls, make a [`session`](Pool::session).
    ///
    /// ```
    /// let pool = parpool::Pool::new();
    /// let lengths: Vec<usize> = pool
    ///     .imap(|line: String| line.len(), ["a", "bb", "ccc"].map(String::from))?
    ///     .collect::<Result<_, _>>()?;
    /// assert_eq!(lengths, [1, 2, 3]);
    /// # Ok::<(), parpool::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// Starting the stream's workers failed (on the process backend: a
    /// `fork`). Task failures are items of the iterator.
    pub fn imap<T, R, F, I>(&self, f: F, input: I) -> Result<Imap<'static, I::IntoIter, R>, Error>
    where
        F: Fn(T) -> R + Send + Sync + 'static,
        I: IntoIterator<Item = T>,
        T: Send + 'static,
        R: Send + 'static,
        C: Carries<T> + Carries<R>,
    {
        let settings = self.stream_settings();
        let engine = settings.open(self.stream_job(f))?;
        Ok(stream::imap(&settings, input.into_iter(), engine))
    }

    /// Like [`imap`](Pool::imap), but yields `(index, result)` as soon as
    /// each chunk finishes, in no particular order; see [`ImapUnordered`].
    ///
    /// ```
    /// let pool = parpool::Pool::new();
    /// let mut done: Vec<(usize, u64)> = pool
    ///     .imap_unordered(|x: u64| x * x, 0..5u64)?
    ///     .map(|(index, result)| result.map(|square| (index, square)))
    ///     .collect::<Result<_, _>>()?;
    /// done.sort();
    /// assert_eq!(done, [(0, 0), (1, 1), (2, 4), (3, 9), (4, 16)]);
    /// # Ok::<(), parpool::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As for [`imap`](Pool::imap).
    pub fn imap_unordered<T, R, F, I>(
        &self,
        f: F,
        input: I,
    ) -> Result<ImapUnordered<'static, I::IntoIter, R>, Error>
    where
        F: Fn(T) -> R + Send + Sync + 'static,
        I: IntoIterator<Item = T>,
        T: Send + 'static,
        R: Send + 'static,
        C: Carries<T> + Carries<R>,
    {
        let settings = self.stream_settings();
        let engine = settings.open(self.stream_job(f))?;
        Ok(stream::imap_unordered(&settings, input.into_iter(), engine))
    }

    /// Starts workers for `f` that serve many calls: see [`Session`]. On
    /// the process backend this forks the workers once, now, instead of on
    /// every call. On a [`LocalPool`] (threads) a session keeps nothing
    /// between calls that a plain call would not have; it is there so code
    /// written for [`Session`] runs on either.
    ///
    /// # Errors
    ///
    /// Starting the workers failed (a `fork`).
    pub fn session<T, R, F>(&self, f: F) -> Result<Session<T, R>, Error>
    where
        F: Fn(T) -> R + Send + Sync + 'static,
        T: Send + 'static,
        R: Send + 'static,
        C: Carries<T> + Carries<R>,
    {
        Session::new(self.stream_settings(), self.stream_job(f))
    }

    /// The type-erased job of a stream or session of `f`.
    pub(super) fn stream_job<T, R, F>(&self, f: F) -> Arc<dyn job::StreamJob>
    where
        F: Fn(T) -> R + Send + Sync + 'static,
        T: Send + 'static,
        R: Send + 'static,
        C: Carries<T> + Carries<R>,
    {
        let codecs = (<C as CodecFor<T>>::values(), <C as CodecFor<R>>::results());
        Arc::new(TypedStreamJob::new(f, self.limits, codecs))
    }

    /// What a stream or session of this pool runs with. Inside a task
    /// (nested use) it runs on the serial backend, as every call does.
    pub(super) fn stream_settings(&self) -> StreamSettings {
        let backend: Arc<dyn Driver> = if job::inside_task() {
            Arc::new(SerialBackend)
        } else {
            self.backend.clone()
        };
        let workers = backend.workers();
        let in_flight = self
            .in_flight
            .unwrap_or(backend.capabilities().in_flight_per_worker * workers)
            .max(1);
        StreamSettings {
            backend,
            chunk_size: self.chunk_size,
            in_flight,
            workers,
            cancel: self.cancel.clone(),
            progress: self.progress_mode(),
        }
    }
}
