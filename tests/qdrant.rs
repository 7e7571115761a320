//! The knowledge base in a real Qdrant (feature `qdrant`): runs only when `QDRANT_URL` points at
//! one (its gRPC port, e.g. `http://localhost:6334`); no Qdrant server can run on the CI
//! machines, so elsewhere it says why it skipped.
#![cfg(feature = "qdrant")]

use sre_agent::analyze::knowledge::Entry;
use sre_agent::analyze::qdrant::QdrantKnowledge;

fn entry(id: &str, text: &str, cause: &str) -> Entry {
    Entry {
        id: id.into(),
        kind: "incident".into(),
        title: format!("incident {id}"),
        text: text.into(),
        cause: cause.into(),
        actions: vec![],
        outcome: "resolved after 12 min".into(),
        created_at: "2026-11-26T00:00:00Z".into(),
    }
}

#[tokio::test]
async fn entries_round_trip_and_rank_by_similarity_in_qdrant() {
    let Ok(url) = std::env::var("QDRANT_URL") else {
        eprintln!("skipping: QDRANT_URL is not set (no Qdrant server here)");
        return;
    };
    sre_agent::net::install_crypto_provider();
    let collection = format!("sre_agent_test_{}", std::process::id());
    let api_key = std::env::var("QDRANT_API_KEY").unwrap_or_default();
    let q = QdrantKnowledge::connect(&url, &api_key, &collection)
        .await
        .expect("connect");
    q.upsert(&entry(
        "a",
        "namespace trading service order-service cpu_usage order_latency_p99",
        "cpu_saturation",
    ))
    .await
    .unwrap();
    q.upsert(&entry(
        "b",
        "namespace wallet service wallet-service balance_sync_latency pending_transactions",
        "wallet_sync_stall",
    ))
    .await
    .unwrap();
    let hits = q
        .search("order-service order_latency_p99 cpu_usage trading", 2, 0.0)
        .await
        .unwrap();
    assert_eq!(hits[0].entry.cause, "cpu_saturation", "{hits:?}");
    assert_eq!(hits[0].entry.outcome, "resolved after 12 min");
    assert!(hits[0].similarity > hits.get(1).map_or(0.0, |h| h.similarity));
}
