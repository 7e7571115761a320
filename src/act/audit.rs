//! The audit log: an append-only JSON-lines file in the data directory where every plan,
//! approval, rejection, step start and end, dry run and refusal is written and fsync'd before
//! the side effect it describes. Each record carries the SHA-256 of the previous one, so an
//! edit, a removal or a reordering breaks the chain at the first record it touches, and
//! [`verify`] (`sre-agent audit verify`) names it. A record's hash is taken over the exact bytes
//! of its line as written (with the hash value left empty), so even a change that parses back
//! to the same JSON is caught; records written before that (no `v`) are checked as before.
//!
//! Records hold what was decided and by whom; callers never put credentials in `detail`.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

pub const FILE: &str = "audit.jsonl";
/// `prev_hash` of the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Record {
    /// 2: hashed over the line's bytes. Absent: hashed over the re-serialized fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub v: Option<u8>,
    pub seq: u64,
    /// RFC 3339 wall clock.
    pub at: String,
    /// e.g. plan, approval, rejection, step_start, step_end, dry_run, refusal, token_refused.
    pub kind: String,
    /// Who did it: an approver, `executor`, `planner`, `api`.
    pub actor: String,
    /// What it is about: a plan or incident id.
    pub subject: String,
    pub detail: serde_json::Value,
    pub prev_hash: String,
    pub hash: String,
}

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit log {path}: {reason}")]
    Io {
        path: PathBuf,
        reason: std::io::Error,
    },
    #[error("audit log {path} is damaged at record {line}: {reason}; refusing to append")]
    Damaged {
        path: PathBuf,
        line: usize,
        reason: String,
    },
}

/// Why verification failed: the first bad record (1-based line) and what is wrong with it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("record {line}: {reason}")]
pub struct VerifyError {
    pub line: usize,
    pub reason: String,
}

