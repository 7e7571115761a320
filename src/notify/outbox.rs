//! The webhook outbox: every notification is appended here (fsync'd) before it is sent, and
//! acknowledged after the receiver answered 2xx, so a crash, a restart or a receiver that is
//! down for a while loses nothing: at start the unacknowledged ones are sent again, in order
//! (at-least-once; each carries a key for the receiver to drop a repeat). Bounded: past
//! `max_bytes` the oldest are dropped, counted and logged. Without a directory it keeps the
//! same order and bound in memory only.
//!
//! Files: `<dir>/webhook-outbox.jsonl` (one entry per line) and `<dir>/webhook-outbox.acks`
//! (delivered sequence numbers). Both are rewritten to the pending entries only when opened
//! and whenever everything has been delivered, so they stay small. Blocking I/O: the worker
//! calls it on `spawn_blocking`.

use std::collections::{HashSet, VecDeque};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The webhook's outbox files; Alertmanager's are `alertmanager-outbox.*`.
pub const WEBHOOK: &str = "webhook-outbox";
pub const ALERTMANAGER: &str = "alertmanager-outbox";
#[cfg(test)]
const ENTRIES: &str = "webhook-outbox.jsonl";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub seq: u64,
    /// `<subject>.<event>.<seq>`: the receiver's de-duplication key (header and body).
    pub key: String,
    pub event: String,
    pub subject: String,
    pub body: serde_json::Value,
}

#[derive(Debug, thiserror::Error)]
#[error("outbox {path}: {reason}")]
pub struct OutboxError {
    pub path: PathBuf,
    pub reason: std::io::Error,
}

struct Files {
    entries: PathBuf,
    acks: PathBuf,
}

pub struct Outbox {
    files: Option<Files>,
    pending: VecDeque<(Entry, usize)>,
    bytes: usize,
    max_bytes: usize,
    next_seq: u64,
}

/// What opening found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Reopened {
    pub pending: usize,
    /// Lines that did not parse (a write torn by a crash): skipped.
    pub damaged: usize,
}

impl Outbox {
    /// In memory only: nothing survives the process.
    pub fn in_memory(max_bytes: usize) -> Self {
        Self {
            files: None,
            pending: VecDeque::new(),
            bytes: 0,
            max_bytes,
            next_seq: 1,
        }
    }

    /// Opens (or creates) the outbox in `dir` with what an earlier run left undelivered.
    pub fn open(dir: &Path, max_bytes: usize) -> Result<(Self, Reopened), OutboxError> {
        Self::open_named(dir, WEBHOOK, max_bytes)
    }

    /// An outbox in `dir` as `<stem>.jsonl` (entries) and `<stem>.acks`.
    pub fn open_named(
        dir: &Path,
        stem: &str,
        max_bytes: usize,
    ) -> Result<(Self, Reopened), OutboxError> {
        let files = Files {
            entries: dir.join(format!("{stem}.jsonl")),
            acks: dir.join(format!("{stem}.acks")),
        };
        let err = |path: &Path| {
            let path = path.to_path_buf();
            move |reason| OutboxError { path, reason }
        };
        std::fs::create_dir_all(dir).map_err(err(dir))?;
        let acked: HashSet<u64> = read_lines(&files.acks)
            .map_err(err(&files.acks))?
            .iter()
            .filter_map(|l| l.trim().parse().ok())
            .collect();
        let mut out = Self::in_memory(max_bytes);
        let mut found = Reopened::default();
        for line in read_lines(&files.entries).map_err(err(&files.entries))? {
            match serde_json::from_str::<Entry>(&line) {
                Ok(e) => {
                    out.next_seq = out.next_seq.max(e.seq + 1);
                    if !acked.contains(&e.seq) {
                        out.bytes += line.len() + 1;
                        out.pending.push_back((e, line.len() + 1));
                    }
                }
                Err(_) => found.damaged += 1,
            }
        }
        found.pending = out.pending.len();
        out.files = Some(files);
        out.compact()?;
        Ok((out, found))
    }

