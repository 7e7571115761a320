//! The knowledge base in Qdrant (feature `qdrant`, `QDRANT_URL`): entries are upserted with a
//! dense vector of their hashed features, and similar ones are found by Qdrant's cosine search
//! instead of the embedded index. The embedded JSON-lines file is still written: it is the
//! source of truth a new Qdrant collection can be rebuilt from.

use qdrant_client::Qdrant;
use qdrant_client::qdrant::{
    CreateCollectionBuilder, Distance, PointStruct, QueryPointsBuilder, UpsertPointsBuilder,
    VectorParamsBuilder,
};

use super::knowledge::{
    DENSE_DIMENSIONS, Entry, Match, RemoteFuture, RemoteKnowledge, dense_vector,
};

pub struct QdrantKnowledge {
    client: Qdrant,
    collection: String,
}

impl QdrantKnowledge {
    /// Connects and creates the collection when missing.
    pub async fn connect(url: &str, api_key: &str, collection: &str) -> Result<Self, String> {
        let mut builder = Qdrant::from_url(url);
        if !api_key.is_empty() {
            builder = builder.api_key(api_key.to_string());
        }
        let client = builder.build().map_err(|e| format!("Qdrant client: {e}"))?;
        let exists = client
            .collection_exists(collection)
            .await
            .map_err(|e| format!("Qdrant at {}: {e}", crate::net::redact_url(url)))?;
        if !exists {
            client
                .create_collection(CreateCollectionBuilder::new(collection).vectors_config(
                    VectorParamsBuilder::new(DENSE_DIMENSIONS as u64, Distance::Cosine),
                ))
                .await
                .map_err(|e| format!("creating Qdrant collection {collection}: {e}"))?;
        }
        Ok(Self {
            client,
            collection: collection.to_string(),
        })
    }

    pub async fn upsert(&self, entry: &Entry) -> Result<(), String> {
        let payload = qdrant_client::Payload::try_from(
            serde_json::to_value(entry).map_err(|e| e.to_string())?,
        )
        .map_err(|e| format!("payload: {e}"))?;
        // Qdrant ids are integers or UUIDs: a hash of ours.
        let id = xxhash_rust::xxh3::xxh3_64(entry.id.as_bytes());
        let point = PointStruct::new(
            id,
            dense_vector(&format!("{} {}", entry.title, entry.text)),
            payload,
        );
        self.client
            .upsert_points(UpsertPointsBuilder::new(&self.collection, vec![point]).wait(true))
            .await
            .map_err(|e| format!("Qdrant upsert: {e}"))?;
        Ok(())
    }

    pub async fn search(&self, text: &str, limit: u64, min: f64) -> Result<Vec<Match>, String> {
        let answer = self
            .client
            .query(
                QueryPointsBuilder::new(&self.collection)
                    .query(dense_vector(text))
                    .limit(limit)
                    .with_payload(true),
            )
            .await
            .map_err(|e| format!("Qdrant query: {e}"))?;
        Ok(answer
            .result
            .into_iter()
            .filter(|p| f64::from(p.score) >= min)
            .filter_map(|p| {
                let json = serde_json::to_value(&p.payload).ok()?;
                let entry: Entry = serde_json::from_value(json).ok()?;
                Some(Match {
                    entry,
                    similarity: f64::from(p.score),
                })
            })
            .collect())
    }
}

impl RemoteKnowledge for QdrantKnowledge {
    fn upsert<'a>(&'a self, entry: &'a Entry) -> RemoteFuture<'a, ()> {
        Box::pin(QdrantKnowledge::upsert(self, entry))
    }

    fn search<'a>(&'a self, text: &'a str, limit: u64, min: f64) -> RemoteFuture<'a, Vec<Match>> {
        Box::pin(QdrantKnowledge::search(self, text, limit, min))
    }

    fn name(&self) -> &'static str {
        "Qdrant"
    }
}