fn sha256_hex(bytes: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// The line of a version-2 record with its hash value emptied, as hashed; `None` when the line
/// does not end in the record's own hash field.
fn hashed_bytes(line: &str, hash: &str) -> Option<String> {
    let prefix = line.strip_suffix(&format!("\"hash\":\"{hash}\"}}"))?;
    Some(format!("{prefix}\"hash\":\"\"}}"))
}

/// The hash of a legacy record: SHA-256 over its fields (hash excluded) in a fixed order.
fn hash_of(r: &Record) -> String {
    let body = serde_json::json!([
        r.seq,
        r.at,
        r.kind,
        r.actor,
        r.subject,
        r.detail,
        r.prev_hash
    ]);
    sha256_hex(body.to_string().as_bytes())
}

struct Tail {
    seq: u64,
    hash: String,
}

pub struct AuditLog {
    path: PathBuf,
    tail: Mutex<Tail>,
}

impl AuditLog {
    /// Opens the log in `dir` (creating it), checking the whole chain first: appending to a
    /// damaged log would bury the damage.
    pub fn open(dir: &Path) -> Result<Self, AuditError> {
        let path = dir.join(FILE);
        let io = |reason| AuditError::Io {
            path: path.clone(),
            reason,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        repair_torn_tail(&path).map_err(io)?;
        let (seq, hash) = if path.exists() {
            match verify(&path) {
                Ok(summary) => (summary.records, summary.last_hash),
                Err(e) => {
                    return Err(AuditError::Damaged {
                        path,
                        line: e.line,
                        reason: e.reason,
                    });
                }
            }
        } else {
            (0, GENESIS.to_string())
        };
        Ok(Self {
            path,
            tail: Mutex::new(Tail { seq, hash }),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends a record and fsyncs it before returning: the caller acts only after this.
    pub fn append(
        &self,
        kind: &str,
        actor: &str,
        subject: &str,
        detail: serde_json::Value,
    ) -> Result<Record, AuditError> {
        let mut tail = self.tail.lock().unwrap_or_else(|p| p.into_inner());
        let mut record = Record {
            v: Some(2),
            seq: tail.seq + 1,
            at: crate::model::clock::rfc3339(std::time::SystemTime::now()),
            kind: kind.into(),
            actor: actor.into(),
            subject: subject.into(),
            detail,
            prev_hash: tail.hash.clone(),
            hash: String::new(),
        };
        let io = |reason| AuditError::Io {
            path: self.path.clone(),
            reason,
        };
        // `hash` is the last field: hash the line with it empty, then fill it in.
        let unhashed = serde_json::to_string(&record).map_err(|e| io(std::io::Error::other(e)))?;
        record.hash = sha256_hex(unhashed.as_bytes());
        let mut line = unhashed
            .strip_suffix("\"hash\":\"\"}")
            .map(|prefix| format!("{prefix}\"hash\":\"{}\"}}", record.hash))
            .ok_or_else(|| {
                io(std::io::Error::other(
                    "record does not end in its hash field",
                ))
            })?;
        line.push('\n');
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(io)?;
        f.write_all(line.as_bytes()).map_err(io)?;
        f.sync_data().map_err(io)?;
        tail.seq = record.seq;
        tail.hash = record.hash.clone();
        Ok(record)
    }

    /// Every record, oldest first (start-up replay).
    pub fn all(&self) -> Result<Vec<Record>, AuditError> {
        self.recent(usize::MAX)
    }

    /// The last `limit` records (oldest first), for the API.
    pub fn recent(&self, limit: usize) -> Result<Vec<Record>, AuditError> {
        let io = |reason| AuditError::Io {
            path: self.path.clone(),
            reason,
        };
        if !self.path.exists() {
            return Ok(Vec::new());
        }
        let file = std::fs::File::open(&self.path).map_err(io)?;
        let mut out = std::collections::VecDeque::new();
        for line in std::io::BufReader::new(file).lines() {
            let line = line.map_err(io)?;
            if let Ok(r) = serde_json::from_str::<Record>(&line) {
                out.push_back(r);
                if out.len() > limit {
                    out.pop_front();
                }
            }
        }
        Ok(out.into())
    }
}

/// A crash mid-append can leave a last line without its newline. Its record was never
/// fsync'd, so nothing it describes happened (callers act only after `append` returns): the
/// fragment is cut off, and said so, instead of refusing to start.
fn repair_torn_tail(path: &Path) -> std::io::Result<()> {
    let Ok(bytes) = std::fs::read(path) else {
        return Ok(());
    };
    if bytes.is_empty() || bytes.ends_with(b"\n") {
        return Ok(());
    }
    let keep = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    tracing::warn!(path = %path.display(), cut_bytes = bytes.len() - keep, "audit log ended in a partly written record (crash mid-append); cutting it off");
    let f = std::fs::OpenOptions::new().write(true).open(path)?;
    f.set_len(keep as u64)?;
    f.sync_all()
}

#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub records: u64,
    pub last_hash: String,
}

/// Checks the chain of the log at `path`: every line parses, sequence numbers run 1, 2, 3…,
/// each record's `prev_hash` is the previous record's hash and its own hash matches its content.
pub fn verify(path: &Path) -> Result<Summary, VerifyError> {
    let file = std::fs::File::open(path).map_err(|e| VerifyError {
        line: 0,
        reason: format!("cannot read {}: {e}", path.display()),
    })?;
    let mut prev = GENESIS.to_string();
    let mut count = 0u64;
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let n = i + 1;
        let bad = |reason: String| VerifyError { line: n, reason };
        let line = line.map_err(|e| bad(format!("unreadable: {e}")))?;
        let r: Record =
            serde_json::from_str(&line).map_err(|e| bad(format!("not a record ({e})")))?;
        if r.seq != count + 1 {
            return Err(bad(format!(
                "sequence {} where {} was expected (a record was removed or reordered)",
                r.seq,
                count + 1
            )));
        }
        if r.prev_hash != prev {
            return Err(bad(
                "prev_hash does not match the previous record (removed, reordered or altered)"
                    .into(),
            ));
        }
        let computed = match r.v {
            None => hash_of(&r),
            Some(2) => match hashed_bytes(&line, &r.hash) {
                Some(bytes) => sha256_hex(bytes.as_bytes()),
                None => return Err(bad("the line does not end in its hash (altered)".into())),
            },
            Some(v) => return Err(bad(format!("unknown record version {v}"))),
        };
        if computed != r.hash {
            return Err(bad("hash does not match the content (altered)".into()));
        }
        prev = r.hash;
        count += 1;
    }
    Ok(Summary {
        records: count,
        last_hash: prev,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("sre-agent-audit-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    fn write_three(d: &Path) {
        let log = AuditLog::open(d).unwrap();
        log.append("plan", "planner", "PLAN-1", serde_json::json!({"steps": 2}))
            .unwrap();
        log.append("approval", "alice", "PLAN-1", serde_json::json!({}))
            .unwrap();
        log.append(
            "step_start",
            "executor",
            "PLAN-1",
            serde_json::json!({"action": "pod_restart"}),
        )
        .unwrap();
    }

    fn lines(d: &Path) -> Vec<String> {
        std::fs::read_to_string(d.join(FILE))
            .unwrap()
            .lines()
            .map(String::from)
            .collect()
    }

    fn rewrite(d: &Path, lines: &[String]) {
        std::fs::write(d.join(FILE), lines.join("\n") + "\n").unwrap();
    }

    #[test]
    fn an_intact_chain_verifies_and_survives_reopening() {
        let d = dir("intact");
        write_three(&d);
        assert_eq!(verify(&d.join(FILE)).unwrap().records, 3);
        let log = AuditLog::open(&d).unwrap();
        let r = log
            .append(
                "step_end",
                "executor",
                "PLAN-1",
                serde_json::json!({"ok": true}),
            )
            .unwrap();
        assert_eq!(r.seq, 4);
        assert_eq!(verify(&d.join(FILE)).unwrap().records, 4);
        assert_eq!(log.recent(2).unwrap().len(), 2);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_record_torn_by_a_crash_is_cut_off_at_open() {
        let d = dir("torn");
        write_three(&d);
        let mut text = std::fs::read_to_string(d.join(FILE)).unwrap();
        text.push_str("{\"seq\":4,\"at\":\"2026-");
        std::fs::write(d.join(FILE), &text).unwrap();
        assert!(verify(&d.join(FILE)).is_err());
        let log = AuditLog::open(&d).unwrap();
        assert_eq!(log.all().unwrap().len(), 3);
        let r = log
            .append("refusal", "executor", "PLAN-1", serde_json::json!({}))
            .unwrap();
        assert_eq!(r.seq, 4);
        assert_eq!(verify(&d.join(FILE)).unwrap().records, 4);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn alteration_removal_and_reordering_are_named() {
        let d = dir("tamper");
        write_three(&d);
        let original = lines(&d);

        let mut altered = original.clone();
        altered[1] = altered[1].replace("alice", "mallory");
        rewrite(&d, &altered);
        let e = verify(&d.join(FILE)).unwrap_err();
        assert_eq!(e.line, 2, "{e}");
        assert!(e.reason.contains("altered"), "{e}");
        assert!(matches!(
            AuditLog::open(&d),
            Err(AuditError::Damaged { line: 2, .. })
        ));

        let mut removed = original.clone();
        removed.remove(1);
        rewrite(&d, &removed);
        assert_eq!(verify(&d.join(FILE)).unwrap_err().line, 2);

        let mut reordered = original.clone();
        reordered.swap(1, 2);
        rewrite(&d, &reordered);
        assert_eq!(verify(&d.join(FILE)).unwrap_err().line, 2);

        // Rewriting a record and its hash still breaks the next link.
        let mut forged: Vec<Record> = original
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        forged[0].actor = "mallory".into();
        forged[0].hash = String::new();
        forged[0].hash = sha256_hex(serde_json::to_string(&forged[0]).unwrap().as_bytes());
        rewrite(
            &d,
            &forged
                .iter()
                .map(|r| serde_json::to_string(r).unwrap())
                .collect::<Vec<_>>(),
        );
        assert_eq!(verify(&d.join(FILE)).unwrap_err().line, 2);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn an_edit_that_parses_back_the_same_is_still_caught() {
        let d = dir("bytes");
        write_three(&d);
        let mut spaced = lines(&d);
        // Same JSON once parsed; different bytes.
        spaced[1] = spaced[1].replacen("\"kind\":", "\"kind\": ", 1);
        assert_ne!(spaced[1], lines(&d)[1]);
        rewrite(&d, &spaced);
        let e = verify(&d.join(FILE)).unwrap_err();
        assert_eq!(e.line, 2, "{e}");
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_log_written_before_byte_hashes_still_verifies_and_grows() {
        let d = dir("legacy");
        std::fs::create_dir_all(&d).unwrap();
        let mut prev = GENESIS.to_string();
        let mut old = Vec::new();
        for seq in 1..=2 {
            let mut r = Record {
                v: None,
                seq,
                at: "2026-01-01T00:00:00Z".into(),
                kind: "plan".into(),
                actor: "planner".into(),
                subject: format!("PLAN-{seq}"),
                detail: serde_json::json!({"n": seq}),
                prev_hash: prev.clone(),
                hash: String::new(),
            };
            r.hash = hash_of(&r);
            prev = r.hash.clone();
            old.push(serde_json::to_string(&r).unwrap());
        }
        rewrite(&d, &old);
        let log = AuditLog::open(&d).expect("the old chain verifies");
        log.append("approval", "alice", "PLAN-2", serde_json::json!({}))
            .unwrap();
        let s = verify(&d.join(FILE)).unwrap();
        assert_eq!(s.records, 3);
        let _ = std::fs::remove_dir_all(&d);
    }
}