    pub fn len(&self) -> usize {
        self.pending.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// The oldest undelivered notification.
    pub fn head(&self) -> Option<&Entry> {
        self.pending.front().map(|(e, _)| e)
    }

    /// Appends notifications (one fsync for all of them); returns the oldest ones dropped to
    /// stay within the bound.
    pub fn push(
        &mut self,
        items: Vec<(String, String, serde_json::Value)>,
    ) -> Result<Vec<Entry>, OutboxError> {
        let mut text = String::new();
        let mut added = Vec::with_capacity(items.len());
        for (event, subject, body) in items {
            let seq = self.next_seq;
            self.next_seq += 1;
            let entry = Entry {
                seq,
                key: format!("{subject}.{event}.{seq}"),
                event,
                subject,
                body,
            };
            let line = serde_json::to_string(&entry).unwrap_or_default();
            text.push_str(&line);
            text.push('\n');
            added.push((entry, line.len() + 1));
        }
        if let Some(files) = &self.files {
            append(&files.entries, text.as_bytes(), true).map_err(|reason| OutboxError {
                path: files.entries.clone(),
                reason,
            })?;
        }
        let mut dropped = Vec::new();
        for (entry, size) in added {
            self.bytes += size;
            self.pending.push_back((entry, size));
        }
        while self.bytes > self.max_bytes && self.pending.len() > 1 {
            if let Some((old, size)) = self.pending.pop_front() {
                self.bytes -= size;
                self.record_ack(old.seq)?;
                dropped.push(old);
            }
        }
        Ok(dropped)
    }

    /// The head was delivered (or refused for good): it is not sent again.
    pub fn ack_head(&mut self) -> Result<(), OutboxError> {
        let Some((entry, size)) = self.pending.pop_front() else {
            return Ok(());
        };
        self.bytes -= size;
        if self.pending.is_empty() {
            // Everything delivered: start both files afresh.
            return self.compact();
        }
        self.record_ack(entry.seq)
    }

    fn record_ack(&self, seq: u64) -> Result<(), OutboxError> {
        let Some(files) = &self.files else {
            return Ok(());
        };
        // Not fsync'd: a lost ack only means one more delivery, which the key makes harmless.
        append(&files.acks, format!("{seq}\n").as_bytes(), false).map_err(|reason| OutboxError {
            path: files.acks.clone(),
            reason,
        })
    }

    /// Rewrites the entries file to the pending entries only and empties the acks.
    fn compact(&mut self) -> Result<(), OutboxError> {
        let Some(files) = &self.files else {
            return Ok(());
        };
        let err = |path: &Path| {
            let path = path.to_path_buf();
            move |reason| OutboxError { path, reason }
        };
        let tmp = files.entries.with_extension("jsonl.tmp");
        let mut text = String::new();
        for (e, _) in &self.pending {
            text.push_str(&serde_json::to_string(e).unwrap_or_default());
            text.push('\n');
        }
        {
            let mut f = std::fs::File::create(&tmp).map_err(err(&tmp))?;
            f.write_all(text.as_bytes()).map_err(err(&tmp))?;
            f.sync_data().map_err(err(&tmp))?;
        }
        std::fs::rename(&tmp, &files.entries).map_err(err(&files.entries))?;
        std::fs::write(&files.acks, b"").map_err(err(&files.acks))?;
        Ok(())
    }
}

fn read_lines(path: &Path) -> std::io::Result<Vec<String>> {
    match std::fs::File::open(path) {
        Ok(f) => std::io::BufReader::new(f).lines().collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

fn append(path: &Path, bytes: &[u8], sync: bool) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    f.write_all(bytes)?;
    if sync {
        f.sync_data()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("sre-agent-outbox-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    fn item(n: u32) -> (String, String, serde_json::Value) {
        (
            "incident.opened".into(),
            format!("INC-{n}"),
            serde_json::json!({"n": n}),
        )
    }

    #[test]
    fn undelivered_notifications_survive_a_restart_in_order() {
        let d = dir("restart");
        let (mut o, found) = Outbox::open(&d, 1 << 20).unwrap();
        assert_eq!(found, Reopened::default());
        o.push((1..=4).map(item).collect()).unwrap();
        assert_eq!(o.head().unwrap().key, "INC-1.incident.opened.1");
        o.ack_head().unwrap();
        drop(o);
        let (mut o, found) = Outbox::open(&d, 1 << 20).unwrap();
        assert_eq!(found.pending, 3);
        let subjects: Vec<String> = o.pending.iter().map(|(e, _)| e.subject.clone()).collect();
        assert_eq!(subjects, ["INC-2", "INC-3", "INC-4"]);
        // Sequence numbers go on from where they were.
        o.push(vec![item(5)]).unwrap();
        assert_eq!(o.pending.back().unwrap().0.seq, 5);
        for _ in 0..4 {
            o.ack_head().unwrap();
        }
        assert!(o.is_empty());
        drop(o);
        let (o, found) = Outbox::open(&d, 1 << 20).unwrap();
        assert!(o.is_empty() && found.pending == 0);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_torn_last_line_is_skipped_and_the_bound_drops_the_oldest() {
        let d = dir("torn");
        let (mut o, _) = Outbox::open(&d, 1 << 20).unwrap();
        o.push(vec![item(1), item(2)]).unwrap();
        drop(o);
        append(&d.join(ENTRIES), b"{\"seq\":3,\"key\":", false).unwrap();
        let (mut o, found) = Outbox::open(&d, 200).unwrap();
        assert_eq!(
            found,
            Reopened {
                pending: 2,
                damaged: 1
            }
        );
        let dropped = o.push(vec![item(3), item(4)]).unwrap();
        assert!(!dropped.is_empty());
        assert_eq!(dropped[0].subject, "INC-1", "the oldest goes first");
        assert!(o.bytes <= 200 || o.len() == 1);
        let _ = std::fs::remove_dir_all(&d);
    }
}
