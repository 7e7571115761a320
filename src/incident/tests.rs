use super::*;

fn event(id: u64, kind: EventKind, labels: &[(&str, &str)], ts: i64) -> AnomalyEvent {
    crate::detect::event::test_event(id, kind, labels, ts, Severity::High)
}

fn book() -> IncidentBook {
    IncidentBook::new(IncidentParams {
        group_by: vec!["namespace".into(), "service".into()],
        window: Duration::from_secs(600),
        max_resolved: 10,
    })
}

fn observe(b: &IncidentBook, e: &AnomalyEvent) -> (String, Change) {
    let (id, change, _) = b.observe(e, &Anomaly::from_event(e));
    (id, change)
}

const ORDER_1: &[(&str, &str)] = &[
    ("__name__", "order_latency_p99"),
    ("namespace", "trading"),
    ("pod", "order-1"),
    ("service", "order-service"),
];

#[test]
fn an_alert_storm_of_one_service_is_one_incident() {
    let b = book();
    let mut ids = BTreeSet::new();
    for i in 0..25u64 {
        let pod = format!("order-{i}");
        let metric = if i % 2 == 0 {
            "cpu_usage"
        } else {
            "order_latency_p99"
        };
        let labels = [
            ("__name__", metric),
            ("namespace", "trading"),
            ("pod", pod.as_str()),
            ("service", "order-service"),
        ];
        let (id, change) = observe(
            &b,
            &event(i + 1, EventKind::Fired, &labels, 1000 + i as i64),
        );
        assert_eq!(
            change,
            if i == 0 {
                Change::Opened
            } else {
                Change::Joined
            }
        );
        ids.insert(id);
    }
    assert_eq!(ids.len(), 1);
    let incident = b.list(None).remove(0);
    assert_eq!(incident.anomalies.len(), 25);
    assert_eq!(incident.anomalies_firing, 25);
    assert_eq!(incident.state, IncidentState::Open);
    assert_eq!(
        incident.title,
        "cpu_usage, order_latency_p99 anomalous in trading/order-service (25 series)"
    );
    // Another service is another incident.
    let other = [
        ("__name__", "cpu_usage"),
        ("namespace", "wallet"),
        ("service", "wallet-service"),
    ];
    let (id, change) = observe(&b, &event(99, EventKind::Fired, &other, 2000));
    assert_eq!(change, Change::Opened);
    assert!(!ids.contains(&id));
    assert_eq!(b.active_count(), 2);
}

#[test]
fn lifecycle_follows_the_anomalies_mitigated_reopened_resolved() {
    let b = book();
    let (id, _) = observe(&b, &event(1, EventKind::Fired, ORDER_1, 0));
    let (_, change) = observe(&b, &event(1, EventKind::Resolved, ORDER_1, 60_000));
    assert_eq!(change, Change::Mitigated);
    assert_eq!(b.get(&id).unwrap().state, IncidentState::Mitigated);
    // Within the window a new anomaly of the group reopens it.
    let (again, change) = observe(&b, &event(2, EventKind::Fired, ORDER_1, 120_000));
    assert_eq!((again.as_str(), change), (id.as_str(), Change::Reopened));
    observe(&b, &event(2, EventKind::Resolved, ORDER_1, 180_000));
    b.tick(180_000 + 599_000);
    assert_eq!(b.get(&id).unwrap().state, IncidentState::Mitigated);
    b.tick(180_000 + 600_000);
    let resolved = b.get(&id).unwrap();
    assert_eq!(resolved.state, IncidentState::Resolved);
    assert!(resolved.resolved_at.is_some());
    // After resolution the group starts afresh.
    let (next, change) = observe(&b, &event(3, EventKind::Fired, ORDER_1, 900_000));
    assert_ne!(next, id);
    assert_eq!(change, Change::Opened);
    assert_eq!(b.list(Some(IncidentState::Resolved)).len(), 1);
    assert_eq!(b.of_anomaly(3).as_deref(), Some(next.as_str()));
}

