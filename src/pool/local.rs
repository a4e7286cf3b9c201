//! [`LocalPool`]: a pool whose tasks run in this process, with no serde
//! bounds.

use super::{BACKEND_VARIABLE, Pool, PoolBuilder};
use crate::backend::BackendKind;
use crate::cancel::CancelToken;
use crate::error::Error;
use crate::job::TypedStreamJob;
use crate::job::codec::Codec;
use crate::stream::{self, Imap, ImapUnordered, Session};
use std::fmt;
use std::sync::Arc;

/// A pool that runs its tasks in this process, on threads (or serially):
/// made by [`Pool::local`] or [`PoolBuilder::build_local`].
///
/// It has the methods of [`Pool`] without its serde bounds, so results can
/// be anything `Send`: an `io::Result`, a `ParseIntError`, a file handle, a
/// struct without serde. Batch calls (`map`, `try_map`, `map_init`,
/// `map_reduce`) take borrowed items and closures that borrow local data,
/// as rayon's do.
///
/// Choose it when results cannot be serialized or items borrow; choose
/// [`Pool`] when the same code must also run in worker processes or across
/// MPI ranks.
///
/// ```
/// use std::path::PathBuf;
///
/// let pool = parpool::Pool::local();
/// let paths: Vec<PathBuf> = vec!["Cargo.toml".into(), "no such file".into()];
/// let contents: Vec<std::io::Result<Vec<u8>>> = pool.map(|path: &PathBuf| std::fs::read(path), &paths)?;
/// assert!(contents[0].is_ok() && contents[1].is_err());
///
/// // Closures may borrow local data, and items may be references.
/// let words = ["map", "reduce"];
/// let offset = 10;
/// let lengths = pool.map(|word: &&str| word.len() + offset, &words)?;
/// assert_eq!(lengths, [13, 16]);
/// # Ok::<(), parpool::Error>(())
/// ```
#[derive(Clone)]
pub struct LocalPool {
    pool: Pool,
}

impl fmt::Debug for LocalPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("LocalPool").field(&self.pool).finish()
    }
}

impl Default for LocalPool {
    /// The same as [`Pool::local`].
    fn default() -> LocalPool {
        Pool::local()
    }
}

impl Pool {
    /// A pool that runs in this process: on threads, or serially if
    /// `PARPOOL_BACKEND=serial`; workers from `PARPOOL_WORKERS` or CPU
    /// detection. `PARPOOL_BACKEND=processes` or `mpi` gives threads here:
    /// a local pool's results never leave the process. See [`LocalPool`].
    ///
    /// # Panics
    ///
    /// If an environment variable holds an invalid value, as
    /// [`Pool::new`] does; [`PoolBuilder::build_local`] returns an `Err`
    /// instead.
    pub fn local() -> LocalPool {
        Pool::builder()
            .build_local()
            .unwrap_or_else(|error| panic!("parpool: {error}"))
    }
}

impl PoolBuilder {
    /// Checks the settings and starts a [`LocalPool`]: threads, or the
    /// serial backend if [`kind`](PoolBuilder::kind) or `PARPOOL_BACKEND`
    /// says `serial`.
    ///
    /// # Errors
    ///
    /// As for [`build`](PoolBuilder::build); and settings that ask for
    /// tasks outside this process: `kind(Processes)` or `kind(Mpi)`, a
    /// [`timeout`](PoolBuilder::timeout) or
    /// [`max_tasks_per_worker`](PoolBuilder::max_tasks_per_worker) (they
    /// need worker processes), or a [backend](PoolBuilder::backend) whose
    /// tasks do not share this process's memory. From the environment,
    /// `processes` and `mpi` give threads.
    pub fn build_local(self) -> Result<LocalPool, Error> {
        let kind = match self.kind {
            Some(kind) => kind,
            None if self.backend.is_some() => BackendKind::Custom,
            // `processes` and `mpi` (compiled in or not) mean threads here.
            None if from_environment_leaves_the_process() => BackendKind::Threads,
            None => match self.resolve_kind()? {
                BackendKind::Serial => BackendKind::Serial,
                _ => BackendKind::Threads,
            },
        };
        if !matches!(kind, BackendKind::Serial | BackendKind::Threads) && self.backend.is_none() {
            return Err(Error::invalid_config(
                "kind",
                kind.name(),
                "a local pool runs in this process: serial or threads (use Pool for \
                 processes or MPI)",
            ));
        }
        let builder = match self.backend {
            Some(_) => self,
            None => self.kind(kind),
        };
        let pool = builder.build()?;
        if !pool.capabilities().shares_memory {
            return Err(Error::invalid_config(
                "backend",
                pool.kind().name(),
                "a local pool's tasks must run in this process (Capabilities::shares_memory)",
            ));
        }
        Ok(LocalPool { pool })
    }
}

