//! `sre-agent audit verify --data-dir DIR`: exit 0 on an intact chain; non-zero, naming the
//! first bad record, when a record was altered, removed or reordered.

use std::process::Command;

use sre_agent::act::audit::{AuditLog, FILE};

fn verify(dir: &std::path::Path) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sre-agent"))
        .args(["audit", "verify", "--data-dir"])
        .arg(dir)
        .output()
        .expect("run sre-agent");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn verify_passes_intact_logs_and_names_the_first_tampered_record() {
    let dir = std::env::temp_dir().join(format!("sre-agent-audit-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let log = AuditLog::open(&dir).unwrap();
    for (kind, actor) in [
        ("plan", "planner"),
        ("approval", "alice"),
        ("approval", "bob"),
        ("step_start", "executor"),
    ] {
        log.append(kind, actor, "PLAN-7", serde_json::json!({"note": kind}))
            .unwrap();
    }
    let (ok, text) = verify(&dir);
    assert!(ok, "{text}");
    assert!(text.contains("intact (4 records)"), "{text}");

    let path = dir.join(FILE);
    let original = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = original.lines().collect();
    for (case, tampered) in [
        ("altered", original.replacen("\"bob\"", "\"eve\"", 1)),
        ("removed", [lines[0], lines[1], lines[3]].join("\n") + "\n"),
        (
            "reordered",
            [lines[0], lines[2], lines[1], lines[3]].join("\n") + "\n",
        ),
    ] {
        std::fs::write(&path, tampered).unwrap();
        let (ok, text) = verify(&dir);
        assert!(!ok, "{case}: {text}");
        // The first record that no longer fits: bob's approval (3rd line) when it is altered
        // or removed, the 2nd line when two records swap.
        let expected = if case == "reordered" {
            "record 2"
        } else {
            "record 3"
        };
        assert!(text.contains(expected), "{case}: {text}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