#[test]
fn series_without_group_labels_group_by_category_and_old_incidents_are_dropped() {
    let b = book();
    let bare = [("__name__", "orders_total")];
    let (a, _) = observe(&b, &event(1, EventKind::Fired, &bare, 0));
    let (c, _) = observe(
        &b,
        &event(2, EventKind::Fired, &[("__name__", "order_qps")], 10),
    );
    assert_eq!(a, c);
    assert_eq!(
        b.get(&a).unwrap().group,
        [("category".to_string(), "trading".to_string())].into()
    );
    for i in 0..20u64 {
        let ns = format!("ns{i}");
        let labels = [("__name__", "m"), ("namespace", ns.as_str())];
        let t = 1000 + i as i64 * 1000;
        observe(&b, &event(100 + i, EventKind::Fired, &labels, t));
        observe(&b, &event(100 + i, EventKind::Resolved, &labels, t + 1));
    }
    b.tick(10_000_000);
    assert_eq!(
        b.list(Some(IncidentState::Resolved)).len(),
        10,
        "max_resolved kept"
    );
}

#[test]
fn incidents_survive_a_restart_and_ids_are_not_reused() {
    let dir = std::env::temp_dir().join(format!("sre-agent-incidents-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let b = book();
    let (open_id, _) = observe(&b, &event(1, EventKind::Fired, ORDER_1, 500_000));
    let other = [
        ("__name__", "cpu_usage"),
        ("namespace", "risk"),
        ("service", "risk"),
    ];
    let (done_id, _) = observe(&b, &event(2, EventKind::Fired, &other, 1_000));
    observe(&b, &event(2, EventKind::Resolved, &other, 2_000));
    b.tick(2_000 + 600_000);
    assert_eq!(b.get(&done_id).unwrap().state, IncidentState::Resolved);
    b.record_remediation(
        &open_id,
        RemediationNote {
            plan_id: "PLAN-1".into(),
            playbook_id: "pod-restart".into(),
            status: "running".into(),
            dry_run: false,
            actions: vec![],
        },
    );
    assert!(b.save_if_changed(&dir).unwrap());
    assert!(!b.save_if_changed(&dir).unwrap(), "nothing changed since");

    let restored = book();
    assert_eq!(restored.restore(&dir).unwrap(), 2);
    let was_open = restored.get(&open_id).unwrap();
    // Its anomalies were not saved: it comes back mitigated, with what it had.
    assert_eq!(was_open.state, IncidentState::Mitigated);
    assert_eq!(was_open.anomalies.len(), 1);
    assert_eq!(was_open.anomalies[0].kind, "anomaly");
    assert_eq!(was_open.remediation[0].plan_id, "PLAN-1");
    assert_eq!(
        restored.get(&done_id).unwrap().state,
        IncidentState::Resolved
    );
    // The same group's next anomaly reopens it; a new group gets a fresh id.
    let (again, change) = observe(&restored, &event(7, EventKind::Fired, ORDER_1, 700_000));
    assert_eq!(
        (again.as_str(), change),
        (open_id.as_str(), Change::Reopened)
    );
    let fresh = [("__name__", "x"), ("namespace", "api"), ("service", "gw")];
    let (new_id, _) = observe(&restored, &event(8, EventKind::Fired, &fresh, 700_000));
    assert!(new_id != open_id && new_id != done_id, "{new_id}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn every_change_signals_the_journal_and_concurrent_saves_do_not_collide() {
    let dir = std::env::temp_dir().join(format!("sre-agent-incidents-race-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let b = std::sync::Arc::new(book());
    let changes = b.changes();
    observe(&b, &event(1, EventKind::Fired, ORDER_1, 1_000));
    // A permit is kept for a journal task that was not waiting yet.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(1), changes.notified())
            .await
            .expect("signalled");
    });
    // The journal task and the shutdown save at once: both succeed, the file is whole.
    let savers: Vec<_> = (0..4)
        .map(|t| {
            let (b, dir) = (b.clone(), dir.clone());
            std::thread::spawn(move || {
                for i in 0..50u64 {
                    let labels = [("__name__", "m"), ("namespace", "n"), ("service", "s")];
                    observe(
                        &b,
                        &event(10 + t * 100 + i, EventKind::Fired, &labels, 2_000),
                    );
                    b.save_if_changed(&dir).expect("save");
                }
            })
        })
        .collect();
    for s in savers {
        s.join().unwrap();
    }
    let restored = book();
    assert_eq!(restored.restore(&dir).unwrap(), b.list(None).len());
    let _ = std::fs::remove_dir_all(&dir);
}