/// True if `PARPOOL_BACKEND` asks for a backend outside this process.
fn from_environment_leaves_the_process() -> bool {
    std::env::var(BACKEND_VARIABLE).is_ok_and(|name| {
        matches!(
            name.trim().to_ascii_lowercase().as_str(),
            "processes" | "mpi"
        )
    })
}

impl LocalPool {
    /// A view of this pool whose calls stop when `token` is cancelled; see
    /// [`Pool::with_cancel`].
    pub fn with_cancel(&self, token: &CancelToken) -> LocalPool {
        LocalPool {
            pool: self.pool.with_cancel(token),
        }
    }

    /// How many tasks can run at once.
    pub fn workers(&self) -> usize {
        self.pool.workers()
    }

    /// Which backend runs the tasks (serial, threads, or your own).
    pub fn kind(&self) -> BackendKind {
        self.pool.kind()
    }

    /// [`Pool::map`] without serde bounds: results in input order, failing
    /// fast at the first failed task.
    pub fn map<T, R, F>(&self, f: F, items: impl IntoIterator<Item = T>) -> Result<Vec<R>, Error>
    where
        F: Fn(T) -> R + Sync,
        T: Send,
        R: Send,
    {
        self.map_init(|| (), |_: &mut (), item| f(item), items)
    }

    /// [`Pool::map_init`] without serde bounds: per-worker state made by
    /// `init`.
    pub fn map_init<T, S, R, I, F>(
        &self,
        init: I,
        f: F,
        items: impl IntoIterator<Item = T>,
    ) -> Result<Vec<R>, Error>
    where
        I: Fn() -> S + Sync,
        F: Fn(&mut S, T) -> R + Sync,
        T: Send,
        S: Send,
        R: Send,
    {
        self.pool.run_map_init((init, f), items, Codec::local())
    }

    /// [`Pool::try_map`] without serde bounds: one result per item, going
    /// on past failures.
    pub fn try_map<T, R, F>(
        &self,
        f: F,
        items: impl IntoIterator<Item = T>,
    ) -> Vec<Result<R, Error>>
    where
        F: Fn(T) -> R + Sync,
        T: Send,
        R: Send,
    {
        self.pool.run_try_map(f, items, Codec::local())
    }

    /// [`Pool::map_reduce`] without serde bounds: partials combined in
    /// chunk order, bit-identical for any worker count.
    pub fn map_reduce<T, R, F, Op>(
        &self,
        f: F,
        items: impl IntoIterator<Item = T>,
        identity: R,
        op: Op,
    ) -> Result<R, Error>
    where
        F: Fn(T) -> R + Sync,
        Op: Fn(R, R) -> R + Sync,
        T: Send,
        R: Send + Clone,
    {
        self.pool
            .run_map_reduce((f, identity, op), items, Codec::local())
    }

    /// [`Pool::imap`] without serde bounds: a lazy, bounded stream of
    /// results in input order.
    ///
    /// # Errors
    ///
    /// As for [`Pool::imap`].
    pub fn imap<T, R, F, I>(&self, f: F, input: I) -> Result<Imap<'static, I::IntoIter, R>, Error>
    where
        F: Fn(T) -> R + Send + Sync + 'static,
        I: IntoIterator<Item = T>,
        T: Send + 'static,
        R: Send + 'static,
    {
        let (settings, engine) = self.pool.open_stream_job(self.stream_job(f))?;
        Ok(stream::imap(&settings, input.into_iter(), engine))
    }

    /// [`Pool::imap_unordered`] without serde bounds.
    ///
    /// # Errors
    ///
    /// As for [`Pool::imap`].
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
    {
        let (settings, engine) = self.pool.open_stream_job(self.stream_job(f))?;
        Ok(stream::imap_unordered(&settings, input.into_iter(), engine))
    }

    /// [`Pool::session`] without serde bounds. On threads a session keeps
    /// nothing between calls that a plain call would not have; it is here
    /// so code written for [`Session`] runs on a local pool too.
    ///
    /// # Errors
    ///
    /// As for [`Pool::session`].
    pub fn session<T, R, F>(&self, f: F) -> Result<Session<T, R>, Error>
    where
        F: Fn(T) -> R + Send + Sync + 'static,
        T: Send + 'static,
        R: Send + 'static,
    {
        Session::new(self.pool.stream_settings(), self.stream_job(f))
    }

    fn stream_job<T, R, F>(&self, f: F) -> Arc<dyn crate::job::StreamJob>
    where
        F: Fn(T) -> R + Send + Sync + 'static,
        T: Send + 'static,
        R: Send + 'static,
    {
        let codecs = (Codec::local(), Codec::local());
        Arc::new(TypedStreamJob::new(f, self.pool.limits(), codecs))
    }
}
