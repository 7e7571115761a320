//! The tasks the agent runs and how they stop: every long-lived task (upkeep, snapshots,
//! write-back, scrapers, the RCA worker, the knowledge-base writer, the notifiers) is spawned
//! here into one `JoinSet` under one cancellation token. Shutdown cancels the token, lets each
//! task finish its current step and drain what is already queued, and waits for them within a
//! grace period; what is still running after it is aborted and counted in the log. It must not
//! hold any state of its own beyond the tasks.

use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

#[derive(Default)]
pub struct Topology {
    tasks: Mutex<JoinSet<()>>,
    cancel: CancellationToken,
}

/// How shutdown went.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Stopped {
    /// Tasks that finished within the grace period.
    pub finished: usize,
    /// Tasks that panicked (logged).
    pub panicked: usize,
    /// Tasks still running at the deadline, aborted.
    pub aborted: usize,
}

impl Topology {
    /// The token a task that drains on shutdown watches (see [`Topology::spawn_draining`]).
    pub fn token(&self) -> CancellationToken {
        self.cancel.clone()
    }

    pub fn is_stopping(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// A task with nothing to hand over: it is dropped at its next await once shutdown starts.
    pub fn spawn(&self, name: &'static str, task: impl Future<Output = ()> + Send + 'static) {
        let cancel = self.cancel.clone();
        self.lock().spawn(async move {
            tokio::select! {
                () = task => tracing::debug!(task = name, "task ended"),
                () = cancel.cancelled() => tracing::debug!(task = name, "task stopped"),
            }
        });
    }

    /// A task that owns a queue: it watches the token itself, closes its queue when it fires and
    /// returns once what was queued is handled.
    pub fn spawn_draining(&self, task: impl Future<Output = ()> + Send + 'static) {
        self.lock().spawn(task);
    }

    /// Cancels every task and waits up to `grace` for them to finish.
    pub async fn shutdown(&self, grace: Duration) -> Stopped {
        self.cancel.cancel();
        let mut set = std::mem::take(&mut *self.lock());
        let mut stopped = Stopped::default();
        let deadline = tokio::time::Instant::now() + grace;
        loop {
            match tokio::time::timeout_at(deadline, set.join_next()).await {
                Ok(None) => break,
                Ok(Some(Ok(()))) => stopped.finished += 1,
                Ok(Some(Err(e))) => {
                    if e.is_panic() {
                        stopped.panicked += 1;
                        tracing::error!(error = %e, "a task panicked");
                    } else {
                        stopped.finished += 1;
                    }
                }
                Err(_) => {
                    stopped.aborted = set.len();
                    tracing::warn!(tasks = set.len(), grace = ?grace, "tasks still busy at the shutdown deadline; aborted");
                    set.abort_all();
                    while set.join_next().await.is_some() {}
                    break;
                }
            }
        }
        stopped
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, JoinSet<()>> {
        self.tasks.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test]
    async fn shutdown_stops_plain_tasks_and_lets_draining_ones_finish_their_queue() {
        let t = Topology::default();
        t.spawn("forever", std::future::pending());
        let (tx, mut rx) = tokio::sync::mpsc::channel::<u32>(8);
        let handled = Arc::new(AtomicUsize::new(0));
        let (h, token) = (handled.clone(), t.token());
        t.spawn_draining(async move {
            loop {
                tokio::select! {
                    item = rx.recv() => match item {
                        Some(_) => { h.fetch_add(1, Ordering::SeqCst); }
                        None => return,
                    },
                    () = token.cancelled() => rx.close(),
                }
            }
        });
        for i in 0..5 {
            tx.try_send(i).expect("room");
        }
        let stopped = t.shutdown(Duration::from_secs(5)).await;
        assert_eq!(
            stopped,
            Stopped {
                finished: 2,
                panicked: 0,
                aborted: 0
            }
        );
        assert_eq!(handled.load(Ordering::SeqCst), 5);
        assert!(
            tx.try_send(9).is_err(),
            "the queue is closed after shutdown"
        );
    }

    #[tokio::test]
    async fn a_task_that_ignores_the_token_is_aborted_at_the_deadline() {
        let t = Topology::default();
        t.spawn_draining(std::future::pending());
        t.spawn("quick", async {});
        let stopped = t.shutdown(Duration::from_millis(50)).await;
        assert_eq!(stopped.aborted, 1);
        assert_eq!(stopped.finished, 1);
    }
}
